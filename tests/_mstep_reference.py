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
        if scatter.shape[0] < len(nk):  # tied's pooled form: the scatters summed, (1, D, D)
            within = scatter[0].copy()
            for term in correction[:, None, None] * outer:
                within -= term
            within = within[None]
        else:
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


def sweep_plane_rotations(nk, regularised, axes, n_sweeps, tol, equal_volumes,
                          grid_angles=16, newton_steps=2):
    """Sweeps of the best plane rotations of EVE's or VVE's common axes: (axes, F).

    The reference of ``gmmfast._mstep_core.sweep_plane_rotations``: each plane (i, j),
    i < j, in turn is rotated by the angle that most decreases the profiled F (searched on
    ``grid_angles`` double angles over [0, π), then ``newton_steps`` Newton steps), kept
    only if F decreases; stops after ``n_sweeps`` sweeps or a sweep that decreases F by
    less than ``tol`` times |F|.
    """
    n_features = regularised.shape[-1]
    axes = np.array(axes, dtype=np.float64)
    rotated = axes.T @ regularised @ axes
    log_products = np.log(np.diagonal(rotated, axis1=1, axis2=2)).sum(axis=1)
    value = _profile_objective(nk, log_products, n_features, equal_volumes)
    coarse = np.linspace(0.0, np.pi, grid_angles, endpoint=False)
    for _ in range(n_sweeps):
        previous_value = value
        for i in range(n_features - 1):
            for j in range(i + 1, n_features):
                angle, value = _best_plane_angle(nk, rotated, i, j, value, equal_volumes,
                                                 coarse, newton_steps)
                if angle != 0.0:
                    cos, sin = np.cos(angle), np.sin(angle)
                    _rotate_columns(axes, i, j, cos, sin)
                    _rotate_columns(rotated, i, j, cos, sin)
                    _rotate_columns(rotated.swapaxes(-1, -2), i, j, cos, sin)
        if not previous_value - value > tol * abs(value):
            break
    return axes, value


def _profile_objective(nk, log_products, n_features, equal_volumes):
    """VVE's ``Σ_k n_k L_k`` or EVE's ``log Σ_k exp(L_k / D)``, L_k the log-products."""
    if not equal_volumes:
        return float((nk * log_products).sum())
    return float(np.log(np.exp(log_products / n_features).sum()))


def _best_plane_angle(nk, rotated, i, j, value, equal_volumes, coarse, newton_steps):
    """The angle θ of axes i, j that most decreases the profiled F (0 unless it does), and
    F after it. By θ, the two variances of component k become ``m ± (h cos 2θ + r sin 2θ)``
    (m, h their mean and half-difference, r their covariance)."""
    n_features = rotated.shape[-1]
    log_variances = np.log(np.diagonal(rotated, axis1=1, axis2=2))
    others = log_variances.sum(axis=1) - log_variances[:, i] - log_variances[:, j]
    mean = 0.5 * (rotated[:, i, i] + rotated[:, j, j])
    half = 0.5 * (rotated[:, i, i] - rotated[:, j, j])
    covariance = rotated[:, i, j]

    def profile(phi):
        """F at the double angles φ (A,), with its first two derivatives in φ."""
        cos, sin = np.cos(phi)[:, None], np.sin(phi)[:, None]
        change = half * cos + covariance * sin
        slope = covariance * cos - half * sin
        product = (mean + change) * (mean - change)
        log_product = np.log(product)
        d_log = -2.0 * change * slope / product
        d2_log = -2.0 * (slope**2 - change**2) / product - d_log**2
        if not equal_volumes:
            return (nk * (others + log_product)).sum(axis=1), d_log @ nk, d2_log @ nk
        scaled = (others + log_product) / n_features
        top = scaled.max(axis=1, keepdims=True)
        weights = np.exp(scaled - top)
        total = weights.sum(axis=1)
        d1 = (weights * d_log).sum(axis=1) / (n_features * total)
        d2 = ((weights * (d2_log / n_features + (d_log / n_features) ** 2)).sum(axis=1)
              / total - d1**2)
        return np.log(total) + top[:, 0], d1, d2

    phi = coarse[np.argmin(profile(coarse)[0])]
    for _ in range(newton_steps):
        _, d1, d2 = profile(np.array([phi]))
        if not d2[0] > 0:
            break
        phi -= d1[0] / d2[0]
    new_value = float(profile(np.array([phi]))[0][0])
    if new_value < value:
        return 0.5 * phi, new_value
    return 0.0, value


def _rotate_columns(matrices, i, j, cos, sin):
    """Rotate columns i and j of ``matrices`` (..., D, D) in place by the angle (cos, sin)."""
    column_i = matrices[..., i].copy()
    column_j = matrices[..., j]
    matrices[..., i] = cos * column_i + sin * column_j
    matrices[..., j] = cos * column_j - sin * column_i
