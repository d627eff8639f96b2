"""Choosing a Gaussian mixture: a grid of ``n_components`` × ``covariance_type`` scored by an
information criterion (BIC, AIC or ICL), searched with shared initialisations in parallel.

How the search saves work without changing its result:

- **One initialisation per number of components.** The initial responsibilities
  (``init_params``, ``random_state``) do not depend on the covariance type: k-means is run
  once per K, and its partition becomes the initial statistics of every covariance type
  (one compiled pass per kernel form: "full" for the models with full or tied
  covariances, "diag" for the diagonal and spherical ones).
  With an int ``random_state`` every candidate is bit for bit the model that
  ``GaussianMixture(K, covariance_type=T, random_state=random_state).fit(X)`` gives, but
  under "multistart" on data within the screen, where a second phase refits each
  candidate from its model's fits at K - 1 and K + 1 and the other models' fits at K
  (``gmmfast._neighbours``) and keeps the refit when it ends higher.
- **Candidates in parallel.** Candidates run on a thread pool (the compiled kernels release
  the GIL); when several run at once each one's kernels get ``n_threads // n_workers``
  threads, so the machine is not oversubscribed. The kernels are thread-count invariant,
  so the result does not depend on ``n_threads``.
- **No early stopping.** A candidate that looks hopeless after a few EM iterations can still
  win (EM's likelihood keeps rising), so every candidate runs to convergence, exactly as an
  independent fit would.
"""

import math
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from numbers import Integral

import numpy as np
from scipy.special import xlogy

from gmmfast._compat import (
    HAS_SKLEARN,
    BaseEstimator,
    ConvergenceWarning,
    DensityMixin,
    NO_VALIDATION,
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
    mclust_name,
    n_mixture_parameters,
    sklearn_layout,
    sklearn_name,
)
from gmmfast._dask_input import refuse_dask_input
from gmmfast._engine import (
    InMemorySource,
    Interrupted,
    check_parameter_memory,
    MixtureModel,
    information_criteria,
    initial_statistics,
    normalised_weights,
    run_em,
    scale_overflow_error,
)
from gmmfast._gaussian_mixture import (
    EM_PARAMETER_CONSTRAINTS,
    GaussianMixture,
    fitted_gaussian_mixture,
    total_weight_and_mean,
    training_log_densities,
)
from gmmfast._kernels import em as _em
from gmmfast._missing import fit_source, has_observation, observed_row_weights
from gmmfast._neighbours import (
    NEIGHBOUR_ROUNDS,
    CandidateFit,
    Neighbourhood,
    neighbour_em,
    neighbour_starts,
)
from gmmfast._mstep import (
    IllDefinedCovarianceError,
    kernel_form,
)
from gmmfast._grid import (
    CRITERIA,
    DEFAULT_N_COMPONENTS,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_SKIPPED,
    describe_grid,
)
from gmmfast._prior import (
    check_prior_model,
    check_prior_spec,
    conjugate_prior,
    data_moments,
    needs_data_moments,
    supports_prior,
)
from gmmfast._starts import (
    Screen,
    StartReport,
    add_tree_cuts,
    draw_random_starts,
    multistart_em,
)
from gmmfast._threads import single_threaded_blas

# Rows per block when the entropy of the responsibilities is summed for ICL: bounds their
# temporary to ENTROPY_BLOCK × K numbers, never N × K.
ENTROPY_BLOCK = 65536
# How often the thread waiting for the candidates wakes up. The kernel may deliver Ctrl-C
# to any thread of the process, and Python raises KeyboardInterrupt only when the main
# thread runs again: an untimed wait would sleep through a signal another thread received.
INTERRUPT_POLL_SECONDS = 0.1


# ----------------------------------------------------------------------------------------
# the table of candidates
# ----------------------------------------------------------------------------------------


