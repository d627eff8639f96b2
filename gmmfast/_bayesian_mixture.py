"""``BayesianGaussianMixture``: scikit-learn's variational Gaussian mixture, a façade over
the EM engine (``gmmfast._engine``) with a :class:`VariationalMixtureModel`.

The variational E-step is the EM kernel: with scikit-learn's normalised covariances the
precisions' factor U is that of the expected precision νW, and every variational term of
log ρ_ik (the digamma terms of the weights and of log det Λ_k, −D/(2κ_k)) is a constant
per component, carried in the kernels' ``log_norm``. The statistics are EM's, so a fit makes
one pass over the rows per iteration, in memory or on the blocks of a dask array.
"""

import math
from numbers import Real

import numpy as np
from scipy.special import betaln, digamma, gammaln

from gmmfast import _mstep_core
from gmmfast._compat import (
    HAS_SKLEARN,
    check_array_fallback,
    check_is_fitted,
    sklearn_constraints,
)
from gmmfast._engine import (
    SINGLE_START_METHODS,
    KernelParameters,
    initial_statistics,
    mixture_kernel_parameters,
)
from gmmfast._gaussian_mixture import MIXTURE_PARAMETER_CONSTRAINTS, MixtureEstimator
from gmmfast._mstep import (
    cast_parameters,
    kernel_form,
    precision_cholesky,
    precisions_from_cholesky,
)
from gmmfast._params import is_symmetric_positive_definite

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


# ----------------------------------------------------------------------------------------
# the normalisers of the variational posteriors (without the terms scikit-learn drops)
# ----------------------------------------------------------------------------------------


def log_dirichlet_norm(concentration):
    """log of the normaliser of a Dirichlet distribution with ``concentration`` (K,)."""
    return gammaln(np.sum(concentration)) - np.sum(gammaln(concentration))


def log_wishart_norm(degrees_of_freedom, log_det_precisions_chol, n_features):
    """log of the Wishart normaliser per component, without the log π term (as
    scikit-learn's, which drops it from the bound)."""
    return -(
        degrees_of_freedom * log_det_precisions_chol
        + degrees_of_freedom * n_features * 0.5 * np.log(2.0)
        + np.sum(gammaln(0.5 * (degrees_of_freedom - np.arange(n_features)[:, np.newaxis])),
                 0)
    )


def log_det_cholesky(precisions_chol, covariance_type, n_features):
    """log det U per component ((K,), or a scalar for tied), U in scikit-learn's shapes."""
    if covariance_type == "full":
        return np.sum(np.log(np.diagonal(precisions_chol, axis1=1, axis2=2)), axis=1)
    if covariance_type == "tied":
        return np.sum(np.log(np.diag(precisions_chol)))
    if covariance_type == "diag":
        return np.sum(np.log(precisions_chol), axis=1)
    return n_features * np.log(precisions_chol)


def dirichlet_process_weights(concentration):
    """E[π] of the stick-breaking posterior with Beta parameters ``(a, b)``, normalised
    (as scikit-learn's ``weights_``)."""
    a, b = concentration
    total = a + b
    weights = a / total * np.hstack((1, np.cumprod(b / total)[:-1]))
    return weights / np.sum(weights)


# ----------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------


class Priors:
    """The resolved priors of a fit, float64: ``weight_concentration`` (α₀),
    ``mean_precision`` (κ₀), ``mean`` (m₀, (D,)), ``degrees_of_freedom`` (ν₀) and
    ``covariance`` (W₀⁻¹ in the covariance type's shape)."""

    def __init__(self, weight_concentration, mean_precision, mean, degrees_of_freedom,
                 covariance):
        self.weight_concentration = float(weight_concentration)
        self.mean_precision = float(mean_precision)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.degrees_of_freedom = float(degrees_of_freedom)
        self.covariance = np.asarray(covariance, dtype=np.float64)


