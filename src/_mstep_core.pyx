"""The M-step's arithmetic, compiled: statistics to parameters, parameters to kernel form,
and the search of EVE's and VVE's common axes.

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
from libc.math cimport cos, exp, fabs, isfinite, log, sin, sqrt, INFINITY, M_PI
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
    Σ w r (x − c)(x − c)ᵀ about shifts c; tied also takes the pooled scatter (1, D, D),
    their sum over the components. Returns new arrays: ``nk`` with its ``10 * eps``
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
    # Tied statistics in the pooled form: the M-step needs no more (see _estimate).
    nk, sums, scatter = _empty_stats("pooled" if covariance_type == "tied" else covariance_type,
                                     cnp.PyArray_DIMS(k_means)[0], d)
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
    # Tied covariances need only the components' scatters summed: the pooled form.
    cdef bint pooled = covariance_type == "tied" and k > 1 and has_shape(scatter_in, 1, d, d)
    if not pooled and not has_shape(scatter_in, k, d, d if full else -1):
        raise ValueError(f"scatter has shape {np.shape(scatter)}, which does not fit "
                         f"{covariance_type!r} statistics of K={k}, D={d}")
    cdef const double* raw_nk = _data(nk_in)
    cdef const double* sum_data = _data(sums_in)
    cdef const double* shift_data = _data(shifts_in)
    cdef const double* scatter_data = _data(scatter_in)

    cdef cnp.ndarray nk_out = _empty(k, -1, -1)
    cdef cnp.ndarray means = _empty(k, d, -1)
    cdef Py_ssize_t n_within = 1 if pooled else k
    cdef cnp.ndarray within = _empty(n_within, d, d if full else -1)
    cdef double* count = _data(nk_out)
    cdef double* mean_data = _data(means)
    cdef double* within_data = _data(within)
    cdef Py_ssize_t c, i, j
    cdef Py_ssize_t stat_size = d * d if full else d
    cdef double correction
    if pooled:
        for i in range(d * d):
            within_data[i] = scatter_data[i]
    for c in range(k):
        count[c] = raw_nk[c] + 10 * eps
        for j in range(d):
            mean_data[c * d + j] = shift_data[c * d + j] + sum_data[c * d + j] / count[c]
        # Coefficient of δ δᵀ·nk² in the shift correction (see the reference).
        correction = 2.0 / count[c] - raw_nk[c] / (count[c] * count[c])
        if pooled:
            _subtract_shift_term(within_data, sum_data + c * d, correction, d)
            continue
        for i in range(d if full else 1):
            for j in range(d):
                within_data[c * stat_size + i * d + j] = (
                    scatter_data[c * stat_size + i * d + j]
                    - correction * (sum_data[c * d + (i if full else j)] * sum_data[c * d + j])
                )
    if covariance_type == "tied":
        return nk_out, means, _tied(within_data, n_within, count, k, d, reg_covar)
    _divide_in_place(within_data, count, k, d, full, reg_covar)
    if covariance_type == "spherical":
        return nk_out, means, _row_means(within_data, k, d)
    return nk_out, means, within


cdef void _subtract_shift_term(double* within, const double* sums, double correction,
                               Py_ssize_t d) noexcept:
    """within (D, D) −= correction · sums sumsᵀ: one component's shift correction taken
    from the pooled scatter."""
    cdef Py_ssize_t i, j
    for i in range(d):
        for j in range(d):
            within[i * d + j] -= correction * (sums[i] * sums[j])


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


cdef cnp.ndarray _tied(const double* within, Py_ssize_t n_within, const double* nk,
                       Py_ssize_t k, Py_ssize_t d, double reg_covar):
    """Σ within / Σ_c nk_c + reg_covar·I: the ``n_within`` (D, D) matrices of ``within``
    (one per component, or the pooled one) and the K counts, summed in order."""
    cdef cnp.ndarray covariance = _empty(d, d, -1)
    cdef double* out = _data(covariance)
    cdef Py_ssize_t size = d * d
    cdef Py_ssize_t c, e
    cdef double total_nk = 0.0
    for e in range(size):
        out[e] = 0.0
    for c in range(k):
        total_nk += nk[c]
        if c < n_within:
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


def empty_stats(str form, Py_ssize_t n_components, Py_ssize_t n_features):
    """Zeroed ``(nk, sums, scatter)`` accumulators of a form of statistics (or of a
    covariance type's kernel form): (K,), (K, D) and a scatter of (K, D, D) ("full",
    "tied"), (K, D) ("diag", "spherical") or (1, D, D), the components' sum ("pooled")."""
    return _empty_stats(form, n_components, n_features)


