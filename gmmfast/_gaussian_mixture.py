"""``GaussianMixture``: scikit-learn's estimator, with EM streamed through the compiled core."""

import functools
import time
import warnings
from numbers import Integral, Real

import numpy as np

from gmmfast import _mstep_core
from gmmfast._kernels import em as _em  # the widest kernel variant this CPU runs
from gmmfast._compat import (
    HAS_SKLEARN,
    BaseEstimator,
    ConvergenceWarning,
    DensityMixin,
    assert_finite,
    check_is_fitted,
    check_random_state,
    check_sample_weight,
    fit_context,
    sklearn_constraints,
    validate_data,
)
from gmmfast._dask_input import is_dask_collection
from gmmfast._initialisation import initial_stats, stats_from_resp
from gmmfast._mstep import (
    COVARIANCE_TYPES,
    _ill_defined_covariance,
    cast_parameters,
    covariances_from_cholesky,
    empty_stats,
    n_parameters,
    precision_cholesky,
    precision_cholesky_from_precisions,
    precisions_from_cholesky,
)
from gmmfast._mstep_core import estimate_parameters, kernel_parameters
from gmmfast._params import check_initial_parameters
from gmmfast._threads import single_threaded_blas

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")

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
}


def e_step_stats(X, sample_weight, params, covariance_type, n_threads=0):
    """The E-step on one block of rows, fused with its sufficient statistics.

    ``X`` is a C-contiguous float32/float64 block, ``sample_weight`` its float64 weights or
    None, ``params`` the mixture ``(weights, means, covariances, precisions_cholesky)`` (the
    covariances are not read, and may be None). Returns ``(Σ w log p(x), (nk, sums,
    scatter, shifts))`` with the statistics in the kernel form of ``covariance_type``, taken
    about ``shifts`` (the current means). Statistics of disjoint blocks add up, so this is
    the unit of work of the Dask fit, once per block on the workers. The in-memory fit runs
    the same steps, fused with the M-step into one compiled call, as
    ``gmmfast._mstep_core.em_step`` (tested equal bit for bit).
    """
    mix_weights, means, _, precisions_chol = params
    k_means, k_chol, log_norm = kernel_parameters(
        mix_weights, means, precisions_chol, covariance_type, X.shape[1]
    )
    nk, sums, scatter = empty_stats(covariance_type, *k_means.shape)
    loglik = _em.em_pass(X, sample_weight, k_means, k_chol, log_norm, nk, sums, scatter,
                         n_threads)
    return loglik, (nk, sums, scatter, k_means)


def score_arrays(X, kernel_params, labels=False, resp=False, n_threads=0, log_prob=True,
                 finite_check=None):
    """(log p(x) or None, labels or None, responsibilities or None) of a block of rows.

    ``kernel_params`` are the kernel form ``(means, precisions_chol, log_norm)`` of a fitted
    model (``kernel_parameters``); shared by in-memory scoring and Dask's per-block scoring.
    Only the outputs asked for are computed (labels alone need no exponential).
    ``finite_check``, when given, is called with X if X holds a NaN or an infinity (found
    while scoring, instead of in a pass of its own) and must raise.
    """
    X = np.ascontiguousarray(X)
    k_means, k_chol, log_norm = kernel_params
    n = X.shape[0]
    log_prob_norm = np.empty(n, dtype=X.dtype) if log_prob else None
    label_out = np.empty(n, dtype=np.int64) if labels else None
    resp_out = np.empty((n, k_means.shape[0]), dtype=X.dtype) if resp else None
    all_finite = _em.score(X, k_means, k_chol, log_norm, log_prob_norm, label_out, resp_out,
                           n_threads, check_finite=finite_check is not None)
    if finite_check is not None and not all_finite:
        finite_check(X)
        raise AssertionError("finite_check did not raise on non-finite X")
    return log_prob_norm, label_out, resp_out


def check_enough_samples(n_components, n_samples):
    if n_samples < n_components:
        raise ValueError(
            "Expected n_samples >= n_components but got "
            f"n_components = {n_components}, n_samples = {n_samples}"
        )


