"""The M-step's arithmetic, compiled: statistics to parameters, parameters to kernel form.

Compiled twins of ``estimate_parameters``, ``precision_cholesky`` and ``kernel_parameters``
of ``gmmfast._mstep``, which stay as the NumPy/LAPACK reference formulas the tests hold
these to (equal to rounding). The numbers are only K×D×D, but the reference formulas take
~30 NumPy and LAPACK calls per EM iteration, and right after a pass over the data has
evicted the caches each costs several µs: together ~40 µs, 3 % of workload a's iteration,
where issue 6 allows 1 %. Here each formula is one loop over the components.
"""

from libc.math cimport isfinite, log, sqrt, M_PI
from libc.stdlib cimport free, malloc

import numpy as np

from gmmfast import _em

# Up to this many features the precisions' Cholesky factors are computed here, in plain
# loops; from there on by LAPACK (gmmfast._em.precisions_cholesky), whose blocked code is
# faster on large matrices but costs ~10 µs per call on small ones once a pass has evicted
# OpenBLAS's code and work buffers from the caches.
cdef Py_ssize_t INLINE_CHOLESKY_MAX_FEATURES = 16


def estimate_parameters(nk, sums, scatter, shifts, str covariance_type, double reg_covar,
                        double eps):
    """Shifted sufficient statistics to ``(nk, means, covariances)``, all float64.

    Same arguments and results as ``gmmfast._mstep.estimate_parameters`` (see there for
    the algebra): ``nk`` (K,), ``sums`` (K, D), ``scatter`` (K, D, D) for full/tied or
    (K, D) for diag/spherical, ``shifts`` (K, D), all IN. Returns new arrays: ``nk`` with
    its ``10 * eps`` guard, the means (K, D) and the covariances in the shape of
    ``covariance_type`` ((K, D, D), (D, D), (K, D) or (K,)), ``reg_covar`` included.
    """
    return _estimate(_as_float64(nk), _as_float64(sums), _as_float64(scatter),
                     _as_float64(shifts), covariance_type, reg_covar, eps)


def m_step(nk, sums, scatter, shifts, str covariance_type, double reg_covar, double eps):
    """One M-step: ``(weights, means, covariances, precisions_chol)`` from the statistics.

    Arguments as :func:`estimate_parameters`, but already C-contiguous float64 arrays (as
    the kernels' statistics are), so that no NumPy call converts them: this runs once per EM
    iteration, right after a pass has evicted the caches. The weights are ``nk / Σ nk``
    (``nk`` with its guard), the precisions' factors as ``gmmfast._mstep.precision_cholesky``
    gives them. Returns None instead when a covariance is not positive definite (or not
    finite): the caller raises scikit-learn's "ill-defined empirical covariance" error.
    """
    weights, means, covariances = _estimate(nk, sums, scatter, shifts, covariance_type,
                                            reg_covar, eps)
    chol = _precisions_cholesky(covariances, covariance_type)
    if chol is None:
        return None
    _normalise(weights)
    return weights, means, covariances, chol


cdef tuple _estimate(const double[::1] raw_nk, const double[:, ::1] sum_view, scatter,
                     const double[:, ::1] shift_view, str covariance_type, double reg_covar,
                     double eps):
    cdef Py_ssize_t k = raw_nk.shape[0]
    cdef Py_ssize_t d = sum_view.shape[1]
    cdef bint full = covariance_type in ("full", "tied")
    if sum_view.shape[0] != k or shift_view.shape[0] != k or shift_view.shape[1] != d:
        raise ValueError(f"sums and shifts must have shape ({k}, D), got "
                         f"({sum_view.shape[0]}, {d}) and "
                         f"({shift_view.shape[0]}, {shift_view.shape[1]})")
    if scatter.shape != _stat_shape(k, d, full):
        raise ValueError(f"scatter has shape {scatter.shape}, which does not fit "
                         f"{covariance_type!r} statistics of K={k}, D={d}")
    cdef const double[:, :, ::1] scatter_full = scatter if full else None
    cdef const double[:, ::1] scatter_diag = None if full else scatter
    cdef const double* scatter_data = (&scatter_full[0, 0, 0] if full
                                       else &scatter_diag[0, 0])

    nk_out = np.empty(k)
    means = np.empty((k, d))
    within = np.empty(_stat_shape(k, d, full))
    cdef double[::1] nk_view = nk_out
    cdef double[:, ::1] mean_view = means
    cdef double[::1] within_view = within.reshape(-1)
    cdef Py_ssize_t c, i, j
    cdef Py_ssize_t stat_size = d * d if full else d
    cdef double count, correction
    for c in range(k):
        count = raw_nk[c] + 10 * eps
        nk_view[c] = count
        for j in range(d):
            mean_view[c, j] = shift_view[c, j] + sum_view[c, j] / count
        # Coefficient of δ δᵀ·nk² in the shift correction (see the reference).
        correction = 2.0 / count - raw_nk[c] / (count * count)
        for i in range(d if full else 1):
            for j in range(d):
                within_view[c * stat_size + i * d + j] = (
                    scatter_data[c * stat_size + i * d + j]
                    - correction * (sum_view[c, i if full else j] * sum_view[c, j])
                )
    if covariance_type == "tied":
        return nk_out, means, _tied(within_view, nk_view, d, reg_covar)
    _divide_in_place(within_view, nk_view, d, full, reg_covar)
    if covariance_type == "spherical":
        return nk_out, means, _row_means(within)
    return nk_out, means, within


