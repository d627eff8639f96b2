"""Initial sufficient statistics for EM: k-means, k-means++, random, random-from-data.

Each method returns the statistics ``(nk, sums, scatter, shifts)`` of its initial
responsibilities, in the kernel form of the covariance type, so that one M-step turns them
into initial parameters exactly as scikit-learn's ``_initialize`` does from its ``resp``. The
N×K responsibility matrix is never built: hard partitions go through labels, random
responsibilities are drawn chunk by chunk from the same RNG stream.
"""

import numpy as np

# The widest kernel variant this CPU runs.
from gmmfast._kernels import em as _em
from gmmfast._kernels import kmeans as _kmeans
from gmmfast._mstep import empty_stats

# Rows per block when random responsibilities are drawn: bounds the temporary to
# RANDOM_RESP_BLOCK × K doubles while consuming the RNG exactly as one (N, K) draw would.
RANDOM_RESP_BLOCK = 65536

KMEANS_MAX_ITER = 300
KMEANS_TOL = 1e-4

# k-means++ seeding, and the first Lloyd iterations, run on a uniform sample of this many
# rows (at least SEEDING_ROWS_PER_CLUSTER per cluster) when the data are larger: seeding
# costs K passes over the rows it sees, which on the full data cost several EM iterations,
# while a sample of some thousands of rows finds the same well-spread seeds. Lloyd then
# finishes on the full data from the sample's centres, usually in two or three passes.
# Measured (kmeans init, one thread): 16 384 → 8 192 rows took 10^5 × 2, K = 4 from 7.5 to
# 3.5 ms and 2·10^5 × 8, K = 16 from 37 to 28 ms, with the same fitted lower bounds.
SEEDING_SAMPLE_ROWS = 8192
SEEDING_ROWS_PER_CLUSTER = 100


def weighted_mean_and_variance(X, sample_weight, n_threads):
    """Per-feature weighted mean and variance of X, in one exact compiled pass."""
    n, d = X.shape
    nk, sums, scatter = np.zeros(1), np.zeros((1, d)), np.zeros((1, d))
    shift = X[:1].astype(np.float64)
    _em.stats_from_labels(X, sample_weight, np.zeros(n, dtype=np.int64), shift, nk, sums,
                          scatter, n_threads)
    mean = shift[0] + sums[0] / nk[0]
    variance = scatter[0] / nk[0] - (sums[0] / nk[0]) ** 2
    return mean, np.maximum(variance, 0.0)


def kmeans_plusplus(X, sample_weight, n_clusters, random_state, n_threads):
    """Indices of k-means++ seeds (greedy variant, 2 + ⌊log k⌋ trials per centre)."""
    n_samples = X.shape[0]
    weights = np.ones(n_samples) if sample_weight is None else sample_weight
    n_local_trials = 2 + int(np.log(n_clusters))
    indices = np.empty(n_clusters, dtype=np.int64)
    indices[0] = random_state.choice(n_samples, p=weights / weights.sum())
    closest = np.full(n_samples, np.inf)
    _kmeans.update_closest_sq_dist(X, X[indices[0]].astype(np.float64), closest, n_threads)
    potential = float(weights @ closest)
    potentials = np.empty(n_local_trials)
    for c in range(1, n_clusters):
        if potential <= 0.0:
            # Every sample coincides with a chosen centre: any remaining row will do.
            candidate_ids = random_state.randint(n_samples, size=n_local_trials)
        else:
            draws = random_state.uniform(size=n_local_trials) * potential
            cumulative = np.cumsum(weights * closest)
            candidate_ids = np.searchsorted(cumulative, draws)
            np.clip(candidate_ids, None, n_samples - 1, out=candidate_ids)
        candidates = np.ascontiguousarray(X[candidate_ids], dtype=np.float64)
        _kmeans.candidate_potentials(X, sample_weight, candidates, closest, potentials,
                                     n_threads)
        best = int(np.argmin(potentials))
        indices[c] = candidate_ids[best]
        potential = float(potentials[best])
        _kmeans.update_closest_sq_dist(X, candidates[best], closest, n_threads)
    return indices


