"""The conjugate prior of Fraley & Raftery (2007): maximum a posteriori (MAP) estimation of a
Gaussian mixture, mclust's ``priorControl()``.

"Bayesian regularization for normal mixture estimation and model-based clustering"
(J. Classification 24, 155–181) replaces the maximum-likelihood estimate by the posterior
mode under a highly dispersed proper conjugate prior, which keeps EM away from the
singularities where a component collapses onto a few rows or a constant column. The prior
of each component k, with hyperparameters ``shrinkage`` κ, ``mean`` μ_P, ``dof`` ν and
``scale``:

- its mean: μ_k | Σ_k ~ N(μ_P, Σ_k / κ) (no prior on the means when κ = 0);
- its covariance, by the form of the model: an inverse Wishart IW(ν, Λ) on Σ_k for the
  ellipsoidal models (EEE, EEV, VEV, VVV; ``scale`` is Λ, a (D, D) matrix); an inverse gamma
  IG(ν/2, ς²/2) on each diagonal entry for the diagonal models (EEI, VEI, EVI, VVI) and on
  the variance σ_k² for the spherical ones (EII, VII; ``scale`` is ς², a number);
- none on the mixture weights.

The three models whose covariances are wholly shared (EII, EEI, EEE) have one covariance,
with one prior; the others a prior per component, evaluated on the model's constrained
family. These are the ten models mclust supports with a prior (its models up to version
4.4); the other four (VEE, EVE, VVE, EVV) are refused.

Defaults, mclust's ``defaultPrior`` computed from the data X of a fit with G components:
``shrinkage`` 0.01, ``mean`` the column means, ``dof`` D + 2, ``scale`` var(X) / G^(2/D) for
the ellipsoidal models (var(X) the covariance matrix, denominator n − 1) and
(Σ_j var(X_j) / D) / G^(2/D) for the diagonal and spherical ones.

The MAP M-step. Given the responsibilities, the mean and the covariance terms of the log
posterior separate. With n_k, x̄_k and W_k the component's weighted count, mean and
scatter about its mean, the mean's mode is ``μ_k = (n_k x̄_k + κ μ_P) / (n_k + κ)``, and
what is left for the covariances is the M-step's usual objective

    F(Σ) = Σ_k [n'_k log det Σ_k + tr(Σ_k⁻¹ W'_k)]

with the prior's terms added to the statistics:
``W'_k = W_k + κ n_k / (n_k + κ) (x̄_k − μ_P)(x̄_k − μ_P)ᵀ + Λ_k`` and
``n'_k = n_k + [κ > 0] + b / c``, where ``b log det Σ + tr(Σ⁻¹ Λ)`` is −2 log of the
covariance prior (b = ν + D + 1 for the inverse Wishart, ν + 2 for the diagonal inverse
gammas, (ν + 2) / D for the spherical one, whose Λ is ς² I / D) and c is the number of
components sharing one prior (G for EII, EEI, EEE, else 1; Λ_k = Λ / c). So every model's
ordinary M-step (``gmmfast._covariance_models.estimate_covariances``) gives its MAP
covariances from (n'_k, W'_k): for VVV, ``Σ_k = W'_k / (n_k + ν + D + 2)``, the paper's
closed form. ``reg_covar`` keeps its meaning (added to each covariance).

Against R's mclust (``benchmarks/results/PRIOR.md``): the default hyperparameters, and the
M-steps of VII, VVI, EEE and VVV, are mclust's to rounding; mclust's EII leaves the prior's
scale out of the variance, its EEI and EEV do not shrink the means, and its VEI, EVI, EEV
and VEV keep the maximum-likelihood denominators: those are not the posterior mode of the
prior above, which is what gmmfast computes.

With a prior, EM climbs the log posterior: the lower bound is (log-likelihood + log prior)
per unit of weight, the log prior taken up to an additive constant that depends on the
hyperparameters only. BIC, as in mclust, uses the log-likelihood at the MAP estimate.
"""

from collections.abc import Mapping
from numbers import Real
from typing import NamedTuple

import numpy as np

from gmmfast import _mstep_core
from gmmfast._covariance_models import kernel_form, mclust_name
from gmmfast._engine import KernelParameters

# mclust's models with a conjugate prior: its models up to version 4.4.
PRIOR_MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV")
PRIOR_KEYS = ("shrinkage", "mean", "dof", "scale")
DEFAULT_SHRINKAGE = 0.01

_SPHERICAL = ("EII", "VII")
# One covariance for every component, so one covariance prior.
_SHARED = ("EII", "EEI", "EEE")


def supports_prior(covariance_type):
    """Whether the conjugate prior is defined for the model (either name)."""
    return mclust_name(covariance_type) in PRIOR_MODELS


