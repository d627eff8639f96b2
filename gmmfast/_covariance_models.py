"""M-steps of mclust's fourteen covariance models, on the engine's K×D×D statistics.

Every model writes each component's covariance through its eigen-decomposition
``Σ_k = λ_k D_k A_k D_kᵀ`` (Banfield & Raftery 1993; Celeux & Govaert 1995): a volume
``λ_k = det(Σ_k)^(1/D)``, a shape ``A_k`` (diagonal, determinant 1) and an orientation
``D_k`` (orthogonal). A model's three-letter name says, in that order, whether the volume,
the shape and the orientation are Equal across components, Variable, or the Identity
(spherical shape ``A = I``; orientation along the coordinate axes, ``D = I``).

For fixed responsibilities and means, the M-step of every model minimises

    F(Σ) = Σ_k [ n_k log det Σ_k + tr(Σ_k⁻¹ W_k) ],

that is, maximises the expected complete-data log-likelihood ``−½ F`` (up to terms free of
the covariances), over its constrained family, where ``W_k`` is the weighted scatter of
component k about its mean. ``reg_covar`` keeps gmmfast's meaning: it is added to each
component's sample covariance before the constrained fit, so ``W_k`` becomes
``W_k + n_k · reg_covar · I``. This makes VVV, EEE, VVI and VII exactly scikit-learn's
full, tied, diag and spherical covariances (with their ``reg_covar``), and keeps every
constraint exact in the output.

How each model is solved, with ``ω_k`` the eigenvalues of ``W_k`` (decreasing) and ``L_k``
its eigenvectors:

- Along fixed axes the problem only sees each component's scatter along those axes (its
  "variances" ``w_k``), and the volume/shape letters pick one of six solutions: EI, VI, EE,
  EV and VV are closed forms, VE alternates between the common shape and the volumes
  (Celeux & Govaert 1995; the objective is convex in the log-volumes and log-shapes, so
  the alternation reaches the global minimum).
- Orientation I: those axes are the coordinate axes, ``w_k = diag(W_k)``.
- Orientation V: the optimal ``D_k`` for any shape with decreasing entries is ``L_k``, so
  the axes problem runs on ``w_k = ω_k`` (Celeux & Govaert 1995): EEV, EVV and VVV are
  closed forms, VEV iterates as VE does.
- Orientation E: EEE is the closed form ``Σ = Σ_k W_k / n``. For VEE, given the volumes the
  best common ``C = D A Dᵀ`` is proportional to ``Σ_k W_k / λ_k``, given C the volumes are
  closed; the two alternate. For EVE and VVE, given the orientation the shapes (and
  volumes) are closed forms along its axes, and the orientation is improved by the
  majorisation-minimisation steps of Browne & McNicholas (2014, "Estimating common
  principal components in high dimensions"), alternating their two majorisers, each step
  followed by a Newton step on the rotation angles of all planes of axes; once the
  iteration goes on past its first step, Newton's method on all the angles together, with
  their exact coupled Hessian, comes first and converges in a few steps. F has local
  minima in the common orientation, so a cold start first searches it by sweeps of plane
  rotations (as Flury & Gautschi's common-principal-components algorithm does) from
  several starting axes.

Every iterative model decreases F at each step, warm-starts from the previous EM
iteration's estimate (so an EM iteration never decreases the likelihood), stops when the
relative change of F falls below ``tol`` (mclust's default for its inner iterations,
about sqrt(machine epsilon)) and warns with a ``ConvergenceWarning`` when ``max_iter`` is
reached first. This module holds the rules and closed forms; the inner iterations (and
the shapes along axes they share) run compiled in ``gmmfast._mstep_core``, whose NumPy
references are in ``tests/_mstep_reference.py``.

The parameter counts are mclust's ``nVarParams`` (Fraley & Raftery 2002; Scrucca et al.
2016, "mclust 5", Table 3).
"""

import warnings
from typing import NamedTuple, Optional

import numpy as np

from gmmfast import _mstep_core
from gmmfast._mstep import COVARIANCE_TYPES, ILL_DEFINED_COVARIANCE, n_parameters

COVARIANCE_MODELS = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI",
    "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)
SKLEARN_NAMES = {"spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"}
# Every name ``covariance_type`` accepts: scikit-learn's four, then mclust's fourteen.
COVARIANCE_NAMES = COVARIANCE_TYPES + COVARIANCE_MODELS