class CriterionTable(dict):
    """Every candidate of a search, one row each, as a dict of equal-length NumPy arrays.

    Columns: ``n_components``, ``covariance_type`` (the name given), ``mclust_name`` and
    ``sklearn_name`` (the model's names; "" where scikit-learn has none), ``bic``, ``aic``,
    ``icl`` (only when the
    criterion is ICL), ``log_likelihood`` (total, sample-weighted, of the training data),
    ``n_parameters``, ``n_iter``, ``converged``, ``start`` (the start the fit kept: under
    ``init_params="multistart"`` its name, e.g. "kmeans", "k-means++ 2", "hierarchical
    (whitened)", or from the second phase on data within the screen "split: component 2
    of 4" (of the K - 1 fit), "merge: components 1 and 3 of 6" (of the K + 1 fit) or
    "from VVV" (another model's fit at K); otherwise the init_params), ``gain_over_kmeans`` (under "multistart", how
    much higher the kept fit's final lower bound is than that of the fit from the plain
    k-means start, both as total log-likelihoods; on data larger than the screen, as
    measured on the screen; 0 when that start won, negative when that start's fit
    collapsed a component and the kept one did not; NaN for other init_params),
    ``collapsed`` (under "multistart", every start's fit had a component whose variance is
    held up by reg_covar alone, or is narrower than a feature's rounding: such a
    candidate is chosen only when no other can be), ``fit_seconds``, ``status`` (``"ok"``,
    ``"skipped"`` when K exceeds the number of samples, ``"failed"`` when EM broke down)
    and ``message`` (why, for the last two). Scores of rows that are not ``"ok"`` are NaN.

    ``criterion`` names the column the search minimised and ``best_index`` is the chosen
    row. ``to_frame()`` gives a pandas DataFrame, ``to_records()`` a structured array,
    ``str(table)`` a K × covariance-type grid of the criterion, each column headed by the
    model's mclust name and, under it, its scikit-learn name where it has one.
    """

    def __init__(self, columns, criterion, best_index):
        super().__init__(columns)
        self.criterion = criterion
        self.best_index = best_index

    def __len__(self):
        # The number of candidates (rows), not of columns: what a table's length means.
        return len(self["n_components"])

    @property
    def scores(self):
        """The criterion of every candidate (NaN where it was not fitted)."""
        return self[self.criterion]

    @property
    def choosable(self):
        """Which candidates the search chooses from (a boolean mask): the fitted ones, less
        the collapsed ones unless every fitted candidate collapsed (a collapsed fit's
        likelihood has no bound)."""
        usable = self["status"] == STATUS_OK
        if (usable & ~self["collapsed"]).any():
            usable &= ~self["collapsed"]
        return usable

    def to_frame(self):
        """The table as a pandas DataFrame, one row per candidate (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("CriterionTable.to_frame() needs pandas: pip install pandas") \
                from None
        return pd.DataFrame({name: column for name, column in self.items()})

    def to_records(self):
        """The table as a NumPy structured array, one record per candidate."""
        return np.rec.fromarrays(list(self.values()), names=list(self.keys()))

    def format(self, max_width=None, marks=None):
        """The criterion as a K × covariance-type grid of text (lower is better).

        ``*`` marks the chosen model, ``!`` a candidate that did not converge; skipped and
        failed candidates show as ``-`` and ``failed``. ``marks`` ({row: character}) puts
        the caller's own mark on other candidates, in place of ``!``. A grid wider than
        ``max_width`` characters (default: no limit) is cut into blocks of covariance-type
        columns, one under the other, each with its own K column and headings.
        """
        types = list(dict.fromkeys(self["covariance_type"].tolist()))
        cells = self._cells(marks or {})
        headers = {t: _column_names(t) for t in types}
        width = max([len(t) for t in cells.values()]
                    + [len(name) + 1 for names in headers.values() for name in names] + [9])
        per_block = (len(types) if max_width is None
                     else max(1, (max_width - 4) // (width + 1)))
        blocks = [self._format_block(types[i:i + per_block], cells, headers, width)
                  for i in range(0, len(types), per_block)]
        return "\n\n".join(blocks)

    def _cells(self, marks):
        """{(K, covariance type): the grid's text for that candidate}."""
        cells = {}
        for i in range(len(self)):
            status = self["status"][i]
            if status == STATUS_SKIPPED:
                text = "-"
            elif status == STATUS_FAILED:
                text = "failed"
            else:
                mark = "*" if i == self.best_index else marks.get(i) or (
                    "!" if not self["converged"][i] else " ")
                text = f"{self.scores[i]:.2f}{mark}"
            cells[self["n_components"][i], self["covariance_type"][i]] = text
        return cells

    def _format_block(self, types, cells, headers, width):
        """The grid's lines for the columns ``types``, K first."""
        # Names align with the numbers, whose last character is the marker column.
        lines = [f"{'K':>3} " + "".join(f"{headers[t][0]:>{width - 1}}  " for t in types)
                 .rstrip()]
        if any(len(headers[t]) > 1 for t in types):
            lines.append("    " + "".join(f"{(headers[t] + ('',))[1]:>{width - 1}}  "
                                            for t in types).rstrip())
        for k in dict.fromkeys(self["n_components"].tolist()):
            row = "".join(f"{cells.get((k, t), ''):>{width}} " for t in types)
            lines.append(f"{k:>3} {row}".rstrip())
        return "\n".join(lines)

    def __str__(self):
        return self.format()

    def __repr__(self):
        best = ("none" if self.best_index is None else
                f"n_components={self['n_components'][self.best_index]}, "
                f"covariance_type={str(self['covariance_type'][self.best_index])!r}")
        return (f"CriterionTable(criterion={self.criterion!r}, {len(self)} candidates, "
                f"best: {best})\n{self.format()}")


def _column_names(covariance_type):
    """A grid column's heading: the mclust name, then the scikit-learn name if any."""
    other = sklearn_name(covariance_type)
    return (mclust_name(covariance_type),) + ((other,) if other else ())


# ----------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------


class GaussianMixtureIC(DensityMixin, BaseEstimator):
    """Gaussian mixture whose number of components and covariance type are chosen by an
    information criterion, over a grid, with shared initialisations and parallel fits.

    ``fit`` fits one :class:`gmmfast.GaussianMixture` per pair (``n_components``,
    ``covariance_type``) of the grid and keeps the one with the lowest ``criterion``;
    ``predict``, ``predict_proba``, ``score_samples``, ``score``, ``sample``, ``bic`` and
    ``aic`` are those of that best model.

    Parameters
    ----------
    n_components : int, iterable of int or None, default=None
        Numbers of components to try; None means 1, 2, …, 10. Values larger than the number
        of samples are skipped (and listed as skipped in ``criterion_table_``).
    covariance_type : str or iterable of str, default="all"
        Covariance models to try: "all" for mclust's fourteen (EII, VII, EEI, VEI, EVI,
        VVI, EEE, VEE, EVE, VVE, EEV, VEV, EVV, VVV; see :class:`GaussianMixture`), one
        name, a comma-separated string such as "VVV,EEE,VEV", or a list of names. The
        scikit-learn names "full", "tied", "diag" and "spherical" are accepted for VVV,
        EEE, VVI and VII (["full", "tied", "diag", "spherical"] is scikit-learn's grid).
        The candidates keep the names as given; the table also lists both names.
    criterion : {"bic", "aic", "icl"}, default="bic"
        Lower is better. ``bic = -2 log L + p log n``, ``aic = -2 log L + 2 p``,
        ``icl = bic + 2 entropy`` with ``entropy = -Σ_i Σ_k r_ik log r_ik`` the entropy of
        the fitted model's responsibilities on the training data (ICL prefers
        well-separated clusters).
    tol, reg_covar, max_iter, n_init :
        As in :class:`gmmfast.GaussianMixture`, for every candidate.
    init_params : str, default="multistart"
        As in :class:`gmmfast.GaussianMixture`. The default screens many starts per
        candidate and keeps the best (see there); each K's starts are drawn once and
        shared by every covariance type, and one agglomeration tree serves every K.
        "kmeans" is scikit-learn's single start, about a third cheaper on large data.
    random_state : int, RandomState instance or None, default=None
        With an int, every candidate is exactly the model
        ``GaussianMixture(K, covariance_type=T, random_state=random_state, ...)`` fits, or
        (under "multistart", on data of up to 1 000 rows) a higher optimum reached from
        its model's fits at K - 1 and K + 1 components or another model's fit at K
        (``start`` "split: …", "merge: …" or "from …").
        Otherwise one seed per K is drawn from it.
    verbose : int, default=0
        1 prints one line per fitted candidate.
    n_threads : int or None, default=None
        Threads for the whole search (candidates run in parallel, each with its share);
        None uses the OpenMP default. Results do not depend on it.
    nan_policy : {"raise", "omit"}, default="raise"
        What NaN in X means, as in :class:`gmmfast.GaussianMixture`: with "omit" every
        candidate is fitted by EM over the observed entries and scored by its marginal
        densities (a row with no observed entry counts for nothing; ``n_components``
        larger than the number of rows with an observed entry are skipped).
    prior : None, "default" or dict, default=None
        The conjugate prior of Fraley & Raftery (2007), as in
        :class:`gmmfast.GaussianMixture`, for every candidate: its defaults computed from
        X for the candidate's model and number of components (mclust's ``defaultPrior``),
        the criteria from the log-likelihood at the MAP estimate (as mclust's). Candidates
        of the four models for which it is not defined (VEE, EVE, VVE, EVV) are skipped
        (status "skipped" in ``criterion_table_``); a grid of those alone is a ValueError.

    Attributes
    ----------
    best_estimator_ : GaussianMixture
        The chosen model, fitted on the whole data.
    n_components_ : int
    covariance_type_ : str
        The chosen model's name as given in ``covariance_type`` (mclust's name under
        "all").
    best_index_ : int
        Row of the chosen model in ``criterion_table_``.
    criterion_table_ : CriterionTable
        Every candidate with its scores, log-likelihood, parameter count, iterations,
        convergence, fit time and status.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    """

    _constraints = {
        "n_components": NO_VALIDATION,  # checked in fit: int, iterable or None
        "covariance_type": NO_VALIDATION,  # checked in fit: str or iterable
        "criterion": [("options", frozenset(CRITERIA))],
        **EM_PARAMETER_CONSTRAINTS,
        "prior": NO_VALIDATION,  # checked in fit: None, "default" or a dict
    }
    if HAS_SKLEARN:
        _parameter_constraints = sklearn_constraints(_constraints)

    def __init__(
        self,
        n_components=None,
        *,
        covariance_type="all",
        criterion="bic",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="multistart",
        random_state=None,
        verbose=0,
        n_threads=None,
        nan_policy="raise",
        prior=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.criterion = criterion
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.nan_policy = nan_policy
        self.prior = prior

    # ------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Fit every candidate of the grid on X and keep the best by ``criterion``.

        ``sample_weight`` (n_samples,) are non-negative weights, as in
        :meth:`GaussianMixture.fit`. Returns ``self``.
        """
        return self._fit(X, sample_weight, None)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then the labels of X under the chosen model."""
        return self._fit(X, sample_weight, None).predict(X)

    @fit_context
    def _fit(self, X, sample_weight, progress):
        """``fit``; ``progress(done, total, row)`` is called after every candidate. If
        anything fails, the previous model is left exactly as it was."""
        with restored_on_failure(self):
            return self._search(X, sample_weight, progress)

    def _search(self, X, sample_weight, progress):
        refuse_dask_input(X, type(self).__name__)
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2,
                          ensure_all_finite=self._finite_check_mode())
        X = np.ascontiguousarray(X)
        weights = None if sample_weight is None else check_sample_weight(sample_weight, X)
        grid_k = check_n_components_grid(self.n_components)
        types = check_covariance_types(self.covariance_type)
        n_rows = _rows_to_fit(X, weights, self.nan_policy == "omit")
        feasible = [k for k in grid_k if k <= n_rows]
        if not feasible:
            raise ValueError(
                f"Every n_components of the grid ({describe_grid(grid_k)}) is larger than "
                f"the number of samples ({n_rows}); give smaller values or more data."
            )
        for covariance_type in types:
            check_parameter_memory(covariance_type, max(feasible), X.shape[1])
        fitted_types = _types_with_prior(types, self.prior)
        search = _GridSearch(self, X, weights, feasible, fitted_types, progress)
        results = search.run()
        rows = []
        for k in grid_k:
            for t in types:
                reason = (f"n_components > number of samples ({n_rows})"
                          if t in fitted_types else NO_PRIOR_MESSAGE)
                rows.append(results.get((k, t)) or _skipped_row(k, t, X.shape[1], reason))
        table = _make_table(rows, self.criterion)
        if table.best_index is None:
            first_failure = next(r["message"] for r in rows if r["status"] == STATUS_FAILED)
            raise ValueError(f"No candidate of the grid could be fitted: {first_failure}")
        best_row = rows[table.best_index]
        best = best_row["model"]
        best.set_params(n_threads=self.n_threads)
        if not best.converged_ and self.max_iter > 0:
            warnings.warn(
                f"The chosen model (n_components={best.n_components}, covariance_type="
                f"{best.covariance_type!r}) did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self.best_estimator_ = best
        self.n_components_ = int(best.n_components)
        self.covariance_type_ = best.covariance_type
        self.best_index_ = int(table.best_index)
        self.criterion_table_ = table
        return self

    # ------------------------------------------------------------------------------------
    # the chosen model's methods
    # ------------------------------------------------------------------------------------

    def _finite_check_mode(self):
        """validate_data's ``ensure_all_finite``: NaN passes under ``nan_policy="omit"``."""
        return "allow-nan" if self.nan_policy == "omit" else True

    def _validated(self, X):
        check_is_fitted(self)
        refuse_dask_input(X, type(self).__name__)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                          ensure_all_finite=self._finite_check_mode())
        return np.ascontiguousarray(X)

    def score_samples(self, X):
        """Log-density log p(x) of every sample under the chosen model."""
        X = self._validated(X)
        return self.best_estimator_.score_samples(X)

    def score(self, X, y=None, sample_weight=None):
        """Average log-likelihood of X under the chosen model."""
        X = self._validated(X)
        return self.best_estimator_.score(X, sample_weight=sample_weight)

    def predict(self, X):
        """Most likely component of every sample under the chosen model."""
        X = self._validated(X)
        return self.best_estimator_.predict(X)

    def predict_proba(self, X):
        """Responsibilities p(k | x) under the chosen model, (n_samples, n_components_)."""
        X = self._validated(X)
        return self.best_estimator_.predict_proba(X)

    def bic(self, X, sample_weight=None):
        """BIC of the chosen model on X."""
        X = self._validated(X)
        return self.best_estimator_.bic(X, sample_weight=sample_weight)

    def aic(self, X, sample_weight=None):
        """AIC of the chosen model on X."""
        X = self._validated(X)
        return self.best_estimator_.aic(X, sample_weight=sample_weight)

    def sample(self, n_samples=1):
        """Draw samples from the chosen model: (X (n_samples, n_features), labels)."""
        check_is_fitted(self)
        return self.best_estimator_.sample(n_samples)

    if HAS_SKLEARN:

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.allow_nan = self.nan_policy == "omit"
            return tags


def select_model(X, n_components=None, covariance_type="all", criterion="bic", *,
                 sample_weight=None, progress=None, **params):
    """Fit every candidate of the grid and return the fitted :class:`GaussianMixtureIC`.

    ``params`` are the other parameters of :class:`GaussianMixtureIC` (``random_state``,
    ``n_threads``, ``max_iter``, …). ``progress``, if given, is called as
    ``progress(done, total, row)`` after each candidate, ``row`` being that candidate's dict
    (``n_components``, ``covariance_type``, the scores, ``n_iter``, ``fit_seconds``, …).
    The result's ``criterion_table_`` holds every candidate; ``best_estimator_`` the chosen
    :class:`GaussianMixture`.
    """
    estimator = GaussianMixtureIC(n_components=n_components, covariance_type=covariance_type,
                                  criterion=criterion, **params)
    return estimator._fit(X, sample_weight, progress)


# ----------------------------------------------------------------------------------------
# the grid
# ----------------------------------------------------------------------------------------


NO_PRIOR_MESSAGE = "the conjugate prior is not defined for this model"


def _types_with_prior(types, prior):
    """The covariance types of the grid that are fitted: with a conjugate prior, those
    for which it is defined (the others are skipped); a ValueError if none is."""
    if check_prior_spec(prior) is None:
        return types
    fitted = [t for t in types if supports_prior(t)]
    if not fitted:
        check_prior_model(types[0])
    return fitted


def _rows_to_fit(X, weights, omit_nan):
    """The number of rows that a fit can use: of non-zero weight and, when NaN marks
    missing entries, with an observed entry."""
    if not omit_nan:
        return X.shape[0] if weights is None else int(np.count_nonzero(weights))
    usable = has_observation(X)
    if weights is not None:
        usable &= weights > 0
    return int(np.count_nonzero(usable))


def check_n_components_grid(n_components):
    """The grid of numbers of components as a list of distinct ints ≥ 1, in given order."""
    if n_components is None:
        return list(DEFAULT_N_COMPONENTS)
    if isinstance(n_components, (Integral, np.integer)) and not isinstance(n_components, bool):
        values = [n_components]
    elif isinstance(n_components, str):
        raise TypeError(f"n_components must be an int, an iterable of ints or None, "
                        f"got {n_components!r}")
    else:
        try:
            values = list(n_components)
        except TypeError:
            raise TypeError(f"n_components must be an int, an iterable of ints or None, "
                            f"got {n_components!r}") from None
    grid = []
    seen = set()  # beside the list, so a long grid is checked in linear time
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)):
            raise TypeError(f"n_components must contain ints, got {value!r}")
        if value < 1:
            raise ValueError(f"n_components must be >= 1, got {value}")
        if int(value) not in seen:
            seen.add(int(value))
            grid.append(int(value))
    if not grid:
        raise ValueError("n_components is empty: give at least one number of components")
    return grid


