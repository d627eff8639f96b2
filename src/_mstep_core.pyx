"""The M-step's arithmetic, compiled: statistics to parameters, parameters to kernel form.

The one implementation of the M-step, the precisions' Cholesky factors and the kernels'
form of the parameters; the tests hold them to plain NumPy/LAPACK formulas
(``tests/_mstep_reference.py``). The numbers are only K×D×D, but in NumPy they take ~30
calls per EM iteration, and right after a pass over the data has evicted the caches each
costs several µs: together ~40 µs, several per cent of an iteration on small data. Here
each formula is one loop over the components.

Unlike the kernels, this module uses NumPy's C API: it allocates arrays and reads their
data pointers directly. A typed memoryview costs ~1 µs per array once the caches are cold
(an object, a lock, a format string parsed) and an M-step touches ten arrays.
"""

cimport numpy as cnp
from gmmfast._ndarray cimport contiguous, has_shape
from libc.math cimport isfinite, log, sqrt, M_PI
from libc.stdlib cimport free, malloc

import numpy as np

from gmmfast import _em

cnp.import_array()

# Up to this many features the precisions' Cholesky factors are computed here, in plain
# loops; from there on by LAPACK (gmmfast._em.precisions_cholesky), whose blocked code is
# faster on large matrices but costs ~10 µs per call on small ones once a pass has evicted
# OpenBLAS's code and work buffers from the caches.
cdef Py_ssize_t INLINE_CHOLESKY_MAX_FEATURES = 16


def estimate_parameters(nk, sums, scatter, shifts, str covariance_type, double reg_covar,
                        double eps):
    """Shifted sufficient statistics to ``(nk, means, covariances)``, all float64.

    ``nk`` (K,), ``sums`` (K, D), ``scatter`` (K, D, D) for full/tied or (K, D) for
    diag/spherical, ``shifts`` (K, D), all IN, are the statistics Σ w r, Σ w r (x − c) and
    Σ w r (x − c)(x − c)ᵀ about shifts c. Returns new arrays: ``nk`` with its ``10 * eps``
    guard (``eps`` of the data's dtype: an empty component gets finite parameters, as in
    scikit-learn), the means (K, D) and the covariances in the shape of
    ``covariance_type`` ((K, D, D), (D, D), (K, D) or (K,)), ``reg_covar`` included.

    With δ = sums / nk the mean is c + δ and the scatter about it is
    scatter − δ sumsᵀ − sums δᵀ + N δ δᵀ (N the raw count): a small correction, so no
    digits are lost far from the origin.
    """
    return _estimate(nk, sums, scatter, shifts, covariance_type, reg_covar, eps)


def em_step(em_pass, cnp.ndarray X, sample_weight, tuple params, str covariance_type,
            n_threads, double reg_covar, double eps):
    """One EM iteration on in-memory rows: ``(Σ w log p(x), new parameters or None)``.

    The in-memory source's fast path (``gmmfast._engine.InMemorySource.fused_em_step``):
    the kernel form of ``params`` (weights, means, covariances, precisions_chol), zeroed
    accumulators, ``em_pass`` (the kernel variant's) on ``X`` and its float64
    ``sample_weight`` or None, and :func:`m_step`, in one call. Once a pass has evicted the
    caches every Python-level call and frame costs ~1 µs, against an iteration of ~1 ms on
    10⁵ × 2 data. None in place of the parameters as :func:`m_step`.
    """
    cdef Py_ssize_t d = cnp.PyArray_DIMS(X)[1] if cnp.PyArray_NDIM(X) == 2 else -1
    cdef cnp.ndarray k_means, k_chol, log_norm
    weights, means, _, precisions_chol = params
    k_means, k_chol, log_norm = _kernel_parameters(weights, means, precisions_chol,
                                                   covariance_type, d)
    nk, sums, scatter = _empty_stats(covariance_type, cnp.PyArray_DIMS(k_means)[0], d)
    loglik = em_pass(X, sample_weight, k_means, k_chol, log_norm, nk, sums, scatter,
                     n_threads)
    return loglik, _m_step(nk, sums, scatter, k_means, covariance_type, reg_covar, eps)


