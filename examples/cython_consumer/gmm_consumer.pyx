# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""A downstream module built on gmmfast's C-level API.

It scores samples under a Gaussian mixture, and accumulates the mixture's sufficient
statistics, with gmmfast's chunk kernels called from *this* module's own ``prange`` loop.
Nothing here is gmmfast-internal: only the functions declared in ``gmmfast/_em.pxd``, with
the argument layouts documented in gmmfast's ``docs/c_api.md``.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport free, malloc

import os

import numpy as np
from threadpoolctl import threadpool_limits

from gmmfast._em cimport (
    accumulate_diag,
    accumulate_full,
    log_prob_diag,
    log_prob_full,
    log_prob_to_resp,
    transpose_chunk,
)

# Rows per chunk: any size works; a few hundred keeps a chunk's scratch in cache.
cdef enum:
    CHUNK_ROWS = 256


def kernel_parameters(weights, means, precisions_cholesky, covariance_type):
    """(means, precisions_chol, log_norm) in the layout gmmfast's kernels take.

    From the fitted attributes of a ``GaussianMixture`` (gmmfast's or scikit-learn's):
    tied factors are repeated for every component and spherical ones for every feature, so
    the two kernel forms, full (K, D, D) and diag (K, D), serve all four covariance types.
    """
    means = np.ascontiguousarray(means, dtype=np.float64)
    n_components, n_features = means.shape
    chol = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type == "tied":
        chol = np.broadcast_to(chol, (n_components, n_features, n_features))
    elif covariance_type == "spherical":
        chol = np.broadcast_to(chol[:, None], (n_components, n_features))
    chol = np.ascontiguousarray(chol)
    if chol.ndim == 3:
        log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    else:
        log_det = np.log(chol).sum(axis=1)
    log_norm = (np.log(np.asarray(weights, dtype=np.float64)) + log_det
                - 0.5 * n_features * np.log(2.0 * np.pi))
    return means, chol, np.ascontiguousarray(log_norm)


def _checked(X, means, precisions_chol, log_norm):
    n_features = X.shape[1]
    n_components = means.shape[0]
    chol = np.ascontiguousarray(precisions_chol, dtype=np.float64)
    if means.shape[1] != n_features:
        raise ValueError(f"means must have {n_features} columns, got shape {means.shape}")
    if chol.shape not in ((n_components, n_features, n_features),
                          (n_components, n_features)):
        raise ValueError(f"precisions_chol has shape {chol.shape}, expected "
                         f"({n_components}, {n_features}, {n_features}) or "
                         f"({n_components}, {n_features})")
    if log_norm.shape[0] != n_components:
        raise ValueError(f"log_norm must have shape ({n_components},)")
    return chol.ndim == 3, chol.reshape(-1)


def _threads(n_threads):
    return n_threads if n_threads is not None and n_threads > 0 else (os.cpu_count() or 1)


def score_samples(
    const floating[:, ::1] X,
    const double[:, ::1] means,
    precisions_chol,
    const double[::1] log_norm,
    n_threads=None,
):
    """log p(x_i) for every row of X: ``GaussianMixture.score_samples`` in our own loop.

    Parameters
    ----------
    X : (n_samples, n_features) float32 or float64, C-contiguous
    means : (n_components, n_features) float64
    precisions_chol : (n_components, n_features, n_features) upper-triangular U with
        U Uᵀ = Σ⁻¹ (full), or (n_components, n_features) 1/σ (diag); see
        :func:`kernel_parameters`.
    log_norm : (n_components,) float64, log π_k + log det U_k − ½ D log 2π
    n_threads : int or None (all cores)

    Returns
    -------
    (n_samples,) float64
    """
    cdef bint full
    full, chol_flat = _checked(X, means, precisions_chol, log_norm)
    cdef const double[::1] chol = chol_flat
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t k = means.shape[0]
    cdef Py_ssize_t n_chunks = (n + CHUNK_ROWS - 1) // CHUNK_ROWS
    cdef int threads = max(1, min(_threads(n_threads), max(n_chunks, 1)))
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] log_prob_norm = out
    cdef Py_ssize_t chunk, row0, m
    cdef double* xt
    cdef double* work
    cdef double* log_prob
    if n == 0:
        return out

    # log_prob_full calls BLAS on (chunk × D) blocks: BLAS's own threads would only fight ours.
    with threadpool_limits(limits=1, user_api="blas"):
        with nogil, parallel(num_threads=threads):
            # Per-thread scratch, sized for a full chunk (docs/c_api.md gives each size).
            xt = <double*> malloc(d * CHUNK_ROWS * sizeof(double))
            work = <double*> malloc((2 * d + 2) * CHUNK_ROWS * sizeof(double))
            log_prob = <double*> malloc(k * CHUNK_ROWS * sizeof(double))
            for chunk in prange(n_chunks, schedule="static"):
                row0 = chunk * CHUNK_ROWS
                m = min(<Py_ssize_t> CHUNK_ROWS, n - row0)
                transpose_chunk(&X[row0, 0], m, d, xt)
                if full:
                    log_prob_full(xt, m, d, k, &means[0, 0], &chol[0], &log_norm[0],
                                  work, log_prob)
                else:
                    log_prob_diag(xt, m, d, k, &means[0, 0], &chol[0], &log_norm[0],
                                  log_prob)
                # log-sum-exp over components straight into our output rows.
                log_prob_to_resp(log_prob, m, k, NULL, &log_prob_norm[row0], work)
            free(xt)
            free(work)
            free(log_prob)
    return out


