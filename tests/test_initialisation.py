"""k-means and k-means++ initialisation on large data: seeding on a uniform row sample,
Lloyd finished on every row (gmmfast._initialisation, gmmfast._engine)."""

import numpy as np
import pytest

from gmmfast import _initialisation as init
from gmmfast._compat import check_random_state
from gmmfast._engine import InMemorySource, kmeans_centres


def kmeans_labels(X, weights, n_clusters, random_state, n_threads):
    """(labels, means) of the engine's k-means: the partition by nearest final centre and
    the means of that partition, as its initial statistics give them."""
    source = InMemorySource(X, weights)
    centres = kmeans_centres(source, n_clusters, random_state, n_threads)
    labels = np.empty(len(X), dtype=np.int64)
    source.lloyd_step(centres, n_threads, labels)
    stats = source.nearest_centre_statistics(centres, "diag", n_threads)
    return labels, stats.shifts + stats.sums / stats.nk[:, None]


def kmeans_plusplus_seeds(X, weights, n_clusters, random_state, n_threads):
    """Row indices of k-means++ seeds drawn on the seeding sample, as the engine draws them."""
    indices = init.seeding_sample(X, weights, n_clusters, random_state)
    if indices is None:
        return init.kmeans_plusplus(X, weights, n_clusters, random_state, n_threads)
    sample_weights = None if weights is None else weights[indices]
    return indices[init.kmeans_plusplus(X[indices], sample_weights, n_clusters,
                                        random_state, n_threads)]

N_LARGE = 2 * init.SEEDING_SAMPLE_ROWS + 1001  # large enough to seed on a sample
CENTRES = np.array([[0.0, 0.0, 0.0], [20.0, 0.0, 0.0], [0.0, 20.0, 0.0], [0.0, 0.0, 20.0],
                    [20.0, 20.0, 20.0]])


@pytest.fixture(scope="module")
def blobs():
    """Five well-separated unit blobs, N_LARGE rows, and the true labels."""
    rng = np.random.default_rng(0)
    truth = rng.integers(len(CENTRES), size=N_LARGE)
    X = CENTRES[truth] + rng.standard_normal((N_LARGE, 3))
    return X, truth


def same_partition(labels, truth):
    """True when labels equal truth up to a renaming of the clusters."""
    pairs = set(zip(labels.tolist(), truth.tolist()))
    return len(pairs) == len(set(labels.tolist())) == len(set(truth.tolist()))


def test_small_data_is_seeded_on_every_row():
    X = np.zeros((init.SEEDING_SAMPLE_ROWS, 2))
    assert init.seeding_sample(X, None, 5, check_random_state(0)) is None


def test_seeding_sample_is_sorted_unique_rows(blobs):
    X, _ = blobs
    sample = init.seeding_sample(X, None, 5, check_random_state(0))
    assert sample is not None
    assert np.all(np.diff(sample) > 0) and sample[0] >= 0 and sample[-1] < len(X)
    # Drawn with replacement then deduplicated: about (1 - 1/e^(s/N)) N distinct rows.
    assert 0.75 * init.SEEDING_SAMPLE_ROWS < len(sample) <= init.SEEDING_SAMPLE_ROWS


def test_sample_grows_with_the_number_of_clusters(blobs):
    X, _ = blobs
    k = (2 * init.SEEDING_SAMPLE_ROWS) // init.SEEDING_ROWS_PER_CLUSTER
    sample = init.seeding_sample(X, None, k, check_random_state(0))
    assert sample is None or len(sample) > init.SEEDING_SAMPLE_ROWS


def test_sample_without_enough_weighted_rows_falls_back_to_every_row(blobs):
    X, _ = blobs
    weights = np.zeros(len(X))
    weights[:3] = 1.0  # almost surely none of them in the sample
    assert init.seeding_sample(X, weights, 3, check_random_state(0)) is None
    seeds = kmeans_plusplus_seeds(X, weights, 3, check_random_state(0), 1)
    assert sorted(seeds.tolist()) == [0, 1, 2]


def test_kmeans_on_a_sample_recovers_well_separated_clusters(blobs):
    X, truth = blobs
    labels, centers = kmeans_labels(X, None, 5, check_random_state(1), 0)
    assert same_partition(labels, truth)
    # Lloyd finished on every row: the centres are the means of the returned partition.
    for c in range(5):
        np.testing.assert_allclose(centers[c], X[labels == c].mean(axis=0), rtol=0,
                                   atol=1e-12)


def test_kmeans_plusplus_seeds_are_rows_one_per_cluster(blobs):
    X, truth = blobs
    seeds = kmeans_plusplus_seeds(X, None, 5, check_random_state(2), 0)
    assert seeds.dtype.kind == "i" and len(set(seeds.tolist())) == 5
    # D² sampling on well-separated blobs takes one seed in each.
    assert sorted(truth[seeds].tolist()) == [0, 1, 2, 3, 4]


def test_weighted_kmeans_ignores_rows_of_zero_weight(blobs):
    X, truth = blobs
    weights = np.where(truth == 4, 0.0, 1.0)  # the fifth blob is not part of the data
    labels, centers = kmeans_labels(X, weights, 4, check_random_state(3), 0)
    kept = weights > 0
    assert same_partition(labels[kept], truth[kept])
    np.testing.assert_allclose(np.sort(np.round(centers), axis=0),
                               np.sort(CENTRES[:4], axis=0), atol=0.5)


def test_initialisation_is_deterministic_for_a_seed(blobs):
    X, _ = blobs
    a = kmeans_labels(X, None, 5, check_random_state(4), 1)
    b = kmeans_labels(X, None, 5, check_random_state(4), 2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