def m_step(nk, sums, scatter, shifts, str covariance_type, double reg_covar, double eps):
    """One M-step: ``(weights, means, covariances, precisions_chol)`` from the statistics.

    Arguments as :func:`estimate_parameters`. The weights are ``nk / Σ nk`` (``nk`` with its
    guard), the precisions' factors as :func:`precisions_cholesky` gives them.
    Returns None instead when a covariance is not positive definite (or not finite): the
    caller raises scikit-learn's "ill-defined empirical covariance" error.
    """
    return _m_step(nk, sums, scatter, shifts, covariance_type, reg_covar, eps)


cdef object _m_step(nk, sums, scatter, shifts, str covariance_type, double reg_covar,
                    double eps):
    weights, means, covariances = _estimate(nk, sums, scatter, shifts, covariance_type,
                                            reg_covar, eps)
    chol = _precisions_cholesky(covariances, covariance_type)
    if chol is None:
        return None
    _normalise(weights)
    return weights, means, covariances, chol


cdef tuple _estimate(nk, sums, scatter, shifts, str covariance_type, double reg_covar,
                     double eps):
    cdef cnp.ndarray nk_in = _float64(nk)
    cdef cnp.ndarray sums_in = _float64(sums)
    cdef cnp.ndarray shifts_in = _float64(shifts)
    cdef cnp.ndarray scatter_in = _float64(scatter)
    cdef bint full = covariance_type in ("full", "tied")
    cdef Py_ssize_t k = cnp.PyArray_SIZE(nk_in)
    cdef Py_ssize_t d = cnp.PyArray_DIMS(sums_in)[cnp.PyArray_NDIM(sums_in) - 1]
    if (cnp.PyArray_NDIM(nk_in) != 1 or cnp.PyArray_NDIM(sums_in) != 2
            or not has_shape(sums_in, k, d, -1) or not has_shape(shifts_in, k, d, -1)):
        raise ValueError(f"nk, sums and shifts must have shapes (K,), (K, D), (K, D); got "
                         f"{np.shape(nk)}, {np.shape(sums)} and {np.shape(shifts)}")
    if not has_shape(scatter_in, k, d, d if full else -1):
        raise ValueError(f"scatter has shape {np.shape(scatter)}, which does not fit "
                         f"{covariance_type!r} statistics of K={k}, D={d}")
    cdef const double* raw_nk = _data(nk_in)
    cdef const double* sum_data = _data(sums_in)
    cdef const double* shift_data = _data(shifts_in)
    cdef const double* scatter_data = _data(scatter_in)

    cdef cnp.ndarray nk_out = _empty(k, -1, -1)
    cdef cnp.ndarray means = _empty(k, d, -1)
    cdef cnp.ndarray within = _empty(k, d, d if full else -1)
    cdef double* count = _data(nk_out)
    cdef double* mean_data = _data(means)
    cdef double* within_data = _data(within)
    cdef Py_ssize_t c, i, j
    cdef Py_ssize_t stat_size = d * d if full else d
    cdef double correction
    for c in range(k):
        count[c] = raw_nk[c] + 10 * eps
        for j in range(d):
            mean_data[c * d + j] = shift_data[c * d + j] + sum_data[c * d + j] / count[c]
        # Coefficient of δ δᵀ·nk² in the shift correction (see the reference).
        correction = 2.0 / count[c] - raw_nk[c] / (count[c] * count[c])
        for i in range(d if full else 1):
            for j in range(d):
                within_data[c * stat_size + i * d + j] = (
                    scatter_data[c * stat_size + i * d + j]
                    - correction * (sum_data[c * d + (i if full else j)] * sum_data[c * d + j])
                )
    if covariance_type == "tied":
        return nk_out, means, _tied(within_data, count, k, d, reg_covar)
    _divide_in_place(within_data, count, k, d, full, reg_covar)
    if covariance_type == "spherical":
        return nk_out, means, _row_means(within_data, k, d)
    return nk_out, means, within


cdef inline cnp.ndarray _float64(object a):
    return contiguous(a, cnp.NPY_DOUBLE)


cdef inline double* _data(cnp.ndarray a) noexcept:
    return <double*> cnp.PyArray_DATA(a)