def check_enough_weighted_samples(n_components, n_positive):
    """Rows of zero weight are not data: at least n_components rows must weigh something."""
    if n_positive < n_components:
        raise ValueError(
            "Expected at least n_components samples with a non-zero sample_weight"
            f" but got n_components = {n_components}, "
            f"{n_positive} samples with non-zero weight"
        )


def _dask_backend():
    """gmmfast._dask, imported only once a Dask collection has been passed in."""
    from gmmfast import _dask

    return _dask


class _InMemoryData:
    """The rows of an in-memory fit: validated, C-contiguous X and float64 weights or None.

    The EM driver of :class:`GaussianMixture` sees its data only through this interface
    (``dtype``, ``n_samples``, ``n_features``, ``total_weight``, ``em_step``,
    ``initial_stats``, ``labels``); ``gmmfast._dask.DaskData`` implements the same one over
    the blocks of a dask array.
    """

    def __init__(self, X, sample_weight):
        self.X = X
        self.sample_weight = sample_weight
        self.dtype = X.dtype
        self.n_samples, self.n_features = X.shape
        self.total_weight = float(
            self.n_samples if sample_weight is None else sample_weight.sum()
        )
        # em_step(params, covariance_type, n_threads, reg_covar, eps) -> (Σ w log p, new
        # params or None): e_step_stats and m_step in one compiled call, and a partial
        # rather than a method (each Python frame costs ~0.5 µs once a pass has evicted
        # the caches; issue 6 allows ~9 µs outside the pass on workload a).
        self.em_step = functools.partial(_mstep_core.em_step, _em.em_pass, X, sample_weight)


    def initial_stats(self, n_components, init_params, covariance_type, random_state,
                      n_threads):
        return initial_stats(self.X, self.sample_weight, n_components, init_params,
                             covariance_type, random_state, n_threads)

    def labels(self, model):
        """Labels of the final E-step with the fitted parameters."""
        return model._score_arrays(self.X, labels=True, log_prob=False)[1]


