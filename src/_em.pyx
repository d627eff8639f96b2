"""The compiled EM core: one fused, chunked, parallel pass over the samples.

For a block of rows and the current parameters the pass computes the per-component weighted
log-densities, their log-sum-exp, the responsibilities, and adds the rows' contribution to the
sufficient statistics (counts, shifted first and second moments), all while a chunk of
``CHUNK_ROWS`` rows is hot in cache. The N×K responsibility matrix is never materialised.

Determinism: the chunks are dealt to a number of *groups* that depends only on the problem
shape (never on the thread count); each group sums its chunks in order into its own
accumulator and the accumulators are added in group order afterwards. Any thread count, and
any OpenMP schedule, therefore produces bit-identical statistics.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport exp, log, INFINITY
from libc.stdlib cimport free, malloc

import numpy as np

from gmmfast._chunking cimport (
    CHUNK_ROWS, group_first_chunk, n_chunks_of, n_groups_of, resolve_threads,
)
from gmmfast._openmp cimport GMMFAST_OPENMP_ENABLED, omp_get_max_threads

ROWS_PER_CHUNK = CHUNK_ROWS

cdef enum StatsSource:
    FROM_DENSITY = 0  # responsibilities from the current parameters (the E-step)
    FROM_LABELS = 1   # hard assignments (k-means initialisation)
    FROM_RESP = 2     # responsibilities given by the caller (random initialisation)


def openmp_enabled():
    """True when the compiled core was built with OpenMP."""
    return bool(GMMFAST_OPENMP_ENABLED)


def max_threads():
    """The OpenMP default thread count (honours OMP_NUM_THREADS and threadpoolctl)."""
    return omp_get_max_threads()


# --------------------------------------------------------------------------------------------
# Chunk-level kernels (declared in gmmfast/_em.pxd)
# --------------------------------------------------------------------------------------------

cdef void log_prob_full(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* means, const double* precisions_chol, const double* log_norm,
    double* diff, double* log_prob,
) noexcept nogil:
    """log π_k + log N(x_i | μ_k, Σ_k) for every row and component, full precisions.

    diff: scratch of 2 * n_features doubles.
    """
    cdef Py_ssize_t i, c, j, l
    cdef Py_ssize_t d = n_features
    cdef const floating* x
    cdef const double* mu
    cdef const double* U
    cdef double* y = diff + d
    cdef double dl, sq
    for i in range(n_rows):
        x = X + i * d
        for c in range(n_components):
            mu = means + c * d
            U = precisions_chol + c * d * d
            for j in range(d):
                diff[j] = x[j] - mu[j]
                y[j] = 0.0
            # y = (x − μ) U with U upper-triangular: row l of U only touches y[l:].
            for l in range(d):
                dl = diff[l]
                for j in range(l, d):
                    y[j] += dl * U[l * d + j]
            sq = 0.0
            for j in range(d):
                sq += y[j] * y[j]
            log_prob[i * n_components + c] = log_norm[c] - 0.5 * sq


cdef void log_prob_diag(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* means, const double* precisions_chol, const double* log_norm,
    double* log_prob,
) noexcept nogil:
    """log π_k + log N(x_i | μ_k, diag σ_k²) for every row and component."""
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t d = n_features
    cdef const floating* x
    cdef const double* mu
    cdef const double* u
    cdef double t, sq
    for i in range(n_rows):
        x = X + i * d
        for c in range(n_components):
            mu = means + c * d
            u = precisions_chol + c * d
            sq = 0.0
            for j in range(d):
                t = (x[j] - mu[j]) * u[j]
                sq += t * t
            log_prob[i * n_components + c] = log_norm[c] - 0.5 * sq


cdef inline double _logsumexp_row(const double* row, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t c
    cdef double top = row[0]
    cdef double total = 0.0
    for c in range(1, n):
        if row[c] > top:
            top = row[c]
    if top == -INFINITY:
        return top
    for c in range(n):
        total += exp(row[c] - top)
    return top + log(total)


cdef double log_prob_to_resp(
    double* log_prob, Py_ssize_t n_rows, Py_ssize_t n_components,
    const double* sample_weight, double* log_prob_norm,
) noexcept nogil:
    """Turn weighted log-probabilities into (sample-weighted) responsibilities, in place.

    log_prob: IN (n_rows, n_components) log π_k + log N(x_i | θ_k); OUT w_i · r_ik.
    sample_weight: (n_rows,) or NULL for unit weights.
    log_prob_norm: OUT (n_rows,) log p(x_i), or NULL.
    Returns Σ_i w_i log p(x_i).
    """
    cdef Py_ssize_t i, c
    cdef double* row
    cdef double lse, w
    cdef double total = 0.0
    for i in range(n_rows):
        row = log_prob + i * n_components
        lse = _logsumexp_row(row, n_components)
        w = 1.0 if sample_weight == NULL else sample_weight[i]
        if log_prob_norm != NULL:
            log_prob_norm[i] = lse
        if w == 0.0 or lse == -INFINITY:
            # A row of zero weight, or of zero density under every component, carries no
            # responsibility; exp(−inf − (−inf)) would otherwise poison the sums with NaN.
            if w != 0.0:
                total += w * lse
            for c in range(n_components):
                row[c] = 0.0
            continue
        total += w * lse
        for c in range(n_components):
            row[c] = w * exp(row[c] - lse)
    return total


cdef void accumulate_full(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* resp, const double* shifts,
    double* nk, double* sums, double* scatter, double* diff,
) noexcept nogil:
    """Add Σ r, Σ r (x − c) and the upper triangle of Σ r (x − c)(x − c)ᵀ per component.

    resp: (n_rows, n_components), already multiplied by the sample weights.
    shifts: (n_components, n_features), the c_k the moments are taken about.
    nk (K,), sums (K, D), scatter (K, D, D): accumulators; only j <= l of scatter is written.
    diff: scratch of n_features doubles.
    """
    cdef Py_ssize_t i, c, j, l
    cdef Py_ssize_t d = n_features
    cdef const floating* x
    cdef double r, rj
    cdef double* s
    cdef double* C
    for c in range(n_components):
        s = sums + c * d
        C = scatter + c * d * d
        for i in range(n_rows):
            r = resp[i * n_components + c]
            if r == 0.0:
                # Exactly-zero responsibilities (hard labels, underflow) add nothing.
                continue
            x = X + i * d
            for j in range(d):
                diff[j] = x[j] - shifts[c * d + j]
            nk[c] += r
            for j in range(d):
                rj = r * diff[j]
                s[j] += rj
                for l in range(j, d):
                    C[j * d + l] += rj * diff[l]


cdef void accumulate_diag(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* resp, const double* shifts,
    double* nk, double* sums, double* scatter,
) noexcept nogil:
    """Add Σ r, Σ r (x − c) and Σ r (x − c)² (element-wise) per component."""
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t d = n_features
    cdef const floating* x
    cdef const double* shift
    cdef double r, t
    cdef double* s
    cdef double* q
    for c in range(n_components):
        s = sums + c * d
        q = scatter + c * d
        shift = shifts + c * d
        for i in range(n_rows):
            r = resp[i * n_components + c]
            if r == 0.0:
                continue
            x = X + i * d
            nk[c] += r
            for j in range(d):
                t = x[j] - shift[j]
                s[j] += r * t
                q[j] += r * t * t


# --------------------------------------------------------------------------------------------
# One group: its chunks in order, into its own accumulator
# --------------------------------------------------------------------------------------------

cdef void _fill_resp_from_labels(
    const long long* labels, const double* sample_weight, Py_ssize_t n_rows,
    Py_ssize_t n_components, double* resp,
) noexcept nogil:
    cdef Py_ssize_t i, c
    for i in range(n_rows):
        for c in range(n_components):
            resp[i * n_components + c] = 0.0
        resp[i * n_components + labels[i]] = 1.0 if sample_weight == NULL else sample_weight[i]


cdef void _fill_resp_from_given(
    const double* given, const double* sample_weight, Py_ssize_t n_rows,
    Py_ssize_t n_components, double* resp,
) noexcept nogil:
    cdef Py_ssize_t i, c
    cdef double w
    for i in range(n_rows):
        w = 1.0 if sample_weight == NULL else sample_weight[i]
        for c in range(n_components):
            resp[i * n_components + c] = w * given[i * n_components + c]


cdef void _stats_group(
    const floating* X, Py_ssize_t n_samples, Py_ssize_t n_features, Py_ssize_t n_components,
    bint full, StatsSource source, const double* sample_weight,
    const double* shifts, const double* precisions_chol, const double* log_norm,
    const long long* labels, const double* given_resp,
    Py_ssize_t chunk_begin, Py_ssize_t chunk_end,
    double* acc, double* resp, double* diff,
) noexcept nogil:
    """Accumulate chunks [chunk_begin, chunk_end) into ``acc``.

    acc layout: [Σ w log p(x) | nk (K) | sums (K·D) | scatter (K·D·D full, K·D diag)].
    """
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t k = n_components
    cdef double* nk = acc + 1
    cdef double* sums = nk + k
    cdef double* scatter = sums + k * d
    cdef Py_ssize_t chunk, row0, m
    cdef const floating* Xc
    cdef const double* wc
    for chunk in range(chunk_begin, chunk_end):
        row0 = chunk * CHUNK_ROWS
        m = min(CHUNK_ROWS, n_samples - row0)
        Xc = X + row0 * d
        wc = NULL if sample_weight == NULL else sample_weight + row0
        if source == FROM_DENSITY:
            if full:
                log_prob_full(Xc, m, d, k, shifts, precisions_chol, log_norm, diff, resp)
            else:
                log_prob_diag(Xc, m, d, k, shifts, precisions_chol, log_norm, resp)
            acc[0] += log_prob_to_resp(resp, m, k, wc, NULL)
        elif source == FROM_LABELS:
            _fill_resp_from_labels(labels + row0, wc, m, k, resp)
        else:
            _fill_resp_from_given(given_resp + row0 * k, wc, m, k, resp)
        if full:
            accumulate_full(Xc, m, d, k, resp, shifts, nk, sums, scatter, diff)
        else:
            accumulate_diag(Xc, m, d, k, resp, shifts, nk, sums, scatter)


# --------------------------------------------------------------------------------------------
# Python entry points
# --------------------------------------------------------------------------------------------

def _as_flat(a, dtype):
    """A C-contiguous 1-D view (or copy, when the dtype or layout differs) of ``a``."""
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


def _stats_pass(
    const floating[:, ::1] X, sample_weight, shifts, precisions_chol, log_norm,
    labels, given_resp, nk, sums, scatter, int n_threads, int source,
):
    shifts = np.asarray(shifts)
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t k = shifts.shape[0]
    cdef bint full = scatter.ndim == 3

    if k < 1 or shifts.shape != (k, d):
        raise ValueError(f"means/shifts must have shape (K >= 1, {d}), got {shifts.shape}")
    if nk.shape != (k,) or sums.shape != (k, d):
        raise ValueError("nk must have shape (K,) and sums shape (K, D)")
    if scatter.shape not in ((k, d, d), (k, d)):
        raise ValueError(f"scatter must have shape ({k}, {d}, {d}) or ({k}, {d})")
    if source == FROM_DENSITY and np.shape(precisions_chol) != scatter.shape:
        raise ValueError("precisions_chol must have the shape of scatter")
    if source == FROM_DENSITY and np.shape(log_norm) != (k,):
        raise ValueError(f"log_norm must have shape ({k},)")
    if source == FROM_RESP and np.shape(given_resp) != (n, k):
        raise ValueError(f"resp must have shape ({n}, {k}), got {np.shape(given_resp)}")
    if sample_weight is not None and sample_weight.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},)")

    cdef const double[::1] w_view = None if sample_weight is None else _as_flat(sample_weight, np.float64)
    cdef const double[::1] shift_view = _as_flat(shifts, np.float64)
    cdef const double[::1] chol_view = shift_view
    cdef const double[::1] norm_view = shift_view
    cdef const long long[::1] label_view = None
    cdef const double[::1] resp_view = None
    if source == FROM_DENSITY:
        chol_view = _as_flat(precisions_chol, np.float64)
        norm_view = _as_flat(log_norm, np.float64)
    elif source == FROM_LABELS:
        label_view = _as_flat(labels, np.int64)
        if label_view.shape[0] != n:
            raise ValueError(f"labels must have shape ({n},)")
        if n and (np.min(labels) < 0 or np.max(labels) >= k):
            raise ValueError(f"labels must be in [0, {k})")
    else:
        resp_view = _as_flat(given_resp, np.float64)

    cdef Py_ssize_t stat_size = d * d if full else d
    cdef Py_ssize_t acc_size = 1 + k * (1 + d + stat_size)
    cdef Py_ssize_t n_chunks = n_chunks_of(n)
    cdef Py_ssize_t n_groups = n_groups_of(n_chunks, acc_size)
    accumulators = np.zeros((n_groups, acc_size), dtype=np.float64)
    cdef double[:, ::1] acc = accumulators
    cdef int threads = resolve_threads(n_threads, n_groups)

    cdef const floating* X_ptr = &X[0, 0] if n > 0 else NULL
    cdef const double* w_ptr = NULL if w_view is None else &w_view[0]
    cdef const double* shift_ptr = &shift_view[0]
    cdef const double* chol_ptr = &chol_view[0]
    cdef const double* norm_ptr = &norm_view[0]
    cdef const long long* label_ptr = NULL if label_view is None else &label_view[0]
    cdef const double* resp_ptr = NULL if resp_view is None else &resp_view[0]
    cdef double* resp_scratch
    cdef double* diff_scratch
    cdef Py_ssize_t g

    if n > 0:
        with nogil, parallel(num_threads=threads):
            resp_scratch = <double*> malloc(CHUNK_ROWS * k * sizeof(double))
            diff_scratch = <double*> malloc(2 * d * sizeof(double))
            for g in prange(n_groups, schedule="static"):
                _stats_group(
                    X_ptr, n, d, k, full, <StatsSource> source, w_ptr, shift_ptr,
                    chol_ptr, norm_ptr, label_ptr, resp_ptr,
                    group_first_chunk(g, n_groups, n_chunks),
                    group_first_chunk(g + 1, n_groups, n_chunks),
                    &acc[g, 0], resp_scratch, diff_scratch,
                )
            free(resp_scratch)
            free(diff_scratch)

    # Groups are combined in a fixed order, so the result does not depend on the threads.
    total = accumulators[0].copy()
    for g in range(1, n_groups):
        total += accumulators[g]
    nk += total[1:1 + k]
    sums += total[1 + k:1 + k + k * d].reshape(k, d)
    block = total[1 + k + k * d:].reshape(scatter.shape)
    if full:
        upper = np.triu(np.ones((d, d), dtype=bool))
        block = np.where(upper, block, np.swapaxes(block, 1, 2))
    scatter += block
    return float(total[0])


def em_pass(X, sample_weight, means, precisions_chol, log_norm, nk, sums, scatter,
            int n_threads=0):
    """One E-step fused with the accumulation of the M-step's sufficient statistics.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        IN. The samples.
    sample_weight : ndarray of shape (n_samples,) float64, or None
        IN. Non-negative weights; None means all ones.
    means : ndarray of shape (n_components, n_features), float64
        IN. Current means; also the shifts the moments are taken about.
    precisions_chol : ndarray, float64
        IN. (n_components, n_features, n_features) upper-triangular Cholesky factors of the
        precisions (full), or (n_components, n_features) inverse standard deviations (diag).
    log_norm : ndarray of shape (n_components,), float64
        IN. log π_k + log det U_k − ½ D log 2π.
    nk : ndarray of shape (n_components,), float64
        IN/OUT. Σ_i w_i r_ik is added.
    sums : ndarray of shape (n_components, n_features), float64
        IN/OUT. Σ_i w_i r_ik (x_i − μ_k) is added.
    scatter : ndarray, float64
        IN/OUT. (n_components, n_features, n_features) Σ_i w_i r_ik (x_i − μ_k)(x_i − μ_k)ᵀ
        (full) or (n_components, n_features) its diagonal (diag) is added.
    n_threads : int
        IN. Threads to use; <= 0 means the OpenMP default. Results do not depend on it.

    Returns
    -------
    loglik : float
        Σ_i w_i log p(x_i) under the given parameters.
    """
    return _stats_pass(X, sample_weight, means, precisions_chol, log_norm, None, None,
                       nk, sums, scatter, n_threads, FROM_DENSITY)


def stats_from_labels(X, sample_weight, labels, shifts, nk, sums, scatter, int n_threads=0):
    """Sufficient statistics of a hard partition (labels in [0, K)), moments about ``shifts``.

    Same arrays and conventions as :func:`em_pass`; ``labels`` is an int64 (n_samples,) IN.
    """
    _stats_pass(X, sample_weight, shifts, None, None, labels, None,
                nk, sums, scatter, n_threads, FROM_LABELS)


def stats_from_resp(X, sample_weight, resp, shifts, nk, sums, scatter, int n_threads=0):
    """Sufficient statistics of given responsibilities (n_samples, n_components) float64."""
    _stats_pass(X, sample_weight, shifts, None, None, None, resp,
                nk, sums, scatter, n_threads, FROM_RESP)


def score(
    const floating[:, ::1] X, means, precisions_chol, log_norm,
    floating[::1] log_prob_norm, long long[::1] labels=None, floating[:, ::1] resp=None,
    int n_threads=0,
):
    """Per-sample log-density, and optionally labels and responsibilities, chunk by chunk.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        IN.
    means, precisions_chol, log_norm : float64 ndarrays
        IN. As in :func:`em_pass`.
    log_prob_norm : ndarray of shape (n_samples,), X's dtype
        OUT. log p(x_i).
    labels : ndarray of shape (n_samples,), int64, or None
        OUT. argmax_k of log π_k + log N(x_i | θ_k) (first maximum on ties).
    resp : ndarray of shape (n_samples, n_components), X's dtype, or None
        OUT. Responsibilities p(k | x_i).
    n_threads : int
        IN. Threads to use; <= 0 means the OpenMP default.
    """
    means = np.asarray(means)
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t k = means.shape[0]
    cdef bint full = np.ndim(precisions_chol) == 3
    if k < 1 or means.shape != (k, d):
        raise ValueError(f"means must have shape ({k}, {d}), got {means.shape}")
    if log_prob_norm.shape[0] != n:
        raise ValueError(f"log_prob_norm must have shape ({n},)")
    if labels is not None and labels.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},)")
    if resp is not None and (resp.shape[0] != n or resp.shape[1] != k):
        raise ValueError(f"resp must have shape ({n}, {k})")
    cdef const double[::1] mean_view = _as_flat(means, np.float64)
    cdef const double[::1] chol_view = _as_flat(precisions_chol, np.float64)
    cdef const double[::1] norm_view = _as_flat(log_norm, np.float64)
    if chol_view.shape[0] != (k * d * d if full else k * d) or norm_view.shape[0] != k:
        raise ValueError("precisions_chol or log_norm do not match means")
    if n == 0:
        return

    cdef bint want_labels = labels is not None
    cdef bint want_resp = resp is not None
    cdef Py_ssize_t n_chunks = n_chunks_of(n)
    cdef int threads = resolve_threads(n_threads, n_chunks)
    cdef const floating* X_ptr = &X[0, 0]
    cdef const double* mean_ptr = &mean_view[0]
    cdef const double* chol_ptr = &chol_view[0]
    cdef const double* norm_ptr = &norm_view[0]
    cdef double* log_prob
    cdef double* diff
    cdef double* lse
    cdef Py_ssize_t chunk, row0, m, i, c, best

    with nogil, parallel(num_threads=threads):
        log_prob = <double*> malloc(CHUNK_ROWS * k * sizeof(double))
        lse = <double*> malloc(CHUNK_ROWS * sizeof(double))
        diff = <double*> malloc(2 * d * sizeof(double))
        for chunk in prange(n_chunks, schedule="static"):
            row0 = chunk * CHUNK_ROWS
            m = min(CHUNK_ROWS, n - row0)
            if full:
                log_prob_full(X_ptr + row0 * d, m, d, k, mean_ptr, chol_ptr, norm_ptr,
                              diff, log_prob)
            else:
                log_prob_diag(X_ptr + row0 * d, m, d, k, mean_ptr, chol_ptr, norm_ptr,
                              log_prob)
            if want_labels:
                for i in range(m):
                    best = 0
                    for c in range(1, k):
                        if log_prob[i * k + c] > log_prob[i * k + best]:
                            best = c
                    labels[row0 + i] = best
            log_prob_to_resp(log_prob, m, k, NULL, lse)
            for i in range(m):
                log_prob_norm[row0 + i] = <floating> lse[i]
                if want_resp:
                    for c in range(k):
                        resp[row0 + i, c] = <floating> log_prob[i * k + c]
        free(log_prob)
        free(lse)
        free(diff)