cdef tuple _empty_stats(str form, Py_ssize_t n_components, Py_ssize_t n_features):
    cdef bint pooled = form == "pooled"
    cdef bint full = pooled or form in ("full", "tied")
    return (_empty(n_components, -1, -1, True), _empty(n_components, n_features, -1, True),
            _empty(1 if pooled else n_components, n_features, n_features if full else -1,
                   True))


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


# ----------------------------------------------------------------------------------------
# The common axes of EVE and VVE: sweeps of plane rotations


# Each plane's double angle φ = 2θ is first sought on this many evenly spaced points of
# [0, π), the best then refined by this many Newton steps (a plane's profiled F has several
# minima, which Newton's method alone would not choose between). F is π-periodic in φ:
# turning a plane by a further right angle only swaps its two axes, which F does not see.
# Points on the rest of the circle would only add ties, broken by rounding.
PLANE_GRID_ANGLES = 16
PLANE_NEWTON_STEPS = 2

# Per-component numbers of one plane: the log-product of the other axes' variances, the
# mean and half-difference of the plane's two variances and their covariance, and the
# profile's terms at one angle (scaled log-product and the first two derivatives of the
# log-product).
cdef enum:
    _PLANE_TERMS = 7


def sweep_plane_rotations(nk, regularised, axes, Py_ssize_t n_sweeps, double tol,
                          bint equal_volumes):
    """Sweeps of the best plane rotations of common axes: ``(axes, profiled F)``.

    The search that starts a cold M-step of EVE (``equal_volumes``) or VVE
    (``gmmfast._covariance_models._search_axes``), by the scheme of Flury & Gautschi's
    common-principal-components algorithm: each sweep rotates every plane of axes (i, j),
    i < j, in turn by the angle that most decreases the profiled F, F minimised over the
    volumes and shapes given the axes, less a constant (``_profile_objective`` there:
    ``Σ_k n_k L_k`` for VVE, ``log Σ_k exp(L_k / D)`` for EVE, with ``L_k`` the log-product
    of component k's variances along the axes). The angle is sought over all distinct
    rotations (``PLANE_GRID_ANGLES`` points, then ``PLANE_NEWTON_STEPS`` Newton steps),
    kept only if F decreases. Stops after ``n_sweeps`` sweeps, or after a sweep that decreases F by
    less than ``tol`` times ``|F|``.

    ``nk`` (K,) IN, positive counts; ``regularised`` (K, D, D) IN, the components' scatter
    ``W_k + n_k reg_covar I``; ``axes`` (D, D) IN, orthogonal, the starting axes as columns.
    Returns a new (D, D) array of axes and F at them (a float).
    """
    cdef cnp.ndarray nk_in = _float64(nk)
    cdef cnp.ndarray scatter_in = _float64(regularised)
    cdef cnp.ndarray axes_out = np.array(axes, dtype=np.float64, order="C")
    cdef Py_ssize_t k = cnp.PyArray_SIZE(nk_in)
    cdef Py_ssize_t d = cnp.PyArray_DIMS(axes_out)[0] if cnp.PyArray_NDIM(axes_out) else 0
    if (cnp.PyArray_NDIM(nk_in) != 1 or k < 1 or d < 1
            or not has_shape(scatter_in, k, d, d) or not has_shape(axes_out, d, d, -1)):
        raise ValueError(f"nk, regularised and axes must have shapes (K,), (K, D, D) and "
                         f"(D, D) with K, D >= 1; got {np.shape(nk)}, "
                         f"{np.shape(regularised)} and {np.shape(axes)}")
    if n_sweeps < 0 or not tol >= 0:
        raise ValueError(f"n_sweeps and tol must be non-negative, got n_sweeps={n_sweeps} "
                         f"and tol={tol}")
    cdef Py_ssize_t n_grid = PLANE_GRID_ANGLES
    cdef Py_ssize_t n_newton = PLANE_NEWTON_STEPS
    # Each component's rotated scatter, a D×D product, and the planes' per-component terms.
    cdef double* scratch = <double*> malloc((k * d * d + d * d + _PLANE_TERMS * k)
                                            * sizeof(double))
    if scratch == NULL:
        raise MemoryError("no memory for the common axes' search")
    cdef const double* counts = _data(nk_in)
    cdef const double* scatter = _data(scatter_in)
    cdef double* axes_data = _data(axes_out)
    cdef double value
    with nogil:
        value = _sweep_plane_rotations(counts, scatter, axes_data, scratch, k, d, n_sweeps,
                                       tol, equal_volumes, n_grid, n_newton)
    free(scratch)
    return axes_out, value