class VariationalMixtureModel:
    """Variational inference for a Gaussian mixture with a Dirichlet-process or Dirichlet
    prior on the weights and a Gaussian-Wishart prior on each component (scikit-learn's
    ``BayesianGaussianMixture``), as an engine model.

    θ is scikit-learn's ``(weight_concentration, mean_precision, means, degrees_of_freedom,
    covariances, precisions_cholesky)`` in float64 (``weight_concentration`` a pair of
    arrays for the Dirichlet process). The bound that an iteration returns is
    scikit-learn's: the entropy of the responsibilities of its E-step plus the normalisers
    of the parameters its M-step produced, a sum over the (weighted) samples.
    """

    def __init__(self, covariance_type, prior_type, priors, n_components, reg_covar, dtype):
        self.covariance_type = covariance_type
        self.prior_type = prior_type
        self.priors = priors
        self.n_components = n_components
        self.n_features = priors.mean.shape[0]
        self.reg_covar = float(reg_covar)
        self.form = kernel_form(covariance_type)
        self.float32 = np.dtype(dtype) == np.float32
        self.eps = float(np.finfo(dtype).eps)

    # -- E-step ------------------------------------------------------------------------------

    def expected_log_weights(self, weight_concentration):
        """E[log π_k] under the weights' posterior."""
        if self.prior_type == "dirichlet_process":
            a, b = weight_concentration
            digamma_sum = digamma(a + b)
            return (digamma(a) - digamma_sum
                    + np.hstack((0, np.cumsum(digamma(b) - digamma_sum)[:-1])))
        return digamma(weight_concentration) - digamma(np.sum(weight_concentration))

    def kernel_parameters(self, theta):
        """The kernels' form of θ: U is the expected precision's factor; ``log_norm``
        carries E[log π_k], ½ E[log det Λ_k] (less the log det νW in U) and −D/(2κ_k)."""
        weight_concentration, mean_precision, means, dof, _, chol = theta
        d = self.n_features
        gaussian = mixture_kernel_parameters((np.ones(len(means)), means, None, chol),
                                             self.covariance_type)
        log_lambda = d * np.log(2.0) + np.sum(
            digamma(0.5 * (dof - np.arange(d)[:, np.newaxis])), 0)
        log_norm = (gaussian.log_norm + self.expected_log_weights(weight_concentration)
                    - 0.5 * d * np.log(dof) + 0.5 * (log_lambda - d / mean_precision))
        return KernelParameters(gaussian.means, gaussian.precisions_chol, log_norm)

    # -- M-step ------------------------------------------------------------------------------

    def m_step(self, stats):
        """θ from the statistics of the responsibilities (also the initialisation: scikit-
        learn's first parameters are this update applied to the initial ones)."""
        nk, xk, sk = _mstep_core.estimate_parameters(*stats, self.covariance_type,
                                                     self.reg_covar, self.eps)
        prior = self.priors
        weight_concentration = self._weight_concentration(nk)
        mean_precision = prior.mean_precision + nk
        means = (prior.mean_precision * prior.mean + nk[:, np.newaxis] * xk) \
            / mean_precision[:, np.newaxis]
        dof, covariances = self._wishart(nk, xk, sk, mean_precision)
        chol = precision_cholesky(covariances, self.covariance_type, self.float32)
        return weight_concentration, mean_precision, means, dof, covariances, chol

    def _weight_concentration(self, nk):
        alpha = self.priors.weight_concentration
        if self.prior_type == "dirichlet_process":
            # Beta(1 + n_k, α + Σ_{j>k} n_j) for each stick.
            return 1.0 + nk, alpha + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0))
        return alpha + nk

    def _wishart(self, nk, xk, sk, mean_precision):
        """(ν, covariances) of the Wishart posteriors; the covariances are normalised by ν
        (scikit-learn's convention, so that their inverse is E[Λ])."""
        prior = self.priors
        diff = xk - prior.mean
        shrink = prior.mean_precision / mean_precision
        if self.covariance_type == "tied":
            n_mean = nk.sum() / self.n_components
            dof = prior.degrees_of_freedom + n_mean
            covariances = (prior.covariance + sk * n_mean
                           + prior.mean_precision / self.n_components
                           * np.dot((nk / mean_precision) * diff.T, diff))
            return dof, covariances / dof
        dof = prior.degrees_of_freedom + nk
        if self.covariance_type == "full":
            covariances = (prior.covariance + nk[:, None, None] * sk
                           + (nk * shrink)[:, None, None]
                           * diff[:, :, None] * diff[:, None, :])
            return dof, covariances / dof[:, None, None]
        if self.covariance_type == "diag":
            covariances = prior.covariance + nk[:, None] * (sk + shrink[:, None] * diff**2)
            return dof, covariances / dof[:, None]
        covariances = prior.covariance + nk * (sk + shrink * np.mean(diff**2, 1))
        return dof, covariances / dof

    # -- the bound ---------------------------------------------------------------------------

    def sum_resp_log_resp(self, loglik, stats, kernel_params):
        """Σ_i w_i Σ_k r_ik log r_ik from the pass's results, without another pass.

        r_ik = p̃_ik / p̃_i, so Σ_k r_ik log r_ik = Σ_k r_ik log p̃_ik − log p̃_i, and
        Σ_i w_i r_ik log p̃_ik = n_k log_norm_k − ½ tr(Uᵀ S_k U) with S_k the scatter about
        the kernels' means.
        """
        chol = kernel_params.precisions_chol
        if stats.form == "full":
            precisions = np.matmul(chol, np.swapaxes(chol, 1, 2))
            quadratic = np.einsum("kij,kij->k", stats.scatter, precisions)
        else:
            quadratic = np.einsum("kj,kj->k", stats.scatter, chol**2)
        return float(np.dot(stats.nk, kernel_params.log_norm) - 0.5 * quadratic.sum()
                     - loglik)

    def parameters_term(self, theta):
        """The part of scikit-learn's bound that depends on θ alone (its normalisers)."""
        weight_concentration, mean_precision, _, dof, _, chol = theta
        d = self.n_features
        # U is νW's factor: log det W^½ = log det U − ½ D log ν.
        log_det_chol = (log_det_cholesky(chol, self.covariance_type, d)
                        - 0.5 * d * np.log(dof))
        log_wishart = np.sum(log_wishart_norm(dof, log_det_chol, d))
        if self.covariance_type == "tied":
            log_wishart *= self.n_components
        if self.prior_type == "dirichlet_process":
            log_norm_weight = -np.sum(betaln(*weight_concentration))
        else:
            log_norm_weight = log_dirichlet_norm(weight_concentration)
        return float(-log_wishart - log_norm_weight
                     - 0.5 * d * np.sum(np.log(mean_precision)))

    # -- the engine's protocol -----------------------------------------------------------------

    def log_resp_floor(self, total_weight):
        """The log-responsibility, relative to its row's largest, below which a fit leaves a
        responsibility out of the statistics.

        Every count n_k enters the M-step added to a prior count (κ₀, ν₀, the weights'
        concentrations, and 1 in the stick-breaking weights). The responsibilities left out
        weigh at most total_weight · K · exp(floor), which this floor makes the float64
        rounding error of the smallest of those prior counts: the parameters do not move,
        while rows far from a component skip its accumulation.
        """
        priors = self.priors
        smallest_prior_count = min(priors.mean_precision, priors.degrees_of_freedom,
                                   priors.weight_concentration, 1.0)
        at_most = max(total_weight * self.n_components, 1.0)
        return math.log(np.finfo(np.float64).eps * smallest_prior_count / at_most)

    def em_step(self, source, n_threads):
        """A function θ → (bound, next θ): the E-step under θ, the M-step, and the bound
        from the entropy of that E-step and the normalisers of the next θ."""
        floor = self.log_resp_floor(source.total_weight)

        def step(theta):
            kernel_params = self.kernel_parameters(theta)._replace(log_resp_floor=floor)
            loglik, stats = source.statistics(kernel_params, n_threads)
            next_theta = self.m_step(stats)
            bound = (-self.sum_resp_log_resp(loglik, stats, kernel_params)
                     + self.parameters_term(next_theta))
            # The bound is a sum over the samples, compared in float64 whatever X's dtype
            # (as scikit-learn's, whose bound is float64 for float32 data too): rounded to
            # float32 it would move in steps of ~0.5 at 10⁶ rows, far above ``tol``.
            return bound, next_theta

        return step


