"""The in-memory pieces of EM's initialisations: k-means++ seeding, the seeding sample,
and the statistics ``(nk, sums, scatter, shifts)`` of initial responsibilities (a
partition, seed rows, random responsibilities), in a kernel form ("full" or "diag").

One M-step turns such statistics into initial parameters exactly as scikit-learn's
``_initialize`` does from its ``resp``. The N×K responsibility matrix is never built: hard
partitions go through labels, random responsibilities are drawn block by block from the
same RNG stream. Which method runs, and k-means' Lloyd iterations, are the engine's
(``gmmfast._engine.initial_statistics``), over any source of rows.
"""

import numpy as np

# The widest kernel variant this CPU runs.
from gmmfast._kernels import em as _em
from gmmfast._kernels import kmeans as _kmeans
from gmmfast._mstep_core import empty_stats

# Rows per block of the passes that need a label per row (k-means): the labels of one block
# (512 KiB) instead of one int64 per row of X, an eighth of X at D = 8 in float64.
LABEL_BLOCK_ROWS = 65536

# Rows per block when random responsibilities are drawn: bounds the temporary to
# RANDOM_RESP_BLOCK × K doubles while consuming the RNG exactly as one (N, K) draw would.
RANDOM_RESP_BLOCK = 16384

# k-means++ seeding, and the first Lloyd iterations, run on a uniform sample of this many
# rows (at least SEEDING_ROWS_PER_CLUSTER per cluster) when the data are larger: seeding
# costs K passes over the rows it sees, which on the full data cost several EM iterations,
# while a sample of some thousands of rows finds the same well-spread seeds. Lloyd then
# finishes on the full data from the sample's centres, usually in two or three passes.
# Measured (kmeans init, one thread): 16 384 → 8 192 rows took 10^5 × 2, K = 4 from 7.5 to
# 3.5 ms and 2·10^5 × 8, K = 16 from 37 to 28 ms, with the same fitted lower bounds.
SEEDING_SAMPLE_ROWS = 8192
SEEDING_ROWS_PER_CLUSTER = 100


def row_blocks(X, sample_weight):
    """(rows, weights or None) of X in blocks of LABEL_BLOCK_ROWS rows, in order."""
    for start in range(0, X.shape[0], LABEL_BLOCK_ROWS):
        stop = start + LABEL_BLOCK_ROWS
        yield X[start:stop], None if sample_weight is None else sample_weight[start:stop]


def weighted_mean_and_variance(X, sample_weight, n_threads):
    """Per-feature weighted mean and variance of X, in one exact compiled pass."""
    d = X.shape[1]
    nk, sums, scatter = np.zeros(1), np.zeros((1, d)), np.zeros((1, d))
    shift = X[:1].astype(np.float64)
    one_cluster = np.zeros(min(X.shape[0], LABEL_BLOCK_ROWS), dtype=np.int64)
    for rows, weights in row_blocks(X, sample_weight):
        # Each block's statistics are added to the running totals.
        _em.stats_from_labels(rows, weights, one_cluster[:len(rows)], shift, nk, sums,
                              scatter, n_threads)
    # Non-finite X gives non-finite moments, which the caller reports.
    with np.errstate(invalid="ignore", over="ignore"):
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


def stats_from_labels(X, sample_weight, labels, shifts, form, n_threads):
    nk, sums, scatter = empty_stats(form, shifts.shape[0], X.shape[1])
    _em.stats_from_labels(X, sample_weight, labels, shifts, nk, sums, scatter, n_threads)
    return nk, sums, scatter, shifts


def stats_from_seeds(X, sample_weight, indices, form):
    """Statistics of one-hot responsibilities on the seed rows only (scikit-learn's
    k-means++ and random_from_data): each component is its seed, with zero scatter."""
    n_components = len(indices)
    nk, sums, scatter = empty_stats(form, n_components, X.shape[1])
    nk[:] = 1.0 if sample_weight is None else sample_weight[indices]
    return nk, sums, scatter, np.ascontiguousarray(X[indices], dtype=np.float64)


def stats_from_random_resp(X, sample_weight, n_components, random_state, form, n_threads,
                           shifts):
    """Statistics of uniform random responsibilities, rows normalised, about ``shifts``
    (K, D); drawn block by block from the RNG stream as one (n_samples, K) draw would be."""
    nk, sums, scatter = empty_stats(form, n_components, X.shape[1])
    for start, stop, resp in random_resp_blocks(X.shape[0], n_components, random_state,
                                                X.dtype):
        weights = None if sample_weight is None else sample_weight[start:stop]
        # Each block's statistics are added to the running totals.
        _em.stats_from_resp(X[start:stop], weights, resp, shifts, nk, sums, scatter,
                            n_threads)
    return nk, sums, scatter, shifts


def random_resp_blocks(n_samples, n_components, random_state, dtype):
    """``(start, stop, responsibilities)`` of consecutive row blocks: uniform random
    responsibilities, rows normalised, float64, drawn from ``random_state`` as one
    (n_samples, K) draw would be."""
    for start in range(0, n_samples, RANDOM_RESP_BLOCK):
        stop = min(start + RANDOM_RESP_BLOCK, n_samples)
        resp = random_state.uniform(size=(stop - start, n_components))
        resp /= resp.sum(axis=1)[:, None]
        if dtype != np.float64:
            # scikit-learn casts the responsibilities to X's dtype before its M-step.
            resp = resp.astype(dtype).astype(np.float64)
        yield start, stop, resp