# Models whose covariances are diagonal: their E-step is the diag kernel's.
_DIAGONAL_MODELS = COVARIANCE_MODELS[:6]
_MCLUST_TO_SKLEARN = {model: name for name, model in SKLEARN_NAMES.items()}


# --------------------------------------------------------------------------------------
# Names: scikit-learn's four are four of mclust's fourteen


def check_covariance_name(name):
    """Raise a ValueError listing the accepted names unless ``name`` is one of them."""
    if not isinstance(name, str) or name not in COVARIANCE_NAMES:
        raise ValueError(
            f"covariance_type must be one of scikit-learn's {', '.join(COVARIANCE_TYPES)} "
            f"or mclust's {', '.join(COVARIANCE_MODELS)}; got {name!r}."
        )


def mclust_name(name):
    """The mclust name of a covariance model given by either name ("full" → "VVV")."""
    check_covariance_name(name)
    return SKLEARN_NAMES.get(name, name)


def sklearn_name(name):
    """The scikit-learn name of a model given by either name, or None for the ten models
    scikit-learn lacks ("VVV" → "full", "VEV" → None)."""
    check_covariance_name(name)
    return name if name in SKLEARN_NAMES else _MCLUST_TO_SKLEARN.get(name)


def model_label(name):
    """The model's mclust name, with its scikit-learn name where it has one:
    "VVV (full)", "VEV"."""
    other = sklearn_name(name)
    return mclust_name(name) + (f" ({other})" if other else "")


def sklearn_layout(name):
    """The scikit-learn covariance type whose array shapes the model's parameters take.

    The four scikit-learn models keep their own (spherical (K,), tied (D, D), …) under
    either name. The other ten store one covariance per component: the diagonal models
    (EII, EEI, VEI, EVI) as "diag" (K, D), the others as "full" (K, D, D).
    """
    return sklearn_name(name) or ("diag" if name in _DIAGONAL_MODELS else "full")


def needs_constrained_m_step(name):
    """Whether the model is one of the ten that scikit-learn's M-steps cannot fit."""
    return sklearn_name(name) is None


def n_mixture_parameters(name, n_components, n_features):
    """Free parameters of a mixture of the model: covariances (mclust's ``nVarParams``),
    means and weights; the same count under either name of a scikit-learn model."""
    if sklearn_name(name) is not None:
        return n_parameters(sklearn_name(name), n_components, n_features)
    return int(n_covariance_parameters(name, n_components, n_features)
               + n_components * n_features + n_components - 1)


class CovarianceEstimate(NamedTuple):
    """The covariances of one M-step and their decomposition ``Σ_k = λ_k D_k A_k D_kᵀ``.

    Attributes
    ----------
    covariances : ndarray of shape (K, D) for the six diagonal models (EII … VVI), each
        row the diagonal of Σ_k; of shape (K, D, D) for the others. Equal covariances
        (EII, EEI, EEE) are repeated for every component.
    volumes : ndarray of shape (K,)
        ``λ_k = det(Σ_k)^(1/D)``.
    shapes : ndarray of shape (K, D)
        The diagonal of ``A_k`` (product 1). For diagonal models, along the coordinate
        axes; for the others, along the columns of ``orientations``: in decreasing order,
        except for EVE and VVE whose common axes are ordered by the components' mean
        log-shape (their shapes cannot all decrease along one set of axes).
    orientations : ndarray of shape (K, D, D), or None for the diagonal models
        ``D_k``, its columns the principal axes of Σ_k.
    n_iter : int
        Iterations of the inner algorithm (0 for the closed forms).
    converged : bool
        Whether the inner algorithm met ``tol`` (True for the closed forms).
    """

    covariances: np.ndarray
    volumes: np.ndarray
    shapes: np.ndarray
    orientations: Optional[np.ndarray]
    n_iter: int
    converged: bool


class _AxesFit(NamedTuple):
    """Volumes, shapes and common or per-component axes of M sets of K components."""

    volumes: np.ndarray  # (M, K)
    shapes: np.ndarray  # (M, K, D)
    axes: Optional[np.ndarray]  # None, (M, D, D) common or (M, K, D, D) per component


def kernel_form(model):
    """The E-step kernel that serves ``model``: "diag" (K, D) or "full" (K, D, D) factors."""
    _check_model(model)
    return "diag" if model in _DIAGONAL_MODELS else "full"


