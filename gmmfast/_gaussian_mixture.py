"""``GaussianMixture``: scikit-learn's estimator, a façade over the EM engine
(``gmmfast._engine``): a :class:`~gmmfast._engine.MixtureModel`, a source of rows (in memory,
or the blocks of a dask array) and ``run_em``."""

from numbers import Integral, Real

import numpy as np

from gmmfast._compat import (
    HAS_SKLEARN,
    NO_VALIDATION,
    BaseEstimator,
    DensityMixin,
    assert_finite,
    check_is_fitted,
    check_random_state,
    check_sample_weight,
    fit_context,
    restored_on_failure,
    sklearn_constraints,
    validate_data,
)
from gmmfast._covariance_models import (
    COVARIANCE_MODELS,
    COVARIANCE_NAMES,
    CovarianceEstimate,
    decompose,
    n_mixture_parameters,
    needs_constrained_m_step,
    sklearn_layout,
)
from gmmfast._dask_input import is_dask_collection
from gmmfast._engine import (
    INIT_METHODS,
    EMResult,
    InMemorySource,
    MixtureModel,
    OnlineModel,
    check_enough_samples,
    check_enough_weighted_samples,
    check_parameter_memory,
    information_criteria,
    initial_statistics,
    mixture_kernel_parameters,
    normalised_weights,
    run_em,
    sample_mixture,
    scale_overflow_error,
    score_arrays,
)
from gmmfast._missing import NAN_POLICIES, fit_source, observed_row_weights, score_missing
from gmmfast._model_file import save_model
from gmmfast._mstep import (
    COVARIANCE_TYPES,
    IllDefinedCovarianceError,
    cast_parameters,
    covariances_from_cholesky,
    precision_cholesky_from_precisions,
    precisions_from_cholesky,
)
from gmmfast._params import check_initial_parameters
from gmmfast._prior import (
    check_prior_model,
    check_prior_spec,
    conjugate_prior,
    data_moments,
    needs_data_moments,
)
from gmmfast._starts import Screen, check_multistart_source, multistart_em, screened_start
from gmmfast._threads import single_threaded_blas

# Parameters of EM itself, shared by every estimator that runs it (see _compat for the form).
EM_PARAMETER_CONSTRAINTS = {
    "tol": [("interval", Real, 0.0, True)],
    "reg_covar": [("interval", Real, 0.0, True)],
    "max_iter": [("interval", Integral, 0, True)],
    "n_init": [("interval", Integral, 1, True)],
    "init_params": [("options", frozenset(INIT_METHODS))],
    "random_state": [("random_state",)],
    "verbose": [("verbose",)],
    "n_threads": [("interval", Integral, 1, True), None],
    "nan_policy": [("options", frozenset(NAN_POLICIES))],
}

# The parameters of every estimator of one mixture: its shape, EM's and the warm start.
MIXTURE_PARAMETER_CONSTRAINTS = {
    "n_components": [("interval", Integral, 1, True)],
    "covariance_type": [("options", frozenset(COVARIANCE_TYPES))],
    **EM_PARAMETER_CONSTRAINTS,
    "warm_start": [("boolean",)],
    "verbose_interval": [("interval", Integral, 1, True)],
}


def _dask_backend():
    """gmmfast._dask, imported only once a Dask collection has been passed in."""
    from gmmfast import _dask

    return _dask


