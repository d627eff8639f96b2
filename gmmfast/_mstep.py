"""The M-step and the parameter algebra of Gaussian mixtures, per covariance type.

Everything here works on K×D×D numbers (statistics in, parameters out), in float64. The
compiled core produces the statistics (see ``gmmfast._em``): ``nk = Σ w r``,
``sums = Σ w r (x − c)`` and ``scatter = Σ w r (x − c)(x − c)ᵀ`` (or its diagonal) about
per-component shifts ``c``; moments about a shift close to the mean keep the covariances
exact far from the origin.

The formulas are written here in NumPy. What runs once per EM iteration (the M-step, the
precisions' factors, the kernels' form of the parameters) has a compiled twin in
``gmmfast._mstep_core``, which the tests hold to these formulas: on K×D×D numbers NumPy's
per-call overhead, not the arithmetic, is the cost.
"""

import numpy as np
from scipy import linalg

from gmmfast import _mstep_core
# Zeroed accumulators, compiled: allocated once per EM iteration.
from gmmfast._mstep_core import empty_stats  # noqa: F401 (re-exported)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

ILL_DEFINED_COVARIANCE = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)
FLOAT32_ADVICE = (
    " The numerical accuracy can also be improved by passing float64"
    " data instead of float32."
)


def kernel_form(covariance_type):
    """The compiled kernels know two shapes of precision: "full" (K, D, D) and "diag" (K, D)."""
    return "full" if covariance_type in ("full", "tied") else "diag"


def n_parameters(covariance_type, n_components, n_features):
    """Number of free parameters of the mixture (covariances, means and weights)."""
    k, d = n_components, n_features
    cov_params = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return int(cov_params + k * d + k - 1)


def estimate_parameters(nk, sums, scatter, shifts, covariance_type, reg_covar, eps):
    """Turn shifted sufficient statistics into (nk, means, covariances).

    The reference formula of ``gmmfast._mstep_core.estimate_parameters`` and of
    :func:`m_step`, which the package uses (they run once per EM iteration).

    ``nk`` gains ``10 * eps`` (the machine epsilon of the data's dtype) so an empty component
    gives finite parameters, exactly as scikit-learn does; the returned ``nk`` includes it.
    With ``δ = sums / nk`` the mean is ``c + δ`` and the scatter about the mean is
    ``scatter − δ sumsᵀ − sums δᵀ + N δ δᵀ``: a small correction, so no digits are lost.
    """
    raw_nk = np.asarray(nk, dtype=np.float64)
    nk = raw_nk + 10 * eps
    delta = sums / nk[:, None]
    means = shifts + delta
    # Coefficient of δ δᵀ·nk² in the correction: (2 / nk − N / nk²) with N the raw count.
    correction = 2.0 / nk - raw_nk / nk**2
    n_features = sums.shape[1]
    if covariance_type in ("full", "tied"):
        outer = sums[:, :, None] * sums[:, None, :]
        within = scatter - correction[:, None, None] * outer
        if covariance_type == "full":
            covariances = within / nk[:, None, None]
            covariances += reg_covar * np.eye(n_features)
        else:
            covariances = within.sum(axis=0) / nk.sum()
            covariances += reg_covar * np.eye(n_features)
    else:
        within = scatter - correction[:, None] * sums**2
        covariances = within / nk[:, None] + reg_covar
        if covariance_type == "spherical":
            covariances = covariances.mean(axis=1)
    return nk, means, covariances


def m_step(stats, covariance_type, reg_covar, eps, float32_data=False):
    """One EM M-step: ``(weights, means, covariances, precisions_chol)`` from ``stats``.

    ``stats`` are ``(nk, sums, scatter, shifts)``; ``eps`` the machine epsilon of the data's
    dtype. The weights are ``nk / Σ nk``, the rest is :func:`estimate_parameters` then
    :func:`precision_cholesky`, all in one compiled call (an EM iteration's fixed cost).
    Raises the "ill-defined empirical covariance" ValueError as precision_cholesky does.
    """
    params = _mstep_core.m_step(*stats, covariance_type, reg_covar, eps)
    if params is None:
        raise _ill_defined_covariance(float32_data)
    return params