def n_covariance_parameters(model, n_components, n_features):
    """Free parameters of the K covariances of ``model``: mclust's ``nVarParams``.

    A volume costs 1, a shape D − 1 (its entries multiply to 1) and an orientation
    D(D − 1)/2 (an orthogonal matrix), each counted once when Equal and K times when
    Variable; an Identity costs nothing.
    """
    _check_model(model)
    k, d = int(n_components), int(n_features)
    per_letter = (1, d - 1, d * (d - 1) // 2)
    count = 0
    for letter, size in zip(model, per_letter):
        count += {"I": 0, "E": size, "V": k * size}[letter]
    return count


def expected_complete_loglik(nk, scatter, covariances, reg_covar):
    """``−½ Σ_k [n_k log det Σ_k + tr(Σ_k⁻¹ (W_k + n_k reg_covar I))]``.

    The part of the expected complete-data log-likelihood that depends on the covariances,
    which every M-step of this module maximises. ``covariances`` and ``scatter`` are
    (K, D) diagonals or (K, D, D) matrices; a (K, D, D) scatter with diagonal covariances
    uses its diagonal.
    """
    nk = np.asarray(nk, dtype=np.float64)
    scatter = np.asarray(scatter, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariances.ndim == 2:
        variances = _diagonal(scatter, nk) + reg_covar * nk[:, None]
        value = nk * np.log(covariances).sum(axis=1) + (variances / covariances).sum(axis=1)
        return -0.5 * float(value.sum())
    regularised = _regularised(nk, scatter, reg_covar)
    chol = np.linalg.cholesky(covariances)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    whitened = np.linalg.solve(chol, np.linalg.solve(chol, regularised).swapaxes(1, 2))
    trace = np.trace(whitened, axis1=1, axis2=2)
    return -0.5 * float((nk * log_det + trace).sum())


def estimate_covariances(model, nk, scatter, reg_covar, previous=None, max_iter=1000,
                         tol=1e-8, warn=True):
    """The covariances of ``model`` that maximise the expected complete-data log-likelihood.

    Parameters
    ----------
    model : str
        One of :data:`COVARIANCE_MODELS`.
    nk : array-like of shape (K,)
        Positive weighted counts ``Σ_i w_i r_ik``.
    scatter : array-like of shape (K, D, D), or (K, D) for the diagonal models
        ``W_k = Σ_i w_i r_ik (x_i − μ_k)(x_i − μ_k)ᵀ``, the scatter about each component's
        mean (the diagonal models use only its diagonal).
    reg_covar : float
        Non-negative; the fit uses ``W_k + n_k · reg_covar · I``.
    previous : CovarianceEstimate, optional
        The previous EM iteration's estimate of the same model and size. The iterative
        models (VEI, VEE, EVE, VVE, VEV) start from it, so the result is at least as good
        as ``previous`` for the new statistics; the closed forms ignore it.
    max_iter : int
        Cap on the iterations of the iterative models; a ``ConvergenceWarning`` says when
        it is reached (unless ``warn`` is False: a capped estimate, started from
        ``previous``, still improves on it, as a generalised EM step needs).
    tol : float
        The iterative models stop when F decreases by less than ``tol`` times ``|F|`` (or
        times the total count, when F is smaller).

    Returns
    -------
    CovarianceEstimate

    Raises
    ------
    ValueError
        If an argument is malformed, or if a covariance is not positive definite (a
        component collapsed onto a point or a subspace with ``reg_covar = 0``).
    """
    _check_model(model)
    nk, scatter = _check_statistics(model, nk, scatter, reg_covar)
    _check_iterations(max_iter, tol)
    _check_previous(previous, nk.shape[0], scatter.shape[1])
    iteration = _Iteration(model, 1, max_iter, tol)
    (estimate,) = _estimates(model, nk[None], _regularised(nk, scatter, reg_covar)[None],
                             [previous], iteration)
    if estimate is None:
        raise ValueError(ILL_DEFINED_COVARIANCE)
    if warn:
        iteration.warn_if_capped()
    return estimate


def estimate_covariances_of_sets(model, nk, scatter, reg_covar, previous=None,
                                 max_iter=1000, tol=1e-8, warn=True):
    """:func:`estimate_covariances` of M sets of statistics of one model and size at once.

    The same numbers as M calls, bit for bit, for the cost of about one: the closed forms
    run on all the sets together, and the iterative models' compiled iterations one set
    after the other without the per-call checks and conversions.

    Parameters
    ----------
    model : str
        One of :data:`COVARIANCE_MODELS`.
    nk : array-like of shape (M, K)
        Each set's weighted counts.
    scatter : array-like of shape (M, K, D, D), or (M, K, D) for the diagonal models
        Each set's scatters about its components' means.
    reg_covar, max_iter, tol, warn
        As for :func:`estimate_covariances` (one warning for all the sets).
    previous : sequence of M CovarianceEstimate or None, optional
        Each set's previous estimate (None: every set starts cold).

    Returns
    -------
    list of M CovarianceEstimate, or None for a set where :func:`estimate_covariances`
    raises: counts not positive and finite, a scatter not finite, or a covariance that is
    not positive definite. The others do not depend on it.

    Raises
    ------
    ValueError
        If an argument is malformed (shapes, ``reg_covar``, ``max_iter``, ``tol``,
        ``previous``).
    """
    _check_model(model)
    nk, scatter = _check_set_statistics(model, nk, scatter, reg_covar)
    _check_iterations(max_iter, tol)
    n_sets, n_components, n_features = nk.shape + scatter.shape[2:3]
    previous = [None] * n_sets if previous is None else list(previous)
    if len(previous) != n_sets:
        raise ValueError(f"previous must hold one estimate (or None) per set: {n_sets}, "
                         f"got {len(previous)}.")
    for start in previous:
        _check_previous(start, n_components, n_features)
    # Comparisons that are False for NaN: a set whose counts or scatter are not finite
    # is one estimate_covariances refuses.
    usable = (((nk > 0) & (nk < np.inf)).all(axis=1)
              & np.isfinite(scatter).reshape(n_sets, -1).all(axis=1))
    rows = np.flatnonzero(usable)
    iteration = _Iteration(model, len(rows), max_iter, tol)
    fitted = _estimates(model, nk[rows], _regularised(nk[rows], scatter[rows], reg_covar),
                        [previous[i] for i in rows], iteration)
    if warn:
        iteration.warn_if_capped()
    estimates = [None] * n_sets
    for i, estimate in zip(rows, fitted):
        estimates[i] = estimate
    return estimates


def _estimates(model, nk, regularised, previous, iteration):
    """The estimates of M sets of positive counts (M, K) and ``regularised`` scatters,
    None for a set whose covariance is not positive definite."""
    if not len(nk):
        return []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        try:
            return _estimates_of_fit(model, _fit(model, nk, regularised, previous, iteration),
                                     iteration)
        except np.linalg.LinAlgError:  # NaN from a singular scatter reached LAPACK
            if len(nk) == 1:
                return [None]
    # One set's failure stops a call that serves them all: each set alone.
    estimates = []
    for m in range(len(nk)):
        alone = iteration.alone()
        estimates += _estimates(model, nk[m:m + 1], regularised[m:m + 1], previous[m:m + 1],
                                alone)
        iteration.record(m, alone.n_iter[0], alone.converged[0])
    return estimates


def _fit(model, nk, regularised, previous, iteration):
    """The model's volumes, shapes and axes for each set; the module docstring says
    how."""
    volume_rule, shape_rule, orientation_rule = model
    start_volumes = [None if start is None else start.volumes for start in previous]
    if orientation_rule == "I":
        return _fit_along_axes(volume_rule, shape_rule, nk, regularised, None, start_volumes,
                               iteration)
    if orientation_rule == "V":
        eigenvalues, eigenvectors = _decreasing_eigh(regularised)
        return _fit_along_axes(volume_rule, shape_rule, nk, eigenvalues, eigenvectors,
                               start_volumes, iteration)
    if model == "EEE":
        return _fit_eee(nk, regularised)
    if model == "VEE":
        return _fit_vee(nk, regularised, start_volumes, iteration)
    start_axes = [None if start is None or start.orientations is None
                  else start.orientations[0] for start in previous]
    return _fit_common_orientation(volume_rule, nk, regularised, start_axes, iteration)


# --------------------------------------------------------------------------------------
# Validation


def _check_model(model):
    if model not in COVARIANCE_MODELS:
        raise ValueError(
            f"Unknown covariance model {model!r}; use one of {', '.join(COVARIANCE_MODELS)} "
            f"(mclust's names) or, for the four scikit-learn types, "
            f"{', '.join(SKLEARN_NAMES)}."
        )


def _check_statistics(model, nk, scatter, reg_covar):
    nk = np.asarray(nk, dtype=np.float64)
    scatter = np.asarray(scatter, dtype=np.float64)
    # Comparisons that are False for NaN: ``nk > 0`` and ``nk < inf`` also refuse NaN.
    if nk.ndim != 1 or nk.size == 0 or not ((nk > 0) & (nk < np.inf)).all():
        raise ValueError("nk must be a non-empty 1-D array of positive finite counts.")
    _check_scatter_shape(model, nk, scatter, "K", "K = len(nk)")
    if not np.isfinite(scatter).all():
        raise ValueError("scatter contains NaN or infinity.")
    _check_reg_covar(reg_covar)
    return nk, _diagonal(scatter, nk) if model in _DIAGONAL_MODELS else scatter


def _check_set_statistics(model, nk, scatter, reg_covar):
    """The sets' counts (M, K) and scatters as float64 arrays, their shapes checked; their
    values are each set's own business (see :func:`estimate_covariances_of_sets`)."""
    nk = np.asarray(nk, dtype=np.float64)
    scatter = np.asarray(scatter, dtype=np.float64)
    if nk.ndim != 2 or nk.size == 0:
        raise ValueError(f"nk must be a non-empty (M, K) array of the sets' counts, got "
                         f"shape {nk.shape}.")
    _check_scatter_shape(model, nk, scatter, "M, K", "(M, K) = nk.shape")
    _check_reg_covar(reg_covar)
    return nk, _diagonal(scatter, nk) if model in _DIAGONAL_MODELS else scatter


def _check_scatter_shape(model, nk, scatter, axes, leading):
    """Raise unless ``scatter`` has nk's shape (named ``axes``) then (D, D), or (D,) for
    a diagonal model."""
    lead = nk.ndim
    full = scatter.ndim == lead + 2 and scatter.shape[-1] == scatter.shape[-2]
    diagonal = scatter.ndim == lead + 1 and model in _DIAGONAL_MODELS
    if not (full or diagonal) or scatter.shape[:lead] != nk.shape or scatter.shape[-1] < 1:
        expected = f"({axes}, D, D)" + (f" or ({axes}, D)" if model in _DIAGONAL_MODELS
                                        else "")
        raise ValueError(
            f"scatter for model {model} must have shape {expected} with {leading} = "
            f"{nk.shape[0] if lead == 1 else nk.shape}, got shape {scatter.shape}."
        )


def _check_reg_covar(reg_covar):
    if not (np.isscalar(reg_covar) and np.isfinite(reg_covar) and reg_covar >= 0):
        raise ValueError(f"reg_covar must be a non-negative finite number, got {reg_covar!r}.")


def _check_iterations(max_iter, tol):
    if max_iter < 1 or not tol >= 0:
        raise ValueError(
            f"max_iter must be a positive integer and tol non-negative, got "
            f"max_iter={max_iter!r} and tol={tol!r}."
        )


def _check_previous(previous, n_components, n_features):
    if previous is None:
        return
    if not isinstance(previous, CovarianceEstimate):
        raise ValueError(
            f"previous must be the CovarianceEstimate of an earlier M-step, got "
            f"{type(previous).__name__}."
        )
    if previous.shapes.shape != (n_components, n_features):
        raise ValueError(
            f"previous estimate has {previous.shapes.shape[0]} components of dimension "
            f"{previous.shapes.shape[1]}, but the statistics have {n_components} of "
            f"dimension {n_features}; pass previous=None to start afresh."
        )


# --------------------------------------------------------------------------------------
# Small algebra


def _diagonal(scatter, nk):
    """The diagonals of scatter matrices (nk's shape, then (D, D)); diagonals as given."""
    if scatter.ndim == nk.ndim + 2:
        return np.diagonal(scatter, axis1=-2, axis2=-1).copy()
    return scatter


def _regularised(nk, scatter, reg_covar):
    """``W_k + n_k reg_covar I``: the scatter of ``reg_covar``-regularised covariances
    (matrices, or their diagonals), for counts of any shape."""
    if scatter.ndim == nk.ndim + 1:
        return scatter + reg_covar * nk[..., None]
    eye = np.eye(scatter.shape[-1])
    return scatter + (reg_covar * nk)[..., None, None] * eye


def _geometric_mean(values):
    """``(Π_j v_j)^(1/D)`` along the last axis, through logs so it neither over- nor
    underflows."""
    return np.exp(np.log(values).sum(axis=-1) / values.shape[-1])


def _decreasing_eigh(matrices):
    eigenvalues, eigenvectors = np.linalg.eigh(matrices)
    return eigenvalues[..., ::-1], eigenvectors[..., ::-1]


def _repeated(values, n_components):
    """(M, ...) values repeated for each of K components: a new (M, K, ...) array."""
    return np.repeat(values[:, None], n_components, axis=1)


# --------------------------------------------------------------------------------------
# The inner iteration shared by the iterative models


class _Iteration:
    """An iterative model's cap and tolerance, and how its compiled iteration ended on
    each of ``n_sets`` sets."""

    def __init__(self, model, n_sets, max_iter, tol):
        self.model = model
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter = [0] * n_sets
        self.converged = [True] * n_sets

    def record(self, index, n_iter, converged):
        self.n_iter[index], self.converged[index] = n_iter, converged

    def alone(self):
        """A fresh iteration of one set, with this one's cap and tolerance."""
        return _Iteration(self.model, 1, self.max_iter, self.tol)

    def warn_if_capped(self):
        if not all(self.converged):
            # Imported here: this module must not import scikit-learn (see _engine).
            from gmmfast._compat import ConvergenceWarning

            warnings.warn(
                f"The M-step of covariance model {self.model} stopped after max_iter="
                f"{self.max_iter} iterations, before the relative change of its objective "
                f"fell below tol={self.tol}. Increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )


# --------------------------------------------------------------------------------------
# Volumes and shapes along fixed axes


def _fit_along_axes(volume_rule, shape_rule, nk, variances, axes, start_volumes, iteration):
    """Volumes and shapes along fixed axes, from each component's ``variances`` along them.

    ``variances`` (M, K, D) are ``diag(D_kᵀ W_k D_k)``; the shape letter "I" means A = I.
    """
    n_components, n_features = variances.shape[1:]
    if shape_rule == "I":
        shapes = np.ones_like(variances)
        traces = variances.sum(axis=-1)
        if volume_rule == "E":
            volume = traces.sum(axis=-1) / (nk.sum(axis=-1) * n_features)
            volumes = _repeated(volume, n_components)
        else:
            volumes = traces / (nk * n_features)
    elif shape_rule == "V":
        volumes, shapes = _fit_variable_shapes(volume_rule == "E", nk, variances)
    elif volume_rule == "E":
        pooled = variances.sum(axis=-2) / nk.sum(axis=-1)[:, None]
        volume = _geometric_mean(pooled)
        volumes = _repeated(volume, n_components)
        shapes = _repeated(pooled / volume[:, None], n_components)
    else:
        return _fit_variable_volume_equal_shape(nk, variances, axes, start_volumes, iteration)
    return _AxesFit(volumes, shapes, axes)


def _fit_variable_shapes(equal_volumes, nk, variances):
    """EV and VV along fixed axes: given the volumes, A_k ∝ w_k; then the volumes are
    closed forms of g_k = (Π w_k)^(1/D) (compiled,
    ``gmmfast._mstep_core.variable_shapes_along_axes``)."""
    volumes, shapes = np.empty(nk.shape), np.empty(variances.shape)
    for m in range(len(nk)):
        volumes[m], shapes[m], _ = _mstep_core.variable_shapes_along_axes(
            nk[m], variances[m], equal_volumes)
    return volumes, shapes


def _fit_variable_volume_equal_shape(nk, variances, axes, start_volumes, iteration):
    """VE along fixed axes: alternate ``A ∝ Σ_k w_k / λ_k`` and ``λ_k = tr(w_k A⁻¹)/(n_k D)``
    (compiled, ``gmmfast._mstep_core.fit_scaled_common_shape``).

    In log-volumes and log-shapes F is a sum of linear and exponential terms, hence convex,
    so this block-coordinate descent reaches the global minimum.
    """
    volumes, shapes = np.empty(nk.shape), np.empty(variances.shape)
    for m in range(len(nk)):
        volumes[m], shapes[m], _, n_iter, converged = _mstep_core.fit_scaled_common_shape(
            nk[m], variances[m], start_volumes[m], iteration.max_iter, iteration.tol)
        iteration.record(m, n_iter, converged)
    return _AxesFit(volumes, shapes, axes)


# --------------------------------------------------------------------------------------
# Common orientation


def _fit_eee(nk, regularised):
    """EEE: Σ = Σ_k W_k / n, decomposed."""
    pooled = regularised.sum(axis=-3) / nk.sum(axis=-1)[:, None, None]
    eigenvalues, axes = _decreasing_eigh(pooled)
    volume = _geometric_mean(eigenvalues)
    n_components = nk.shape[1]
    volumes = _repeated(volume, n_components)
    shapes = _repeated(eigenvalues / volume[:, None], n_components)
    return _AxesFit(volumes, shapes, axes)


def _fit_vee(nk, regularised, start_volumes, iteration):
    """VEE: alternate ``C ∝ Σ_k W_k / λ_k`` (closed given the volumes) and the volumes
    (compiled, ``gmmfast._mstep_core.fit_scaled_common_covariance``)."""
    n_sets, n_components, n_features = regularised.shape[:3]
    if any(start is None for start in start_volumes):
        cold_volumes = np.exp(np.linalg.slogdet(regularised)[1] / n_features) / nk
        start_volumes = [cold if start is None else start
                         for cold, start in zip(cold_volumes, start_volumes)]
    axes = np.empty((n_sets, n_features, n_features))
    volumes, shapes = np.empty(nk.shape), np.empty((n_sets, n_components, n_features))
    for m in range(n_sets):
        axes[m], volumes[m], shapes[m], _, n_iter, converged = (
            _mstep_core.fit_scaled_common_covariance(nk[m], regularised[m], start_volumes[m],
                                                     iteration.max_iter, iteration.tol))
        iteration.record(m, n_iter, converged)
    return _AxesFit(volumes, shapes, axes)


def _fit_common_orientation(volume_rule, nk, regularised, start_axes, iteration):
    """EVE and VVE: closed shapes along the common axes D, D improved by MM steps.

    Given D, the shapes (and volumes) are those of EVI or VVI along D's columns. Given the
    shapes, F depends on D through ``f(D) = Σ_k tr(W_k D M_k Dᵀ)`` with
    ``M_k = (λ_k A_k)⁻¹``, minimised over orthogonal D by Browne & McNicholas's two
    majorisers. On orthogonal D, ``f`` is a constant minus a convex quadratic,
    ``Σ_k ω_k tr(M_k) − tr((ω_k I − W_k) D M_k Dᵀ)`` (or the same with the roles of W_k and
    M_k exchanged), so it lies below its tangent plane at the current D, whose slope is:

    - with ω_k the largest eigenvalue of W_k: ``G = Σ_k (W_k − ω_k I) D M_k``;
    - with m_k the largest entry of M_k: ``G = Σ_k W_k D (M_k − m_k I)``;

    and the minimiser of the linear majoriser ``tr(Dᵀ G)`` over orthogonal D is ``−U Vᵀ``
    for ``G = U S Vᵀ`` (orthogonal Procrustes). MM steps alone crawl when the eigenvalues
    spread widely (each changing F by less than tol far from the minimum), so one step
    applies both, then a Newton rotation of all planes with each plane's own second
    derivative, then refits the shapes: F never increases.

    From the second step on, a step first tries Newton's method on all the plane angles
    together, with their coupled Hessian (its eigenvalues in absolute value), and falls
    back to the steps above when it does not decrease F: on wine's (13 columns) EVE and
    VVE M-steps it needs about 10 times fewer steps than the MM steps alone. Its cost grows
    as D⁶ (the Hessian's eigen-decomposition), so above
    ``gmmfast._mstep_core.FULL_NEWTON_MAX_FEATURES`` columns only the MM steps run.

    The steps are compiled (``gmmfast._mstep_core.fit_common_orientation``); a cold start
    begins at the axes of :func:`_search_axes`.
    """
    n_sets, n_components, n_features = regularised.shape[:3]
    axes = np.empty((n_sets, n_features, n_features))
    volumes, shapes = np.empty(nk.shape), np.empty((n_sets, n_components, n_features))
    for m, start in enumerate(start_axes):
        if start is None:
            start = _search_axes(volume_rule, nk[m], regularised[m])
        axes[m], volumes[m], shapes[m], _, n_iter, converged = (
            _mstep_core.fit_common_orientation(nk[m], regularised[m], start,
                                               volume_rule == "E", iteration.max_iter,
                                               iteration.tol))
        iteration.record(m, n_iter, converged)
    return _AxesFit(volumes, shapes, axes)


# The search only picks the basin of F; the iteration then converges to tol.
_SEARCH_SWEEPS = 10
_SEARCH_TOL = 1e-4


def _search_axes(volume_rule, nk, regularised):
    """Common axes for a cold start of EVE or VVE, by sweeps of plane rotations.

    F has local minima in the orientation, where the MM steps stall. Each plane rotation
    of a sweep minimises the profiled F over its angle, searched over all distinct angles (the
    Jacobi-sweep scheme of Flury & Gautschi's common-principal-components algorithm, with
    a grid and Newton's method in place of their inner iteration; compiled,
    ``gmmfast._mstep_core.sweep_plane_rotations``). One sweep from each of the principal
    axes of the pooled scatter, of the pooled covariances and of each component pick the
    most promising start, whose sweeps then continue.
    """
    starts = np.concatenate([
        _decreasing_eigh(regularised.sum(axis=0))[1][None],
        _decreasing_eigh((regularised / nk[:, None, None]).sum(axis=0))[1][None],
        _decreasing_eigh(regularised)[1],
    ])
    equal_volumes = volume_rule == "E"
    best_axes, best_value = starts[0], np.inf
    for axes in starts:
        axes, value = _mstep_core.sweep_plane_rotations(nk, regularised, axes, 1,
                                                        _SEARCH_TOL, equal_volumes)
        if value < best_value:
            best_axes, best_value = axes, value
    return _mstep_core.sweep_plane_rotations(nk, regularised, best_axes, _SEARCH_SWEEPS,
                                             _SEARCH_TOL, equal_volumes)[0]


# --------------------------------------------------------------------------------------
# Output


def _estimates_of_fit(model, fit, iteration):
    """Each set's :class:`CovarianceEstimate`, or None where a covariance is not positive
    definite or not finite."""
    volumes, shapes, axes = fit
    n_sets, n_components, _ = shapes.shape
    if axes is not None and axes.ndim == 3:
        if model in ("EVE", "VVE"):
            order = np.argsort(-np.log(shapes).mean(axis=-2), axis=-1, kind="stable")
            axes = np.take_along_axis(axes, order[:, None, :], axis=-1)
            shapes = np.take_along_axis(shapes, order[:, None, :], axis=-1)
        axes = _repeated(axes, n_components)
    principal = volumes[..., None] * shapes
    positive = (principal > 0) & (principal < np.inf)  # False for NaN too
    covariances = compose(volumes, shapes, axes)
    finite = np.isfinite(covariances)
    if positive.all() and finite.all():
        usable = [True] * n_sets
    else:
        usable = (positive.reshape(n_sets, -1).all(axis=1)
                  & finite.reshape(n_sets, -1).all(axis=1)).tolist()
    return [CovarianceEstimate(
        covariances=covariances[m],
        volumes=volumes[m],
        shapes=shapes[m],
        orientations=None if axes is None else axes[m],
        n_iter=iteration.n_iter[m],
        converged=iteration.converged[m],
    ) if usable[m] else None for m in range(n_sets)]


def compose(volumes, shapes, orientations):
    """The covariances ``Σ_k = λ_k D_k A_k D_kᵀ`` of a decomposition: (K, D) diagonals
    when ``orientations`` is None, else (K, D, D) symmetric matrices; with leading axes
    (several sets), the same for each."""
    principal = volumes[..., None] * shapes
    if orientations is None:
        return principal
    covariances = (orientations * principal[..., None, :]) @ orientations.swapaxes(-1, -2)
    return 0.5 * (covariances + covariances.swapaxes(-1, -2))


def decompose(name, covariances, n_components, n_features):
    """``(volumes, shapes, orientations)`` of covariances given in the shapes of the
    model's :func:`sklearn_layout`, each decomposed on its own.

    For scikit-learn's four models (VII, VVI, EEE, VVV under either name), whose M-steps
    give no decomposition, and for parameters the user gave. The arrays are those of
    :class:`CovarianceEstimate`: (K,), (K, D) shapes in decreasing order along the
    orientations, and (K, D, D) orientations or None for diagonal covariances.
    """
    layout = sklearn_layout(name)
    covariances = np.asarray(covariances, dtype=np.float64)
    if layout == "spherical":
        return covariances.copy(), np.ones((n_components, n_features)), None
    if layout == "diag":
        volumes = _geometric_mean(covariances)
        return volumes, covariances / volumes[:, None], None
    if layout == "tied":
        covariances = np.broadcast_to(covariances, (n_components, n_features, n_features))
    eigenvalues, orientations = _decreasing_eigh(covariances)
    volumes = _geometric_mean(eigenvalues)
    return volumes, eigenvalues / volumes[:, None], orientations.copy()