cdef double _sweep_plane_rotations(
    const double* nk, const double* regularised, double* axes, double* scratch,
    Py_ssize_t k, Py_ssize_t d, Py_ssize_t n_sweeps, double tol, bint equal_volumes,
    Py_ssize_t n_grid, Py_ssize_t n_newton,
) noexcept nogil:
    """The sweeps of :func:`sweep_plane_rotations` on ``axes`` (D, D, row-major) in place;
    returns the profiled F at the final axes."""
    cdef double* rotated = scratch
    cdef double* product = scratch + k * d * d
    cdef double* terms = product + d * d
    cdef Py_ssize_t c, i, j, sweep
    cdef double value, previous, angle, cos_angle, sin_angle
    for c in range(k):
        _congruence(regularised + c * d * d, axes, product, rotated + c * d * d, d)
    for c in range(k):
        terms[c] = _log_diagonal_sum(rotated + c * d * d, d)
    value = _profile_value(nk, terms, k, d, equal_volumes)
    for sweep in range(n_sweeps):
        previous = value
        for i in range(d - 1):
            for j in range(i + 1, d):
                value = _best_plane_angle(nk, rotated, terms, k, d, i, j, value,
                                          equal_volumes, n_grid, n_newton, &angle)
                if angle != 0.0:
                    cos_angle, sin_angle = cos(angle), sin(angle)
                    _rotate_plane(axes, d, 1, d, i, j, cos_angle, sin_angle)
                    for c in range(k):
                        # Sₖ ← Rᵀ Sₖ R: columns i, j, then rows i, j.
                        _rotate_plane(rotated + c * d * d, d, 1, d, i, j, cos_angle,
                                      sin_angle)
                        _rotate_plane(rotated + c * d * d, 1, d, d, i, j, cos_angle,
                                      sin_angle)
        if not previous - value > tol * fabs(value):
            break
    return value


cdef void _congruence(const double* matrix, const double* axes, double* product,
                      double* out, Py_ssize_t d) noexcept nogil:
    """out = axesᵀ · matrix · axes, all (D, D) row-major; ``product`` is scratch."""
    _matrix_product(matrix, d, 1, axes, product, d)
    _matrix_product(axes, 1, d, product, out, d)


cdef void _matrix_product(const double* left, Py_ssize_t row_stride, Py_ssize_t inner_stride,
                          const double* right, double* out, Py_ssize_t d) noexcept nogil:
    """out = L · right, (D, D) row-major, with ``L[r, a] = left[r · row_stride + a ·
    inner_stride]``: strides (D, 1) take ``left`` itself, (1, D) its transpose."""
    cdef Py_ssize_t r, a, b
    cdef double s
    for r in range(d):
        for b in range(d):
            s = 0.0
            for a in range(d):
                s += left[r * row_stride + a * inner_stride] * right[a * d + b]
            out[r * d + b] = s


cdef inline double _log_diagonal_sum(const double* matrix, Py_ssize_t d) noexcept nogil:
    cdef double total = 0.0
    cdef Py_ssize_t m
    for m in range(d):
        total += log(matrix[m * (d + 1)])
    return total


cdef void _rotate_plane(double* matrix, Py_ssize_t row_stride, Py_ssize_t column_stride,
                        Py_ssize_t n, Py_ssize_t i, Py_ssize_t j, double cos_angle,
                        double sin_angle) noexcept nogil:
    """Lines i and j of ``matrix`` turned by the angle: ``(line_i, line_j) ←
    (cos line_i + sin line_j, cos line_j − sin line_i)``. A line's m-th entry is at
    ``m · row_stride + line · column_stride``: columns with strides (D, 1), rows with
    (1, D)."""
    cdef Py_ssize_t m
    cdef double first, second
    for m in range(n):
        first = matrix[m * row_stride + i * column_stride]
        second = matrix[m * row_stride + j * column_stride]
        matrix[m * row_stride + i * column_stride] = cos_angle * first + sin_angle * second
        matrix[m * row_stride + j * column_stride] = cos_angle * second - sin_angle * first


cdef double _profile_value(const double* nk, const double* log_products, Py_ssize_t k,
                           Py_ssize_t d, bint equal_volumes) noexcept nogil:
    """The profiled F given each component's log-product of variances ``L_k``."""
    cdef Py_ssize_t c
    cdef double total = 0.0
    cdef double top
    if not equal_volumes:
        for c in range(k):
            total += nk[c] * log_products[c]
        return total
    top = log_products[0] / d
    for c in range(1, k):
        if log_products[c] / d > top:
            top = log_products[c] / d
    for c in range(k):
        total += exp(log_products[c] / d - top)
    return log(total) + top