cdef cnp.ndarray _empty(Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2, bint zeroed=False):
    """A new C-contiguous float64 array of shape (n0,), (n0, n1) or (n0, n1, n2): the
    trailing -1 sizes are left out."""
    cdef cnp.npy_intp dims[3]
    dims[0], dims[1], dims[2] = n0, n1, n2
    cdef int ndim = 1 if n1 < 0 else (2 if n2 < 0 else 3)
    if zeroed:
        return cnp.PyArray_ZEROS(ndim, dims, cnp.NPY_DOUBLE, 0)
    return cnp.PyArray_EMPTY(ndim, dims, cnp.NPY_DOUBLE, 0)


cdef void _divide_in_place(double* within, const double* nk, Py_ssize_t k, Py_ssize_t d,
                           bint square, double reg_covar) noexcept:
    """within_c / nk_c + reg_covar: on the diagonal of (D, D) blocks, or every entry of
    (D,) ones."""
    cdef Py_ssize_t size = d * d if square else d
    cdef Py_ssize_t c, e
    for c in range(k):
        for e in range(size):
            # The reference adds reg_covar·I, zeros included: same rounding, same zeros.
            within[c * size + e] = within[c * size + e] / nk[c] + (
                reg_covar if not square or e % (d + 1) == 0 else reg_covar * 0.0
            )


cdef cnp.ndarray _tied(const double* within, const double* nk, Py_ssize_t k, Py_ssize_t d,
                       double reg_covar):
    """Σ_c within_c / Σ_c nk_c + reg_covar·I, summed over the components in order."""
    cdef cnp.ndarray covariance = _empty(d, d, -1)
    cdef double* out = _data(covariance)
    cdef Py_ssize_t size = d * d
    cdef Py_ssize_t c, e
    cdef double total_nk = 0.0
    for e in range(size):
        out[e] = 0.0
    for c in range(k):
        total_nk += nk[c]
        for e in range(size):
            out[e] += within[c * size + e]
    for e in range(size):
        out[e] = out[e] / total_nk + (reg_covar if e % (d + 1) == 0 else reg_covar * 0.0)
    return covariance


cdef cnp.ndarray _row_means(const double* values, Py_ssize_t k, Py_ssize_t d):
    """The mean of every row of a (K, D) array."""
    cdef cnp.ndarray means = _empty(k, -1, -1)
    cdef double* out = _data(means)
    cdef Py_ssize_t c, j
    cdef double total
    for c in range(k):
        total = 0.0
        for j in range(d):
            total += values[c * d + j]
        out[c] = total / d
    return means


cdef void _normalise(cnp.ndarray nk) noexcept:
    """nk / Σ nk in place: the mixture weights."""
    cdef double* weights = _data(nk)
    cdef Py_ssize_t k = cnp.PyArray_SIZE(nk)
    cdef Py_ssize_t c
    cdef double total = 0.0
    for c in range(k):
        total += weights[c]
    for c in range(k):
        weights[c] = weights[c] / total


def precisions_cholesky(covariances, str covariance_type):
    """Cholesky factors of the precisions (``gmmfast._mstep.precision_cholesky`` raises
    scikit-learn's error instead of returning None), or None when a covariance is not
    positive definite or not finite.

    ``covariances`` IN, in the shape of ``covariance_type``. Returns a new array: upper-
    triangular U with U Uᵀ = Σ⁻¹ (full (K, D, D), tied (D, D)), or 1/σ (diag, spherical).
    """
    return _precisions_cholesky(_float64(covariances), covariance_type)


cdef object _precisions_cholesky(cnp.ndarray covariances, str covariance_type):
    if covariance_type in ("diag", "spherical"):
        return _inverse_sqrt(covariances)
    cdef bint tied = covariance_type == "tied"
    cdef int ndim = cnp.PyArray_NDIM(covariances)
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(covariances)
    if ndim != (2 if tied else 3) or dims[ndim - 1] != dims[ndim - 2]:
        raise ValueError(f"{covariance_type} covariances must have shape "
                         f"{'(D, D)' if tied else '(K, D, D)'}, got {np.shape(covariances)}")
    cdef Py_ssize_t k = 1 if tied else dims[0]
    cdef Py_ssize_t d = dims[ndim - 1]
    cdef cnp.ndarray chol = cnp.PyArray_EMPTY(ndim, dims, cnp.NPY_DOUBLE, 0)
    if k == 0 or d == 0:
        return chol
    if d <= INLINE_CHOLESKY_MAX_FEATURES:
        if _small_precisions_cholesky(_data(covariances), _data(chol), k, d) >= 0:
            return None
    elif _em.precisions_cholesky(covariances.reshape(k, d, d), chol.reshape(k, d, d)) >= 0:
        return None
    return chol