def seeding_sample(X, sample_weight, n_clusters, random_state):
    """Sorted indices of a uniform sample of rows to seed on, or None to use every row.

    Drawn with replacement and deduplicated (O(sample) rather than a permutation of N);
    None as well when the sample has fewer rows of positive weight than clusters.
    """
    n_samples = X.shape[0]
    size = max(SEEDING_SAMPLE_ROWS, SEEDING_ROWS_PER_CLUSTER * n_clusters)
    if n_samples <= size:
        return None
    # np.unique would sort the draws: marking them in a mask of N is several times faster
    # and gives the same sorted, deduplicated indices.
    drawn = np.zeros(n_samples, dtype=bool)
    drawn[random_state.randint(n_samples, size=size)] = True
    indices = np.flatnonzero(drawn)
    if sample_weight is not None and np.count_nonzero(sample_weight[indices]) < n_clusters:
        return None
    return indices


def kmeans_plusplus_seeds(X, sample_weight, n_clusters, random_state, n_threads):
    """Row indices of k-means++ seeds, drawn on the seeding sample when X is large."""
    sample = seeding_sample(X, sample_weight, n_clusters, random_state)
    if sample is None:
        return kmeans_plusplus(X, sample_weight, n_clusters, random_state, n_threads)
    weights = None if sample_weight is None else sample_weight[sample]
    return sample[kmeans_plusplus(X[sample], weights, n_clusters, random_state, n_threads)]


def kmeans_labels(X, sample_weight, n_clusters, random_state, n_threads):
    """Lloyd's k-means from k-means++ seeds; returns (labels, centres).

    On large X the seeds are drawn, and refined by Lloyd, on the seeding sample first.
    """
    _, variance = weighted_mean_and_variance(X, sample_weight, n_threads)
    tolerance = KMEANS_TOL * float(np.mean(variance))
    sample = seeding_sample(X, sample_weight, n_clusters, random_state)
    if sample is None:
        seeds = kmeans_plusplus(X, sample_weight, n_clusters, random_state, n_threads)
        centers = np.ascontiguousarray(X[seeds], dtype=np.float64)
    else:
        X_sample = np.ascontiguousarray(X[sample])
        weights = None if sample_weight is None else sample_weight[sample]
        seeds = kmeans_plusplus(X_sample, weights, n_clusters, random_state, n_threads)
        centers = np.ascontiguousarray(X_sample[seeds], dtype=np.float64)
        _, centers = lloyd(X_sample, weights, centers, tolerance, n_threads)
    return lloyd(X, sample_weight, centers, tolerance, n_threads)


def lloyd(X, sample_weight, centers, tolerance, n_threads):
    """Lloyd iterations from ``centers`` until the labels are stable or the centres move
    less than ``tolerance`` (squared); returns (labels, centres) that agree."""
    labels = np.full(X.shape[0], -1, dtype=np.int64)
    new_labels = np.empty_like(labels)
    new_centers = np.empty_like(centers)
    counts = np.empty(centers.shape[0])
    for _ in range(KMEANS_MAX_ITER):
        _kmeans.lloyd_step(X, sample_weight, centers, new_centers, counts, new_labels,
                           n_threads)
        if np.any(counts == 0):
            _relocate_empty_clusters(X, sample_weight, new_centers, counts, new_labels)
        shift = float(((new_centers - centers) ** 2).sum())
        centers, new_centers = new_centers, centers
        labels, new_labels = new_labels, labels
        if np.array_equal(labels, new_labels):
            # A fixed point: the centres are the means of this very partition.
            return labels, centers
        if shift <= tolerance:
            break
    # Labels of the final centres, so the partition and the centres agree.
    _kmeans.lloyd_step(X, sample_weight, centers, new_centers, counts, labels, n_threads)
    return labels, new_centers


def _relocate_empty_clusters(X, sample_weight, centers, counts, labels):
    """Move empty clusters onto the samples farthest from their centre (as scikit-learn)."""
    empty = np.flatnonzero(counts == 0)
    distances = np.empty(X.shape[0])
    for start in range(0, X.shape[0], RANDOM_RESP_BLOCK):
        stop = start + RANDOM_RESP_BLOCK
        diff = X[start:stop] - centers[labels[start:stop]]
        distances[start:stop] = np.einsum("ij,ij->i", diff, diff)
    if sample_weight is not None:
        distances[sample_weight == 0] = -1.0
    farthest = np.argsort(distances, kind="stable")[::-1][: len(empty)]
    centers[empty] = X[farthest]


