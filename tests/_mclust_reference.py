"""Slow references for mclust's covariance models: the M-step objective, and its minimum
over each constrained family found by a general-purpose optimiser.

A model's family ``Σ_k = λ_k D_k A_k D_kᵀ`` is parametrised without constraints: log-volumes,
log-shapes whose last entry makes their sum 0 (det A = 1), and orientations
the Cayley transforms ``(I − S)⁻¹(I + S)`` of skew-symmetric S; each block is shared when its letter is E, per component
when V, and absent when I.
"""

import numpy as np
from scipy import optimize


def objective(nk, regularised, covariances):
    """``F = Σ_k n_k log det Σ_k + tr(Σ_k⁻¹ W_k)`` by slogdet and solve, diagonals or full."""
    if covariances.ndim == 2:
        covariances = _diagonal_matrices(covariances)
    if regularised.ndim == 2:
        regularised = _diagonal_matrices(regularised)
    sign, log_det = np.linalg.slogdet(covariances)
    if np.any(sign <= 0):
        return np.inf
    trace = np.trace(np.linalg.solve(covariances, regularised), axis1=1, axis2=2)
    return float((nk * log_det + trace).sum())


def _diagonal_matrices(rows):
    return rows[:, :, None] * np.eye(rows.shape[1])


class Family:
    """The covariances of one model as a function of unconstrained parameters θ."""

    def __init__(self, model, n_components, n_features):
        self.model = model
        self.k, self.d = n_components, n_features
        sizes = (1, n_features - 1, n_features * (n_features - 1) // 2)
        self.blocks = []
        start = 0
        for letter, size in zip(model, sizes):
            count = {"I": 0, "E": size, "V": n_components * size}[letter]
            self.blocks.append((letter, slice(start, start + count), size))
            start += count
        self.n_parameters = start
        self.upper = np.triu_indices(n_features, 1)

    def _per_component(self, block, theta):
        letter, where, size = block
        if letter == "I":
            return np.zeros((self.k, size))
        if letter == "E":
            return np.tile(theta[where], (self.k, 1))
        return theta[where].reshape(self.k, size)

    def _pool(self, block, gradient, per_component):
        """Add a (K, size) gradient into θ's block: summed over components when Equal."""
        letter, where, _ = block
        if letter == "E":
            gradient[where] = per_component.sum(axis=0)
        elif letter == "V":
            gradient[where] = per_component.ravel()

    def _pieces(self, theta):
        volume, shape, orientation = self.blocks
        log_volumes = self._per_component(volume, theta)[:, 0]
        free = self._per_component(shape, theta)
        log_shapes = np.hstack([free, -free.sum(axis=1, keepdims=True)])
        principal = np.exp(log_volumes[:, None] + log_shapes)
        skew = np.zeros((self.k, self.d, self.d))
        skew[:, self.upper[0], self.upper[1]] = self._per_component(orientation, theta)
        skew = skew - skew.swapaxes(1, 2)
        # Cayley transform: every rotation without eigenvalue −1, which suffices since a
        # column's sign does not change D A Dᵀ.
        eye = np.eye(self.d)
        left = np.linalg.inv(eye - skew)
        rotations = left @ (eye + skew)
        return principal, rotations, left

    def covariances(self, theta):
        principal, rotations, _ = self._pieces(theta)
        return np.einsum("kij,kj,klj->kil", rotations, principal, rotations)

    def value_and_gradient(self, theta, nk, regularised):
        """F(θ) and its gradient: dF = Σ_k tr(G_k dΣ_k), G_k = n_k Σ_k⁻¹ − Σ_k⁻¹ W_k Σ_k⁻¹."""
        gradient = np.zeros_like(theta)
        if not np.all(np.isfinite(theta)):  # a line search overshooting
            return np.inf, gradient
        principal, rotations, left = self._pieces(theta)
        covariances = np.einsum("kij,kj,klj->kil", rotations, principal, rotations)
        value = objective(nk, regularised, covariances)
        if not np.isfinite(value):
            return np.inf, gradient
        inverse = np.linalg.inv(covariances)
        g = nk[:, None, None] * inverse - inverse @ regularised @ inverse
        along = np.einsum("kij,kil,klj->kj", rotations, g, rotations) * principal
        volume, shape, orientation = self.blocks
        self._pool(volume, gradient, along.sum(axis=1, keepdims=True))
        self._pool(shape, gradient, along[:, :-1] - along[:, -1:])
        # dR = (I − S)⁻¹ dS (R + I) and ∂F/∂R = 2 G R P.
        d_rotation = 2 * g @ rotations * principal[:, None, :]
        eye = np.eye(self.d)
        d_skew = left.swapaxes(1, 2) @ d_rotation @ (rotations + eye).swapaxes(1, 2)
        d_upper = (d_skew - d_skew.swapaxes(1, 2))[:, self.upper[0], self.upper[1]]
        self._pool(orientation, gradient, d_upper)
        return value, gradient

    def minimise(self, nk, regularised, theta0):
        """The smallest F that BFGS finds from ``theta0``."""
        scale = nk.sum()

        def f(theta):
            value, gradient = self.value_and_gradient(theta, nk, regularised)
            return value / scale, gradient / scale

        result = optimize.minimize(f, theta0, jac=True, method="BFGS",
                                   options={"gtol": 1e-10, "maxiter": 2000})
        return result.fun * scale

    def parameters_of(self, estimate):
        """θ of a CovarianceEstimate of this model (to start the optimiser there)."""
        volume, shape, orientation = self.blocks
        eye = np.eye(self.d)
        parts = []
        for block, values in ((volume, np.log(estimate.volumes)[:, None]),
                              (shape, np.log(estimate.shapes)[:, :-1])):
            if block[0] != "I":
                parts.append((values[:1] if block[0] == "E" else values).ravel())
        if orientation[0] != "I":
            rotations = estimate.orientations
            for rotation in rotations[:1] if orientation[0] == "E" else rotations:
                # Column signs that keep the rotation away from eigenvalue −1.
                rotation = rotation * np.where(np.diag(rotation) < 0, -1.0, 1.0)
                if np.linalg.det(rotation) < 0:
                    rotation[:, np.argmin(np.abs(np.diag(rotation)))] *= -1
                skew = (rotation - eye) @ np.linalg.inv(rotation + eye)
                parts.append(skew[self.upper])
        return np.concatenate(parts)
