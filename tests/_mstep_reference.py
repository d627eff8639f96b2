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


def variable_shapes_along_axes(nk, variances, equal_volumes):
    """Volumes and variable shapes along fixed axes, and F at them: (volumes, shapes, F).

    The reference of ``gmmfast._mstep_core.variable_shapes_along_axes``: with
    ``g_k = (Π_j w_kj)^(1/D)`` the shapes are ``w_k / g_k`` and the volumes ``g_k / n_k``,
    or all ``Σ_k g_k / Σ_k n_k``.
    """
    scales = np.exp(np.log(variances).mean(axis=1))
    shapes = variances / scales[:, None]
    volumes = np.full(nk.shape, scales.sum() / nk.sum()) if equal_volumes else scales / nk
    return volumes, shapes, axes_objective(nk, variances, volumes, shapes)


def axes_objective(nk, variances, volumes, shapes):
    """F = Σ_k [n_k D log λ_k + Σ_j w_kj / (λ_k a_kj)]: the reference of
    ``gmmfast._mstep_core.axes_objective``."""
    n_features = variances.shape[1]
    return float((nk * n_features * np.log(volumes)
                  + (variances / shapes).sum(axis=1) / volumes).sum())


def fit_common_orientation(nk, regularised, axes, equal_volumes, max_iter, tol):
    """EVE's or VVE's M-step from given common axes: (axes, volumes, shapes, F, n_iter,
    converged).

    The reference of ``gmmfast._mstep_core.fit_common_orientation``. Each step: from the
    second on, a Newton step on all plane angles with their coupled Hessian (eigenvalues
    in absolute value), if it decreases F; otherwise Browne & McNicholas's two MM steps
    (orthogonal Procrustes on the majorisers' slopes) and a Newton step with each plane's
    own curvature. Stops when F decreases by at most ``tol · max(|F|, Σ n_k)``.
    """
    n_features = regularised.shape[-1]
    largest = np.linalg.eigvalsh(regularised)[:, -1]
    shifted = regularised - largest[:, None, None] * np.eye(n_features)
    coupled = 1 < n_features <= 16

    def shapes_given(axes, variances=None):
        if variances is None:
            variances = np.diagonal(axes.T @ regularised @ axes, axis1=1, axis2=2)
        return (axes, *variable_shapes_along_axes(nk, variances, equal_volumes))

    def procrustes(gradient):
        u, _, vt = np.linalg.svd(gradient)
        return -u @ vt

    def step(fit, first):
        axes, volumes, shapes, _ = fit
        if coupled and not first:
            rotated = _newton_rotation(nk, regularised, axes, equal_volumes, coupled=True)
            if rotated is not None:
                return shapes_given(*rotated)
        inverse = 1.0 / (volumes[:, None] * shapes)
        axes = procrustes(((shifted @ axes) * inverse[:, None, :]).sum(axis=0))
        shifted_inverse = inverse - inverse.max(axis=1, keepdims=True)
        axes = procrustes(((regularised @ axes) * shifted_inverse[:, None, :]).sum(axis=0))
        return shapes_given(*_newton_rotation(nk, regularised, axes, equal_volumes,
                                              coupled=False))

    start = shapes_given(np.array(axes, dtype=np.float64))
    return _iterate(lambda fit: step(fit, fit is start), start, nk, max_iter, tol)


def _newton_rotation(nk, regularised, axes, equal_volumes, coupled, halvings=8):
    """Axes rotated by a Newton step on the plane angles, halved until the profiled F
    decreases, with the variances along them; the given axes (without ``coupled``) or None
    (with) when no halving decreases it."""
    n_features = axes.shape[0]
    rotated = axes.T @ regularised @ axes
    value, gradient, hessian = profile_derivatives(nk, rotated, equal_volumes, coupled)
    if coupled:
        if not np.isfinite(hessian).all():
            return None
        curvatures, directions = np.linalg.eigh(hessian)
        top = np.abs(curvatures).max()
        if not top > 0:
            return None
        curvatures = np.maximum(np.abs(curvatures), 1e-8 * top)
        angles = -directions @ ((directions.T @ gradient) / curvatures)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            angles = np.where(hessian > 0, -gradient / hessian, 0.0)
    eye = np.eye(n_features)
    first, second = np.triu_indices(n_features, 1)
    for _ in range(halvings if angles.size else 0):
        generator = np.zeros((n_features, n_features))
        generator[first, second] = angles
        generator -= generator.T
        candidate = axes @ np.linalg.solve(eye - 0.5 * generator, eye + 0.5 * generator)
        variances = np.diagonal(candidate.T @ regularised @ candidate, axis1=1, axis2=2)
        if _profile_objective(nk, np.log(variances).sum(axis=1), n_features,
                              equal_volumes) < value:
            return candidate, variances
        angles = 0.5 * angles
    if coupled:
        return None
    return axes, np.diagonal(rotated, axis1=1, axis2=2).copy()


