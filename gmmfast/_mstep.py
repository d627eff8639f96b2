"""The parameter algebra of Gaussian mixtures, per covariance type, in float64.

What runs once per EM iteration (the M-step, the precisions' factors, the kernels' form of
the parameters) is compiled, in ``gmmfast._mstep_core``; here are the conversions between
the forms of the parameters that a fit needs once (user-given precisions, fitted
attributes), the parameter count and the errors of a failed M-step.
"""

import numpy as np
from scipy import linalg

from gmmfast import _mstep_core

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


class IllDefinedCovarianceError(ValueError):
    """scikit-learn's "ill-defined empirical covariance" failure of a fit."""


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


def precision_cholesky(covariances, covariance_type, float32_data=False):
    """Upper-triangular U with U Uᵀ = Σ⁻¹ (full, tied), or 1/σ (diag, spherical).

    Raises scikit-learn's "ill-defined empirical covariance" ValueError when a covariance is
    not positive definite.
    """
    chol = _mstep_core.precisions_cholesky(covariances, covariance_type)
    if chol is None:
        raise ill_defined_covariance(float32_data)
    return chol


def ill_defined_covariance(float32_data):
    """scikit-learn's ValueError for a covariance that is not positive definite."""
    return IllDefinedCovarianceError(
        ILL_DEFINED_COVARIANCE + (FLOAT32_ADVICE if float32_data else ""))


def cast_parameters(arrays, dtype):
    """The fitted arrays in the data's dtype; refuses to overflow float32 into infinity.

    The M-step runs in float64 whatever the data's dtype; a float32 model is stored in
    float32 (as scikit-learn's), and a covariance or precision beyond float32's range would
    otherwise reach the user as an infinite parameter.
    """
    with np.errstate(over="ignore"):  # reported below as a ValueError instead
        cast = [np.asarray(a).astype(dtype) for a in arrays]
    if not all(np.all(np.isfinite(a)) for a in cast):
        raise ill_defined_covariance(float32_data=True)
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