def precision_cholesky(covariances, covariance_type, float32_data=False):
    """Upper-triangular U with U Uᵀ = Σ⁻¹ (full, tied), or 1/σ (diag, spherical).

    Raises scikit-learn's "ill-defined empirical covariance" ValueError when a covariance is
    not positive definite.
    """
    chol = _mstep_core.precisions_cholesky(covariances, covariance_type)
    if chol is None:
        raise _ill_defined_covariance(float32_data)
    return chol


def _ill_defined_covariance(float32_data):
    return ValueError(ILL_DEFINED_COVARIANCE + (FLOAT32_ADVICE if float32_data else ""))


def cast_parameters(arrays, dtype):
    """The fitted arrays in the data's dtype; refuses to overflow float32 into infinity.

    The M-step runs in float64 whatever the data's dtype; a float32 model is stored in
    float32 (as scikit-learn's), and a covariance or precision beyond float32's range would
    otherwise reach the user as an infinite parameter.
    """
    with np.errstate(over="ignore"):  # reported below as a ValueError instead
        cast = [np.asarray(a).astype(dtype) for a in arrays]
    if not all(np.all(np.isfinite(a)) for a in cast):
        raise ValueError(ILL_DEFINED_COVARIANCE + FLOAT32_ADVICE)
    return cast


def precision_cholesky_from_precisions(precisions, covariance_type):
    """U with U Uᵀ = P for user-given precisions (Cholesky of P with rows/cols reversed)."""
    precisions = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        return np.sqrt(precisions)
    stack = precisions[None] if covariance_type == "tied" else precisions
    flipped = stack[:, ::-1, ::-1]
    chol = np.empty_like(stack)
    for k, p in enumerate(flipped):
        chol[k] = linalg.cholesky(p, lower=True)[::-1, ::-1]
    return chol[0] if covariance_type == "tied" else chol


def precisions_from_cholesky(precisions_chol, covariance_type):
    """P = U Uᵀ (full, tied) or U² (diag, spherical)."""
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", precisions_chol, precisions_chol)
    if covariance_type == "tied":
        return precisions_chol @ precisions_chol.T
    return precisions_chol**2


def covariances_from_cholesky(precisions_chol, covariance_type):
    """Σ = (U Uᵀ)⁻¹ = U⁻ᵀ U⁻¹, computed through the triangular factor."""
    if covariance_type in ("diag", "spherical"):
        return 1.0 / precisions_chol**2
    stack = precisions_chol[None] if covariance_type == "tied" else precisions_chol
    identity = np.eye(stack.shape[-1])
    covariances = np.empty_like(stack)
    for k, upper in enumerate(stack):
        inverse = linalg.solve_triangular(upper, identity, lower=False)
        covariances[k] = inverse.T @ inverse
    return covariances[0] if covariance_type == "tied" else covariances


def kernel_parameters(weights, means, precisions_chol, covariance_type, n_features):
    """The float64 arrays the compiled kernels take: (means, precisions_chol, log_norm).

    The reference formula of ``gmmfast._mstep_core.kernel_parameters``, which the package
    uses (it runs once per EM iteration).

    Tied precisions are one (1, D, D) factor, which the kernels whiten each chunk with once
    for all components; spherical ones are repeated per feature, so the diag kernels serve
    them.
    """
    means = np.ascontiguousarray(means, dtype=np.float64)
    n_components = means.shape[0]
    chol = np.asarray(precisions_chol, dtype=np.float64)
    if covariance_type == "tied":
        chol = chol[None]
    elif covariance_type == "spherical":
        chol = np.broadcast_to(chol[:, None], (n_components, n_features))
    chol = np.ascontiguousarray(chol)
    if chol.ndim == 3:
        log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    else:
        log_det = np.log(chol).sum(axis=1)
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.asarray(weights, dtype=np.float64))
    log_norm = log_weights + log_det - 0.5 * n_features * np.log(2 * np.pi)
    return means, chol, np.ascontiguousarray(log_norm)