cdef object _inverse_sqrt(cnp.ndarray covariances):
    """1/√σ of positive, finite variances; None if any is not."""
    cdef cnp.ndarray chol = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(covariances),
                                              cnp.PyArray_DIMS(covariances),
                                              cnp.NPY_DOUBLE, 0)
    cdef const double* variances = _data(covariances)
    cdef double* out = _data(chol)
    cdef Py_ssize_t e
    for e in range(cnp.PyArray_SIZE(covariances)):
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
    trtri, to rounding. A non-finite entry reaches the pivot of its row, which then fails.
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


def empty_stats(str covariance_type, Py_ssize_t n_components, Py_ssize_t n_features):
    """Zeroed ``(nk, sums, scatter)`` accumulators in the kernel form of ``covariance_type``:
    (K,), (K, D) and (K, D, D) for full and tied, (K, D) for diag and spherical."""
    return _empty_stats(covariance_type, n_components, n_features)


cdef tuple _empty_stats(str covariance_type, Py_ssize_t n_components, Py_ssize_t n_features):
    cdef bint full = covariance_type in ("full", "tied")
    return (_empty(n_components, -1, -1, True), _empty(n_components, n_features, -1, True),
            _empty(n_components, n_features, n_features if full else -1, True))


def kernel_parameters(weights, means, precisions_chol, str covariance_type,
                      Py_ssize_t n_features):
    """The float64 arrays the compiled kernels take: ``(means, precisions_chol, log_norm)``.

    ``weights`` (K,), ``means`` (K, D) and ``precisions_chol`` in scikit-learn's shape for
    ``covariance_type``. Tied precisions become one (1, D, D) factor shared by the
    components (the kernels whiten each chunk once for all of them); spherical ones are
    repeated per feature, so the diag kernels serve them; ``log_norm`` (K,) is ``log π_k + log det U_k − ½ D log 2π`` (−inf for a zero
    weight). All arguments IN.
    """
    return _kernel_parameters(weights, means, precisions_chol, covariance_type, n_features)


cdef tuple _kernel_parameters(weights, means, precisions_chol, str covariance_type,
                              Py_ssize_t n_features):
    cdef cnp.ndarray mean_in = _float64(means)
    cdef cnp.ndarray weight_in = _float64(weights)
    cdef cnp.ndarray chol = _float64(precisions_chol)
    cdef Py_ssize_t k = cnp.PyArray_DIMS(mean_in)[0] if cnp.PyArray_NDIM(mean_in) else -1
    cdef Py_ssize_t d = n_features
    cdef bint full = covariance_type in ("full", "tied")
    cdef Py_ssize_t n_factors = 1 if covariance_type == "tied" else k
    if not has_shape(mean_in, k, d, -1) or not has_shape(weight_in, k, -1, -1):
        raise ValueError(f"weights and means must have shapes (K,) and (K, {d}), got "
                         f"{np.shape(weights)} and {np.shape(means)}")
    if covariance_type == "tied":
        chol = chol[None]
    elif covariance_type == "spherical":
        chol = np.ascontiguousarray(np.broadcast_to(chol[:, None], (k, d)))
    if not has_shape(chol, n_factors, d, d if full else -1):
        raise ValueError(f"precisions_chol has shape {np.shape(precisions_chol)}, which "
                         f"does not fit {covariance_type!r} with K={k}, D={d}")
    cdef const double* chol_data = _data(chol)
    cdef const double* weight_data = _data(weight_in)
    cdef cnp.ndarray log_norm = _empty(k, -1, -1)
    cdef double* norm_data = _data(log_norm)
    cdef double gauss_norm = 0.5 * d * log(2 * M_PI)
    cdef Py_ssize_t c, j
    cdef double log_det
    for c in range(k):
        if c < n_factors:  # tied: the one factor's determinant serves every component
            log_det = 0.0
            for j in range(d):
                log_det += log(chol_data[c * d * d + j * (d + 1)] if full
                               else chol_data[c * d + j])
        norm_data[c] = log(weight_data[c]) + log_det - gauss_norm
    return mean_in, chol, log_norm
