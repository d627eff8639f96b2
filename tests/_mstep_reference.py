"""NumPy reference formulas of the compiled M-step algebra (``gmmfast._mstep_core``).

The package computes these once per EM iteration in compiled code; here they are written
plainly, with NumPy, so the tests can hold the compiled versions to them.
"""

import numpy as np


def estimate_parameters(nk, sums, scatter, shifts, covariance_type, reg_covar, eps):
    """Turn shifted sufficient statistics into (nk, means, covariances).

    The reference of ``gmmfast._mstep_core.estimate_parameters``.

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


def kernel_parameters(weights, means, precisions_chol, covariance_type, n_features):
    """The float64 arrays the compiled kernels take: (means, precisions_chol, log_norm).

    The reference of ``gmmfast._mstep_core.kernel_parameters``.

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
