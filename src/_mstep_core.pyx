"""The M-step's arithmetic, compiled: statistics to parameters, parameters to kernel form,
and the inner iterations of mclust's iterative covariance models.

The one implementation of the M-step, the precisions' Cholesky factors and the kernels'
form of the parameters; the tests hold them to plain NumPy/LAPACK formulas
(``tests/_mstep_reference.py``). The numbers are only K×D×D, but in NumPy they take ~30
calls per EM iteration, and right after a pass over the data has evicted the caches each
costs several µs: together ~40 µs, several per cent of an iteration on small data. Here
each formula is one loop over the components.

The same holds, more so, for the iterative covariance models of
``gmmfast._covariance_models``: each inner step of EVE's and VVE's common axes (cold
search and warm steps), of VEI's and VEV's common shape and of VEE's common covariance
took dozens of small NumPy calls, several inner steps per M-step. Their loops run here,
with LAPACK (``scipy.linalg.cython_lapack``) for the eigen-, singular value and linear
solves, and the GIL released.

Unlike the kernels, this module uses NumPy's C API: it allocates arrays and reads their
data pointers directly. A typed memoryview costs ~1 µs per array once the caches are cold
(an object, a lock, a format string parsed) and an M-step touches ten arrays.
"""

cimport numpy as cnp
from gmmfast._ndarray cimport contiguous, has_shape
from libc.math cimport cos, exp, fabs, isfinite, log, sin, sqrt, INFINITY, M_PI
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_lapack cimport dgesdd, dgesv, dpocon, dpotrf, dpotrs, dsyevd

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
    cdef double* component_within
    for i in range(n_within * stat_size):
        within_data[i] = scatter_data[i]
    for c in range(k):
        count[c] = raw_nk[c] + 10 * eps
        for j in range(d):
            mean_data[c * d + j] = shift_data[c * d + j] + sum_data[c * d + j] / count[c]
        # Coefficient of δ δᵀ·nk² in the shift correction (see the reference); the pooled
        # scatter takes every component's.
        correction = 2.0 / count[c] - raw_nk[c] / (count[c] * count[c])
        component_within = within_data + (0 if pooled else c * stat_size)
        for i in range(d if full else 1):
            for j in range(d):
                component_within[i * d + j] -= (
                    correction * (sum_data[c * d + (i if full else j)] * sum_data[c * d + j]))
    if covariance_type == "tied":
        return nk_out, means, _tied(within_data, n_within, count, k, d, reg_covar)
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


# ----------------------------------------------------------------------------------------
# Shapes and volumes along fixed axes, and the warm steps of EVE's and VVE's common axes


def variable_shapes_along_axes(nk, variances, bint equal_volumes):
    """Volumes and variable shapes along fixed axes: ``(volumes, shapes, F)``.

    The closed form of EVI/EVV/EVE (``equal_volumes``) and VVI/VVV/VVE given the axes:
    with ``g_k = (Π_j w_kj)^(1/D)``, the shapes are ``w_k / g_k`` and the volumes
    ``g_k / n_k`` (variable) or ``Σ_k g_k / Σ_k n_k`` (equal). ``nk`` (K,) IN, positive
    counts; ``variances`` (K, D) IN, each component's scatter along the axes. Returns new
    arrays (K,), (K, D) and F (:func:`axes_objective`) at them.
    """
    cdef cnp.ndarray nk_in, variances_in
    nk_in, variances_in = _counts_and_variances(nk, variances)
    cdef Py_ssize_t k = cnp.PyArray_DIMS(variances_in)[0]
    cdef Py_ssize_t d = cnp.PyArray_DIMS(variances_in)[1]
    cdef cnp.ndarray volumes = _empty(k, -1, -1)
    cdef cnp.ndarray shapes = _empty(k, d, -1)
    cdef double value = _variable_shapes(_data(nk_in), _data(variances_in), k, d,
                                         equal_volumes, _data(volumes), _data(shapes))
    return volumes, shapes, value


cdef tuple _counts_and_variances(nk, variances):
    """``nk`` (K,) and ``variances`` (K, D) as float64 arrays, their shapes checked."""
    cdef cnp.ndarray nk_in = _float64(nk)
    cdef cnp.ndarray variances_in = _float64(variances)
    cdef Py_ssize_t k = cnp.PyArray_SIZE(nk_in)
    cdef Py_ssize_t d = (cnp.PyArray_DIMS(variances_in)[1]
                         if cnp.PyArray_NDIM(variances_in) == 2 else 0)
    if cnp.PyArray_NDIM(nk_in) != 1 or k < 1 or d < 1 or not has_shape(variances_in, k, d, -1):
        raise ValueError(f"nk and variances must have shapes (K,) and (K, D) with K, D >= 1; "
                         f"got {np.shape(nk)} and {np.shape(variances)}")
    return nk_in, variances_in


cdef tuple _counts_and_matrices(nk, matrices, str name):
    """``nk`` (K,) and ``matrices`` (K, D, D) as float64 arrays, their shapes checked
    (``name`` is the argument's name in the message)."""
    cdef cnp.ndarray nk_in = _float64(nk)
    cdef cnp.ndarray matrices_in = _float64(matrices)
    cdef Py_ssize_t k = cnp.PyArray_SIZE(nk_in)
    cdef Py_ssize_t d = (cnp.PyArray_DIMS(matrices_in)[1]
                         if cnp.PyArray_NDIM(matrices_in) == 3 else 0)
    if cnp.PyArray_NDIM(nk_in) != 1 or k < 1 or d < 1 or not has_shape(matrices_in, k, d, d):
        raise ValueError(f"nk and {name} must have shapes (K,) and (K, D, D) with K, D >= 1; "
                         f"got {np.shape(nk)} and {np.shape(matrices)}")
    return nk_in, matrices_in


def axes_objective(nk, variances, volumes, shapes):
    """F = Σ_k [n_k log det Σ_k + tr(Σ_k⁻¹ W_k)] for ``Σ_k = λ_k diag(a_k)`` along axes
    that give the scatter ``variances``: a float.

    ``nk`` (K,), ``variances`` (K, D), ``volumes`` (K,) and ``shapes`` (K, D), all IN.
    """
    cdef cnp.ndarray nk_in = _float64(nk)
    cdef cnp.ndarray variances_in = _float64(variances)
    cdef cnp.ndarray volumes_in = _float64(volumes)
    cdef cnp.ndarray shapes_in = _float64(shapes)
    cdef Py_ssize_t k = cnp.PyArray_SIZE(nk_in)
    cdef Py_ssize_t d = (cnp.PyArray_DIMS(variances_in)[1]
                         if cnp.PyArray_NDIM(variances_in) == 2 else 0)
    if (cnp.PyArray_NDIM(nk_in) != 1 or not has_shape(variances_in, k, d, -1)
            or not has_shape(volumes_in, k, -1, -1) or not has_shape(shapes_in, k, d, -1)):
        raise ValueError(f"nk, variances, volumes and shapes must have shapes (K,), (K, D), "
                         f"(K,) and (K, D); got {np.shape(nk)}, {np.shape(variances)}, "
                         f"{np.shape(volumes)} and {np.shape(shapes)}")
    return _axes_objective(_data(nk_in), _data(variances_in), _data(volumes_in),
                           _data(shapes_in), k, d)