def check_prior_spec(prior):
    """The prior's specification as a dict of the given hyperparameters, or None.

    ``prior`` is None (maximum likelihood), "default" (mclust's ``defaultPrior``) or a
    mapping with some of the keys ``shrinkage``, ``mean``, ``dof``, ``scale`` (the others
    take their defaults). Raises a ValueError naming what is wrong.
    """
    if prior is None:
        return None
    if isinstance(prior, str):
        if prior != "default":
            raise ValueError(
                f"prior must be None, 'default' or a dict with keys among {PRIOR_KEYS}; "
                f"got the string {prior!r}. Use prior='default' for mclust's default "
                "conjugate prior.")
        return {}
    if not isinstance(prior, Mapping):
        raise ValueError(
            f"prior must be None, 'default' or a dict with keys among {PRIOR_KEYS}; got "
            f"{type(prior).__name__} {prior!r}.")
    unknown = sorted(set(prior) - set(PRIOR_KEYS))
    if unknown:
        raise ValueError(
            f"prior has unknown keys {unknown}; its keys are {PRIOR_KEYS} (any left out "
            "take mclust's defaults).")
    return {key: value for key, value in prior.items() if value is not None}


def check_prior_model(covariance_type):
    """Raise a ValueError unless the prior is defined for the model."""
    if not supports_prior(covariance_type):
        raise ValueError(
            f"The conjugate prior is not defined for covariance_type={covariance_type!r}: "
            f"it is defined (as in mclust) for {', '.join(PRIOR_MODELS)} (and full, tied, "
            "diag, spherical). Use one of those, or prior=None.")


def needs_data_moments(spec, nan_policy):
    """Whether the specification leaves out hyperparameters, whose defaults need the
    data's moments; a ValueError when they cannot be computed (missing entries)."""
    if set(spec) == set(PRIOR_KEYS):
        return False
    if nan_policy == "omit":
        raise ValueError(
            "prior's defaults need the data's moments, which nan_policy='omit' does not "
            "compute yet: give every hyperparameter of prior (shrinkage, mean, dof, scale) "
            "or fill in the missing entries.")
    return True


class DataMoments(NamedTuple):
    """What the default hyperparameters need from the data: the column means (D,) and the
    covariance matrix (D, D), denominator (total weight − 1) as R's ``var``."""

    mean: np.ndarray
    covariance: np.ndarray


def data_moments(source, n_threads):
    """:class:`DataMoments` of a source's rows: one pass with one component."""
    mean, _ = source.mean_and_variance(n_threads)
    n_features = mean.shape[0]
    one_component = KernelParameters(mean[None].astype(np.float64),
                                     np.eye(n_features)[None], np.zeros(1))
    _, stats = source.statistics(one_component, n_threads)
    total, _, covariance = _mstep_core.estimate_parameters(*stats, "full", 0.0, 0.0)
    if not total[0] > 1:
        raise ValueError(
            f"The default prior needs the data's covariance, which needs a total weight "
            f"above 1; the rows weigh {total[0]:g}. Pass the prior's scale explicitly.")
    return DataMoments(mean, covariance[0] * total[0] / (total[0] - 1))


class ConjugatePrior:
    """The prior of one model with ``n_components`` components, resolved: the
    hyperparameters (:meth:`hyperparameters`), the MAP M-step's terms
    (:meth:`posterior_mode_statistics`) and the log prior (:meth:`log_density`).

    ``mean`` (D,); ``scale`` ς² (a number) for the spherical and diagonal models, Λ (D, D)
    for the ellipsoidal ones.
    """

    def __init__(self, covariance_type, n_components, shrinkage, mean, dof, scale):
        self.model = mclust_name(covariance_type)
        self.shrinkage = float(shrinkage)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.dof = float(dof)
        self.scale = scale
        self.form = kernel_form(self.model)
        # −2 log p of the prior, per component: mean_log_det · log det Σ_k (the normal
        # prior of the mean) + covariance_log_det · log det Σ_k + tr(Σ_k⁻¹ Λ_k).
        self.mean_log_det = float(self.shrinkage > 0)
        log_det_weight, scale_matrix = _covariance_prior_terms(self.model, self.dof, scale,
                                                               self.mean.shape[0])
        sharing = n_components if self.model in _SHARED else 1
        self.covariance_log_det = log_det_weight / sharing
        self.component_scale = scale_matrix / sharing
        self.count_increment = self.mean_log_det + self.covariance_log_det

    def hyperparameters(self):
        """{"shrinkage", "mean", "dof", "scale"}: what the fit used."""
        return {"shrinkage": self.shrinkage, "mean": self.mean.copy(), "dof": self.dof,
                "scale": np.copy(self.scale) if np.ndim(self.scale) else float(self.scale)}

    def posterior_mode_statistics(self, nk, means, scatter):
        """``(MAP means, n'_k, W'_k)`` from the counts, means and scatter about them
        ((K, D, D) or the diagonals (K, D), in the model's form); see the module."""
        kappa = self.shrinkage
        offsets = means - self.mean
        shrunk = (nk[:, None] * means + kappa * self.mean) / (nk + kappa)[:, None]
        weight = kappa * nk / (nk + kappa)
        if self.form == "diag":
            mean_term = weight[:, None] * offsets**2
        else:
            mean_term = weight[:, None, None] * offsets[:, :, None] * offsets[:, None, :]
        return shrunk, nk + self.count_increment, scatter + mean_term + self.component_scale

    def log_density(self, means, precisions_chol):
        """log p(means, covariances) up to a constant of the hyperparameters, for
        parameters in the kernels' form: the precisions' factors U (U Uᵀ = Σ⁻¹) full
        (K, D, D) or tied (1, D, D), or 1/σ (K, D) for the diagonal forms."""
        n_components = means.shape[0]
        offsets = means - self.mean
        if precisions_chol.ndim == 2:
            log_det = -2.0 * np.log(precisions_chol).sum(axis=1)
            quadratic = ((offsets * precisions_chol) ** 2).sum(axis=1)
            trace = (self.component_scale * precisions_chol**2).sum(axis=1)
        else:
            factors = np.broadcast_to(precisions_chol,
                                      (n_components,) + precisions_chol.shape[1:])
            log_det = -2.0 * np.log(np.diagonal(factors, axis1=1, axis2=2)).sum(axis=1)
            quadratic = (np.einsum("kd,kde->ke", offsets, factors) ** 2).sum(axis=1)
            trace = np.einsum("kde,df,kfe->k", factors, self.component_scale, factors)
        mean_part = self.mean_log_det * log_det + self.shrinkage * quadratic
        covariance_part = self.covariance_log_det * log_det + trace
        return -0.5 * float(np.sum(mean_part + covariance_part))