def mixture_statistics(
    const floating[:, ::1] X,
    const double[:, ::1] means,
    precisions_chol,
    const double[::1] log_norm,
    n_threads=None,
):
    """One E-step's sufficient statistics, moments taken about the current means.

    Returns (loglik, nk, sums, scatter): Σ log p(x_i), Σ r_ik, Σ r_ik (x_i − μ_k) and
    Σ r_ik (x_i − μ_k)(x_i − μ_k)ᵀ (full: (K, D, D), symmetric) or its diagonal (diag:
    (K, D)). Each thread adds into its own accumulator; they are summed at the end (so the
    last digits may depend on the thread count, unlike gmmfast's own fixed-order passes).
    """
    cdef bint full
    full, chol_flat = _checked(X, means, precisions_chol, log_norm)
    cdef const double[::1] chol = chol_flat
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t k = means.shape[0]
    cdef Py_ssize_t n_chunks = (n + CHUNK_ROWS - 1) // CHUNK_ROWS
    cdef int threads = max(1, min(_threads(n_threads), max(n_chunks, 1)))
    cdef Py_ssize_t stat_size = d * d if full else d
    # Per thread: [Σ log p | nk (K) | sums (K·D) | scatter (K·D·D or K·D)].
    cdef Py_ssize_t acc_size = 1 + k * (1 + d + stat_size)
    accumulators = np.zeros((threads, acc_size), dtype=np.float64)
    cdef double[:, ::1] acc = accumulators
    cdef Py_ssize_t chunk, row0, m
    cdef double* xt
    cdef double* work
    cdef double* resp
    cdef double* row_norm
    cdef double* mine

    if n > 0:
        with threadpool_limits(limits=1, user_api="blas"):
            with nogil, parallel(num_threads=threads):
                xt = <double*> malloc(d * CHUNK_ROWS * sizeof(double))
                work = <double*> malloc((2 * d + 2) * CHUNK_ROWS * sizeof(double))
                resp = <double*> malloc(k * CHUNK_ROWS * sizeof(double))
                row_norm = <double*> malloc(CHUNK_ROWS * sizeof(double))
                mine = &acc[threadid(), 0]
                for chunk in prange(n_chunks, schedule="static"):
                    row0 = chunk * CHUNK_ROWS
                    m = min(<Py_ssize_t> CHUNK_ROWS, n - row0)
                    transpose_chunk(&X[row0, 0], m, d, xt)
                    if full:
                        log_prob_full(xt, m, d, k, &means[0, 0], &chol[0], &log_norm[0],
                                      work, resp)
                    else:
                        log_prob_diag(xt, m, d, k, &means[0, 0], &chol[0], &log_norm[0],
                                      resp)
                    # resp: log-probabilities in, responsibilities out (unit weights).
                    mine[0] += log_prob_to_resp(resp, m, k, NULL, row_norm, work)
                    if full:
                        accumulate_full(xt, m, d, k, resp, &means[0, 0], mine + 1,
                                        mine + 1 + k, mine + 1 + k + k * d, work)
                    else:
                        accumulate_diag(xt, m, d, k, resp, &means[0, 0], mine + 1,
                                        mine + 1 + k, mine + 1 + k + k * d)
                free(xt)
                free(work)
                free(resp)
                free(row_norm)

    total = accumulators.sum(axis=0)
    nk = total[1:1 + k]
    sums = total[1 + k:1 + k + k * d].reshape(k, d)
    scatter = total[1 + k + k * d:]
    if full:
        scatter = scatter.reshape(k, d, d)
        # accumulate_full fills the upper triangle (row-major j <= l) only.
        upper = np.triu(np.ones((d, d), dtype=bool))
        scatter = np.where(upper, scatter, np.swapaxes(scatter, 1, 2))
    else:
        scatter = scatter.reshape(k, d)
    return float(total[0]), nk, sums, scatter