def sample_covariance(source, form, n_threads):
    """The rows' covariance with ddof 1 counted in weights (``np.cov`` of the rows repeated
    by integer weights): (D, D) in the "full" form, its diagonal (D,) in the "diag" form.

    One pass of the EM kernel with a single component, so that any source computes it.
    With missing entries (``nan_policy="omit"``) a missing entry counts at its column's
    mean with its column's variance (the component's covariance is that diagonal): the
    diagonal is the observed entries' variance, the covariances shrink toward 0 with the
    fraction of rows missing either column.
    """
    mean, variance = source.mean_and_variance(n_threads)
    d = source.n_features
    unit = np.eye(d)[None] if form == "full" else np.ones((1, d))
    covariance = np.diag(variance)[None] if form == "full" else variance[None]
    _, stats = source.statistics(KernelParameters(mean[None], unit, np.zeros(1), covariance),
                                 n_threads)
    total, offset = stats.nk[0], stats.sums[0]
    # About the exact mean: the rounding of ``mean`` leaves a small offset in the sums.
    correction = np.outer(offset, offset) if form == "full" else offset**2
    return (stats.scatter[0] - correction / total) / (total - 1.0)


class BayesianGaussianMixture(MixtureEstimator):
    """Variational Bayesian Gaussian mixture, a drop-in for scikit-learn's
    ``BayesianGaussianMixture``.

    A Dirichlet-process (or Dirichlet) prior on the weights lets the fit switch off the
    components the data do not need: give ``n_components`` as an upper bound, and the
    components that carry weight are the clusters found. :attr:`n_components_in_use_` counts
    them; ``weights_`` has their weights (the unused ones are near zero, with only the
    prior's share).

    Every parameter, attribute, method, message and the lower bound (a sum over the
    samples, without constants) are scikit-learn's, and from the same initial parameters
    gmmfast follows its iterations. Each iteration is one pass of gmmfast's compiled EM
    kernel over the rows (the variational E-step differs from EM's only by a constant per
    component), so it runs at ``GaussianMixture``'s speed. Beyond scikit-learn: ``fit``
    takes ``sample_weight`` (a weight of 2 counts a row twice), float32 data are fitted in
    float32 and give float32 parameters, ``n_threads`` sets the threads, and ``X`` may be a
    ``dask.array.Array`` (as for :class:`GaussianMixture`).

    Parameters
    ----------
    n_components : int, default=1
        Upper bound on the number of components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Form of the covariance matrices.
    tol : float, default=1e-3
        The fit stops when the lower bound changes by less than ``tol``.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance estimated from the data.
    max_iter : int, default=100
        Iterations per initialisation; 0 returns the initialisation.
    n_init : int, default=1
        Number of initialisations; the one with the best lower bound is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the initial responsibilities are chosen.
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}, \
default="dirichlet_process"
        The prior on the weights: stick-breaking (Dirichlet process) or Dirichlet.
    weight_concentration_prior : float or None, default=None
        γ (Dirichlet process) or α (Dirichlet) > 0; smaller values put the weight on fewer
        components. None means ``1 / n_components``.
    mean_precision_prior : float or None, default=None
        κ₀ > 0, how strongly the means are pulled towards ``mean_prior``. None means 1.
    mean_prior : array-like of shape (n_features,) or None, default=None
        m₀, the prior on the means. None means the mean of X.
    degrees_of_freedom_prior : float or None, default=None
        ν₀ > n_features − 1 of the Wishart priors. None means n_features.
    covariance_prior : float or array-like or None, default=None
        The prior on the covariances: (n_features, n_features) for "full" and "tied",
        (n_features,) for "diag", a float for "spherical". None means the covariance of X.
    random_state : int, RandomState instance or None, default=None
        Seed of the one RNG stream consumed by all initialisations.
    warm_start : bool, default=False
        Continue from the previous fit's parameters.
    verbose : int, default=0
        Print progress (1: per initialisation, 2: per iteration with timings).
    verbose_interval : int, default=10
        Iterations between two progress lines.
    n_threads : int or None, default=None
        Threads for the compiled kernels; None uses the OpenMP default. Results do not
        depend on it.
    nan_policy : {"raise", "omit"}, default="raise"
        What NaN in X means, as in :class:`GaussianMixture`: "omit" fits over the
        observed entries (the missing ones are latent variables of the variational
        posterior, so ``lower_bound_`` also counts the entropy of their conditional
        distributions) and scores rows by their marginal densities. The default
        ``covariance_prior`` then comes from the observed entries (see
        ``sample_covariance``).

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
        Expected parameters, in X's dtype (float32 or float64). ``covariances_`` are the
        Wishart scale matrices normalised by ``degrees_of_freedom_``.
    weight_concentration_ : ndarray of shape (n_components,) or a tuple of two
        Parameters of the weights' posterior: Dirichlet concentrations, or the Beta
        parameters of each stick (Dirichlet process).
    mean_precision_ : ndarray of shape (n_components,)
    degrees_of_freedom_ : ndarray of shape (n_components,), or a float for "tied"
    weight_concentration_prior_, mean_precision_prior_, mean_prior_,
    degrees_of_freedom_prior_, covariance_prior_ :
        The priors used (the defaults resolved from X).
    n_components_in_use_ : int
        Components that carry at least one sample's weight (N_k ≥ 1).
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        The lower bound of the best fit, a sum over the (weighted) samples; float64
        whatever X's dtype (as scikit-learn's).
    lower_bounds_ : list of float
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    """

    # Weights count observations here: scaling them all changes the posterior.
    _scale_free_weights = False

    _constraints = {
        **MIXTURE_PARAMETER_CONSTRAINTS,
        "init_params": [("options", frozenset(SINGLE_START_METHODS))],
        "weight_concentration_prior_type": [("options", frozenset(PRIOR_TYPES))],
        "weight_concentration_prior": [None, ("interval", Real, 0.0, False)],
        "mean_precision_prior": [None, ("interval", Real, 0.0, False)],
        "mean_prior": [None, ("array-like",)],
        "degrees_of_freedom_prior": [None, ("interval", Real, 0.0, False)],
        "covariance_prior": [None, ("array-like",), ("interval", Real, 0.0, False)],
    }
    if HAS_SKLEARN:
        _parameter_constraints = sklearn_constraints(_constraints)

    def __init__(
        self,
        *,
        n_components=1,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_threads=None,
        nan_policy="raise",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.nan_policy = nan_policy

    # ------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------

    def _prepared_model(self, source):
        self._resolve_priors(source)
        return self._model(source.dtype)

    def _start_parameters(self, model, source, random_state):
        """scikit-learn's start: the variational update of the initial responsibilities."""
        stats = initial_statistics(source, self.n_components, self.init_params,
                                   (model.form,), random_state, self._threads())
        return model.m_step(stats[model.form])

    def _resolve_priors(self, source):
        """The ``*_prior_`` attributes: the given priors, checked, or their defaults from
        the rows (scikit-learn's ``_check_parameters``)."""
        d = source.n_features
        self.weight_concentration_prior_ = (
            1.0 / self.n_components if self.weight_concentration_prior is None
            else _finite(self.weight_concentration_prior, "weight_concentration_prior"))
        self.mean_precision_prior_ = (
            1.0 if self.mean_precision_prior is None
            else _finite(self.mean_precision_prior, "mean_precision_prior"))
        if self.mean_prior is None:
            self.mean_prior_ = source.mean_and_variance(self._threads())[0].astype(
                source.dtype)
        else:
            self.mean_prior_ = _prior_array(self.mean_prior, (d,), "mean_prior")
        if self.degrees_of_freedom_prior is None:
            self.degrees_of_freedom_prior_ = d
        elif self.degrees_of_freedom_prior > d - 1.0:
            self.degrees_of_freedom_prior_ = _finite(self.degrees_of_freedom_prior,
                                                     "degrees_of_freedom_prior")
        else:
            raise ValueError(
                "The parameter 'degrees_of_freedom_prior' should be greater than "
                f"{d - 1}, but got {self.degrees_of_freedom_prior:.3f}."
            )
        self.covariance_prior_ = self._covariance_prior(source)

    def _covariance_prior(self, source):
        cov_type, d = self.covariance_type, source.n_features
        if self.covariance_prior is None:
            if source.total_weight <= 1.0:
                raise ValueError(
                    "The default covariance_prior, the covariance of X, needs a total "
                    f"sample_weight above 1, got {source.total_weight:g}; pass "
                    "covariance_prior, or sample weights that count samples."
                )
            covariance = sample_covariance(source, kernel_form(cov_type), self._threads())
            if cov_type == "spherical":
                return float(covariance.mean())
            return covariance
        if cov_type == "spherical":
            prior = self.covariance_prior
            if not isinstance(prior, Real) or isinstance(prior, bool):
                raise ValueError(
                    "The parameter 'spherical covariance_prior' should be a positive number,"
                    f" but got {prior!r}"
                )
            return _finite(prior, "covariance_prior")
        expected = (d, d) if cov_type in ("full", "tied") else (d,)
        prior = _prior_array(self.covariance_prior, expected,
                             f"{cov_type} covariance_prior")
        valid = (np.all(prior > 0.0) if cov_type == "diag"
                 else is_symmetric_positive_definite(prior))
        if not valid:
            kind = "positive" if cov_type == "diag" else "symmetric, positive-definite"
            raise ValueError(f"'{cov_type} covariance_prior' should be {kind}")
        return prior

    def _model(self, dtype):
        """The variational model of the resolved priors, for data of ``dtype``."""
        priors = Priors(self.weight_concentration_prior_, self.mean_precision_prior_,
                        self.mean_prior_, self.degrees_of_freedom_prior_,
                        self.covariance_prior_)
        return VariationalMixtureModel(self.covariance_type,
                                       self.weight_concentration_prior_type, priors,
                                       self.n_components, self.reg_covar, dtype)

    def _current_parameters(self):
        weight_concentration = self.weight_concentration_
        if isinstance(weight_concentration, tuple):
            weight_concentration = tuple(np.asarray(a, dtype=np.float64)
                                         for a in weight_concentration)
        else:
            weight_concentration = np.asarray(weight_concentration, dtype=np.float64)
        return (weight_concentration,) + tuple(
            np.asarray(a, dtype=np.float64)
            for a in (self.mean_precision_, self.means_, self.degrees_of_freedom_,
                      self.covariances_, self.precisions_cholesky_)
        )

    def _store_result(self, result, dtype):
        """The fitted attributes from an :class:`~gmmfast._engine.EMResult`."""
        weight_concentration, mean_precision, means, dof, covariances, chol = \
            result.parameters
        if self.weight_concentration_prior_type == "dirichlet_process":
            weights = dirichlet_process_weights(weight_concentration)
            concentration_arrays = list(weight_concentration)
        else:
            weights = weight_concentration / np.sum(weight_concentration)
            concentration_arrays = [weight_concentration]
        precisions = precisions_from_cholesky(chol, self.covariance_type)
        cast = cast_parameters([weights, means, covariances, chol, precisions,
                                mean_precision, dof] + concentration_arrays, dtype)
        (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_,
         self.precisions_, self.mean_precision_, self.degrees_of_freedom_) = cast[:7]
        if self.covariance_type == "tied":
            self.degrees_of_freedom_ = self.degrees_of_freedom_[()]
        self.weight_concentration_ = (tuple(cast[7:]) if len(cast) == 9 else cast[7])
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        # float64 whatever X's dtype, as scikit-learn's: the bound is a sum over the rows,
        # which float32 would round by more than ``tol`` (and a warm start compares the
        # next bound with this one).
        self.lower_bound_ = np.float64(result.lower_bound)
        self.lower_bounds_ = [np.float64(bound) for bound in result.lower_bounds]

    @property
    def n_components_in_use_(self):
        """Components that carry at least one sample's weight (see
        :func:`components_in_use`)."""
        return int(np.count_nonzero(components_in_use(self)))

    # ------------------------------------------------------------------------------------
    # scoring
    # ------------------------------------------------------------------------------------

    def _kernel_parameters(self):
        """The fitted model in the kernels' form (the variational log ρ of every row)."""
        return self._model(self.means_.dtype).kernel_parameters(self._current_parameters())


def components_in_use(model):
    """Boolean mask (n_components,) of the components of a fitted
    :class:`BayesianGaussianMixture` that carry at least one sample's weight: N_k ≥ 1, with
    N_k = Σ_i w_i r_ik the weight the fit assigns to component k (read off the posterior's
    concentrations, which are the prior's plus N_k)."""
    check_is_fitted(model)
    if model.weight_concentration_prior_type == "dirichlet_process":
        counts = np.asarray(model.weight_concentration_[0], dtype=np.float64) - 1.0
    else:
        counts = (np.asarray(model.weight_concentration_, dtype=np.float64)
                  - model.weight_concentration_prior_)
    return counts >= 1.0


def _finite(value, name):
    if not np.isfinite(value):
        raise ValueError(f"The parameter '{name}' should be finite, but got {value!r}")
    return value


def _prior_array(value, expected, name):
    """A prior given as an array: float, finite, of the ``expected`` shape."""
    array = check_array_fallback(value, name=name, ensure_2d=False)
    if array.shape != tuple(expected):
        raise ValueError(
            f"The parameter '{name}' should have the shape of {tuple(expected)}, "
            f"but got {array.shape}"
        )
    return array