class GaussianMixture(DensityMixin, BaseEstimator):
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
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Form of the covariance matrices.
    tol : float, default=1e-3
        EM stops when the change of the average log-likelihood falls below ``tol``.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance estimated from data.
    max_iter : int, default=100
        EM iterations per initialisation; 0 returns the initialisation.
    n_init : int, default=1
        Number of initialisations; the one with the best lower bound is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the initial responsibilities are chosen.
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

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
        Fitted parameters, in X's dtype (float32 or float64).
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
    lower_bounds_ : list of float
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    """

    _constraints = {
        "n_components": [("interval", Integral, 1, True)],
        "covariance_type": [("options", frozenset(COVARIANCE_TYPES))],
        **EM_PARAMETER_CONSTRAINTS,
        "warm_start": [("boolean",)],
        "verbose_interval": [("interval", Integral, 1, True)],
        "weights_init": [("array-like",), None],
        "means_init": [("array-like",), None],
        "precisions_init": [("array-like",), None],
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

    # ------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM; keep the best of ``n_init`` runs.

        ``sample_weight`` (n_samples,) non-negative weights: a weight of 2 counts a row
        twice, a weight of 0 removes it. Returns ``self``.
        """
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    @fit_context
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then label X by a final E-step with the chosen parameters.

        On a dask array the labels are lazy: exactly ``fit(X).predict(X)``.
        """
        return self._fit_or_restore(X, sample_weight)

    @fit_context
    def _fit_from_initial_stats(self, X, sample_weight, initial_stats):
        """Private hook of model selection (``gmmfast._selection``): ``fit`` whose
        initialisation ``i`` starts from the given statistics ``initial_stats[i]``
        (``nk, sums, scatter, shifts`` in this covariance type's kernel form) instead of
        drawing them. Given the statistics that ``init_params`` and ``random_state`` would
        draw, the fitted model is the one ``fit`` gives, bit for bit; so one k-means
        partition can serve every covariance type of a grid. Returns ``self``.
        """
        if len(initial_stats) != self.n_init:
            raise ValueError(f"Expected {self.n_init} initial statistics, "
                             f"got {len(initial_stats)}")
        self._fit_or_restore(X, sample_weight, initial_stats)
        return self

    def _fit_or_restore(self, X, sample_weight, initial_stats=None):
        """Run the fit; if anything fails, leave the previous model exactly as it was."""
        previous_state = dict(vars(self))
        try:
            with single_threaded_blas():
                return self._fit_predict(X, sample_weight, initial_stats)
        except BaseException:
            vars(self).clear()
            vars(self).update(previous_state)
            raise

    def _validate_fit_input(self, X, sample_weight):
        """Validated C-contiguous X, float64 weights (or None), checked user inits."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        X = np.ascontiguousarray(X)
        check_enough_samples(self.n_components, X.shape[0])
        weights = None
        if sample_weight is not None:
            weights = check_sample_weight(sample_weight, X)
            check_enough_weighted_samples(self.n_components, int(np.count_nonzero(weights)))
        check_initial_parameters(self, X)
        return X, weights

    def _fit_data(self, X, sample_weight):
        """The fit's data source: in-memory rows, or the blocks of a dask array."""
        if is_dask_collection(X):
            return _dask_backend().fit_data(self, X, sample_weight)
        return _InMemoryData(*self._validate_fit_input(X, sample_weight))

    def _fit_predict(self, X, sample_weight, initial_stats=None):
        data = self._fit_data(X, sample_weight)
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        random_state = check_random_state(self.random_state)

        best = None
        max_lower_bound = -np.inf
        self.converged_ = False
        for init in range(n_init):
            self._print_init_start(init)
            if do_init and initial_stats is not None:
                params = self._parameters_from_initial_stats(
                    initial_stats[init], data.dtype, data.total_weight
                )
                lower_bound = -np.inf
            elif do_init:
                params = self._initial_parameters(data, random_state)
                lower_bound = -np.inf
            else:
                params = self._current_parameters()
                lower_bound = self.lower_bound_
            if self.max_iter == 0:
                # Nothing is compared: the last initialisation is returned as it is.
                best = (params, 0, [], False)
                continue
            params, lower_bound, lower_bounds, n_iter, converged = self._run_em(
                data, params, lower_bound
            )
            if best is None or lower_bound > max_lower_bound:
                max_lower_bound = lower_bound
                best = (params, n_iter, lower_bounds, converged)

        params, n_iter, lower_bounds, converged = best
        if not converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. "
                "Try different init parameters, or increase max_iter, "
                "tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self._set_parameters(params, data.dtype)
        self.converged_ = bool(converged)
        self.n_iter_ = int(n_iter)
        self.lower_bound_ = data.dtype.type(max_lower_bound)
        self.lower_bounds_ = lower_bounds
        # The final E-step makes fit_predict(X) agree with fit(X).predict(X).
        return data.labels(self)

    def _run_em(self, data, params, lower_bound):
        """EM from ``params`` until the lower bound changes by less than tol."""
        lower_bounds = []
        converged = False
        n_iter = 0
        # Fixed for the whole run, so looked up once: outside its pass an iteration should
        # cost only a few µs (issue 6: under 1 % of workload a's 1.3 ms iteration).
        covariance_type, n_threads = self.covariance_type, self._threads()
        reg_covar, tol, verbose = self.reg_covar, self.tol, self.verbose
        eps, float32_data = np.finfo(data.dtype).eps, data.dtype == np.float32
        # float32 bounds are rounded as scikit-learn computes them; float64 ones stay Python
        # floats (the same values, without a NumPy scalar per iteration).
        bound_type = data.dtype.type if float32_data else float
        total_weight = data.total_weight
        start = iteration_start = time.time()
        for n_iter in range(1, self.max_iter + 1):
            previous = lower_bound
            loglik, params = data.em_step(params, covariance_type, n_threads, reg_covar, eps)
            if params is None:
                raise _ill_defined_covariance(float32_data)
            lower_bound = bound_type(loglik / total_weight)
            lower_bounds.append(lower_bound)
            change = lower_bound - previous
            if verbose:
                iteration_start = self._print_iteration(n_iter, iteration_start, change)
            if abs(change) < tol:
                converged = True
                break
        self._print_init_end(converged, lower_bound, start)
        lower_bounds = [data.dtype.type(bound) for bound in lower_bounds]
        return params, data.dtype.type(lower_bound), lower_bounds, n_iter, converged

    def _initial_parameters(self, data, random_state):
        """Parameters from init_params' responsibilities, overridden by the user's inits."""
        user_given = (self.weights_init, self.means_init, self.precisions_init)
        if all(p is not None for p in user_given):
            # Nothing to estimate: the RNG is not consumed (as in scikit-learn).
            stats = None
        else:
            stats = data.initial_stats(
                self.n_components, self.init_params, self.covariance_type, random_state,
                self._threads(),
            )
        return self._parameters_from_initial_stats(stats, data.dtype, data.total_weight)

    def _parameters_from_initial_stats(self, stats, dtype, total_weight):
        """One M-step on the initial statistics, then weights/means/precisions_init win."""
        if stats is not None:
            nk, means, covariances = estimate_parameters(
                *stats, self.covariance_type, self.reg_covar, np.finfo(dtype).eps
            )
            # scikit-learn does not renormalise here: weights sum to Σ nk / n.
            mix_weights = nk / total_weight
        if self.weights_init is not None:
            mix_weights = np.asarray(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
        if self.precisions_init is not None:
            chol = precision_cholesky_from_precisions(
                self.precisions_init, self.covariance_type
            )
            covariances = covariances_from_cholesky(chol, self.covariance_type)
        else:
            chol = precision_cholesky(covariances, self.covariance_type, dtype == np.float32)
        return mix_weights, means, covariances, chol

    def _initialize(self, X, resp):
        """scikit-learn's hook: initial parameters from responsibilities (n_samples, K)."""
        X = np.ascontiguousarray(X)
        resp = np.ascontiguousarray(resp, dtype=np.float64)
        stats = stats_from_resp(X, None, resp, self.covariance_type, self._threads())
        params = self._parameters_from_initial_stats(stats, X.dtype, X.shape[0])
        self._set_parameters(params, X.dtype)

    def _current_parameters(self):
        return tuple(
            np.asarray(a, dtype=np.float64)
            for a in (self.weights_, self.means_, self.covariances_,
                      self.precisions_cholesky_)
        )

    def _set_parameters(self, params, dtype=None):
        """Store (weights, means, covariances, precisions_cholesky) as fitted attributes."""
        mix_weights, means, covariances, chol = params
        dtype = np.asarray(means).dtype if dtype is None else dtype
        precisions = precisions_from_cholesky(chol, self.covariance_type)
        (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_,
         self.precisions_) = cast_parameters(
            (mix_weights, means, covariances, chol, precisions), dtype
        )

    def _threads(self):
        return 0 if self.n_threads is None else int(self.n_threads)

    def save(self, path):
        """Write the fitted model to ``path`` as a portable, pickle-free ``.npz`` file.

        The file holds the fitted arrays and JSON metadata with a format version; read it
        back with :func:`gmmfast.load`. See ``gmmfast._io`` for the format.
        """
        from gmmfast._io import save_model

        save_model(self, path)

    # ------------------------------------------------------------------------------------
    # scoring
    # ------------------------------------------------------------------------------------

    def _kernel_parameters(self):
        """The fitted model in the kernels' form (means, precisions_chol, log_norm)."""
        return kernel_parameters(self.weights_, self.means_, self.precisions_cholesky_,
                                 self.covariance_type, self.means_.shape[1])

    def _score_arrays(self, X, labels=False, resp=False, log_prob=True):
        """(log p(x), labels, responsibilities; each None unless asked for) of X validated
        by _validate_for_scoring, through the compiled core, which also checks that X is
        finite."""
        return score_arrays(X, self._kernel_parameters(), labels, resp, self._threads(),
                            log_prob, finite_check=self._assert_finite)

    def _validate_for_scoring(self, X):
        """X as a C-contiguous float array, not yet checked for NaN and infinities: the
        scoring kernel checks them on the way (a separate pass over X was ~12 % of
        predict_proba on workload a)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                          ensure_all_finite=False)
        return np.ascontiguousarray(X)

    def _assert_finite(self, X):
        assert_finite(X, "X", type(self).__name__)

    def score_samples(self, X):
        """Log-density log p(x) of every sample, shape (n_samples,).

        On a dask array: a lazy dask array, computed block by block on the workers.
        """
        if is_dask_collection(X):
            return _dask_backend().score_lazily(self, X, "log_prob")
        X = self._validate_for_scoring(X)
        return self._score_arrays(X)[0]

    def score(self, X, y=None, sample_weight=None):
        """Average log-likelihood of X (weighted by ``sample_weight`` when given)."""
        if is_dask_collection(X):
            return _dask_backend().total_weight_and_score(self, X, sample_weight)[1]
        log_prob = self.score_samples(X)
        if sample_weight is None:
            return float(log_prob.mean())
        weights = check_sample_weight(sample_weight, log_prob[:, None])
        return float(np.average(log_prob, weights=weights))

    def predict(self, X):
        """Index of the most likely component of every sample (int64; lazy on dask input)."""
        if is_dask_collection(X):
            return _dask_backend().score_lazily(self, X, "labels")
        X = self._validate_for_scoring(X)
        return self._score_arrays(X, labels=True, log_prob=False)[1]

    def predict_proba(self, X):
        """Responsibilities p(k | x), shape (n_samples, n_components); rows sum to 1.

        On a dask array: a lazy dask array, computed block by block on the workers.
        """
        if is_dask_collection(X):
            return _dask_backend().score_lazily(self, X, "resp")
        X = self._validate_for_scoring(X)
        return self._score_arrays(X, resp=True, log_prob=False)[2]

    def _n_parameters(self):
        """Number of free parameters of the model."""
        return n_parameters(self.covariance_type, self.n_components, self.means_.shape[1])

    def _total_weight_and_score(self, X, sample_weight):
        if is_dask_collection(X):
            return _dask_backend().total_weight_and_score(self, X, sample_weight)
        n = X.shape[0] if sample_weight is None else float(
            check_sample_weight(sample_weight, np.asarray(X)).sum()
        )
        return n, self.score(X, sample_weight=sample_weight)

    def bic(self, X, sample_weight=None):
        """Bayesian information criterion on X (lower is better)."""
        n, mean_loglik = self._total_weight_and_score(X, sample_weight)
        return -2 * mean_loglik * n + self._n_parameters() * np.log(n)

    def aic(self, X, sample_weight=None):
        """Akaike information criterion on X (lower is better)."""
        n, mean_loglik = self._total_weight_and_score(X, sample_weight)
        return -2 * mean_loglik * n + 2 * self._n_parameters()

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture: (X float64 (n, d), component labels)."""
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                "Invalid value for 'n_samples': %d . The sampling requires at "
                "least one sample." % (self.n_components)
            )
        _, n_features = self.means_.shape
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        if self.covariance_type == "full":
            X = np.vstack([
                rng.multivariate_normal(mean, covariance, int(count))
                for mean, covariance, count in zip(self.means_, self.covariances_, counts)
            ])
        elif self.covariance_type == "tied":
            X = np.vstack([
                rng.multivariate_normal(mean, self.covariances_, int(count))
                for mean, count in zip(self.means_, counts)
            ])
        else:
            X = np.vstack([
                mean + rng.standard_normal(size=(count, n_features)) * np.sqrt(covariance)
                for mean, covariance, count in zip(self.means_, self.covariances_, counts)
            ])
        y = np.concatenate(
            [np.full(count, j, dtype=np.int64) for j, count in enumerate(counts)]
        )
        return X.astype(np.float64, copy=False), y

    # ------------------------------------------------------------------------------------
    # verbose output (scikit-learn's format)
    # ------------------------------------------------------------------------------------

    def _print_init_start(self, init):
        if self.verbose >= 1:
            print(f"Initialization {init}")

    def _print_iteration(self, n_iter, iteration_start, change):
        if n_iter % self.verbose_interval != 0:
            return iteration_start
        now = time.time()
        if self.verbose == 1:
            print(f"  Iteration {n_iter}")
        elif self.verbose >= 2:
            print(f"  Iteration {n_iter}\t time lapse {now - iteration_start:.5f}s\t "
                  f"ll change {change:.5f}")
        return now

    def _print_init_end(self, converged, lower_bound, start):
        status = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {status}.")
        elif self.verbose >= 2:
            print(f"Initialization {status}. time lapse {time.time() - start:.5f}s\t "
                  f"lower bound {lower_bound:.5f}.")

    if HAS_SKLEARN:

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.allow_nan = False
            return tags