def profile_derivatives(nk, rotated, equal_volumes, coupled):
    """The profiled F of EVE or VVE at the axes of ``rotated`` (K, D, D), with its gradient
    and Hessian (or the Hessian's diagonal) in the plane angles: the reference of
    ``gmmfast._mstep_core.profile_derivatives``.

    The axes turn as ``D exp(G)`` with ``G_ab = θ_p = −G_ba`` for plane p = (a, b); to
    second order in G the diagonal of ``exp(G)ᵀ S exp(G)`` is that of
    ``S + 2 S G + Gᵀ S G + S G²``, whose derivatives are taken here entry by entry for
    each component's ``L_k = Σ_j log v_kj``.
    """
    n_components, n_features = rotated.shape[:2]
    first, second = np.triu_indices(n_features, 1)
    n_planes = first.size
    generators = np.zeros((n_planes, n_features, n_features))
    generators[np.arange(n_planes), first, second] = 1.0
    generators -= generators.swapaxes(1, 2)
    gradients = np.empty((n_components, n_planes))
    hessians = np.empty((n_components, n_planes, n_planes))
    for c, s in enumerate(rotated):
        v = np.diag(s)
        # d v / d θ_p = diag(2 S E_p); d² v / d θ_p d θ_q = diag(E_pᵀ S E_q + E_qᵀ S E_p
        # + S (E_p E_q + E_q E_p)).
        first_derivatives = np.array([np.diag(2 * s @ e) for e in generators])
        gradients[c] = first_derivatives @ (1 / v)
        for p, e_p in enumerate(generators):
            for q, e_q in enumerate(generators):
                second_derivative = np.diag(e_p.T @ s @ e_q + e_q.T @ s @ e_p
                                            + s @ (e_p @ e_q + e_q @ e_p))
                hessians[c, p, q] = (second_derivative / v
                                     - first_derivatives[p] * first_derivatives[q] / v**2
                                     ).sum()
    log_products = np.log(np.diagonal(rotated, axis1=1, axis2=2)).sum(axis=1)
    value = _profile_objective(nk, log_products, n_features, equal_volumes)
    if not equal_volumes:
        gradient, hessian = nk @ gradients, np.einsum("k,kpq->pq", nk, hessians)
    else:
        scaled = log_products / n_features
        weights = np.exp(scaled - scaled.max())
        weights /= weights.sum()
        gradients = gradients / n_features
        gradient = weights @ gradients
        hessian = (np.einsum("k,kpq->pq", weights, hessians) / n_features
                   + (gradients.T * weights) @ gradients - np.outer(gradient, gradient))
    return value, gradient, hessian if coupled else np.diag(hessian).copy()


def fit_scaled_common_shape(nk, variances, start_volumes, max_iter, tol):
    """VEI's and VEV's volumes and common shape along fixed axes: (volumes, shapes, F,
    n_iter, converged). The reference of ``gmmfast._mstep_core.fit_scaled_common_shape``:
    alternate ``A ∝ Σ_k w_k / λ_k`` and ``λ_k = Σ_j (w_kj / a_j) / (n_k D)``."""
    n_features = variances.shape[1]

    def shape_given(volumes):
        pooled = (variances / volumes[:, None]).sum(axis=0)
        shapes = np.tile(pooled / np.exp(np.log(pooled).mean()), (len(nk), 1))
        return volumes, shapes, axes_objective(nk, variances, volumes, shapes)

    def step(fit):
        return shape_given((variances / fit[1]).sum(axis=1) / (nk * n_features))

    if start_volumes is None:
        start_volumes = np.exp(np.log(variances).mean(axis=1)) / nk
    return _iterate(step, shape_given(np.array(start_volumes, dtype=np.float64)), nk,
                    max_iter, tol)


def fit_scaled_common_covariance(nk, regularised, start_volumes, max_iter, tol):
    """VEE's M-step, Σ_k = λ_k C: (axes, volumes, shapes, F, n_iter, converged). The
    reference of ``gmmfast._mstep_core.fit_scaled_common_covariance``: alternate
    ``C ∝ Σ_k W_k / λ_k`` and ``λ_k = tr(W_k C⁻¹) / (n_k D)``."""
    n_features = regularised.shape[-1]

    def covariance_given(volumes):
        eigenvalues, axes = np.linalg.eigh((regularised / volumes[:, None, None]).sum(axis=0))
        eigenvalues, axes = eigenvalues[::-1], axes[:, ::-1]
        shapes = np.tile(eigenvalues / np.exp(np.log(eigenvalues).mean()), (len(nk), 1))
        variances = np.diagonal(axes.T @ regularised @ axes, axis1=1, axis2=2)
        return axes, volumes, shapes, axes_objective(nk, variances, volumes, shapes)

    def step(fit):
        axes, _, shapes, _ = fit
        variances = np.diagonal(axes.T @ regularised @ axes, axis1=1, axis2=2)
        return covariance_given((variances / shapes).sum(axis=1) / (nk * n_features))

    return _iterate(step, covariance_given(np.array(start_volumes, dtype=np.float64)), nk,
                    max_iter, tol)


def _iterate(step, fit, nk, max_iter, tol):
    """``step`` from ``fit`` (a tuple ending in F) until F decreases by at most
    ``tol · max(|F|, Σ n_k)``: the fit, the number of steps and whether they converged."""
    if not np.isfinite(fit[-1]):
        return (*fit, 0, True)
    for n_iter in range(1, max_iter + 1):
        new_fit = step(fit)
        decrease = fit[-1] - new_fit[-1]
        fit = new_fit
        if decrease <= tol * max(abs(fit[-1]), nk.sum()):
            return (*fit, n_iter, True)
    return (*fit, max_iter, False)