cdef double _best_plane_angle(
    const double* nk, const double* rotated, double* terms, Py_ssize_t k, Py_ssize_t d,
    Py_ssize_t i, Py_ssize_t j, double value, bint equal_volumes, Py_ssize_t n_grid,
    Py_ssize_t n_newton, double* angle,
) noexcept nogil:
    """The rotation angle θ of axes i, j that most decreases the profiled F (into
    ``angle``; 0 unless F decreases) and F after it (``value``, F now, otherwise).

    Rotating by θ moves each component's variances along axes i and j to ``m ± c`` with
    ``c = h cos φ + r sin φ`` (φ = 2θ), ``m, h`` the mean and half-difference of the two
    variances and ``r`` their covariance; the other axes keep theirs.
    """
    cdef double* others = terms
    cdef double* mean = terms + k
    cdef double* half = terms + 2 * k
    cdef double* covariance = terms + 3 * k
    cdef double* profile_terms = terms + 4 * k
    cdef const double* s
    cdef Py_ssize_t c, g, step
    cdef double phi = 0.0
    cdef double best = INFINITY
    cdef double derivatives[3]
    for c in range(k):
        s = rotated + c * d * d
        others[c] = (_log_diagonal_sum(s, d) - log(s[i * (d + 1)]) - log(s[j * (d + 1)]))
        mean[c] = 0.5 * (s[i * (d + 1)] + s[j * (d + 1)])
        half[c] = 0.5 * (s[i * (d + 1)] - s[j * (d + 1)])
        covariance[c] = s[i * d + j]
    for g in range(n_grid):
        _plane_profile(g * (M_PI / n_grid), nk, terms, profile_terms, k, d,
                       equal_volumes, derivatives)
        if derivatives[0] < best:
            best, phi = derivatives[0], g * (M_PI / n_grid)
    for step in range(n_newton):
        _plane_profile(phi, nk, terms, profile_terms, k, d, equal_volumes, derivatives)
        if not derivatives[2] > 0:
            break
        phi -= derivatives[1] / derivatives[2]
    _plane_profile(phi, nk, terms, profile_terms, k, d, equal_volumes, derivatives)
    if derivatives[0] < value:
        angle[0] = 0.5 * phi
        return derivatives[0]
    angle[0] = 0.0
    return value


cdef void _plane_profile(double phi, const double* nk, const double* plane,
                         double* profile_terms, Py_ssize_t k, Py_ssize_t d,
                         bint equal_volumes, double* out) noexcept nogil:
    """The profiled F at the plane's double angle φ and its first two derivatives in φ,
    into ``out[0:3]``. ``plane`` holds the per-component others, mean, half-difference and
    covariance of :func:`_best_plane_angle`; ``profile_terms`` is 3·K scratch."""
    cdef const double* others = plane
    cdef const double* mean = plane + k
    cdef const double* half = plane + 2 * k
    cdef const double* covariance = plane + 3 * k
    cdef double* scaled = profile_terms
    cdef double* d_log = profile_terms + k
    cdef double* d2_log = profile_terms + 2 * k
    cdef double cos_phi = cos(phi)
    cdef double sin_phi = sin(phi)
    cdef double change, slope, product, top, weight, total, first, second
    cdef Py_ssize_t c
    for c in range(k):
        change = half[c] * cos_phi + covariance[c] * sin_phi
        slope = covariance[c] * cos_phi - half[c] * sin_phi
        product = (mean[c] + change) * (mean[c] - change)
        scaled[c] = others[c] + log(product)
        d_log[c] = -2.0 * change * slope / product
        d2_log[c] = -2.0 * (slope * slope - change * change) / product - d_log[c] * d_log[c]
    total, first, second = 0.0, 0.0, 0.0
    if not equal_volumes:
        for c in range(k):
            total += nk[c] * scaled[c]
            first += d_log[c] * nk[c]
            second += d2_log[c] * nk[c]
        out[0], out[1], out[2] = total, first, second
        return
    # log Σ_k exp(L_k / D): softmax weights of the log-products.
    top = scaled[0] / d
    for c in range(1, k):
        if scaled[c] / d > top:
            top = scaled[c] / d
    for c in range(k):
        weight = exp(scaled[c] / d - top)
        total += weight
        first += weight * d_log[c]
        second += weight * (d2_log[c] / d + (d_log[c] / d) * (d_log[c] / d))
    first = first / (d * total)
    out[0] = log(total) + top
    out[1] = first
    out[2] = second / total - first * first