cdef tuple _stat_shape(Py_ssize_t k, Py_ssize_t d, bint full):
    """Shape of a full (K, D, D) or diagonal (K, D) scatter or precision factor."""
    if full:
        return (k, d, d)
    return (k, d)


cdef object _as_float64(object a):
    """A C-contiguous float64 view (or copy, when the dtype or layout differs) of ``a``."""
    return np.ascontiguousarray(a, dtype=np.float64)


cdef void _divide_in_place(double[::1] within, const double[::1] nk, Py_ssize_t d,
                           bint square, double reg_covar) noexcept:
    """within_c / nk_c + reg_covar: on the diagonal of (D, D) blocks, or every entry of
    (D,) ones."""
    cdef Py_ssize_t size = d * d if square else d
    cdef Py_ssize_t c, e
    for c in range(nk.shape[0]):
        for e in range(size):
            # The reference adds reg_covar·I, zeros included: same rounding, same zeros.
            within[c * size + e] = within[c * size + e] / nk[c] + (
                reg_covar if not square or e % (d + 1) == 0 else reg_covar * 0.0
            )


cdef object _tied(const double[::1] within, const double[::1] nk, Py_ssize_t d,
                  double reg_covar):
    """Σ_c within_c / Σ_c nk_c + reg_covar·I, summed over the components in order."""
    covariance = np.zeros((d, d))
    cdef double[::1] out = covariance.reshape(-1)
    cdef Py_ssize_t k = nk.shape[0], size = d * d
    cdef Py_ssize_t c, e
    cdef double total_nk = 0.0
    for c in range(k):
        total_nk += nk[c]
        for e in range(size):
            out[e] += within[c * size + e]
    for e in range(size):
        out[e] = out[e] / total_nk + (reg_covar if e % (d + 1) == 0 else reg_covar * 0.0)
    return covariance


cdef object _row_means(const double[:, ::1] values):
    """The mean of every row of a (K, D) array."""
    means = np.empty(values.shape[0])
    cdef double[::1] out = means
    cdef Py_ssize_t c, j
    cdef double total
    for c in range(values.shape[0]):
        total = 0.0
        for j in range(values.shape[1]):
            total += values[c, j]
        out[c] = total / values.shape[1]
    return means


cdef void _normalise(double[::1] nk) noexcept:
    """nk / Σ nk in place: the mixture weights."""
    cdef Py_ssize_t c
    cdef double total = 0.0
    for c in range(nk.shape[0]):
        total += nk[c]
    for c in range(nk.shape[0]):
        nk[c] = nk[c] / total


def precisions_cholesky(covariances, str covariance_type):
    """Factors of the precisions, as ``gmmfast._mstep.precision_cholesky`` gives them, or
    None when a covariance is not positive definite or not finite.

    ``covariances`` IN, in the shape of ``covariance_type``. Returns a new array: upper-
    triangular U with U Uᵀ = Σ⁻¹ (full (K, D, D), tied (D, D)), or 1/σ (diag, spherical).
    """
    return _precisions_cholesky(_as_float64(covariances), covariance_type)


cdef object _precisions_cholesky(object covariances, str covariance_type):
    if covariance_type in ("diag", "spherical"):
        return _inverse_sqrt(covariances)
    stack = covariances[None] if covariance_type == "tied" else covariances
    chol = np.empty(stack.shape)
    cdef const double[:, :, ::1] cov_view = stack
    cdef double[:, :, ::1] chol_view = chol
    cdef Py_ssize_t k = cov_view.shape[0], d = cov_view.shape[1]
    if k == 0 or d == 0:
        pass
    elif d <= INLINE_CHOLESKY_MAX_FEATURES:
        if _small_precisions_cholesky(&cov_view[0, 0, 0], &chol_view[0, 0, 0], k, d) >= 0:
            return None
    elif _em.precisions_cholesky(stack, chol) >= 0:
        return None
    return chol[0] if covariance_type == "tied" else chol