def check_covariance_types(covariance_type):
    """The covariance models to try, as a list of distinct names in the given order.

    "all" is mclust's fourteen models; a str may list names separated by commas. A model
    given under both its names is fitted once, under the first.
    """
    if isinstance(covariance_type, str):
        values = list(COVARIANCE_MODELS) if covariance_type == "all" else [
            part.strip() for part in covariance_type.split(",")]
    else:
        try:
            values = list(covariance_type)
        except TypeError:
            raise TypeError("covariance_type must be a str or an iterable of str, got "
                            f"{covariance_type!r}") from None
    types = {}
    for value in values:
        if not isinstance(value, str) or value not in COVARIANCE_NAMES:
            raise ValueError(
                f"covariance_type must be 'all' or among {COVARIANCE_NAMES} (scikit-learn's "
                f"names, then mclust's), or a list or comma-separated string of them; "
                f"got {value!r}")
        types.setdefault(mclust_name(value), value)
    if not types:
        raise ValueError("covariance_type is empty: give at least one covariance type")
    return list(types.values())


class _GridSearch:
    """One search: initial statistics per K, then one EM per candidate, on a thread pool."""

    def __init__(self, estimator, X, weights, grid_k, types, progress):
        self.params = estimator.get_params()
        self.verbose = estimator.verbose
        self.X = X
        # A prior weighs as many rows whatever the weights' scale: they are kept as given.
        self.source = _search_source(estimator, X, weights if estimator.prior is not None
                                     else normalised_weights(weights))
        # What each row weighs in the candidates' scores and ICL's entropy: a row with no
        # observed entry counts for nothing (its responsibilities are the prior: no
        # evidence of the clusters' overlap either).
        self.row_weights = (observed_row_weights(X, weights)
                            if estimator.nan_policy == "omit" else weights)
        self.grid_k = grid_k
        self.types = types
        self.forms = tuple(dict.fromkeys(_form(t) for t in types))
        self.progress = progress
        self.n_candidates = len(grid_k) * len(types)
        total_threads = estimator.n_threads or _em.max_threads()
        self.n_workers = max(1, min(total_threads, self.n_candidates))
        # Each running candidate gets its share of the threads; one worker keeps them all.
        self.kernel_threads = max(1, total_threads // self.n_workers)
        self.seeds = self._init_seeds()
        self.prior_spec = check_prior_spec(self.params["prior"])
        self.screen = (Screen(self.source) if self.params["init_params"] == "multistart"
                       else None)
        # The second phase (gmmfast._neighbours): on data within the screen, each
        # candidate's fit is refitted from its model's fits at K - 1 and K + 1.
        self.neighbours = (Neighbourhood(grid_k, types, NEIGHBOUR_ROUNDS)
                           if self.screen is not None
                           and self.screen.sample is self.source else None)
        self.done = 0
        # Set when the search is abandoned (Ctrl-C, an error): running candidates stop at
        # their next EM iteration instead of running to convergence.
        self.stop = threading.Event()

    def _init_seeds(self):
        """The random_state of each K's initialisation: as an independent fit's, for an int."""
        random_state = self.params["random_state"]
        if isinstance(random_state, Integral) and not isinstance(random_state, bool):
            return {k: int(random_state) for k in self.grid_k}
        rng = check_random_state(random_state)
        return {k: int(rng.randint(np.iinfo(np.int32).max)) for k in self.grid_k}

    def run(self):
        """{(K, covariance_type): row} for every candidate of the (feasible) grid."""
        results = {}
        # One process-wide BLAS limit around the whole search: each candidate's own nested
        # limit then finds one thread and restores one thread, never the caller's setting.
        with single_threaded_blas(), warnings.catch_warnings():
            # A candidate that does not converge is a row of the table, not a warning;
            # the chosen model warns once if it did not converge.
            warnings.simplefilter("ignore", ConvergenceWarning)
            # Computed once, before the threads share the source.
            self.source.mean_and_variance(self.kernel_threads)
            if self.prior_spec is not None and needs_data_moments(
                    self.prior_spec, self.params["nan_policy"]):
                self.moments = data_moments(self.source, self.kernel_threads)
            if self.n_workers == 1:
                for k in self.grid_k:
                    starts = self._initial_stats(k)
                    for t in self.types:
                        fit = self._fit_candidate(k, t, self._starts_of(starts, t))
                        refits = self._fitted(results, fit)
                        while refits:
                            refitted = self._refit_from_neighbours(*refits.pop())
                            refits += self._fitted(results, *refitted)
            else:
                self._run_parallel(results)
        return results

    def _run_parallel(self, results):
        with ThreadPoolExecutor(self.n_workers, thread_name_prefix="gmmfast-ic") as pool:
            pending = {}

            def submit(task, key, function, *args):
                pending[pool.submit(function, *args)] = task, key

            # Under "multistart" one worker builds the screen's trees while the others draw
            # the pools' random starts; a K's pools get the trees' cuts once both are done,
            # so that no worker waits for the trees.
            uncut = (None if self.screen is None
                     or all(self.screen.one_start(k) for k in self.grid_k) else {})
            if uncut is not None:
                submit("trees", None, self.screen.build_trees)
            # Largest K first: the longest tasks start early, the short ones fill the gaps.
            for k in sorted(self.grid_k, reverse=True):
                submit("starts" if uncut is None else "random starts", k,
                       self._initial_stats, k, uncut is None)
            try:
                while pending:
                    finished, _ = wait(pending, timeout=INTERRUPT_POLL_SECONDS,
                                       return_when=FIRST_COMPLETED)
                    for future in finished:
                        task, key = pending.pop(future)
                        value = future.result()
                        if task in ("fit", "refit"):
                            fitted = (value,) if task == "fit" else value
                            for refit in self._fitted(results, *fitted):
                                submit("refit", refit[0], self._refit_from_neighbours,
                                       *refit)
                        elif task == "starts":
                            for t in self.types:
                                submit("fit", (key, t), self._fit_candidate, key, t,
                                       self._starts_of(value, t))
                        elif task == "trees":
                            for k, pools in uncut.items():
                                submit("starts", k, _with_tree_cuts, pools)
                            uncut = None
                        elif uncut is not None:  # random starts before the trees are built
                            uncut[key] = value
                        else:
                            submit("starts", key, _with_tree_cuts, value)
            except BaseException:
                self.stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def _fitted(self, results, fit, changed=True):
        """Take a candidate's :class:`CandidateFit` after a round of the second phase
        (round 0: its first fit), and whether that round ``changed`` it: the refits to run
        now, as arguments of :meth:`_refit_from_neighbours`. A candidate is recorded once
        its fit is final (at once without a second phase)."""
        if self.neighbours is None:
            self._record(results, fit.row)
            return []
        refits = []
        done = [(fit, changed)]
        while done:
            fit, changed = done.pop()
            cell = fit.row["n_components"], fit.row["covariance_type"]
            for ready in self.neighbours.record(cell, fit, changed):
                starting = self.neighbours.starting_fits(ready)
                latest = self.neighbours.latest(ready)
                if starting.is_empty() or latest.result is None:
                    done.append((latest, False))  # nothing to start from: no change
                else:
                    refits.append((ready, latest, starting))
            if self.neighbours.is_final(cell):
                self._score(fit.row)
                self._record(results, fit.row)
        return refits

    def _record(self, results, row):
        results[row["n_components"], row["covariance_type"]] = row
        self.done += 1
        if self.verbose:
            print(progress_text(self.done, self.n_candidates, row))
        if self.progress is not None:
            self.progress(self.done, self.n_candidates, row)

    def _initial_stats(self, n_components, tree_cuts=True):
        """The starts of one K, shared by every covariance type: {kernel form: [statistics
        of each of the n_init initialisations]}, or under "multistart" the n_init pools of
        starts (without the trees' cuts unless ``tree_cuts``: see
        ``gmmfast._starts.draw_random_starts``).

        The random draws do not depend on the covariance type (see
        ``gmmfast._engine.initial_statistics``): one k-means serves every form.
        """
        random_state = np.random.RandomState(self.seeds[n_components])
        if self.screen is not None:
            with single_threaded_blas():
                pools = [draw_random_starts(self.screen, n_components, random_state,
                                            self.kernel_threads)
                         for _ in range(self.params["n_init"])]
            return _with_tree_cuts(pools) if tree_cuts else pools
        per_form = {form: [] for form in self.forms}
        with single_threaded_blas():
            for _ in range(self.params["n_init"]):
                if self.stop.is_set():
                    raise Interrupted("the search was stopped")
                stats = initial_statistics(self.source, n_components,
                                           self.params["init_params"], self.forms,
                                           random_state, self.kernel_threads)
                for form in self.forms:
                    per_form[form].append(stats[form])
        return per_form

    def _starts_of(self, starts, covariance_type):
        """The shared starts of one K that a candidate of this covariance type uses."""
        return starts if self.screen is not None else starts[_form(covariance_type)]

    def _fit_candidate(self, n_components, covariance_type, starts):
        """:class:`CandidateFit` of one candidate: EM from the shared starts, then scores
        (after the second phase, when there is one)."""
        fit = self._candidate_fit(n_components, covariance_type,
                                  lambda model: self._run_em(model, n_components, starts))
        if self.neighbours is None:
            self._score(fit.row)
        return fit

    def _refit_from_neighbours(self, cell, fit, starting):
        """``(CandidateFit, whether it changed)`` of a candidate (``cell``: K and covariance
        type) after a round of the second phase: its ``fit`` so far, or that of the best
        climb from the ``starting`` fits (``gmmfast._neighbours.StartingFits``) when that
        climb replaces it (``gmmfast._neighbours.neighbour_em``)."""
        n_components, covariance_type = cell
        start = time.perf_counter()

        def refit(model):
            starts = neighbour_starts(model, self.source, starting, self.kernel_threads)
            found = neighbour_em(model, self.source, starts, fit.result,
                                 max_iter=self.params["max_iter"], tol=self.params["tol"],
                                 n_threads=self.kernel_threads,
                                 admissible=self.screen.admissible(model), stop=self.stop)
            if found is None:
                return None
            result, name = found
            rise = (result.lower_bound - fit.result.lower_bound) * self.source.total_weight
            return result, StartReport(name, fit.report.gain_over_kmeans + rise)

        refitted = self._candidate_fit(n_components, covariance_type, refit)
        changed = refitted.result is not None
        kept = refitted if changed else fit
        kept.row["fit_seconds"] = fit.row["fit_seconds"] + time.perf_counter() - start
        return kept, changed

    def _candidate_fit(self, n_components, covariance_type, fit):
        """:class:`CandidateFit` of one candidate from ``fit(model)``, its EM's
        ``(EMResult, StartReport)`` (or None: no fit, and no row); the row is not scored
        yet (:meth:`_score`)."""
        params = {name: self.params[name] for name in
                  ("tol", "reg_covar", "max_iter", "n_init", "init_params", "random_state",
                   "nan_policy", "prior")}
        params.update(n_components=n_components, covariance_type=covariance_type,
                      n_threads=self.kernel_threads)
        source = self.source
        row = _skipped_row(n_components, covariance_type, self.X.shape[1], "")
        start = time.perf_counter()
        try:
            prior = self._conjugate_prior(n_components, covariance_type)
            model = MixtureModel(covariance_type, params["reg_covar"], source.dtype,
                                 prior=prior)
            outcome = fit(model)
            if outcome is None:
                return CandidateFit(None)
            result, report = outcome
            fitted = fitted_gaussian_mixture(params, result, source.dtype, source.n_features,
                                             prior)
        except ValueError as exc:
            if isinstance(exc, IllDefinedCovarianceError):
                exc = scale_overflow_error(source) or exc
            row.update(status=STATUS_FAILED, message=str(exc).splitlines()[0],
                       fit_seconds=time.perf_counter() - start)
            return CandidateFit(row)
        row.update(
            model=fitted,
            n_iter=int(result.n_iter),
            converged=bool(result.converged),
            start=report.winner,
            gain_over_kmeans=report.gain_over_kmeans,
            collapsed=report.collapsed,
            status=STATUS_OK,
            message="",
        )
        row["fit_seconds"] = time.perf_counter() - start
        return CandidateFit(row, result, report)

    def _score(self, row):
        """Add to a fitted candidate's row its log-likelihood and criteria."""
        if row["status"] != STATUS_OK:
            return
        start = time.perf_counter()
        # The same arithmetic as GaussianMixture.bic/aic, so the table equals them exactly.
        mean_loglik, entropy = self._scores(row["model"])
        n_params = n_mixture_parameters(row["covariance_type"], row["n_components"],
                                        self.source.n_features)
        bic, aic = information_criteria(mean_loglik, self.source.total_weight, n_params)
        row.update(bic=float(bic), aic=float(aic),
                   log_likelihood=float(mean_loglik * self.source.total_weight))
        if entropy is not None:
            row["icl"] = float(bic + 2 * entropy)
        row["fit_seconds"] += time.perf_counter() - start

    def _scores(self, fitted):
        """``(mean log-likelihood, entropy of the responsibilities)`` of a fitted candidate
        on the search's rows: the entropy (ICL's; None for the other criteria) from the
        same pass over X, block by block."""
        if self.params["criterion"] != "icl":
            log_prob, _ = training_log_densities(fitted, self.X)
            return total_weight_and_mean(log_prob, self.row_weights)[1], None
        log_prob = np.empty(self.X.shape[0], dtype=self.X.dtype)
        entropy = 0.0
        for start in range(0, self.X.shape[0], ENTROPY_BLOCK):
            rows = slice(start, start + ENTROPY_BLOCK)
            log_prob[rows], resp = training_log_densities(fitted, self.X[rows],
                                                          responsibilities=True)
            entropy += responsibility_entropy(
                resp, None if self.row_weights is None else self.row_weights[rows])
        return total_weight_and_mean(log_prob, self.row_weights)[1], entropy


    def _conjugate_prior(self, n_components, covariance_type):
        """The candidate's resolved conjugate prior, or None (see gmmfast._prior)."""
        if self.prior_spec is None:
            return None
        return conjugate_prior(self.prior_spec, covariance_type, n_components,
                               self.X.shape[1], lambda: self.moments)

    def _run_em(self, model, n_components, starts):
        """``(EMResult, StartReport)`` of one candidate from its K's shared starts."""
        params, source = self.params, self.source
        if self.screen is not None:
            return multistart_em(model, self.screen, n_components, None,
                                 n_init=params["n_init"], max_iter=params["max_iter"],
                                 tol=params["tol"], n_threads=self.kernel_threads,
                                 pools=starts, stop=self.stop)
        result = run_em(
            model, source,
            lambda init: (model.initial_parameters(starts[init], source.total_weight),
                          -np.inf),
            n_init=params["n_init"], max_iter=params["max_iter"], tol=params["tol"],
            n_threads=self.kernel_threads, stop=self.stop)
        return result, StartReport(params["init_params"], math.nan)


def _with_tree_cuts(pools):
    """The pools of one K with the cuts of the screen's trees."""
    for starts in pools:
        add_tree_cuts(starts)
    return pools


def _search_source(estimator, X, weights):
    """The source every candidate is fitted on: X in memory, or its rows grouped by
    missing entries under ``nan_policy="omit"`` (a column with no observed value is an
    error; numbers of components beyond the rows are skipped, not errors)."""
    if estimator.nan_policy == "omit":
        return fit_source(X, weights, 1, getattr(estimator, "feature_names_in_", None))
    return InMemorySource(X, weights)


def _form(covariance_type):
    """The kernel form of the model's statistics: "full" or "diag"."""
    return kernel_form(sklearn_layout(covariance_type))


def responsibility_entropy(resp, row_weights=None):
    """``-Σ_i w_i Σ_k r_ik log r_ik`` (0 log 0 = 0) of the responsibilities of some rows
    (n, K) with weights ``row_weights`` (None: 1 each)."""
    resp = resp.astype(np.float64, copy=False)
    per_row = -xlogy(resp, resp).sum(axis=1)
    if row_weights is None:
        return float(per_row.sum())
    return float(row_weights @ per_row)


def _skipped_row(n_components, covariance_type, n_features, message):
    return {
        "n_components": n_components,
        "covariance_type": covariance_type,
        "mclust_name": mclust_name(covariance_type),
        "sklearn_name": sklearn_name(covariance_type) or "",
        "bic": math.nan,
        "aic": math.nan,
        "icl": math.nan,
        "log_likelihood": math.nan,
        "n_parameters": n_mixture_parameters(covariance_type, n_components, n_features),
        "n_iter": 0,
        "converged": False,
        "start": "",
        "gain_over_kmeans": math.nan,
        "collapsed": False,
        "fit_seconds": 0.0,
        "status": STATUS_SKIPPED,
        "message": message,
        "model": None,
    }


COLUMNS = (
    ("n_components", np.int64), ("covariance_type", str), ("mclust_name", str),
    ("sklearn_name", str), ("bic", np.float64),
    ("aic", np.float64), ("icl", np.float64), ("log_likelihood", np.float64),
    ("n_parameters", np.int64), ("n_iter", np.int64), ("converged", bool),
    ("start", str), ("gain_over_kmeans", np.float64), ("collapsed", bool),
    ("fit_seconds", np.float64),
    ("status", str), ("message", str),
)


def _make_table(rows, criterion):
    columns = {}
    for name, dtype in COLUMNS:
        if name == "icl" and criterion != "icl":
            continue
        columns[name] = np.array([row[name] for row in rows], dtype=dtype)
    table = CriterionTable(columns, criterion, None)
    scores = np.where(table.choosable, table.scores, np.inf)
    table.best_index = int(np.argmin(scores)) if np.isfinite(scores).any() else None
    return table


def progress_text(done, total, row):
    """One line about a finished candidate, e.g. for a progress display."""
    head = (f"[{done:>{len(str(total))}}/{total}] n_components={row['n_components']:<3} "
            f"{row['covariance_type']:<9}")
    if row["status"] != STATUS_OK:
        return f"{head} {row['status']}: {row['message']}"
    state = "converged" if row["converged"] else "not converged"
    return (f"{head} BIC {row['bic']:.2f}  {row['n_iter']} iterations ({state}) "
            f"{row['fit_seconds']:.2f} s")
