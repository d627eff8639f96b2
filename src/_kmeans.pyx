"""Compiled k-means for initialisation: Lloyd iterations and k-means++ seeding support.

Same chunking and determinism rule as the EM core (gmmfast/_chunking.pxd): every reduction
goes through accumulators whose number depends only on the shape, summed in a fixed order.
Distances are taken as Σ (x − c)², never by the expanded ‖x‖² − 2x·c + ‖c‖², so they stay
exact far from the origin.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc

import numpy as np

from gmmfast._chunking cimport (
    CHUNK_ROWS, group_first_chunk, n_chunks_of, n_groups_of, pass_work, requested_threads,
    resolve_threads,
)


cdef double sq_distance(
    const floating* x, const double* center, Py_ssize_t n_features
) noexcept nogil:
    """‖x − center‖² for one sample x (n_features,) and a float64 centre."""
    cdef Py_ssize_t j
    cdef double t, total = 0.0
    for j in range(n_features):
        t = x[j] - center[j]
        total += t * t
    return total


# Up to this many cluster × (feature + count) terms, _lloyd_chunk adds its counts and sums
# as masked sums over the rows (measured: a Lloyd step of 10^5 × 2 rows, K = 4, 0.61 →
# 0.50 ms; 2·10^5 × 8, K = 16 was slower that way than row by row).
cdef Py_ssize_t MASKED_SUMS_MAX_TERMS = 32


cdef struct LloydScratch:
    double* xt          # the chunk transposed: features × rows
    double* dist        # distances of the rows to one centre
    double* best_dist
    # Labels are held as doubles (exact below 2^53) while the distances are compared: one
    # type in the loop lets it vectorise.
    double* best_label


cdef LloydScratch alloc_lloyd_scratch(Py_ssize_t n_features, Py_ssize_t n_rows) noexcept nogil:
    """Scratch for _lloyd_chunk on up to n_rows rows; xt is NULL if malloc failed."""
    cdef LloydScratch s
    s.xt = <double*> malloc((n_features + 3) * max(n_rows, <Py_ssize_t> 1) * sizeof(double))
    s.dist = NULL if s.xt == NULL else s.xt + n_features * n_rows
    s.best_dist = NULL if s.xt == NULL else s.dist + n_rows
    s.best_label = NULL if s.xt == NULL else s.best_dist + n_rows
    return s


cdef void lloyd_chunk(
    const floating* X, const double* sample_weight, Py_ssize_t n_rows,
    Py_ssize_t n_features, const double* centers, Py_ssize_t n_clusters,
    long long* labels, double* acc,
) noexcept nogil:
    """The C API's Lloyd assignment (gmmfast/_kmeans.pxd): _lloyd_chunk with its own scratch.

    If the scratch cannot be allocated, every label is set to −1 and acc is left alone.
    """
    cdef LloydScratch s = alloc_lloyd_scratch(n_features, n_rows)
    cdef Py_ssize_t i
    if s.xt == NULL:
        for i in range(n_rows):
            labels[i] = -1
        return
    _lloyd_chunk(X, sample_weight, n_rows, n_features, centers, n_clusters, labels, acc, s)
    free(s.xt)


cdef void _lloyd_chunk(
    const floating* X, const double* sample_weight, Py_ssize_t n_rows,
    Py_ssize_t n_features, const double* centers, Py_ssize_t n_clusters,
    long long* labels, double* acc, LloydScratch s,
) noexcept nogil:
    """Assign rows to their nearest centre; add inertia, counts and Σ w (x − c) to acc.

    acc layout: [inertia | counts (K) | sums about the old centres (K·D)].
    The distances are taken on the chunk transposed (features × rows), one centre at a
    time, so that every loop over the rows vectorises. The counts and sums are added row by
    row, which chains consecutive rows of one cluster through a store and a load of the
    same accumulators; with few clusters and features, masked sums over all the rows per
    cluster and feature (K·(D + 1) vector loops) are faster.
    """
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef double* xt = s.xt
    cdef double* dist = s.dist
    cdef double* best_dist = s.best_dist
    cdef double* best_label = s.best_label
    cdef double* counts = acc + 1
    cdef double* sums = counts + n_clusters
    cdef double shift, t, total
    for i in range(m):
        for j in range(d):
            xt[j * m + i] = X[i * d + j]
    for c in range(n_clusters):
        for i in range(m):
            dist[i] = 0.0
        for j in range(d):
            shift = centers[c * d + j]
            for i in range(m):
                t = xt[j * m + i] - shift
                dist[i] += t * t
        if c == 0:
            for i in range(m):
                best_dist[i] = dist[i]
                best_label[i] = 0.0
        else:
            # Strictly smaller: the first centre wins ties.
            for i in range(m):
                best_label[i] = <double> c if dist[i] < best_dist[i] else best_label[i]
                best_dist[i] = dist[i] if dist[i] < best_dist[i] else best_dist[i]
    for i in range(m):
        labels[i] = <long long> best_label[i]
    # From here, dist holds each row's weight.
    for i in range(m):
        dist[i] = 1.0 if sample_weight == NULL else sample_weight[i]
    total = 0.0
    for i in range(m):
        total += dist[i] * best_dist[i]
    acc[0] += total
    if n_clusters * (d + 1) > MASKED_SUMS_MAX_TERMS:
        for i in range(m):
            c = labels[i]
            counts[c] += dist[i]
            for j in range(d):
                sums[c * d + j] += dist[i] * (xt[j * m + i] - centers[c * d + j])
        return
    for c in range(n_clusters):
        total = _cluster_sum(dist, NULL, 0.0, best_label, c, m)
        counts[c] += total
        if total == 0.0:
            continue
        for j in range(d):
            sums[c * d + j] += _cluster_sum(dist, xt + j * m, centers[c * d + j], best_label,
                                            c, m)


cdef inline double _cluster_sum(
    const double* weight, const double* values, double shift, const double* label,
    Py_ssize_t cluster, Py_ssize_t m,
) noexcept nogil:
    """Σ weight[i] (values[i] − shift) over the rows i with label[i] == cluster
    (Σ weight[i] if values is NULL).

    The rows are summed as four interleaved quarters: four independent chains of vector
    additions instead of one, whose latency would bound the loop.
    """
    cdef double c = <double> cluster
    cdef Py_ssize_t q = m // 4
    cdef Py_ssize_t i
    cdef double t0 = 0.0, t1 = 0.0, t2 = 0.0, t3 = 0.0
    if values == NULL:
        for i in range(q):
            t0 += weight[i] if label[i] == c else 0.0
            t1 += weight[i + q] if label[i + q] == c else 0.0
            t2 += weight[i + 2 * q] if label[i + 2 * q] == c else 0.0
            t3 += weight[i + 3 * q] if label[i + 3 * q] == c else 0.0
        for i in range(4 * q, m):
            t0 += weight[i] if label[i] == c else 0.0
    else:
        for i in range(q):
            t0 += weight[i] * (values[i] - shift) if label[i] == c else 0.0
            t1 += weight[i + q] * (values[i + q] - shift) if label[i + q] == c else 0.0
            t2 += (weight[i + 2 * q] * (values[i + 2 * q] - shift)
                   if label[i + 2 * q] == c else 0.0)
            t3 += (weight[i + 3 * q] * (values[i + 3 * q] - shift)
                   if label[i + 3 * q] == c else 0.0)
        for i in range(4 * q, m):
            t0 += weight[i] * (values[i] - shift) if label[i] == c else 0.0
    return (t0 + t1) + (t2 + t3)


def lloyd_step(
    const floating[:, ::1] X, const double[::1] sample_weight, const double[:, ::1] centers,
    double[:, ::1] new_centers, double[::1] counts, long long[::1] labels, n_threads=0,
):
    """One Lloyd iteration: assign every sample to its nearest centre, recompute centres.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        IN.
    sample_weight : ndarray of shape (n_samples,) float64, or None
        IN. None means all ones.
    centers : ndarray of shape (n_clusters, n_features), float64
        IN. Current centres.
    new_centers : ndarray of shape (n_clusters, n_features), float64
        OUT. Weighted mean of each cluster; an empty cluster keeps its old centre.
    counts : ndarray of shape (n_clusters,), float64
        OUT. Total sample weight of each cluster.
    labels : ndarray of shape (n_samples,), int64
        OUT. Index of the nearest centre (first one on ties).
    n_threads : int
        IN. <= 0 means the OpenMP default; at most the CPU count (larger values are
        capped), and fewer for a small pass, as :func:`gmmfast._em.em_pass`. Results do not
        depend on it.

    Returns
    -------
    inertia : float
        Σ_i w_i ‖x_i − c_label(i)‖² under the *old* centres.
    """
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t k = centers.shape[0]
    if k < 1:
        raise ValueError("lloyd_step needs at least one centre")
    if centers.shape[1] != d or new_centers.shape[0] != k or new_centers.shape[1] != d:
        raise ValueError(f"centers and new_centers must have shape ({k}, {d})")
    if counts.shape[0] != k or labels.shape[0] != n:
        raise ValueError("counts must have shape (K,) and labels (n_samples,)")
    if sample_weight is not None and sample_weight.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},)")
    cdef Py_ssize_t acc_size = 1 + k * (1 + d)
    cdef Py_ssize_t n_chunks = n_chunks_of(n)
    cdef Py_ssize_t n_groups = n_groups_of(n_chunks, acc_size)
    accumulators = np.zeros((max(n_groups, 1), acc_size), dtype=np.float64)
    cdef double[:, ::1] acc = accumulators
    cdef int threads = resolve_threads(requested_threads(n_threads), n_groups,
                                       pass_work(n, k, d))
    cdef const double* w_ptr = NULL if sample_weight is None else &sample_weight[0]
    cdef Py_ssize_t g, chunk, row0
    cdef LloydScratch scratch
    cdef Py_ssize_t groups_without_memory = 0

    if n > 0:
        with nogil, parallel(num_threads=threads):
            scratch = alloc_lloyd_scratch(d, min(n, <Py_ssize_t> CHUNK_ROWS))
            for g in prange(n_groups, schedule="static"):
                if scratch.xt == NULL:
                    groups_without_memory += 1
                    continue
                for chunk in range(group_first_chunk(g, n_groups, n_chunks),
                                   group_first_chunk(g + 1, n_groups, n_chunks)):
                    row0 = chunk * CHUNK_ROWS
                    _lloyd_chunk(
                        &X[row0, 0], NULL if w_ptr == NULL else w_ptr + row0,
                        min(<Py_ssize_t> CHUNK_ROWS, n - row0), d, &centers[0, 0], k,
                        &labels[row0], &acc[g, 0], scratch,
                    )
            free(scratch.xt)
    if groups_without_memory:
        raise MemoryError(f"lloyd_step: no memory for the scratch of a {d}-feature chunk")

    total = accumulators.sum(axis=0)  # fixed order: see gmmfast/_chunking.pxd
    cluster_weight = total[1:1 + k]
    shift_sums = total[1 + k:].reshape(k, d)
    old = np.asarray(centers)
    filled = cluster_weight > 0
    moved = old.copy()
    moved[filled] += shift_sums[filled] / cluster_weight[filled, None]
    np.asarray(new_centers)[...] = moved
    np.asarray(counts)[...] = cluster_weight
    return float(total[0])


def update_closest_sq_dist(
    const floating[:, ::1] X, const double[::1] center, double[::1] closest_sq_dist,
    n_threads=0,
):
    """closest_sq_dist[i] = min(closest_sq_dist[i], ‖x_i − center‖²), in place (IN/OUT)."""
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    if center.shape[0] != d or closest_sq_dist.shape[0] != n:
        raise ValueError("center must have shape (n_features,), closest (n_samples,)")
    cdef int threads = resolve_threads(requested_threads(n_threads), n_chunks_of(n),
                                       pass_work(n, 1, d))
    cdef Py_ssize_t i
    cdef double dist
    if n == 0:
        return
    with nogil:
        for i in prange(n, num_threads=threads, schedule="static"):
            dist = sq_distance(&X[i, 0], &center[0], d)
            if dist < closest_sq_dist[i]:
                closest_sq_dist[i] = dist


def candidate_potentials(
    const floating[:, ::1] X, const double[::1] sample_weight,
    const double[:, ::1] candidates, const double[::1] closest_sq_dist,
    double[::1] potentials, n_threads=0,
):
    """k-means++ potential of each candidate centre: Σ_i w_i min(closest_i, ‖x_i − cand‖²).

    candidates (n_candidates, n_features) IN; potentials (n_candidates,) OUT.
    """
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t t = candidates.shape[0]
    if candidates.shape[1] != d or closest_sq_dist.shape[0] != n or potentials.shape[0] != t:
        raise ValueError("candidates, closest_sq_dist or potentials have the wrong shape")
    if sample_weight is not None and sample_weight.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},)")
    if t == 0:
        return
    cdef Py_ssize_t n_chunks = n_chunks_of(n)
    cdef Py_ssize_t n_groups = n_groups_of(n_chunks, t)
    accumulators = np.zeros((max(n_groups, 1), t), dtype=np.float64)
    cdef double[:, ::1] acc = accumulators
    cdef int threads = resolve_threads(requested_threads(n_threads), n_groups,
                                       pass_work(n, t, d))
    cdef const double* w_ptr = NULL if sample_weight is None else &sample_weight[0]
    cdef Py_ssize_t g, i, c, row_end
    cdef double dist, w

    if n > 0:
        with nogil, parallel(num_threads=threads):
            for g in prange(n_groups, schedule="static"):
                row_end = min(n, group_first_chunk(g + 1, n_groups, n_chunks) * CHUNK_ROWS)
                for i in range(group_first_chunk(g, n_groups, n_chunks) * CHUNK_ROWS, row_end):
                    w = 1.0 if w_ptr == NULL else w_ptr[i]
                    for c in range(t):
                        dist = sq_distance(&X[i, 0], &candidates[c, 0], d)
                        if closest_sq_dist[i] < dist:
                            dist = closest_sq_dist[i]
                        acc[g, c] += w * dist

    np.asarray(potentials)[...] = accumulators.sum(axis=0)