def stats_from_labels(X, sample_weight, labels, shifts, covariance_type, n_threads):
    nk, sums, scatter = empty_stats(covariance_type, shifts.shape[0], X.shape[1])
    _em.stats_from_labels(X, sample_weight, labels, shifts, nk, sums, scatter, n_threads)
    return nk, sums, scatter, shifts


def stats_from_seeds(X, sample_weight, indices, covariance_type):
    """Statistics of one-hot responsibilities on the seed rows only (scikit-learn's
    k-means++ and random_from_data): each component is its seed, with zero scatter."""
    n_components = len(indices)
    nk, sums, scatter = empty_stats(covariance_type, n_components, X.shape[1])
    nk[:] = 1.0 if sample_weight is None else sample_weight[indices]
    return nk, sums, scatter, np.ascontiguousarray(X[indices], dtype=np.float64)


def stats_from_resp(X, sample_weight, resp, covariance_type, n_threads, shifts=None):
    """Statistics of given responsibilities (n_samples, K), moments about the data mean."""
    n_components = resp.shape[1]
    if shifts is None:
        mean, _ = weighted_mean_and_variance(X, sample_weight, n_threads)
        shifts = np.ascontiguousarray(np.broadcast_to(mean, (n_components, X.shape[1])))
    nk, sums, scatter = empty_stats(covariance_type, n_components, X.shape[1])
    _em.stats_from_resp(X, sample_weight, resp, shifts, nk, sums, scatter, n_threads)
    return nk, sums, scatter, shifts


def stats_from_random_resp(X, sample_weight, n_components, random_state, covariance_type,
                           n_threads, shifts=None):
    """Uniform random responsibilities, rows normalised, drawn block by block.

    Moments are taken about ``shifts`` (K, D), by default the weighted mean of X.
    """
    n_samples, n_features = X.shape
    if shifts is None:
        mean, _ = weighted_mean_and_variance(X, sample_weight, n_threads)
        shifts = np.ascontiguousarray(np.broadcast_to(mean, (n_components, n_features)))
    total = empty_stats(covariance_type, n_components, n_features)
    for start in range(0, n_samples, RANDOM_RESP_BLOCK):
        stop = min(start + RANDOM_RESP_BLOCK, n_samples)
        resp = random_state.uniform(size=(stop - start, n_components))
        resp /= resp.sum(axis=1)[:, None]
        # scikit-learn casts the responsibilities to X's dtype before its M-step.
        resp = resp.astype(X.dtype).astype(np.float64)
        weights = None if sample_weight is None else sample_weight[start:stop]
        block = stats_from_resp(X[start:stop], weights, resp, covariance_type, n_threads,
                                shifts)
        for accumulated, part in zip(total, block):
            accumulated += part
    return (*total, shifts)


def initial_stats(X, sample_weight, n_components, init_params, covariance_type,
                  random_state, n_threads):
    """Statistics of the initial responsibilities chosen by ``init_params``."""
    if init_params == "kmeans":
        labels, centers = kmeans_labels(X, sample_weight, n_components, random_state,
                                        n_threads)
        return stats_from_labels(X, sample_weight, labels, centers, covariance_type,
                                 n_threads)
    if init_params == "k-means++":
        indices = kmeans_plusplus_seeds(X, sample_weight, n_components, random_state,
                                        n_threads)
        return stats_from_seeds(X, sample_weight, indices, covariance_type)
    if init_params == "random_from_data":
        if sample_weight is None:
            indices = random_state.choice(X.shape[0], size=n_components, replace=False)
        else:
            # Rows of zero weight are not part of the data set.
            candidates = np.flatnonzero(sample_weight > 0)
            indices = random_state.choice(candidates, size=n_components, replace=False)
        return stats_from_seeds(X, sample_weight, indices, covariance_type)
    if init_params == "random":
        return stats_from_random_resp(X, sample_weight, n_components, random_state,
                                      covariance_type, n_threads)
    raise ValueError(f"Unknown init_params {init_params!r}")