cdef double _variable_shapes(const double* nk, const double* variances, Py_ssize_t k,
                             Py_ssize_t d, bint equal_volumes, double* volumes,
                             double* shapes) noexcept nogil:
    """:func:`variable_shapes_along_axes` into ``volumes`` (K) and ``shapes`` (K, D);
    returns F."""
    cdef Py_ssize_t c, j
    cdef double scale, scale_total = 0.0, n_total = 0.0
    for c in range(k):
        # The geometric mean through logs, so it neither over- nor underflows.
        scale = exp(_log_sum(variances + c * d, d) / d)
        for j in range(d):
            shapes[c * d + j] = variances[c * d + j] / scale
        volumes[c] = scale / nk[c]
        scale_total += scale
        n_total += nk[c]
    if equal_volumes:
        for c in range(k):
            volumes[c] = scale_total / n_total
    return _axes_objective(nk, variances, volumes, shapes, k, d)


cdef double _axes_objective(const double* nk, const double* variances, const double* volumes,
                            const double* shapes, Py_ssize_t k, Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t c, j
    cdef double trace, total = 0.0
    for c in range(k):
        trace = 0.0
        for j in range(d):
            trace += variances[c * d + j] / shapes[c * d + j]
        total += nk[c] * d * log(volumes[c]) + trace / volumes[c]
    return total


cdef inline double _log_sum(const double* values, Py_ssize_t n) noexcept nogil:
    cdef double total = 0.0
    cdef Py_ssize_t m
    for m in range(n):
        total += log(values[m])
    return total


cdef enum:
    # Each step of EVE's and VVE's common axes halves a rejected Newton step this many
    # times before it gives up on the rotation.
    _NEWTON_HALVINGS = 8
    # Measured with K = 9 in NumPy, one coupled Newton step cost 2 ms at 13 columns (about
    # eight MM steps, where it saves more than ten), 5 ms at 16 and 24 ms at 24: beyond,
    # the eigen-decomposition of the Hessian of D(D − 1)/2 angles outgrows the steps it
    # saves.
    _FULL_NEWTON_MAX_FEATURES = 16

NEWTON_HALVINGS = _NEWTON_HALVINGS
FULL_NEWTON_MAX_FEATURES = _FULL_NEWTON_MAX_FEATURES


cdef struct _AxesWork:
    # Scratch of the common axes' steps for K components, D features and P = D(D − 1)/2
    # planes; ``doubles`` and ``ints`` own the memory.
    double* doubles
    int* ints
    double* rotated           # (K, D, D): Dᵀ W_k D
    double* product           # (D, D)
    double* largest           # (K,): the largest eigenvalue of each W_k
    double* variances         # (K, D)
    double* candidate_variances  # (K, D)
    double* inverse           # (K, D): 1 / (λ_k a_kj)
    double* slope             # (D, D): the majoriser's slope, then SVD's input
    double* candidate         # (D, D)
    double* cayley_left       # (D, D)
    double* cayley_right      # (D, D)
    double* singular_values   # (D,)
    double* left_vectors      # (D, D)
    double* right_vectors     # (D, D)
    double* log_products      # (K,)
    double* weights           # (K,)
    double* reciprocal        # (D,): 1 / v_kj of one component
    double* gradients         # (K, P)
    double* gradient          # (P,)
    double* hessian           # (P, P), or its diagonal (P,)
    double* hessian_factor    # (P, P): its Cholesky factor
    double* angles            # (P,)
    double* curvatures        # (P,), also D eigenvalues of one W_k
    double* lapack_work
    int* lapack_iwork
    int* plane_first          # (P,): a of plane p = (a, b), a < b
    int* plane_second         # (P,): b
    int* sharing_planes       # (P, 2D − 3): the planes q that share an axis with p, p too
    int lwork
    int liwork


cdef int _axes_work_allocate(_AxesWork* work, Py_ssize_t k, Py_ssize_t d) noexcept nogil:
    """Point ``work``'s arrays into two fresh blocks: 0, or -1 when out of memory."""
    cdef Py_ssize_t n_planes = d * (d - 1) // 2
    cdef Py_ssize_t big = n_planes if n_planes > d else d
    # LAPACK's documented minimal workspaces: dsyevd with vectors of order ``big``, dgesdd
    # with all vectors of order D.
    cdef Py_ssize_t syevd_work = 1 + 6 * big + 2 * big * big
    cdef Py_ssize_t gesdd_work = 3 * d + 4 * d * d + 4 * d
    work.lwork = <int> (syevd_work if syevd_work > gesdd_work else gesdd_work)
    work.liwork = <int> (3 + 5 * big if 3 + 5 * big > 8 * d else 8 * d)
    cdef Py_ssize_t n_doubles = (k * d * d + 8 * d * d + 5 * k * d + 3 * k + 2 * d
                                 + k * n_planes + 2 * n_planes * n_planes + 3 * big
                                 + work.lwork)
    work.doubles = <double*> malloc(n_doubles * sizeof(double))
    cdef Py_ssize_t n_sharing = 2 * d - 3 if d > 1 else 0
    work.ints = <int*> malloc((work.liwork + (2 + n_sharing) * n_planes + 1) * sizeof(int))
    if work.doubles == NULL or work.ints == NULL:
        free(work.doubles)
        free(work.ints)
        return -1
    cdef double* next_double = work.doubles
    work.rotated, next_double = next_double, next_double + k * d * d
    work.product, next_double = next_double, next_double + d * d
    work.slope, next_double = next_double, next_double + d * d
    work.candidate, next_double = next_double, next_double + d * d
    work.cayley_left, next_double = next_double, next_double + d * d
    work.cayley_right, next_double = next_double, next_double + d * d
    work.left_vectors, next_double = next_double, next_double + d * d
    work.right_vectors, next_double = next_double, next_double + d * d
    work.largest, next_double = next_double, next_double + k
    work.log_products, next_double = next_double, next_double + k
    work.weights, next_double = next_double, next_double + k
    work.variances, next_double = next_double, next_double + k * d
    work.candidate_variances, next_double = next_double, next_double + k * d
    work.inverse, next_double = next_double, next_double + k * d
    work.singular_values, next_double = next_double, next_double + d
    work.reciprocal, next_double = next_double, next_double + d
    work.gradients, next_double = next_double, next_double + k * n_planes
    work.hessian, next_double = next_double, next_double + n_planes * n_planes
    work.hessian_factor, next_double = next_double, next_double + n_planes * n_planes
    work.gradient, next_double = next_double, next_double + big
    work.angles, next_double = next_double, next_double + big
    work.curvatures, next_double = next_double, next_double + big
    work.lapack_work = next_double
    work.lapack_iwork = work.ints
    work.plane_first = work.ints + work.liwork
    work.plane_second = work.plane_first + n_planes
    work.sharing_planes = work.plane_second + n_planes
    cdef Py_ssize_t a, b, p = 0, q, i
    for a in range(d - 1):
        for b in range(a + 1, d):
            work.plane_first[p], work.plane_second[p] = <int> a, <int> b
            p += 1
    for p in range(n_planes):
        i = 0
        for q in range(n_planes):
            if _share_an_axis(work, p, q):
                work.sharing_planes[p * n_sharing + i] = <int> q
                i += 1
    return 0


cdef inline void _axes_work_free(_AxesWork* work) noexcept nogil:
    free(work.doubles)
    free(work.ints)


def fit_common_orientation(nk, regularised, axes, bint equal_volumes, Py_ssize_t max_iter,
                           double tol):
    """EVE's (``equal_volumes``) or VVE's M-step from given common axes:
    ``(axes, volumes, shapes, F, n_iter, converged)``.

    ``gmmfast._covariance_models._fit_common_orientation`` says what each step does (two
    majorisation-minimisation steps of Browne & McNicholas and a Newton rotation of the
    plane angles; from the second step on, first a Newton step with the planes' coupled
    Hessian, up to FULL_NEWTON_MAX_FEATURES columns). The shapes and volumes are
    :func:`variable_shapes_along_axes`'s along the axes. Steps stop when F decreases by at
    most ``tol`` times ``max(|F|, Σ_k n_k)`` (converged), or after ``max_iter`` steps (not
    converged). A start where F is not finite (a scatter singular along the axes) is
    returned as it is, after 0 steps.

    ``nk`` (K,) IN, positive counts; ``regularised`` (K, D, D) IN, the scatters
    ``W_k + n_k reg_covar I``; ``axes`` (D, D) IN, orthogonal, the start's axes as
    columns. Returns new arrays: the axes (D, D), the volumes (K,) and the shapes (K, D),
    then F, the number of steps and whether they converged.

    Raises ``numpy.linalg.LinAlgError`` when a step's LAPACK call fails or F stops being
    finite (a scatter that is not positive definite), MemoryError when the scratch cannot
    be allocated.
    """
    return _fit_common_axes(_COMMON_ORIENTATION, nk, regularised, axes, None, equal_volumes,
                            max_iter, tol)


cdef enum _CommonAxesModel:
    _COMMON_ORIENTATION            # EVE, VVE
    _SCALED_COMMON_COVARIANCE      # VEE


cdef tuple _fit_common_axes(_CommonAxesModel model, nk, regularised, axes, start_volumes,
                            bint equal_volumes, Py_ssize_t max_iter, double tol):
    """The checks, outputs and scratch of :func:`fit_common_orientation` and
    :func:`fit_scaled_common_covariance`, whose steps run without the GIL."""
    cdef cnp.ndarray nk_in, scatter_in
    nk_in, scatter_in = _counts_and_matrices(nk, regularised, "regularised")
    cdef Py_ssize_t k = cnp.PyArray_DIMS(scatter_in)[0]
    cdef Py_ssize_t d = cnp.PyArray_DIMS(scatter_in)[1]
    cdef cnp.ndarray axes_out, volumes
    if model == _COMMON_ORIENTATION:
        axes_out = np.array(axes, dtype=np.float64, order="C")
        if not has_shape(axes_out, d, d, -1):
            raise ValueError(f"axes must have shape ({d}, {d}), got {np.shape(axes)}")
        volumes = _empty(k, -1, -1)
    else:
        axes_out = _empty(d, d, -1)
        volumes = _start_volumes(start_volumes, k)
    _check_inner_iterations(max_iter, tol)
    cdef cnp.ndarray shapes = _empty(k, d, -1)
    cdef _AxesWork work
    if _axes_work_allocate(&work, k, d) < 0:
        raise MemoryError("no memory for the M-step's scratch")
    cdef const double* counts = _data(nk_in)
    cdef const double* scatter = _data(scatter_in)
    cdef double* axes_data = _data(axes_out)
    cdef double* volume_data = _data(volumes)
    cdef double* shape_data = _data(shapes)
    cdef double value = 0.0
    cdef bint converged = True
    cdef Py_ssize_t n_iter
    with nogil:
        if model == _COMMON_ORIENTATION:
            n_iter = _fit_common_orientation(&work, counts, scatter, k, d, equal_volumes,
                                             max_iter, tol, axes_data, volume_data,
                                             shape_data, &value, &converged)
        else:
            n_iter = _fit_scaled_common_covariance(&work, counts, scatter, k, d, max_iter,
                                                   tol, axes_data, volume_data, shape_data,
                                                   &value, &converged)
    _axes_work_free(&work)
    if n_iter < 0:
        raise np.linalg.LinAlgError("the M-step met a scatter that is not positive "
                                    "definite")
    return axes_out, volumes, shapes, value, n_iter, converged


cdef Py_ssize_t _fit_common_orientation(
    _AxesWork* work, const double* nk, const double* regularised, Py_ssize_t k,
    Py_ssize_t d, bint equal_volumes, Py_ssize_t max_iter, double tol, double* axes,
    double* volumes, double* shapes, double* value, bint* converged,
) noexcept nogil:
    """The steps of :func:`fit_common_orientation` on ``axes`` in place, the volumes and
    shapes into ``volumes``, ``shapes`` and F into ``value``; returns the number of steps,
    or -1 on failure."""
    cdef bint coupled = 1 < d <= _FULL_NEWTON_MAX_FEATURES  # one column has no planes
    cdef Py_ssize_t c, n_iter
    cdef double previous, n_total = 0.0
    cdef int rotated
    for c in range(k):
        n_total += nk[c]
        if _largest_eigenvalue(work, regularised + c * d * d, d, &work.largest[c]) < 0:
            return -1
    _variances_along(regularised, axes, work.product, work.variances, k, d)
    value[0] = _variable_shapes(nk, work.variances, k, d, equal_volumes, volumes, shapes)
    converged[0] = True
    if not isfinite(value[0]):
        return 0
    for n_iter in range(1, max_iter + 1):
        previous = value[0]
        # A warm start's first step is usually its last (F barely moves): the dearer
        # coupled step pays only once the iteration goes on.
        rotated = 0
        if coupled and n_iter > 1:
            rotated = _newton_rotation(work, nk, regularised, k, d, equal_volumes, True, axes)
        if rotated == 0:
            if _majorisation_steps(work, regularised, k, d, volumes, shapes, axes) < 0:
                return -1
            rotated = _newton_rotation(work, nk, regularised, k, d, equal_volumes, False,
                                       axes)
        if rotated < 0:
            return -1
        value[0] = _variable_shapes(nk, work.variances, k, d, equal_volumes, volumes, shapes)
        if not isfinite(value[0]):
            return -1
        if _inner_converged(previous, value[0], tol, n_total):
            return n_iter
    converged[0] = False
    return max_iter


cdef inline bint _inner_converged(double previous, double value, double tol,
                                  double n_total) noexcept nogil:
    """The iterative M-steps' rule: F decreased by at most ``tol`` times ``|F|``, or times
    the total count when F is smaller."""
    return previous - value <= tol * max(fabs(value), n_total)


cdef int _largest_eigenvalue(_AxesWork* work, const double* matrix, Py_ssize_t d,
                             double* out) noexcept nogil:
    """The largest eigenvalue of a symmetric (D, D) ``matrix`` into ``out``: 0, or -1 when
    LAPACK fails."""
    cdef char jobz = b'N'
    cdef char uplo = b'L'
    cdef int n = <int> d
    cdef int info = 0
    cdef Py_ssize_t e
    for e in range(d * d):
        work.product[e] = matrix[e]
    dsyevd(&jobz, &uplo, &n, work.product, &n, work.curvatures, work.lapack_work,
           &work.lwork, work.lapack_iwork, &work.liwork, &info)
    out[0] = work.curvatures[d - 1]
    return 0 if info == 0 else -1


cdef void _variances_along(const double* regularised, const double* axes, double* product,
                           double* variances, Py_ssize_t k, Py_ssize_t d) noexcept nogil:
    """``variances[c, j] = (Dᵀ W_c D)_jj``: each scatter along the axes' columns."""
    cdef Py_ssize_t c, a, j
    cdef double total
    for c in range(k):
        _matrix_product(regularised + c * d * d, d, 1, axes, product, d)
        for j in range(d):
            total = 0.0
            for a in range(d):
                total += axes[a * d + j] * product[a * d + j]
            variances[c * d + j] = total


cdef int _majorisation_steps(_AxesWork* work, const double* regularised, Py_ssize_t k,
                             Py_ssize_t d, const double* volumes, const double* shapes,
                             double* axes) noexcept nogil:
    """Browne & McNicholas's two majorisation-minimisation steps of the axes in place, for
    the current volumes and shapes: with ``M_k = (λ_k A_k)⁻¹``, the minimiser over
    orthogonal D of the tangent plane of ``Σ_k tr(W_k D M_k Dᵀ)``, whose slope is first
    ``Σ_k (W_k − ω_k I) D M_k`` (ω_k the largest eigenvalue of W_k), then
    ``Σ_k W_k D (M_k − m_k I)`` (m_k the largest entry of M_k). 0, or -1 when LAPACK
    fails."""
    cdef Py_ssize_t c, j
    cdef double top
    for c in range(k):
        for j in range(d):
            work.inverse[c * d + j] = 1.0 / (volumes[c] * shapes[c * d + j])
    _majoriser_slope(work, regularised, k, d, axes, True)
    if _procrustes(work, d, axes) < 0:
        return -1
    for c in range(k):
        top = work.inverse[c * d]
        for j in range(1, d):
            if work.inverse[c * d + j] > top:
                top = work.inverse[c * d + j]
        for j in range(d):
            work.inverse[c * d + j] -= top
    _majoriser_slope(work, regularised, k, d, axes, False)
    return _procrustes(work, d, axes)


cdef void _majoriser_slope(_AxesWork* work, const double* regularised, Py_ssize_t k,
                           Py_ssize_t d, const double* axes, bint shift_scatter) noexcept nogil:
    """``work.slope = Σ_k (W_k − s_k I) D diag(work.inverse_k)``, with s_k the largest
    eigenvalue of W_k when ``shift_scatter``, else 0."""
    cdef Py_ssize_t c, a, j
    cdef double shift
    for a in range(d * d):
        work.slope[a] = 0.0
    for c in range(k):
        _matrix_product(regularised + c * d * d, d, 1, axes, work.product, d)
        shift = work.largest[c] if shift_scatter else 0.0
        for a in range(d):
            for j in range(d):
                work.slope[a * d + j] += ((work.product[a * d + j] - shift * axes[a * d + j])
                                          * work.inverse[c * d + j])


cdef int _procrustes(_AxesWork* work, Py_ssize_t d, double* axes) noexcept nogil:
    """``axes = −U Vᵀ`` for ``work.slope = U S Vᵀ`` (destroyed): the orthogonal matrix that
    minimises ``tr(axesᵀ slope)``. 0, or -1 when LAPACK fails.

    LAPACK sees the row-major slope G as Gᵀ = V S Uᵀ, so its left vectors are V and its
    right ones Uᵀ, both column-major."""
    cdef char jobz = b'A'
    cdef int n = <int> d
    cdef int info = 0
    cdef Py_ssize_t r, col, m
    cdef double total
    dgesdd(&jobz, &n, &n, work.slope, &n, work.singular_values, work.left_vectors, &n,
           work.right_vectors, &n, work.lapack_work, &work.lwork, work.lapack_iwork, &info)
    if info != 0:
        return -1
    for r in range(d):
        for col in range(d):
            # (U Vᵀ)[r, col] = Σ_m U[r, m] V[col, m] = Σ_m Uᵀ[m, r] V[col, m].
            total = 0.0
            for m in range(d):
                total += work.right_vectors[r * d + m] * work.left_vectors[m * d + col]
            axes[r * d + col] = -total
    return 0


cdef int _newton_rotation(_AxesWork* work, const double* nk, const double* regularised,
                          Py_ssize_t k, Py_ssize_t d, bint equal_volumes, bint coupled,
                          double* axes) noexcept nogil:
    """Rotate ``axes`` in place by a Newton step on all the plane angles, and leave each
    component's variances along the resulting axes in ``work.variances``.

    With ``coupled``, the step uses the planes' full Hessian with its eigenvalues taken in
    absolute value (so that it descends where F is not convex, as near a saddle); without,
    each plane's own second derivative (a plane whose F is not convex there does not
    turn). The step is halved until the profiled F decreases, at most NEWTON_HALVINGS
    times. Returns 1 when the axes turned; 0 when they did not (without ``coupled`` the
    variances are then those along the given axes; with, ``work.variances`` is left as it
    was); -1 when LAPACK fails.
    """
    cdef Py_ssize_t n_planes = d * (d - 1) // 2
    cdef Py_ssize_t c, p, halving
    cdef double value, candidate_value
    for c in range(k):
        _congruence(regularised + c * d * d, axes, work.product, work.rotated + c * d * d, d)
    value = _profile_derivatives(work, nk, work.rotated, k, d, equal_volumes, coupled)
    if coupled:
        p = _coupled_newton_angles(work, n_planes)
        if p <= 0:
            return p
    else:
        for p in range(n_planes):
            work.angles[p] = (-work.gradient[p] / work.hessian[p] if work.hessian[p] > 0
                              else 0.0)
    for halving in range(_NEWTON_HALVINGS if n_planes > 0 else 0):
        if _cayley_rotated(work, d, axes) < 0:
            return -1
        _variances_along(regularised, work.candidate, work.product,
                         work.candidate_variances, k, d)
        for c in range(k):
            work.log_products[c] = _log_sum(work.candidate_variances + c * d, d)
        candidate_value = _profile_value(nk, work.log_products, k, d, equal_volumes)
        if candidate_value < value:
            for p in range(d * d):
                axes[p] = work.candidate[p]
            for p in range(k * d):
                work.variances[p] = work.candidate_variances[p]
            return 1
        for p in range(n_planes):
            work.angles[p] *= 0.5
    if not coupled:
        for c in range(k):
            for p in range(d):
                work.variances[c * d + p] = work.rotated[c * d * d + p * (d + 1)]
    return 0


cdef int _coupled_newton_angles(_AxesWork* work, Py_ssize_t n_planes) noexcept nogil:
    """The Newton angles ``−H⁺⁻¹ g`` into ``work.angles``, with ``H⁺`` the Hessian with
    its eigenvalues in absolute value and floored at 1e-8 times the largest (so that flat
    directions' steps stay finite). 1, or 0 when the Hessian is not finite or zero, -1
    when LAPACK fails.

    Near a minimum H is positive definite and well conditioned, so H⁺ = H: a Cholesky
    solve then gives the step for a fraction of the eigen-decomposition's cost (78 planes
    at 13 columns: ~0.1 against ~0.5 ms). For a symmetric H, λ_min / λ_max is at least
    the 1-norm's reciprocal condition number, which LAPACK estimates (rarely 3 times too
    high): above 1e-6, no eigenvalue falls below the floor.
    """
    cdef char uplo = b'L'
    cdef int n = <int> n_planes
    cdef int one = 1
    cdef int info = 0
    cdef Py_ssize_t p, q
    cdef double column_sum, norm = 0.0, rcond = 0.0
    for p in range(n_planes * n_planes):
        if not isfinite(work.hessian[p]):
            return 0
        work.hessian_factor[p] = work.hessian[p]
    for q in range(n_planes):
        column_sum = 0.0
        for p in range(n_planes):
            column_sum += fabs(work.hessian[q * n_planes + p])
        norm = max(norm, column_sum)
    dpotrf(&uplo, &n, work.hessian_factor, &n, &info)
    if info == 0:
        dpocon(&uplo, &n, work.hessian_factor, &n, &norm, &rcond, work.lapack_work,
               work.lapack_iwork, &info)
    if info == 0 and rcond > 1e-6:
        for p in range(n_planes):
            work.angles[p] = -work.gradient[p]
        dpotrs(&uplo, &n, &one, work.hessian_factor, &n, work.angles, &n, &info)
        return 1 if info == 0 else -1
    return _absolute_newton_angles(work, n_planes)


cdef int _absolute_newton_angles(_AxesWork* work, Py_ssize_t n_planes) noexcept nogil:
    """:func:`_coupled_newton_angles` through the eigen-decomposition of the Hessian
    (destroyed)."""
    cdef char jobz = b'V'
    cdef char uplo = b'L'
    cdef int n = <int> n_planes
    cdef int info = 0
    cdef Py_ssize_t p, q
    cdef double top = 0.0
    cdef double projection
    dsyevd(&jobz, &uplo, &n, work.hessian, &n, work.curvatures, work.lapack_work,
           &work.lwork, work.lapack_iwork, &work.liwork, &info)
    if info != 0:
        return -1
    for p in range(n_planes):
        top = max(top, fabs(work.curvatures[p]))
    if not top > 0:
        return 0
    for p in range(n_planes):
        work.angles[p] = 0.0
    for q in range(n_planes):  # eigenvector q is column q, row-major row q
        projection = 0.0
        for p in range(n_planes):
            projection += work.hessian[q * n_planes + p] * work.gradient[p]
        projection /= max(fabs(work.curvatures[q]), 1e-8 * top)
        for p in range(n_planes):
            work.angles[p] -= work.hessian[q * n_planes + p] * projection
    return 1


cdef int _cayley_rotated(_AxesWork* work, Py_ssize_t d, const double* axes) noexcept nogil:
    """``work.candidate = axes (I − G/2)⁻¹ (I + G/2)``, G antisymmetric with
    ``G[a, b] = work.angles[p]`` for each plane p = (a, b): the rotation exp(G) to second
    order, exactly orthogonal. 0, or -1 when LAPACK fails.

    Column-major, LAPACK reads the row-major I − G/2 as its transpose I + G/2 and I + G/2
    as I − G/2: it solves (I + G/2) X = I − G/2, and X read row-major is
    (I + G/2)(I − G/2)⁻¹, the same matrix (both factors are functions of G)."""
    cdef Py_ssize_t n_planes = d * (d - 1) // 2
    cdef Py_ssize_t p, e, a, b
    cdef int n = <int> d
    cdef int info = 0
    for e in range(d * d):
        work.cayley_left[e] = 1.0 if e % (d + 1) == 0 else 0.0
        work.cayley_right[e] = work.cayley_left[e]
    for p in range(n_planes):
        a, b = work.plane_first[p], work.plane_second[p]
        work.cayley_left[a * d + b] = -0.5 * work.angles[p]
        work.cayley_left[b * d + a] = 0.5 * work.angles[p]
        work.cayley_right[a * d + b] = 0.5 * work.angles[p]
        work.cayley_right[b * d + a] = -0.5 * work.angles[p]
    dgesv(&n, &n, work.cayley_left, &n, work.lapack_iwork, work.cayley_right, &n, &info)
    if info != 0:
        return -1
    _matrix_product(axes, d, 1, work.cayley_right, work.candidate, d)
    return 0


def profile_derivatives(nk, rotated, bint equal_volumes, bint coupled):
    """The profiled F of EVE or VVE at the axes of ``rotated`` and its derivatives in the
    plane angles: ``(F, gradient (P,), Hessian (P, P) or its diagonal (P,))``.

    The axes turn as ``D exp(G)``, G antisymmetric with ``G[a, b] = θ_p`` for each plane
    p = (a, b), a < b, in the order of ``numpy.triu_indices(D, 1)``. ``nk`` (K,) IN;
    ``rotated`` (K, D, D) IN, each ``Dᵀ W_k D``. F is :func:`sweep_plane_rotations`'
    profiled F. Exposed for the tests.
    """
    cdef cnp.ndarray nk_in, rotated_in
    nk_in, rotated_in = _counts_and_matrices(nk, rotated, "rotated")
    cdef Py_ssize_t k = cnp.PyArray_DIMS(rotated_in)[0]
    cdef Py_ssize_t d = cnp.PyArray_DIMS(rotated_in)[1]
    cdef Py_ssize_t n_planes = d * (d - 1) // 2
    cdef Py_ssize_t hessian_size = n_planes * n_planes if coupled else n_planes
    cdef _AxesWork work
    if _axes_work_allocate(&work, k, d) < 0:
        raise MemoryError("no memory for the profiled F's derivatives")
    cdef double value = _profile_derivatives(&work, _data(nk_in), _data(rotated_in), k, d,
                                             equal_volumes, coupled)
    gradient = np.array(<double[:n_planes]> work.gradient) if n_planes else np.empty(0)
    hessian = np.array(<double[:hessian_size]> work.hessian) if n_planes else np.empty(0)
    _axes_work_free(&work)
    if coupled:
        hessian = hessian.reshape(n_planes, n_planes)
    return value, gradient, hessian


cdef double _profile_derivatives(_AxesWork* work, const double* nk, const double* rotated,
                                 Py_ssize_t k, Py_ssize_t d, bint equal_volumes,
                                 bint coupled) noexcept nogil:
    """The profiled F at the axes of ``rotated`` (K, D, D), returned, with its gradient in
    the plane angles into ``work.gradient`` (P) and its Hessian into ``work.hessian``
    ((P, P) with ``coupled``, else its diagonal (P)).

    Each component's ``L_k = Σ_j log v_kj`` (v_kj the diagonal of ``S_k = Dᵀ W_k D``) has
    gradient ``2 S_ab (1/v_b − 1/v_a)`` in plane p = (a, b) and Hessian
    :func:`_plane_pair_hessian`. VVE's F is ``Σ_k n_k L_k``; EVE's ``log Σ_k exp(L_k / D)``,
    whose derivatives are the softmax-weighted means of ``L_k / D``'s plus the weighted
    covariance of their gradients.
    """
    cdef Py_ssize_t n_planes = d * (d - 1) // 2
    cdef Py_ssize_t hessian_size = n_planes * n_planes if coupled else n_planes
    cdef Py_ssize_t n_sharing = 2 * d - 3 if d > 1 else 0
    cdef Py_ssize_t c, j, p, q, i, a, b
    cdef double* gradients = work.gradients
    cdef double* u = work.reciprocal
    cdef const double* s
    cdef double top, total, weight
    for c in range(k):
        work.log_products[c] = _log_diagonal_sum(rotated + c * d * d, d)
    # Each component's weight in the derivatives: n_k, or its softmax weight over D.
    if equal_volumes:
        top = work.log_products[0] / d
        for c in range(1, k):
            top = max(top, work.log_products[c] / d)
        total = 0.0
        for c in range(k):
            work.weights[c] = exp(work.log_products[c] / d - top)
            total += work.weights[c]
        for c in range(k):
            work.weights[c] /= total * d
    else:
        for c in range(k):
            work.weights[c] = nk[c]
    for p in range(n_planes):
        work.gradient[p] = 0.0
    for p in range(hessian_size):
        work.hessian[p] = 0.0
    for c in range(k):
        s = rotated + c * d * d
        weight = work.weights[c]
        for j in range(d):
            u[j] = 1.0 / s[j * (d + 1)]
        for p in range(n_planes):
            a, b = work.plane_first[p], work.plane_second[p]
            gradients[c * n_planes + p] = 2.0 * s[a * d + b] * (u[b] - u[a])
            work.gradient[p] += weight * gradients[c * n_planes + p]
            if not coupled:
                work.hessian[p] += weight * _plane_pair_hessian(s, u, d, a, b, a, b)
                continue
            # Planes that share no axis do not interact: their entries stay 0.
            for i in range(n_sharing):
                q = work.sharing_planes[p * n_sharing + i]
                work.hessian[p * n_planes + q] += weight * _plane_pair_hessian(
                    s, u, d, a, b, work.plane_first[q], work.plane_second[q])
    if equal_volumes:
        _add_gradients_spread(work, k, n_planes, coupled, 1.0 / d)
    return _profile_value(nk, work.log_products, k, d, equal_volumes)


cdef inline bint _share_an_axis(_AxesWork* work, Py_ssize_t p, Py_ssize_t q) noexcept nogil:
    return (work.plane_first[p] == work.plane_first[q]
            or work.plane_first[p] == work.plane_second[q]
            or work.plane_second[p] == work.plane_first[q]
            or work.plane_second[p] == work.plane_second[q])


cdef void _add_gradients_spread(_AxesWork* work, Py_ssize_t k, Py_ssize_t n_planes,
                                bint coupled, double scale) noexcept nogil:
    """Add to the Hessian the weighted covariance of the components' gradients, each
    times ``scale``: ``Σ_k w_k g_k g_kᵀ − g gᵀ`` with g = ``work.gradient`` (or its
    diagonal). ``work.weights`` hold ``w_k · scale``."""
    cdef Py_ssize_t c, p, q
    cdef double g_p
    for c in range(k):
        for p in range(n_planes):
            g_p = work.gradients[c * n_planes + p] * scale
            if not coupled:
                work.hessian[p] += work.weights[c] * g_p * work.gradients[c * n_planes + p]
                continue
            for q in range(n_planes):
                work.hessian[p * n_planes + q] += (work.weights[c] * g_p
                                                   * work.gradients[c * n_planes + q])
    for p in range(n_planes):
        if not coupled:
            work.hessian[p] -= work.gradient[p] * work.gradient[p]
            continue
        for q in range(n_planes):
            work.hessian[p * n_planes + q] -= work.gradient[p] * work.gradient[q]


cdef double _plane_pair_hessian(const double* s, const double* u, Py_ssize_t d,
                                Py_ssize_t a_p, Py_ssize_t b_p, Py_ssize_t a_q,
                                Py_ssize_t b_q) noexcept nogil:
    """``∂²L / ∂θ_p ∂θ_q`` of ``L = Σ_j log v_j`` for planes p = (a_p, b_p) and
    q = (a_q, b_q) that share an axis (p = q included), at θ = 0; ``s`` (D, D) is
    ``S = Dᵀ W D`` and ``u`` its diagonal's reciprocals.

    To second order in G, the diagonal of ``exp(G)ᵀ S exp(G)`` is that of
    ``S + 2 S G + Gᵀ S G + S G²``: the second-order part contributes
    ``Σ_j [(E_pᵀ S E_q)_jj + (S E_p E_q)_jj] / v_j`` and its (q, p) twin, with
    ``E_p = e_a e_bᵀ − e_b e_aᵀ``; the first-order part ``−Σ_j (∂v_j/∂θ_p)(∂v_j/∂θ_q) / v_j²``
    with ``∂v_b/∂θ_p = 2 S_ab = −∂v_a/∂θ_p``.
    """
    cdef bint same_aa = a_p == a_q
    cdef bint same_ab = a_p == b_q
    cdef bint same_ba = b_p == a_q
    cdef bint same_bb = b_p == b_q
    cdef double curvature = 0.0
    cdef double first_order = 0.0
    if same_bb:
        curvature += (s[a_p * d + a_q] * (u[b_p] - u[a_q])
                      + s[a_q * d + a_p] * (u[b_q] - u[a_p]))
        first_order += u[b_p] * u[b_p]
    if same_ba:
        curvature += (s[a_p * d + b_q] * (u[b_q] - u[a_q])
                      + s[b_q * d + a_p] * (u[a_p] - u[b_p]))
        first_order -= u[b_p] * u[b_p]
    if same_aa:
        curvature += (s[b_p * d + b_q] * (u[a_p] - u[b_q])
                      + s[b_q * d + b_p] * (u[a_q] - u[b_p]))
        first_order += u[a_p] * u[a_p]
    if same_ab:
        curvature += (s[b_p * d + a_q] * (u[a_q] - u[b_q])
                      + s[a_q * d + b_p] * (u[b_p] - u[a_p]))
        first_order -= u[a_p] * u[a_p]
    return curvature - 4.0 * s[a_p * d + b_p] * s[a_q * d + b_q] * first_order


# ----------------------------------------------------------------------------------------
# Variable volumes with an equal shape: VEI and VEV along their axes, VEE


def fit_scaled_common_shape(nk, variances, start_volumes, Py_ssize_t max_iter, double tol):
    """The volumes and the common shape of VEI or VEV along the components' axes:
    ``(volumes, shapes, F, n_iter, converged)``.

    Alternates the shape given the volumes, ``A ∝ Σ_k w_k / λ_k`` (determinant 1), and the
    volumes given the shape, ``λ_k = Σ_j (w_kj / a_j) / (n_k D)`` (Celeux & Govaert 1995).
    In log-volumes and log-shapes F is a sum of linear and exponential terms, hence convex,
    so this block-coordinate descent reaches the global minimum. Stops as
    :func:`fit_common_orientation` does.

    ``nk`` (K,) IN, positive counts; ``variances`` (K, D) IN, each component's scatter
    along its axes; ``start_volumes`` (K,) IN, or None for ``(Π_j w_kj)^(1/D) / n_k``.
    Returns new arrays (K,) and (K, D) (the shape repeated for each component), then F, the
    number of steps and whether they converged. Raises ``numpy.linalg.LinAlgError`` when F
    stops being finite, MemoryError when the scratch cannot be allocated.
    """
    cdef cnp.ndarray nk_in, variances_in
    nk_in, variances_in = _counts_and_variances(nk, variances)
    cdef Py_ssize_t k = cnp.PyArray_DIMS(variances_in)[0]
    cdef Py_ssize_t d = cnp.PyArray_DIMS(variances_in)[1]
    cdef cnp.ndarray volumes = _start_volumes(start_volumes, k)
    _check_inner_iterations(max_iter, tol)
    cdef cnp.ndarray shapes = _empty(k, d, -1)
    cdef double* pooled = <double*> malloc(d * sizeof(double))
    if pooled == NULL:
        raise MemoryError("no memory for the common shape's M-step")
    cdef const double* counts = _data(nk_in)
    cdef const double* variance_data = _data(variances_in)
    cdef double* volume_data = _data(volumes)
    cdef double* shape_data = _data(shapes)
    cdef bint default_start = start_volumes is None
    cdef Py_ssize_t c
    cdef double value = 0.0
    cdef bint converged = True
    cdef Py_ssize_t n_iter
    with nogil:
        if default_start:
            for c in range(k):
                volume_data[c] = exp(_log_sum(variance_data + c * d, d) / d) / counts[c]
        n_iter = _fit_scaled_common_shape(counts, variance_data, k, d, max_iter, tol,
                                          volume_data, shape_data, pooled, &value,
                                          &converged)
    free(pooled)
    if n_iter < 0:
        raise np.linalg.LinAlgError("the common shape's M-step met a scatter that is not "
                                    "positive definite")
    return volumes, shapes, value, n_iter, converged


cdef cnp.ndarray _start_volumes(object start_volumes, Py_ssize_t k):
    """A new (K,) float64 array: a copy of ``start_volumes``, or uninitialised if None."""
    if start_volumes is None:
        return _empty(k, -1, -1)
    cdef cnp.ndarray volumes = np.array(start_volumes, dtype=np.float64)
    if not has_shape(volumes, k, -1, -1):
        raise ValueError(f"start_volumes must have shape ({k},), got "
                         f"{np.shape(start_volumes)}")
    return volumes


cdef int _check_inner_iterations(Py_ssize_t max_iter, double tol) except -1:
    if max_iter < 1 or not tol >= 0:
        raise ValueError(f"max_iter must be positive and tol non-negative, got "
                         f"max_iter={max_iter} and tol={tol}")
    return 0


cdef Py_ssize_t _fit_scaled_common_shape(
    const double* nk, const double* variances, Py_ssize_t k, Py_ssize_t d,
    Py_ssize_t max_iter, double tol, double* volumes, double* shapes, double* pooled,
    double* value, bint* converged,
) noexcept nogil:
    """The alternation of :func:`fit_scaled_common_shape` from ``volumes`` (in place),
    the shapes into ``shapes`` and F into ``value``; returns the number of steps, or -1
    when F stops being finite."""
    cdef Py_ssize_t c, n_iter
    cdef double previous, n_total = 0.0
    for c in range(k):
        n_total += nk[c]
    value[0] = _common_shape_given(nk, variances, k, d, volumes, shapes, pooled)
    converged[0] = True
    if not isfinite(value[0]):
        return 0
    for n_iter in range(1, max_iter + 1):
        previous = value[0]
        _volumes_given_shapes(nk, variances, shapes, k, d, volumes)
        value[0] = _common_shape_given(nk, variances, k, d, volumes, shapes, pooled)
        if not isfinite(value[0]):
            return -1
        if _inner_converged(previous, value[0], tol, n_total):
            return n_iter
    converged[0] = False
    return max_iter


cdef double _common_shape_given(const double* nk, const double* variances, Py_ssize_t k,
                                Py_ssize_t d, const double* volumes, double* shapes,
                                double* pooled) noexcept nogil:
    """The best common shape ``A ∝ Σ_k w_k / λ_k`` for the volumes, into every row of
    ``shapes`` (K, D); returns F. ``pooled`` is (D,) scratch."""
    cdef Py_ssize_t c, j
    cdef double scale
    for j in range(d):
        pooled[j] = 0.0
    for c in range(k):
        for j in range(d):
            pooled[j] += variances[c * d + j] / volumes[c]
    scale = exp(_log_sum(pooled, d) / d)
    for c in range(k):
        for j in range(d):
            shapes[c * d + j] = pooled[j] / scale
    return _axes_objective(nk, variances, volumes, shapes, k, d)


cdef void _volumes_given_shapes(const double* nk, const double* variances,
                                const double* shapes, Py_ssize_t k, Py_ssize_t d,
                                double* volumes) noexcept nogil:
    """The best volumes for the shapes: ``λ_k = Σ_j (w_kj / a_kj) / (n_k D)``."""
    cdef Py_ssize_t c, j
    cdef double trace
    for c in range(k):
        trace = 0.0
        for j in range(d):
            trace += variances[c * d + j] / shapes[c * d + j]
        volumes[c] = trace / (nk[c] * d)


def fit_scaled_common_covariance(nk, regularised, start_volumes, Py_ssize_t max_iter,
                                 double tol):
    """VEE's M-step, ``Σ_k = λ_k C`` with ``det C = 1``:
    ``(axes, volumes, shapes, F, n_iter, converged)``.

    Alternates the best C given the volumes, proportional to ``Σ_k W_k / λ_k`` (its
    eigenvectors the common axes, its eigenvalues the shape), and the volumes given C,
    ``λ_k = tr(W_k C⁻¹) / (n_k D)``. Stops as :func:`fit_common_orientation` does.

    ``nk`` (K,) IN, positive counts; ``regularised`` (K, D, D) IN, the scatters
    ``W_k + n_k reg_covar I``; ``start_volumes`` (K,) IN. Returns new arrays: the axes
    (D, D), columns in decreasing order of the shape, the volumes (K,) and the shapes
    (K, D) (the shape repeated for each component), then F, the number of steps and
    whether they converged. Raises ``numpy.linalg.LinAlgError`` when LAPACK fails or F
    stops being finite, MemoryError when the scratch cannot be allocated.
    """
    return _fit_common_axes(_SCALED_COMMON_COVARIANCE, nk, regularised, None, start_volumes,
                            False, max_iter, tol)


cdef Py_ssize_t _fit_scaled_common_covariance(
    _AxesWork* work, const double* nk, const double* regularised, Py_ssize_t k,
    Py_ssize_t d, Py_ssize_t max_iter, double tol, double* axes, double* volumes,
    double* shapes, double* value, bint* converged,
) noexcept nogil:
    """The alternation of :func:`fit_scaled_common_covariance` from ``volumes`` (in
    place), the axes and shapes into ``axes`` and ``shapes``, F into ``value``; returns
    the number of steps, or -1 on failure."""
    cdef Py_ssize_t c, n_iter
    cdef double previous, n_total = 0.0
    for c in range(k):
        n_total += nk[c]
    converged[0] = True
    if _common_covariance_given(work, nk, regularised, k, d, volumes, axes, shapes,
                                value) < 0:
        return -1
    if not isfinite(value[0]):
        return 0
    for n_iter in range(1, max_iter + 1):
        previous = value[0]
        _volumes_given_shapes(nk, work.variances, shapes, k, d, volumes)
        if _common_covariance_given(work, nk, regularised, k, d, volumes, axes, shapes,
                                    value) < 0 or not isfinite(value[0]):
            return -1
        if _inner_converged(previous, value[0], tol, n_total):
            return n_iter
    converged[0] = False
    return max_iter


cdef int _common_covariance_given(_AxesWork* work, const double* nk,
                                  const double* regularised, Py_ssize_t k, Py_ssize_t d,
                                  const double* volumes, double* axes, double* shapes,
                                  double* value) noexcept nogil:
    """The best ``C = D A Dᵀ ∝ Σ_k W_k / λ_k`` for the volumes: its axes (decreasing) into
    ``axes``, its shape into every row of ``shapes``, each scatter's variances along the
    axes into ``work.variances`` and F into ``value``. 0, or -1 when LAPACK fails."""
    cdef char jobz = b'V'
    cdef char uplo = b'L'
    cdef int n = <int> d
    cdef int info = 0
    cdef Py_ssize_t c, j, m
    cdef double scale
    cdef double* pooled = work.slope
    for m in range(d * d):
        pooled[m] = 0.0
    for c in range(k):
        for m in range(d * d):
            pooled[m] += regularised[c * d * d + m] / volumes[c]
    # Eigenvalues ascending into work.curvatures, eigenvector j as row j of ``pooled``.
    dsyevd(&jobz, &uplo, &n, pooled, &n, work.curvatures, work.lapack_work, &work.lwork,
           work.lapack_iwork, &work.liwork, &info)
    if info != 0:
        return -1
    for j in range(d):
        for m in range(d):
            axes[m * d + j] = pooled[(d - 1 - j) * d + m]
    scale = exp(_log_sum(work.curvatures, d) / d)
    for c in range(k):
        for j in range(d):
            shapes[c * d + j] = work.curvatures[d - 1 - j] / scale
    _variances_along(regularised, axes, work.product, work.variances, k, d)
    value[0] = _axes_objective(nk, work.variances, volumes, shapes, k, d)
    return 0