class MixtureEstimator(DensityMixin, BaseEstimator):
    """What every mixture estimator shares: ``fit``/``fit_predict`` with the previous model
    restored on failure, the validated source of rows, and scoring through the kernels.

    A subclass gives its engine model for the validated rows (``_prepared_model(source)``),
    a fresh start (``_start_parameters(model, source, random_state)``), its parameters as
    fitted (``_current_parameters()``, ``_store_result(result, dtype)``) and its fitted
    model in the kernels' form (``_kernel_parameters()``); fitting, scoring, sampling and
    Dask input then need nothing else.
    """

    # Whether the model is the same for any common scale of the sample weights (maximum
    # likelihood), so that they can be rescaled (see gmmfast._engine.normalised_weights).
    _scale_free_weights = True

    # ------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------

    @fit_context
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM; keep the best of ``n_init`` runs.

        ``sample_weight`` (n_samples,) non-negative weights: a weight of 2 counts a row
        twice, a weight of 0 removes it. Returns ``self``.
        """
        self._fit_or_restore(X, sample_weight, final_labels=False)
        return self

    @fit_context
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then label X by a final E-step with the chosen parameters.

        On a dask array the labels are lazy: exactly ``fit(X).predict(X)``.
        """
        return self._fit_or_restore(X, sample_weight, final_labels=True)

    def _fit_or_restore(self, X, sample_weight, final_labels):
        """Run the fit; if anything fails, leave the previous model exactly as it was."""
        with restored_on_failure(self), single_threaded_blas():
            return self._fit_predict(X, sample_weight, final_labels)

    def _fit_source(self, X, sample_weight, reset=True):
        """The rows to fit, validated: in memory, or the blocks of a dask array; under
        ``nan_policy="omit"`` the rows grouped by their missing entries (see
        ``gmmfast._missing``).

        ``reset`` False: a further batch for a fitted model (``partial_fit``), which must
        have the model's features and may have fewer rows than components.
        """
        if is_dask_collection(X):
            backend = _dask_backend()
            dask_source = backend.DaskMissingSource if self._omits_nan() else backend.DaskSource
            source = dask_source(X, sample_weight, self.n_components, type(self).__name__,
                                 self._weights_are_scale_free())
            if reset:
                # A dask array has no column names.
                self.n_features_in_ = source.n_features
                vars(self).pop("feature_names_in_", None)
            elif source.n_features != self.n_features_in_:
                raise ValueError(
                    f"X has {source.n_features} features, but {type(self).__name__} is "
                    f"expecting {self.n_features_in_} features as input.")
        else:
            # NaN and infinities are found by the first pass over X (see InMemorySource).
            X = validate_data(self, X, dtype=[np.float64, np.float32], reset=reset,
                              ensure_min_samples=2 if reset else 1, ensure_all_finite=False)
            weights = None if sample_weight is None else check_sample_weight(sample_weight, X)
            if self._weights_are_scale_free():
                weights = normalised_weights(weights)
            if self._omits_nan():
                source = fit_source(np.ascontiguousarray(X), weights,
                                    self.n_components if reset else 1,
                                    getattr(self, "feature_names_in_", None))
            else:
                source = InMemorySource(np.ascontiguousarray(X), weights,
                                        self._assert_finite)
        if reset:
            check_enough_samples(self.n_components, source.n_samples)
            if sample_weight is not None:
                check_enough_weighted_samples(self.n_components, source.n_positive)
        check_parameter_memory(self.covariance_type, self.n_components, source.n_features)
        return source

    def _weights_are_scale_free(self):
        """Whether the fit is the same for any common scale of the sample weights: not
        under a prior, whose weight is counted in rows."""
        return self._scale_free_weights and getattr(self, "prior", None) is None

    def _fit_predict(self, X, sample_weight, final_labels):
        """EM of the estimator's model on X from its starts; the final E-step's labels
        when ``final_labels`` (else None)."""
        source = self._fit_source(X, sample_weight)
        model = self._prepared_model(source)
        warm = self.warm_start and hasattr(self, "converged_")
        # A fit ends any stream of partial_fit calls.
        vars(self).pop("_stream", None)
        random_state = check_random_state(self.random_state)

        self.converged_ = False
        if self.max_iter == 0:
            # No EM pass will read X and find what it holds.
            source.check_finite()
        try:
            if self._uses_multistart(warm):
                check_multistart_source(source)
                result, _ = multistart_em(
                    model, Screen(source), self.n_components, random_state,
                    n_init=self.n_init, max_iter=self.max_iter, tol=self.tol,
                    n_threads=self._threads(), verbose=self.verbose,
                    verbose_interval=self.verbose_interval, final_labels=final_labels)
            else:
                def start(init):
                    if warm:
                        return self._current_parameters(), self.lower_bound_
                    return self._start_parameters(model, source, random_state), -np.inf

                result = run_em(model, source, start, n_init=1 if warm else self.n_init,
                                max_iter=self.max_iter, tol=self.tol,
                                n_threads=self._threads(), verbose=self.verbose,
                                verbose_interval=self.verbose_interval,
                                final_labels=final_labels)
            self._store_result(result, source.dtype)
        except IllDefinedCovarianceError as failure:
            raise scale_overflow_error(source) or failure from None
        return result.labels

    def _uses_multistart(self, warm):
        """Whether the fit runs the multi-start strategy: init_params="multistart" and
        nothing to start from (a warm start or user-given initial parameters)."""
        return (self.init_params == "multistart" and not warm
                and all(p is None for p in (self.weights_init, self.means_init,
                                            self.precisions_init)))

    def _threads(self):
        return 0 if self.n_threads is None else int(self.n_threads)

    def _omits_nan(self):
        """Whether NaN entries are missing values (``nan_policy="omit"``)."""
        return self.nan_policy == "omit"

    def _covariance_layout(self):
        """The scikit-learn covariance type whose shapes the fitted arrays have."""
        return sklearn_layout(self.covariance_type)

    # ------------------------------------------------------------------------------------
    # scoring
    # ------------------------------------------------------------------------------------

    def _score_lazily(self, X, output):
        """A dask array's "log_prob", "labels" or "resp", lazily, block by block."""
        check_is_fitted(self)
        return _dask_backend().score_lazily(self, X, output, self._kernel_parameters(),
                                            self._threads(), self._omits_nan())

    def _score_arrays(self, X, labels=False, resp=False, log_prob=True):
        """(log p(x), labels, responsibilities; each None unless asked for) of X validated
        by _validate_for_scoring, through the compiled core, which also checks that X is
        finite; under ``nan_policy="omit"`` from each row's marginal density over its
        observed entries (see :meth:`score_samples`)."""
        if self._omits_nan():
            return score_missing(X, self._kernel_parameters(), labels, resp,
                                 self._threads(), log_prob, finite_check=self._assert_finite)
        return score_arrays(X, self._kernel_parameters(), labels, resp, self._threads(),
                            log_prob, finite_check=self._assert_finite)

    def _validate_for_scoring(self, X):
        """X as a C-contiguous float array, not yet checked for NaN and infinities: the
        scoring kernel checks them on the way (a separate pass over X cost ~12 % of
        predict_proba on 10⁵ × 2 data)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                          ensure_all_finite=False)
        return np.ascontiguousarray(X)

    def _assert_finite(self, X):
        assert_finite(X, "X", type(self).__name__)

    def score_samples(self, X):
        """Log-density log p(x) of every sample, shape (n_samples,).

        Under ``nan_policy="omit"`` a row's NaN entries are missing: its log-density is
        that of its observed entries, log p(x_o) (the mixture's marginal), so that the sum
        over rows is the log-likelihood of what was observed. A row with no observed entry
        gets 0: the density of nothing observed is 1, whatever the model (NaN would poison
        every sum of the scores, and the row carries no information to score).
        ``predict_proba`` gives such a row the mixture weights (the posterior without
        evidence is the prior), ``predict`` the heaviest component.

        On a dask array: a lazy dask array, computed block by block on the workers.
        """
        if is_dask_collection(X):
            return self._score_lazily(X, "log_prob")
        X = self._validate_for_scoring(X)
        return self._score_arrays(X)[0]

    def score(self, X, y=None, sample_weight=None):
        """Average log-likelihood of X (weighted by ``sample_weight`` when given).

        Under ``nan_policy="omit"``: the average over the rows with an observed entry (as
        the fit's ``lower_bound_``); a row with none carries no weight.
        """
        return self._total_weight_and_score(X, sample_weight)[1]

    def predict(self, X):
        """Index of the most likely component of every sample (int64; lazy on dask input)."""
        if is_dask_collection(X):
            return self._score_lazily(X, "labels")
        X = self._validate_for_scoring(X)
        return self._score_arrays(X, labels=True, log_prob=False)[1]

    def predict_proba(self, X):
        """Responsibilities p(k | x), shape (n_samples, n_components); rows sum to 1.

        On a dask array: a lazy dask array, computed block by block on the workers.
        """
        if is_dask_collection(X):
            return self._score_lazily(X, "resp")
        X = self._validate_for_scoring(X)
        return self._score_arrays(X, resp=True, log_prob=False)[2]

    def _total_weight_and_score(self, X, sample_weight):
        if is_dask_collection(X):
            check_is_fitted(self)
            return _dask_backend().total_weight_and_score(
                self, X, sample_weight, self._kernel_parameters(), self._threads(),
                self._omits_nan())
        X = self._validate_for_scoring(X)
        log_prob = self._score_arrays(X)[0]
        weights = None if sample_weight is None else check_sample_weight(
            sample_weight, log_prob[:, None])
        if self._omits_nan():
            weights = observed_row_weights(X, weights)
        return total_weight_and_mean(log_prob, weights)

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture: (X float64 (n, d), component labels)."""
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                "Invalid value for 'n_samples': %d . The sampling requires at "
                "least one sample." % (self.n_components)
            )
        return sample_mixture(self.weights_, self.means_, self.covariances_,
                              self._covariance_layout(), n_samples,
                              check_random_state(self.random_state))

    # ------------------------------------------------------------------------------------
    # model files
    # ------------------------------------------------------------------------------------

    def save(self, path):
        """Write the fitted model to ``path`` (exactly that name) as a portable,
        pickle-free ``.npz`` file.

        The file holds every fitted array and JSON metadata with the model's kind and a
        format version; read it back with :func:`gmmfast.load`. See
        ``gmmfast._model_file`` for the format.
        """
        save_model(self, path)

    if HAS_SKLEARN:

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.allow_nan = self._omits_nan()
            return tags


def resume_stream(model, stream):
    """Make the fitted ``model``'s next :meth:`~GaussianMixture.partial_fit` continue the
    stream whose running state is ``stream`` (a :class:`~gmmfast._engine.StreamState`)."""
    model._stream = stream
    return model


def total_weight_and_mean(log_prob, row_weights):
    """``(total weight, weighted average)`` of the rows' log-densities, as ``score`` gives
    it; ``row_weights`` None counts every row once."""
    if row_weights is None:
        return log_prob.shape[0], float(log_prob.mean())
    return float(row_weights.sum()), float(np.average(log_prob, weights=row_weights))


def training_log_densities(model, X, responsibilities=False):
    """``(log p(x), responsibilities or None)`` of the rows of X under the fitted
    ``model``, X as a fit of it validated it (C-contiguous, float32 or float64, finite
    unless NaN marks missing entries): the numbers of ``score_samples`` and
    ``predict_proba``, from one pass and without validating X again (how a search scores
    its candidates on the rows it fitted them on)."""
    log_prob, _, resp = model._score_arrays(X, resp=responsibilities)
    return log_prob, resp


def fitted_gaussian_mixture(params, result, dtype, n_features_in, prior=None):
    """A :class:`GaussianMixture` with constructor parameters ``params``, fitted: its
    attributes are the :class:`~gmmfast._engine.EMResult` ``result`` of a run on
    ``n_features_in`` columns of ``dtype`` under the resolved conjugate ``prior`` (or None)
    (how model selection returns its candidates)."""
    model = GaussianMixture(**params)
    model.n_features_in_ = n_features_in
    model.prior_ = None if prior is None else prior.hyperparameters()
    model._store_result(result, dtype)
    return model


class GaussianMixture(MixtureEstimator):
    """Gaussian mixture model fitted by EM, a drop-in for scikit-learn's ``GaussianMixture``.

    Every parameter, attribute, method and message of
    :class:`sklearn.mixture.GaussianMixture` behaves the same; EM streams over the samples
    in chunks through compiled, OpenMP-parallel kernels that never build the N×K
    responsibility matrix. Initialisation (k-means, k-means++) is compiled too, so the
    initial partition for a given seed may differ from scikit-learn's.

    ``X`` may also be a ``dask.array.Array`` (``pip install gmmfast[dask]``): ``fit`` then
    runs the same EM with the blocks' statistics computed on the Dask workers and summed on
    the client, without ever collecting X; ``predict``, ``predict_proba`` and
    ``score_samples`` return lazy dask arrays. For dask input, ``init_params="kmeans"``
    seeds k-means++ on a uniform sample of at most 100 000 rows, then runs Lloyd's
    iterations over all blocks; see ``gmmfast._dask`` and the README's "Dask" section.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : str, default="full"
        Form of the covariance matrices: scikit-learn's "full", "tied", "diag",
        "spherical", or one of mclust's fourteen models "EII", "VII", "EEI", "VEI",
        "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV". mclust
        writes each covariance as ``Σ_k = λ_k D_k A_k D_kᵀ``: a volume λ_k, a shape A_k
        (diagonal, determinant 1) and an orientation D_k (orthogonal), and the three
        letters say whether each is Equal across components, Variable, or the Identity
        (A = I: spherical; D = I: along the coordinate axes). VVV, EEE, VVI and VII are
        full, tied, diag and spherical: the same fits, the same attributes, under either
        name (``covariance_type`` stays the name given). See
        ``gmmfast._covariance_models`` for the M-steps (Celeux & Govaert 1995).
    tol : float, default=1e-3
        EM stops when the change of the average log-likelihood falls below ``tol``.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance estimated from data.
    max_iter : int, default=100
        EM iterations per initialisation; 0 returns the initialisation.
    n_init : int, default=1
        Number of initialisations; the one with the best lower bound is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "multistart"}, \
            default="kmeans"
        How the initial responsibilities are chosen. The first four are scikit-learn's.
        "multistart" screens many cheap, diverse starts and keeps the best ("emEM",
        Biernacki, Celeux & Govaert 2003): the plain k-means start, k-means runs, k-means++
        seeds and random rows (on data within the screen, random responsibilities too),
        and Ward's hierarchical agglomeration of the rows raw,
        standardised and whitened, all on a screen of at most 1 000 rows (a fixed sample
        of larger data; under ``nan_policy="omit"``, the rows mean-imputed). The starts climb a few EM iterations together, scored in one
        pass over the screen; the better half goes on, three rounds (4, 8, 16
        iterations). The winner climbs to convergence on all the rows. On data within the
        screen, so do the other survivors and the plain k-means start, and the best is
        kept (halving stops at 6 000 / n_samples survivors: on up to ~270 rows every
        start climbs to convergence): the fit is never worse than the "kmeans" fit with
        the same ``random_state``; on larger data the k-means start competes on the screen. Fits whose component collapsed onto
        repeated values (a variance held up by ``reg_covar`` alone, or narrower than the
        rounding of a feature's values) lose to any other.
        Each of ``n_init`` initialisations runs the whole strategy with new draws. It
        needs X in memory (not a dask array). With
        user-given initial parameters (``weights_init`` …), the strategy is not run:
        the k-means start fills in what is not given. In :meth:`partial_fit`, the first
        batch starts from the screening's winner.
    weights_init, means_init, precisions_init : array-like, default=None
        User-provided initial parameters (shapes as in scikit-learn).
    random_state : int, RandomState instance or None, default=None
        Seed of the one RNG stream consumed by all initialisations.
    warm_start : bool, default=False
        Continue from the previous fit's parameters.
    verbose : int, default=0
        Print progress (1: per initialisation, 2: per iteration with timings).
    verbose_interval : int, default=10
        Iterations between two progress lines.
    n_threads : int or None, default=None
        Threads for the compiled kernels; None uses the OpenMP default
        (``OMP_NUM_THREADS``, threadpoolctl limits). Results do not depend on it.
    nan_policy : {"raise", "omit"}, default="raise"
        What NaN in X means (SciPy's names). "raise": an error, as in scikit-learn.
        "omit": a missing entry, missing at random. ``fit`` then runs the exact EM over
        the observed entries (each row's marginal density in the E-step, the conditional
        expectations of its missing entries and their conditional covariance in the
        M-step; Ghahramani & Jordan 1994), and the scoring methods use each row's
        marginal density (see :meth:`score_samples`). Infinities are still errors. A row
        with no observed entry carries no weight in the fit (``lower_bound_`` averages the
        other rows). The initialisation copes with missing entries: k-means measures
        distances over the coordinates a row has, and seeds on the most complete rows
        (see ``gmmfast._missing``). Without any NaN the fit is the "raise" fit, bit for
        bit. A dask array gets the same fit (to rounding), its blocks grouped on the
        workers (see ``gmmfast._dask.DaskMissingSource``).
    learning_decay : float in [0, 1], default=0.7
        Online EM (:meth:`partial_fit`) only: batch t + 1 of a stream moves the running
        statistics by ρ = (learning_offset + t)^(−learning_decay). Stepwise EM converges
        for values in (0.5, 1] (Σ ρ diverges, Σ ρ² does not); 0.7 forgets the early,
        poorly fitted batches quickly while keeping the noise of later ones small. 0 makes
        every batch replace the statistics (one plain EM iteration per batch).
    learning_offset : float >= 1, default=10.0
        Online EM only: damps the first steps (the second batch of a stream gets
        ρ = 11^−0.7 ≈ 0.19 with the defaults), so that one batch does not overturn the
        model fitted on the first. The names and ranges are those of scikit-learn's
        ``LatentDirichletAllocation``.
    prior : None, "default" or dict, default=None
        None: maximum likelihood, as scikit-learn. Otherwise the maximum a posteriori
        (MAP) estimate under the conjugate prior of Fraley & Raftery (2007), R mclust's
        ``priorControl()``: a highly dispersed prior, worth a fraction of a row per
        component, that keeps components from collapsing onto a few rows or a constant
        column. "default" is mclust's ``defaultPrior``; a dict gives some of its
        hyperparameters, the others keep their defaults: ``shrinkage`` (κ ≥ 0, default
        0.01; the means have the prior N(mean, Σ_k / κ), none when 0), ``mean`` (D,)
        (default the column means), ``dof`` (default D + 2) and ``scale`` (default
        var(X) / K^(2/D), var(X) the covariance matrix, for the ellipsoidal models EEE/tied,
        EEV, VEV, VVV/full, where it is the inverse Wishart's (D, D) scale and a number s
        means s·I; the mean of the columns' variances / K^(2/D) for the diagonal and
        spherical models EII, VII/spherical, EEI, VEI, EVI, VVI/diag, where it is the
        inverse gamma's ς²). Defined for those ten models (mclust's); the other four raise
        a ValueError. The defaults are computed from the rows of each ``fit`` (a
        :meth:`partial_fit` stream keeps its first batch's); with a prior, sample weights
        count rows (they are not rescaled). EM then climbs the log posterior:
        ``lower_bound_`` is (log-likelihood + log prior) per unit of weight, the log prior
        up to a constant of the hyperparameters; ``bic`` and ``aic``, as mclust's, use the
        log-likelihood at the MAP estimate. ``reg_covar`` is still added. See
        ``gmmfast._prior`` for the MAP M-steps. A model file (:meth:`save`) holds the
        ``prior`` and ``prior_``: a loaded model refits and continues a stream under them.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
        Fitted parameters, in X's dtype (float32 or float64). ``covariances_``,
        ``precisions_`` (their inverses) and ``precisions_cholesky_`` (upper-triangular U
        with U Uᵀ = Σ⁻¹, or 1/σ for diagonal models) have scikit-learn's shapes for its
        four types under either name: full/VVV (K, D, D), tied/EEE (D, D), diag/VVI
        (K, D), spherical/VII (K,). The other ten hold one covariance per component:
        EII, EEI, VEI, EVI as diagonals (K, D) like diag (equal ones repeated), VEE, EVE,
        VVE, EEV, VEV, EVV as matrices (K, D, D) like full.
    volumes_, shapes_, orientations_ : ndarray
        Only with an mclust name (any of the fourteen): the decomposition
        ``Σ_k = λ_k D_k A_k D_kᵀ``. ``volumes_`` (K,) are λ_k = det(Σ_k)^(1/D),
        ``shapes_`` (K, D) the diagonals of A_k (product 1), along the coordinate axes for
        the diagonal models and along the columns of ``orientations_`` otherwise, in
        decreasing order (EVE and VVE: by the components' mean log-shape, as their axes
        are common). ``orientations_`` (K, D, D) are D_k, or None for the six diagonal
        models (EII … VVI).
    converged_ : bool
        After :meth:`partial_fit`, always False: online EM does not declare convergence.
    n_iter_ : int
        EM iterations of the best start (under "multistart", of its final climb on all the
        rows); after :meth:`partial_fit`, the number of batches
        of the current stream.
    lower_bound_ : float
        The weighted average log-likelihood at the last iteration (with a ``prior``, the
        log posterior per unit of weight); after
        :meth:`partial_fit`, that of the last batch under the parameters it updated.
    lower_bounds_ : list of float
        Per iteration of the best start; after :meth:`partial_fit`, ``[lower_bound_]``.
    prior_ : dict or None
        The hyperparameters the fit used (``shrinkage``, ``mean``, ``dof``, ``scale``), or
        None without a prior.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    """

    _constraints = {
        **MIXTURE_PARAMETER_CONSTRAINTS,
        "covariance_type": [("options", frozenset(COVARIANCE_NAMES))],
        "weights_init": [("array-like",), None],
        "means_init": [("array-like",), None],
        "precisions_init": [("array-like",), None],
        "learning_decay": [("interval", Real, 0.0, True, 1.0, True)],
        "learning_offset": [("interval", Real, 1.0, True)],
        "prior": NO_VALIDATION,  # checked in fit: None, "default" or a dict
    }
    if HAS_SKLEARN:
        _parameter_constraints = sklearn_constraints(_constraints)

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_threads=None,
        nan_policy="raise",
        learning_decay=0.7,
        learning_offset=10.0,
        prior=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.nan_policy = nan_policy
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.prior = prior

    # ------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------

    @fit_context
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the model with one batch of a stream, by online EM.

        Each call is one step of stepwise EM (Cappé & Moulines, 2009): the batch's
        statistics under the current parameters are blended into running statistics,
        ``s ← (1 − ρ) s + ρ ŝ(batch)`` per unit of weight with ρ set by
        ``learning_decay`` and ``learning_offset``, and the M-step is applied to them. Every
        batch counts as one observation of the stream whatever its size, so batches of
        similar sizes suit it best; rows are never kept, so memory does not grow with the
        stream.

        The first call of an unfitted model initialises it from its batch with
        ``init_params`` (or the given ``weights_init``, ``means_init``,
        ``precisions_init``; the batch needs at least ``n_components`` rows) and makes one
        EM iteration on it. Later calls need the same features, and may have fewer rows. On
        a model fitted by :meth:`fit`, a stream starts from the fitted parameters; ``fit``
        (with or without ``warm_start``) ends the stream. ``n_init``, ``max_iter`` and
        ``tol`` concern ``fit`` only. If a call fails (a batch with NaN, another number of
        features, ...), the model is left as it was.

        The running statistics are part of the model: a pickled model, or one saved with
        :meth:`save` and read back with :func:`gmmfast.load`, resumes its stream exactly.
        Returns ``self``.
        """
        with restored_on_failure(self), single_threaded_blas():
            self._partial_fit(X, sample_weight)
        return self

    def _partial_fit(self, X, sample_weight):
        fitted = hasattr(self, "converged_")
        source = self._fit_source(X, sample_weight, reset=not fitted)
        model = self._prepared_model(source, continues_stream=fitted)
        if fitted:
            parameters = self._current_parameters()
        else:
            parameters = self._start_parameters(model, source,
                                                check_random_state(self.random_state))
        online = OnlineModel(model, self.learning_offset, self.learning_decay)
        step = online.em_step(source, self._threads())
        try:
            bound, (parameters, stream) = step((parameters, getattr(self, "_stream", None)))
        except IllDefinedCovarianceError as failure:
            raise scale_overflow_error(source) or failure from None
        bound = source.dtype.type(bound)
        self._store_result(EMResult(parameters, bound, [bound], stream.n_batches, False),
                           source.dtype)
        self._stream = stream
        if self.verbose:
            print(f"Batch {stream.n_batches}: average log-likelihood {bound:.5f}")

    def _prepared_model(self, source, continues_stream=False):
        check_initial_parameters(self, source.n_features)
        prior = self._conjugate_prior(source, continues_stream)
        self.prior_ = None if prior is None else prior.hyperparameters()
        return MixtureModel(self.covariance_type, self.reg_covar, source.dtype, prior=prior)

    def _conjugate_prior(self, source, continues_stream):
        """The resolved :class:`~gmmfast._prior.ConjugatePrior` of ``prior``, or None; its
        defaults come from the rows being fitted, except that a stream of
        :meth:`partial_fit` calls keeps the prior of its first batch."""
        spec = check_prior_spec(self.prior)
        if spec is None:
            return None
        check_prior_model(self.covariance_type)
        if continues_stream and getattr(self, "prior_", None) is not None:
            spec = self.prior_
        needs_data_moments(spec, self.nan_policy)
        return conjugate_prior(spec, self.covariance_type, self.n_components,
                               source.n_features, lambda: data_moments(source, self._threads()))

    def _start_parameters(self, model, source, random_state):
        """The start drawn by init_params, overridden by the user's initial parameters."""
        user_given = (self.weights_init, self.means_init, self.precisions_init)
        if all(p is not None for p in user_given):
            # Nothing to estimate: the RNG is not consumed (as in scikit-learn).
            theta = [None] * 4
        else:
            theta = list(self._drawn_start(model, source, random_state))
        if self.weights_init is not None:
            theta[0] = np.asarray(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            theta[1] = np.asarray(self.means_init, dtype=np.float64)
        if self.precisions_init is not None:
            layout = self._covariance_layout()
            chol = precision_cholesky_from_precisions(self.precisions_init, layout)
            # The user's covariances replace the constrained estimate (θ's fifth entry).
            theta = [*theta[:2], covariances_from_cholesky(chol, layout), chol]
        return tuple(theta)

    def _drawn_start(self, model, source, random_state):
        """θ of the start init_params draws; "multistart" gives the start its screening
        picks (on the rows given: online EM's first batch), or with user-given initial
        parameters, the k-means start that they complete."""
        if self.init_params == "multistart":
            check_multistart_source(source)
            if not self._uses_multistart(warm=False):
                return self._initial_from("kmeans", model, source, random_state)
            return screened_start(model, source, self.n_components, random_state,
                                  self._threads(), self.tol)
        return self._initial_from(self.init_params, model, source, random_state)

    def _initial_from(self, init_params, model, source, random_state):
        stats = initial_statistics(source, self.n_components, init_params, (model.form,),
                                   random_state, self._threads())
        return model.initial_parameters(stats[model.form], source.total_weight)

    def _current_parameters(self):
        theta = tuple(
            np.asarray(a, dtype=np.float64)
            for a in (self.weights_, self.means_, self.covariances_,
                      self.precisions_cholesky_)
        )
        if not needs_constrained_m_step(self.covariance_type):
            return theta
        # The fitted decomposition warm-starts the first M-step of a warm start.
        estimate = CovarianceEstimate(
            theta[2], *(None if a is None else np.asarray(a, dtype=np.float64)
                        for a in (self.volumes_, self.shapes_, self.orientations_)),
            n_iter=0, converged=True)
        return (*theta, estimate)

    def _store_result(self, result, dtype):
        """The fitted attributes from an :class:`~gmmfast._engine.EMResult`."""
        mix_weights, means, covariances, chol = result.parameters[:4]
        precisions = precisions_from_cholesky(chol, self._covariance_layout())
        (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_,
         self.precisions_) = cast_parameters(
            (mix_weights, means, covariances, chol, precisions), dtype
        )
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        # In X's dtype, as scikit-learn's (its bound is the mean of X-dtype log-densities).
        bound_type = np.dtype(dtype).type
        self.lower_bound_ = bound_type(result.lower_bound)
        self.lower_bounds_ = [bound_type(bound) for bound in result.lower_bounds]
        if self.covariance_type in COVARIANCE_MODELS:
            self._store_decomposition(result.parameters, dtype)
        else:  # a refit under a scikit-learn name leaves no stale decomposition behind
            for name in ("volumes_", "shapes_", "orientations_"):
                vars(self).pop(name, None)

    def _store_decomposition(self, theta, dtype):
        """``volumes_``, ``shapes_``, ``orientations_``: Σ_k = λ_k D_k A_k D_kᵀ."""
        if len(theta) > 4:
            estimate = theta[4]
            parts = estimate.volumes, estimate.shapes, estimate.orientations
        else:
            parts = decompose(self.covariance_type, theta[2], *np.shape(theta[1]))
        self.volumes_, self.shapes_ = (np.asarray(a, dtype=dtype) for a in parts[:2])
        self.orientations_ = None if parts[2] is None else np.asarray(parts[2], dtype=dtype)

    # ------------------------------------------------------------------------------------
    # scoring
    # ------------------------------------------------------------------------------------

    def _kernel_parameters(self):
        """The fitted model in the kernels' form (means, precisions_chol, log_norm), with
        the covariances when rows with missing entries need their marginals."""
        covariances = self.covariances_ if self._omits_nan() else None
        return mixture_kernel_parameters(
            (self.weights_, self.means_, covariances, self.precisions_cholesky_),
            self._covariance_layout())

    def _n_parameters(self):
        """Number of free parameters of the model: mclust's count for its models."""
        return n_mixture_parameters(self.covariance_type, self.n_components,
                                    self.means_.shape[1])

    def bic(self, X, sample_weight=None):
        """Bayesian information criterion on X (lower is better)."""
        n, mean_loglik = self._total_weight_and_score(X, sample_weight)
        return information_criteria(mean_loglik, n, self._n_parameters())[0]

    def aic(self, X, sample_weight=None):
        """Akaike information criterion on X (lower is better)."""
        n, mean_loglik = self._total_weight_and_score(X, sample_weight)
        return information_criteria(mean_loglik, n, self._n_parameters())[1]
