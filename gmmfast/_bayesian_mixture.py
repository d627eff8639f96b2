"""``BayesianGaussianMixture``: scikit-learn's variational Gaussian mixture, a façade over
the EM engine (``gmmfast._engine``) with the variational model of ``gmmfast._variational``.
"""

from numbers import Real

import numpy as np

from gmmfast._compat import (
    HAS_SKLEARN,
    check_array_fallback,
    check_is_fitted,
    sklearn_constraints,
)
from gmmfast._engine import SINGLE_START_METHODS, initial_statistics
from gmmfast._gaussian_mixture import MIXTURE_PARAMETER_CONSTRAINTS, MixtureEstimator
from gmmfast._mstep import cast_parameters, kernel_form, precisions_from_cholesky
from gmmfast._params import is_symmetric_positive_definite
from gmmfast._variational import (
    PRIOR_TYPES,
    dirichlet_process_weights,
    fitted_kernel_parameters,
    fitted_model,
    fitted_theta,
    sample_covariance,
)


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
        return fitted_model(vars(self), dtype)

    def _current_parameters(self):
        return fitted_theta(vars(self))

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
        return fitted_kernel_parameters(vars(self))


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
