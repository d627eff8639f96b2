"""The model-based (VVV criterion) hierarchical agglomeration against a slow reference."""

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, is_valid_linkage

from gmmfast._agglomeration import ALPHA, BETA, spherical_top, vvv_linkage


def criterion_term(rows, spread):
    """n log det Σ of one cluster, Σ = (W + s I) / n, s = spread + beta tr(W) / (n p)."""
    n, p = rows.shape
    centred = rows - rows.mean(axis=0)
    scatter = centred.T @ centred
    shrink = spread + BETA * np.trace(scatter) / (n * p)
    return n * np.linalg.slogdet((scatter + shrink * np.eye(p)) / n)[1]


def exhaustive_merges(X, clusters, first_id, term):
    """Merge the live ``clusters`` (id -> rows) pair by pair down to one, the pair that
    changes Σ term least at every step (every pair tried; ties to the lowest ids); merged
    clusters take ids from ``first_id`` on."""
    spread = ALPHA * X.var(axis=0).mean()
    merges = []
    while len(clusters) > 1:
        ids = sorted(clusters)
        best = None
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                change = (term(X[clusters[a] + clusters[b]], spread)
                          - term(X[clusters[a]], spread) - term(X[clusters[b]], spread))
                if best is None or change < best[0]:
                    best = (change, a, b)
        _, a, b = best
        clusters[first_id + len(merges)] = clusters.pop(a) + clusters.pop(b)
        merges.append((a, b))
    return np.array(merges)


def reference_merges(X):
    """The VVV tree from single rows, every pair tried at every step."""
    return exhaustive_merges(X, {i: [i] for i in range(len(X))}, len(X), criterion_term)


def grouped(n_samples, n_features, seed):
    """Three elongated groups of unequal sizes."""
    rng = np.random.RandomState(seed)
    sizes = rng.multinomial(n_samples - 3, [0.5, 0.3, 0.2]) + 1
    parts = [rng.uniform(-5, 5, n_features) + rng.randn(m, n_features)
             @ rng.randn(n_features, n_features) for m in sizes]
    return rng.permutation(np.vstack(parts))


@pytest.mark.parametrize("n_features", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_merges_equal_the_reference(n_features, seed):
    X = grouped(24, n_features, seed)
    linkage = vvv_linkage(X)
    np.testing.assert_array_equal(linkage[:, :2].astype(int), reference_merges(X))


def test_fewer_rows_than_dimensions_merge_as_the_reference():
    X = grouped(8, 6, 2)
    np.testing.assert_array_equal(vvv_linkage(X)[:, :2].astype(int), reference_merges(X))


def test_the_linkage_cuts_into_the_clusters_of_its_first_merges():
    X = grouped(60, 2, 3)
    linkage = vvv_linkage(X)
    assert is_valid_linkage(linkage)
    members = {i: {i} for i in range(len(X))}
    for step, (a, b, _, size) in enumerate(linkage):
        members[len(X) + step] = members.pop(int(a)) | members.pop(int(b))
        assert size == len(members[len(X) + step])
        n_clusters = len(X) - step - 1
        if n_clusters in (2, 3, 7):
            labels = fcluster(linkage, n_clusters, criterion="maxclust")
            partition = {frozenset(np.flatnonzero(labels == label)) for label in set(labels)}
            assert partition == {frozenset(rows) for rows in members.values()}


def test_deterministic_and_unchanged_by_a_common_scale():
    X = grouped(200, 3, 4)
    first = vvv_linkage(X)
    np.testing.assert_array_equal(first, vvv_linkage(X.copy()))
    np.testing.assert_array_equal(first, vvv_linkage(X * 1e3))


def test_identical_rows_merge_first():
    X = grouped(30, 2, 5)
    X = np.vstack([X, X[[3]]])
    np.testing.assert_array_equal(vvv_linkage(X)[0, :2], [3, 30])


def test_the_cut_in_two_finds_two_separated_elongated_groups():
    rng = np.random.RandomState(0)
    along = rng.randn(200, 1) * [6.0, 0.0] + rng.randn(200, 2) * 0.4
    across = rng.randn(200, 1) * [0.0, 6.0] + rng.randn(200, 2) * 0.4 + [30.0, 0.0]
    labels = fcluster(vvv_linkage(np.vstack([along, across])), 2, criterion="maxclust")
    np.testing.assert_array_equal(labels, np.repeat(labels[[0, 200]], 200))
    assert labels[0] != labels[200]


@pytest.mark.parametrize("X, message", [
    (np.zeros((1, 2)), "at least 2 rows"),
    (np.ones((5, 2)), "not all equal"),
    (np.array([[0.0, 1.0], [np.nan, 2.0]]), "finite"),
])
def test_bad_rows_are_refused(X, message):
    with pytest.raises(ValueError, match=message):
        vvv_linkage(X)


@pytest.mark.parametrize("alpha, beta", [(0.0, 1.0), (-1.0, 1.0), (1.0, -0.5), (np.nan, 1.0)])
def test_bad_regularisation_is_refused(alpha, beta):
    with pytest.raises(ValueError, match="alpha must be positive and beta non-negative"):
        vvv_linkage(grouped(10, 2, 0), alpha, beta)


def test_beta_changes_the_merges():
    X = grouped(24, 3, 7)
    assert not np.array_equal(vvv_linkage(X, beta=0.0), vvv_linkage(X))


def spherical_term(rows, spread):
    """n p log(tr Σ / p) of one cluster, Σ regularised as in criterion_term."""
    n, p = rows.shape
    centred = rows - rows.mean(axis=0)
    trace = np.sum(centred**2)
    shrink = spread + BETA * trace / (n * p)
    return n * p * np.log((trace + p * shrink) / (n * p))


def reference_spherical_top(X, linkage, n_clusters):
    """The clusters left by the tree's first merges, merged pair by pair under the
    spherical criterion, every pair tried at every step."""
    n = len(X)
    clusters = {i: [i] for i in range(n)}
    for step, (a, b) in enumerate(linkage[:n - n_clusters, :2].astype(int)):
        clusters[n + step] = clusters.pop(a) + clusters.pop(b)
    return exhaustive_merges(X, clusters, 2 * n - n_clusters, spherical_term)


@pytest.mark.parametrize("n_features", [1, 3, 5])
@pytest.mark.parametrize("n_clusters", [2, 6, 12])
def test_spherical_top_merges_equal_the_reference(n_features, n_clusters):
    X = grouped(40, n_features, n_features)
    tree = vvv_linkage(X)
    top = spherical_top(tree, X, n_clusters)
    assert is_valid_linkage(top)
    first = len(X) - n_clusters
    np.testing.assert_array_equal(top[:first], tree[:first])
    np.testing.assert_array_equal(top[first:, :2].astype(int),
                                  reference_spherical_top(X, tree, n_clusters))
    np.testing.assert_array_equal(top[:, 2], np.arange(1, len(X)))
    for k in range(n_clusters, len(X) + 1, 7):  # the VVV tree's cuts from n_clusters on
        same = fcluster(top, k, criterion="maxclust"), fcluster(tree, k, criterion="maxclust")
        assert len(set(zip(*same))) == k


def test_spherical_top_of_every_row_is_the_tree():
    X = grouped(10, 2, 0)
    tree = vvv_linkage(X)
    assert spherical_top(tree, X, len(X)) is tree