def _covariance_prior_terms(model, dof, scale, n_features):
    """``(b, Λ)`` with ``b log det Σ + tr(Σ⁻¹ Λ)`` = −2 log p(Σ) + constant for one
    covariance: the inverse Wishart IW(ν, Λ) of the ellipsoidal models, an inverse gamma
    IG(ν/2, ς²/2) on each variance of the diagonal ones (Λ = ς² I, as its diagonal (D,))
    or on σ² of the spherical ones (Σ = σ² I, so b = (ν + 2) / D and Λ = ς² I / D)."""
    if model in _SPHERICAL:
        return (dof + 2) / n_features, np.full(n_features, scale / n_features)
    if kernel_form(model) == "diag":
        return dof + 2, np.full(n_features, float(scale))
    return dof + n_features + 1, np.asarray(scale, dtype=np.float64)


def conjugate_prior(spec, covariance_type, n_components, n_features, moments):
    """The :class:`ConjugatePrior` of a specification (:func:`check_prior_spec`'s dict)
    for the model, number of components and of features; the hyperparameters it leaves
    out are mclust's defaults, computed from the data's :class:`DataMoments` that
    ``moments()`` gives (called only then)."""
    check_prior_model(covariance_type)
    model = mclust_name(covariance_type)
    if needs_data_moments(spec, None):
        moments = moments()
    shrinkage = _number(spec.get("shrinkage", DEFAULT_SHRINKAGE), "shrinkage", 0.0,
                        "a finite number >= 0")
    mean = spec["mean"] if "mean" in spec else moments.mean
    mean = _finite_array(mean, "mean", (n_features,))
    dof = _number(spec.get("dof", n_features + 2), "dof",
                  n_features - 1 if kernel_form(model) == "full" else 0.0,
                  f"a finite number > {n_features - 1}" if kernel_form(model) == "full"
                  else "a finite number > 0", strict=True)
    volume = float(n_components) ** (2.0 / n_features)
    if "scale" in spec:
        scale = _scale(spec["scale"], model, n_features)
    elif kernel_form(model) == "full":
        scale = moments.covariance / volume
    else:
        scale = float(np.trace(moments.covariance)) / n_features / volume
    if not (np.all(np.isfinite(scale)) and np.min(np.linalg.eigvalsh(np.atleast_2d(scale)))
            > 0):
        raise ValueError(
            "The default prior's scale is not positive: the data's covariance is singular "
            "or not finite (a constant column needs an explicit prior scale, as does data "
            "of one distinct row). Pass prior={'scale': ...}.")
    return ConjugatePrior(model, n_components, shrinkage, mean, dof, scale)


def _number(value, name, low, what, strict=False):
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value) \
            or (value <= low if strict else value < low):
        raise ValueError(f"The prior's {name} must be {what}; got {value!r}.")
    return float(value)


def _finite_array(value, name, shape):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != shape or not np.all(np.isfinite(array)):
        raise ValueError(
            f"The prior's {name} must be a finite array of shape {shape} (one value per "
            f"feature); got {value!r}.")
    return array


def _scale(value, model, n_features):
    """ς² (a positive number) for the spherical and diagonal models; Λ (D, D) symmetric
    positive definite for the ellipsoidal ones (a number s there means s I)."""
    if kernel_form(model) == "diag" or np.ndim(value) == 0:
        scale = _number(value, "scale", 0.0, "a finite number > 0", strict=True)
        return scale if kernel_form(model) == "diag" else scale * np.eye(n_features)
    matrix = _finite_array(value, "scale", (n_features, n_features))
    if not np.allclose(matrix, matrix.T) or np.linalg.eigvalsh(matrix)[0] <= 0:
        raise ValueError(
            f"The prior's scale for model {model} must be a symmetric positive definite "
            f"({n_features}, {n_features}) matrix (or a positive number s for s I).")
    return 0.5 * (matrix + matrix.T)