cdef object _inverse_sqrt(object covariances):
    """1/√σ of positive, finite variances; None if any is not."""
    flat = covariances.reshape(-1)
    cdef const double[::1] variances = flat
    chol = np.empty_like(covariances)
    cdef double[::1] out = chol.reshape(-1)
    cdef Py_ssize_t e
    for e in range(variances.shape[0]):
        if not (variances[e] > 0.0 and isfinite(variances[e])):
            return None
        out[e] = 1.0 / sqrt(variances[e])
    return chol


cdef Py_ssize_t _small_precisions_cholesky(
    const double* covariances, double* out, Py_ssize_t n_components, Py_ssize_t d,
) noexcept nogil:
    """U_k (row-major, zero below the diagonal) with U_k U_kᵀ = Σ_k⁻¹, for each of the
    (D, D) covariances; the first k whose Σ_k is not positive definite or not finite, or -1.

    Σ = L Lᵀ (Cholesky, lower triangle read only, as LAPACK's potrf), then U = L⁻ᵀ by
    forward substitution: the same factor as gmmfast._em.precisions_cholesky's potrf and
    trtri, to rounding.
    """
    cdef double* lower = <double*> malloc(d * d * sizeof(double))
    cdef Py_ssize_t c, i, j, p
    cdef const double* cov
    cdef double* upper
    cdef double s
    cdef Py_ssize_t failed = -1
    for c in range(n_components):
        cov = covariances + c * d * d
        upper = out + c * d * d
        for i in range(d):
            for j in range(i + 1):
                s = cov[i * d + j]
                for p in range(j):
                    s -= lower[i * d + p] * lower[j * d + p]
                if i != j:
                    lower[i * d + j] = s / lower[j * d + j]
                elif s > 0.0 and isfinite(s):
                    lower[i * d + i] = sqrt(s)
                else:
                    failed = c
                    break
            if failed >= 0:
                break
        if failed >= 0:
            break
        # Row j of U = L⁻ᵀ is column j of L⁻¹: U[j, i] = −Σ_{j<=p<i} L[i, p] U[j, p] / L[i, i].
        for j in range(d):
            for i in range(j):
                upper[j * d + i] = 0.0
            upper[j * d + j] = 1.0 / lower[j * d + j]
            for i in range(j + 1, d):
                s = 0.0
                for p in range(j, i):
                    s -= lower[i * d + p] * upper[j * d + p]
                upper[j * d + i] = s / lower[i * d + i]
    free(lower)
    return failed


def kernel_parameters(weights, means, precisions_chol, str covariance_type,
                      Py_ssize_t n_features):
    """The float64 arrays the compiled kernels take: ``(means, precisions_chol, log_norm)``.

    Same arguments and results as ``gmmfast._mstep.kernel_parameters``: tied precisions
    are repeated per component and spherical ones per feature, ``log_norm`` (K,) is
    ``log π_k + log det U_k − ½ D log 2π`` (−inf for a zero weight). All arguments IN.
    """
    means = _as_float64(means)
    cdef const double[::1] weight_view = _as_float64(weights)
    chol = _as_float64(precisions_chol)
    cdef Py_ssize_t k = means.shape[0]
    cdef Py_ssize_t d = n_features
    if weight_view.shape[0] != k:
        raise ValueError(f"weights must have shape ({k},), got {np.shape(weights)}")
    if covariance_type == "tied":
        chol = np.ascontiguousarray(np.broadcast_to(chol, (k, d, d)))
    elif covariance_type == "spherical":
        chol = np.ascontiguousarray(np.broadcast_to(chol[:, None], (k, d)))
    cdef bint full = covariance_type in ("full", "tied")
    if chol.shape != _stat_shape(k, d, full):
        raise ValueError(f"precisions_chol has shape {np.shape(precisions_chol)}, which "
                         f"does not fit {covariance_type!r} with K={k}, D={d}")
    cdef const double[::1] chol_view = chol.reshape(-1)
    log_norm = np.empty(k)
    cdef double[::1] norm_view = log_norm
    cdef double gauss_norm = 0.5 * d * log(2 * M_PI)
    cdef Py_ssize_t c, j
    cdef double log_det
    for c in range(k):
        log_det = 0.0
        for j in range(d):
            log_det += log(chol_view[c * d * d + j * (d + 1)] if full
                           else chol_view[c * d + j])
        norm_view[c] = log(weight_view[c]) + log_det - gauss_norm
    return means, chol, log_norm
