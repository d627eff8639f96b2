"""The EM engine: statistics in, parameters out, one loop (DESIGN §2b).

- :class:`Statistics` is what EM needs from the rows for given parameters: the weighted
  counts ``nk``, the sums ``Σ w r (x − c)`` and the scatter ``Σ w r (x − c)(x − c)ᵀ`` (or
  its diagonal, or its sum over the components) about per-component shifts ``c``.
  Statistics of disjoint rows about the same shifts add up; :func:`ordered_sum` adds them
  in a fixed order.
- A **source** is where the rows live. It answers ``statistics(kernel_parameters,
  n_threads) → (Σ w log p, Statistics)`` and the few primitives that initialisation needs
  (a seeding sample, a Lloyd step, the statistics of a partition by nearest centre or of
  random responsibilities), and ``statistics_of_sets`` for several parameter sets at once
  (:class:`SetStatistics`). :class:`InMemorySource` is here; ``gmmfast._dask.DaskSource``
  holds the row blocks of a dask array.
- A **model** is what is estimated. It turns parameters θ into the kernels' form, and
  statistics into new parameters (the M-step), and gives the lower bound that EM climbs.
  :class:`MixtureModel` is EM for a Gaussian mixture with any of mclust's fourteen
  covariance models (scikit-learn's four among them).
- :func:`run_em` is the one loop: ``n_init`` starts, convergence, the best lower bound,
  verbose output, the ConvergenceWarning and the final E-step.
- :func:`initial_statistics` is the one dispatch of ``init_params``, over any source, and
  :func:`kmeans_centres` the one k-means (Lloyd) driver.

Every estimator is a thin façade over (model, source, run_em), and this module imports no
estimator.
"""

import functools
import math
import os
import time
import warnings
from typing import NamedTuple

import numpy as np

from gmmfast import _mstep_core
from gmmfast._covariance_models import (
    CovarianceEstimate,
    estimate_covariances,
    estimate_covariances_of_sets,
    mclust_name,
    needs_constrained_m_step,
    sklearn_layout,
)
from gmmfast._initialisation import (
    LABEL_BLOCK_ROWS,
    kmeans_plusplus,
    row_blocks,
    seeding_sample,
    stats_from_random_resp,
    stats_from_seeds,
    weighted_mean_and_variance,
)
# The widest kernel variants this CPU runs.
from gmmfast._kernels import em as _em
from gmmfast._kernels import kmeans as _kmeans
from gmmfast._mstep import (
    ILL_DEFINED_COVARIANCE,
    ill_defined_covariance,
    kernel_form,
    precision_cholesky,
)

# scikit-learn's initialisations, one start each; "multistart" (gmmfast._starts) screens
# many of them.
SINGLE_START_METHODS = ("kmeans", "k-means++", "random", "random_from_data")
INIT_METHODS = SINGLE_START_METHODS + ("multistart",)

# The models whose cold M-step searches their common axes (see _covariance_models).
SEARCHED_AXES = ("EVE", "VVE")
# Inner iterations of the iterative M-steps in runs that only screen starts.
SCREENING_INNER_ITERATIONS = 1

KMEANS_MAX_ITER = 300
KMEANS_TOL = 1e-4
# Centres recomputed from an unchanged partition move only by the rounding of their sums:
# a few ulps of their magnitude.
ROUNDING_STEPS = 16
# EM's per-component full scatters leave out the responsibilities below ε² (float64's ε)
# of their row's largest. Each is below ε² of its row's weight, so together they move a
# component's count, sums and scatter by less than ε² of the total weight: below the
# rounding of any component that holds a row's worth of weight, and below the 10 ε guard
# that every count gets. Their log-likelihood terms are below ε² of the row's, invisible to
# its rounding too. On separated clusters most of a component's rows then have exactly zero
# responsibility, and its scatter gathers only the rest (10⁵ × 8 blobs, K = 5: a fifth of
# the rows, a pass ~20 % cheaper). The diagonal statistics would only skip whole blocks of
# rows, which saved nothing there and cost ~3 % on overlapping clusters; the pooled
# scatter has one product per row whatever the responsibilities.
EM_LOG_RESP_FLOOR = 2 * math.log(np.finfo(np.float64).eps)


# ----------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------


class Statistics(NamedTuple):
    """Weighted sufficient statistics of a mixture about per-component shifts, float64.

    ``nk`` (K,), ``sums`` (K, D), ``scatter`` (K, D, D) in the "full" form (full and tied
    covariances), its diagonal (K, D) in the "diag" form (diag and spherical), or its sum
    over the components (1, D, D) in the "pooled" form (tied covariances, whose M-step
    needs no more: a pass then accumulates one D×D product per row instead of one per row
    and component), ``shifts`` (K, D). With one component, "full" and "pooled" coincide
    and are called "full".
    """

    nk: np.ndarray
    sums: np.ndarray
    scatter: np.ndarray
    shifts: np.ndarray

    @property
    def form(self):
        if self.scatter.ndim == 2:
            return "diag"
        return "pooled" if self.scatter.shape[0] < self.nk.shape[0] else "full"

    def pooled(self):
        """The same statistics in the "pooled" form (a "full" form's scatters summed over
        the components, in order)."""
        form = self.form
        if form == "diag":
            raise ValueError("diag statistics have no pooled form: their scatter holds "
                             "only the diagonals")
        if form == "pooled":
            return self
        return self._replace(scatter=self.scatter.sum(axis=0, keepdims=True))

    @classmethod
    def zeros(cls, form, shifts):
        """Zeroed statistics of ``form`` about ``shifts`` (K, D)."""
        shifts = np.ascontiguousarray(shifts, dtype=np.float64)
        return cls(*_mstep_core.empty_stats(form, *shifts.shape), shifts)

    def recentred(self, shifts):
        """The same statistics taken about other ``shifts`` (exact up to rounding)."""
        shifts = np.ascontiguousarray(shifts, dtype=np.float64)
        sums, scatter = _em._recentre(self.nk, self.sums, self.scatter, shifts - self.shifts)
        return Statistics(self.nk.copy(), sums, scatter, shifts)


def ordered_sum(parts):
    """Σ of statistics about common shifts, in list order.

    A fixed order makes the total independent of which thread or worker computed which
    part, and of when its result arrived.
    """
    first = parts[0]
    total = Statistics(first.nk.copy(), first.sums.copy(), first.scatter.copy(), first.shifts)
    for part in parts[1:]:
        if part.shifts is not first.shifts and not np.array_equal(part.shifts, first.shifts):
            part = part.recentred(first.shifts)
        total.nk[...] += part.nk
        total.sums[...] += part.sums
        total.scatter[...] += part.scatter
    return total


class KernelParameters(NamedTuple):
    """A mixture in the compiled kernels' form (see ``gmmfast._em.em_pass``): means (K, D),
    precisions' factors ((K, D, D) full, (1, D, D) tied, (K, D) diag) and ``log_norm`` (K,).

    ``covariances``, in the factors' shape, when the parameters carry them (else None): a
    source that marginalises over missing entries needs Σ itself, and inverting the
    factors again would lose the digits that the M-step's Σ still has.

    ``log_resp_floor``: responsibilities below exp(log_resp_floor) of their row's largest
    count as 0 in the statistics (not in scores), for a model that such weights cannot
    move; None keeps every responsibility the compute type can represent.

    ``pooled``: the statistics are wanted in the "pooled" form (see :class:`Statistics`),
    for tied factors whose model needs only the components' scatters summed.
    """

    means: np.ndarray
    precisions_chol: np.ndarray
    log_norm: np.ndarray
    covariances: np.ndarray | None = None
    log_resp_floor: float | None = None
    pooled: bool = False


# ----------------------------------------------------------------------------------------
# in-memory rows
# ----------------------------------------------------------------------------------------


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


# Arrays of K·D² (full) or K·D (diag) numbers alive at once in a fit: covariances,
# precisions, their factors, the statistics, the M-step's own and the kernels' copies.
PARAMETER_COPIES = 8


def physical_memory():
    """Bytes of RAM of this machine, or None where it cannot be told."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_parameter_memory(covariance_type, n_components, n_features):
    """Refuse, before any work, a mixture whose parameters alone exceed the machine's RAM.

    Without this, k-means would run for minutes before the allocation that must fail.
    """
    per_component = n_features * n_features \
        if kernel_form(sklearn_layout(covariance_type)) == "full" else n_features
    needed = PARAMETER_COPIES * 8 * n_components * per_component
    available = physical_memory()
    if available is not None and needed > available:
        raise MemoryError(
            f"A mixture of {n_components} components with covariance_type="
            f"{covariance_type!r} on {n_features} features needs about "
            f"{needed / 2**30:.1f} GiB for its parameters ({PARAMETER_COPIES} arrays of "
            f"{n_components} x {per_component} float64 numbers), more than this machine's "
            f"{available / 2**30:.1f} GiB of RAM. Use fewer components or features, or a "
            "covariance_type with fewer parameters (diag, spherical, tied)."
        )


def score_arrays(X, kernel_params, labels=False, resp=False, n_threads=0, log_prob=True,
                 finite_check=None):
    """(log p(x) or None, labels or None, responsibilities or None) of a block of rows.

    ``kernel_params`` are a model's :class:`KernelParameters`. Only the outputs asked for
    are computed (labels alone need no exponential). ``finite_check``, when given, is
    called with X if X holds a NaN or an infinity (found while scoring, instead of in a
    pass of its own) and must raise.
    """
    X = np.ascontiguousarray(X)
    means, precisions_chol, log_norm = kernel_params[:3]
    n = X.shape[0]
    log_prob_norm = np.empty(n, dtype=X.dtype) if log_prob else None
    label_out = np.empty(n, dtype=np.int64) if labels else None
    resp_out = np.empty((n, means.shape[0]), dtype=X.dtype) if resp else None
    all_finite = _em.score(X, means, precisions_chol, log_norm, log_prob_norm, label_out,
                           resp_out, n_threads, check_finite=finite_check is not None)
    if finite_check is not None and not all_finite:
        finite_check(X)
        raise AssertionError("finite_check did not raise on non-finite X")
    return log_prob_norm, label_out, resp_out


def block_statistics(X, sample_weight, kernel_params, n_threads=0):
    """``(Σ w log p(x), Statistics)`` of one block of rows: the E-step fused with the
    accumulation of its statistics, about the kernel parameters' means.

    ``X`` is a C-contiguous float32/float64 block, ``sample_weight`` its float64 weights or
    None. The unit of work of every source: all of X in memory, each block of a dask array
    on its worker.
    """
    means, precisions_chol, log_norm = kernel_params[:3]
    stats = Statistics.zeros(statistics_form(kernel_params), means)
    loglik = _em.em_pass(X, sample_weight, means, precisions_chol, log_norm,
                         stats.nk, stats.sums, stats.scatter, n_threads,
                         log_resp_floor=log_resp_floor_of(kernel_params))
    return loglik, stats


def log_resp_floor_of(kernel_params):
    """The ``log_resp_floor`` of kernel parameters (None for a plain tuple)."""
    return getattr(kernel_params, "log_resp_floor", None)


def statistics_form(kernel_params):
    """The form of the statistics a pass under the kernel parameters gives: "diag" for
    diag factors; "pooled" for tied ones (one factor for several components) that ask for
    it (``pooled``); otherwise "full"."""
    means, precisions_chol = kernel_params[:2]
    if precisions_chol.ndim == 2:
        return "diag"
    tied = precisions_chol.shape[0] == 1 and len(means) > 1
    return "pooled" if tied and getattr(kernel_params, "pooled", False) else "full"


class KernelParameterSets(KernelParameters):
    """The :class:`KernelParameters` of several mixtures of one number of components and
    form, stacked on a first axis (one index per set): means (M, K, D), precisions'
    factors (M, ...), ``log_norm`` (M, K), covariances (M, ...) or None, and the pass
    options that every set shares. A pass over several sets reads them as they are (see
    :func:`block_statistics_of_sets`), without stacking each set's arrays again."""

    __slots__ = ()

    @classmethod
    def of(cls, kernel_params_list):
        """The sets of a non-empty list of :class:`KernelParameters` (sets already
        stacked are returned as they are); a ValueError when their shapes or pass
        options differ."""
        if isinstance(kernel_params_list, cls):
            return kernel_params_list
        floors = {log_resp_floor_of(params) for params in kernel_params_list}
        if len(floors) > 1:
            raise ValueError(f"parameter sets scored in one pass must share log_resp_floor, "
                             f"got {sorted(floors, key=str)}")
        pooled = {statistics_form(params) == "pooled" for params in kernel_params_list}
        if len(pooled) > 1:
            raise ValueError("parameter sets scored in one pass must all ask for the pooled "
                             "statistics or none: score them in separate calls")
        covariances = [getattr(params, "covariances", None) for params in kernel_params_list]
        return cls(_stacked([params[0] for params in kernel_params_list], "means"),
                   _stacked([params[1] for params in kernel_params_list], "precisions_chol"),
                   _stacked([params[2] for params in kernel_params_list], "log_norm"),
                   None if any(c is None for c in covariances)
                   else _stacked(covariances, "covariances"),
                   *floors, *pooled)

    @property
    def n_sets(self):
        """The number of sets (``len`` counts the fields, as of any named tuple)."""
        return len(self.means)

    def sets(self):
        """Each set's :class:`KernelParameters` (views of the stacked arrays)."""
        covariances = ([None] * self.n_sets if self.covariances is None
                       else self.covariances)
        return [KernelParameters(*arrays, self.log_resp_floor, self.pooled)
                for arrays in zip(self.means, self.precisions_chol, self.log_norm,
                                  covariances)]


def block_statistics_of_sets(X, sample_weight, kernel_params_sets, n_threads=0):
    """``[(Σ w log p(x), Statistics)]`` of one block of rows under each set of
    ``kernel_params_sets`` (:class:`KernelParameterSets`, or a list of
    :class:`KernelParameters`), the same numbers as :func:`block_statistics` per set, from
    one compiled pass over X (as many sets per pass as its accumulators allow).

    The sets must share their number of components, covariance form, statistics form and
    ``log_resp_floor``.
    """
    if not kernel_params_sets:
        return []
    sets = KernelParameterSets.of(kernel_params_sets)
    means, precisions_chol, log_norm = sets[:3]
    n_sets, n_components, n_features = means.shape
    full = precisions_chol.ndim == 4
    nk = np.zeros((n_sets, n_components))
    sums = np.zeros((n_sets, n_components, n_features))
    scatter = np.zeros((n_sets, 1 if sets.pooled else n_components, n_features)
                       + ((n_features,) if full else ()))
    loglik = np.empty(n_sets)
    per_pass = _em.max_sets_per_pass(X.shape[0], n_components, n_features, full, sets.pooled)
    for first in range(0, n_sets, per_pass):
        part = slice(first, first + per_pass)
        loglik[part] = _em.em_pass_sets(X, sample_weight, means[part], precisions_chol[part],
                                        log_norm[part], nk[part], sums[part], scatter[part],
                                        n_threads, log_resp_floor=sets.log_resp_floor)
    return [(set_loglik, Statistics(*stats))
            for set_loglik, *stats in zip(loglik.tolist(), nk, sums, scatter, means)]


def _stacked(arrays, name):
    """The float64 arrays of the parameter sets stacked on a first axis; a ValueError when
    their shapes differ."""
    try:
        return np.array(arrays, dtype=np.float64)
    except ValueError:
        shapes = sorted({np.shape(array) for array in arrays})
        raise ValueError(
            f"Every parameter set must have the same number of components and covariance "
            f"form, but their {name} have shapes {shapes}: score sets of different "
            f"shapes in separate calls."
        ) from None


# Weights whose mean lies outside [2^-WEIGHT_SCALE_BITS, 2^WEIGHT_SCALE_BITS] are rescaled.
WEIGHT_SCALE_BITS = 8


def normalised_weights(sample_weight):
    """Sample weights as maximum likelihood uses them: the same model for any common scale
    (a Bayesian model, whose weights count observations, must not be given these).

    Weights that are all equal weigh nothing but the rows: None. Others are multiplied by
    a power of two (exact, so sums and ratios keep every bit) when their mean is far from 1:
    the guard that keeps an empty component finite (10·eps added to each weighted count)
    must mean as little with weights of 1e-16 or 1e300 as without weights, and the total
    weight must not overflow.
    """
    if sample_weight is None or not sample_weight.size:
        return sample_weight
    first = sample_weight[0]
    if first > 0 and (sample_weight == first).all():
        return None
    _, max_exponent = np.frexp(sample_weight.max())
    shift = weight_shift(int(max_exponent), np.ldexp(sample_weight, -max_exponent).mean())
    return np.ldexp(sample_weight, shift) if shift else sample_weight


def weight_shift(max_exponent, scaled_mean):
    """The power of two that brings weights to a mean in [1, 2), or 0 when their mean is
    within a factor 2^WEIGHT_SCALE_BITS of 1 (they are used as given). The largest weight
    is m·2^max_exponent with m in [0.5, 1); ``scaled_mean`` is the mean of the weights
    divided by 2^max_exponent, which cannot overflow."""
    _, mean_exponent = np.frexp(scaled_mean)
    shift = 1 - max_exponent - int(mean_exponent)
    return 0 if abs(shift) <= WEIGHT_SCALE_BITS else shift


class SetStatistics:
    """The statistics of several parameter sets, for any source with ``statistics``: one
    pass per set. A source that can read its rows once for all the sets overrides it."""

    def statistics_of_sets(self, kernel_params_sets, n_threads):
        """``[(Σ w log p(x), Statistics)]``, one per set of ``kernel_params_sets``
        (:class:`KernelParameterSets`, or a list of :class:`KernelParameters`)."""
        if not kernel_params_sets:
            return []
        return [self.statistics(kernel_params, n_threads)
                for kernel_params in KernelParameterSets.of(kernel_params_sets).sets()]


class InMemorySource(SetStatistics):
    """Rows held in memory: a validated, C-contiguous float32/float64 X and float64 sample
    weights (or None, all ones).

    Its EM pass is one compiled call per iteration (:meth:`fused_em_step`); everything
    else reads X in compiled passes too. ``finite_check``, when given, means X has not been
    checked for NaN and infinities yet: the first pass over X finds them on the way (a
    non-finite sum), and :meth:`check_finite` then calls ``finite_check(X)``, which must
    raise. A separate scan would be a serial pass over X before a parallel fit.
    """

    def __init__(self, X, sample_weight=None, finite_check=None):
        self.X = X
        self.sample_weight = sample_weight
        self._finite_check = finite_check
        self.dtype = X.dtype
        self.n_samples, self.n_features = X.shape
        if sample_weight is None:
            self.total_weight = float(self.n_samples)
            self.n_positive = self.n_samples
        else:
            self.total_weight = float(sample_weight.sum())
            self.n_positive = int(np.count_nonzero(sample_weight))
        self._moments = None

    def magnitude(self):
        """The largest absolute value in X (two reductions, no temporary copy)."""
        if not self.X.size:
            return 0.0
        return float(max(abs(self.X.max()), abs(self.X.min())))

    def check_finite(self):
        """Raise the finite_check's error if X holds a NaN or an infinity."""
        if self._finite_check is not None:
            self._finite_check(self.X)
            self._finite_check = None

    # -- EM --------------------------------------------------------------------------------

    def statistics(self, kernel_params, n_threads):
        """``(Σ w log p(x), Statistics)`` under the given kernel parameters."""
        loglik, stats = block_statistics(self.X, self.sample_weight, kernel_params, n_threads)
        if not math.isfinite(loglik):
            self.check_finite()
        return loglik, stats

    def statistics_of_sets(self, kernel_params_sets, n_threads):
        """``statistics`` of each set of ``kernel_params_sets`` (same number of components
        and form; :class:`KernelParameterSets`, or a list of :class:`KernelParameters`),
        from one compiled pass over X: each chunk of rows serves every set while it is in
        cache."""
        results = block_statistics_of_sets(self.X, self.sample_weight, kernel_params_sets,
                                           n_threads)
        if not all(math.isfinite(loglik) for loglik, _ in results):
            self.check_finite()
        return results

    def fused_em_step(self, covariance_type, reg_covar, eps, n_threads, log_resp_floor=None):
        """One EM iteration of :class:`MixtureModel` as one compiled call: θ → (Σ w log p,
        new θ or None). The same arithmetic as its ``kernel_parameters``, ``statistics``
        and ``m_step`` in turn (tested bit for bit), the pass with the model's
        ``log_resp_floor``; once a pass has evicted the caches each Python-level call costs
        about a microsecond, a noticeable share of an iteration on small data."""
        em_pass = functools.partial(_em.em_pass, log_resp_floor=log_resp_floor)
        return functools.partial(_mstep_core.em_step, em_pass, self.X, self.sample_weight,
                                 covariance_type=covariance_type, n_threads=n_threads,
                                 reg_covar=reg_covar, eps=eps)

    def score(self, kernel_params, n_threads, **outputs):
        """:func:`score_arrays` of all the rows (the rows were checked to be finite)."""
        return score_arrays(self.X, kernel_params, n_threads=n_threads, **outputs)

    def labels(self, kernel_params, n_threads):
        """The most likely component of every row."""
        return self.score(kernel_params, n_threads, labels=True, log_prob=False)[1]

    # -- initialisation ----------------------------------------------------------------------

    def mean_and_variance(self, n_threads):
        """Weighted per-feature mean and variance of the rows (one pass, computed once)."""
        if self._moments is None:
            mean, variance = weighted_mean_and_variance(self.X, self.sample_weight, n_threads)
            if not (np.isfinite(mean).all() and np.isfinite(variance).all()):
                self.check_finite()
            self._moments = mean, variance
        return self._moments

    def seeding_sample(self, n_clusters, random_state):
        """A uniform sample of the rows to seed ``n_clusters`` clusters on, as a source
        (this source itself when it is small)."""
        indices = seeding_sample(self.X, self.sample_weight, n_clusters, random_state)
        if indices is None:
            return self
        weights = None if self.sample_weight is None else self.sample_weight[indices]
        return InMemorySource(np.ascontiguousarray(self.X[indices]), weights)

    def screening_rows(self):
        """The rows that may screen starts: those of non-zero weight."""
        if self.sample_weight is None:
            return np.arange(self.n_samples)
        return np.flatnonzero(self.sample_weight > 0)

    def screen_of(self, rows):
        """A source of the given rows (sorted indices): this source if they are all."""
        if len(rows) == self.n_samples:
            return self
        weights = None if self.sample_weight is None else self.sample_weight[rows]
        return InMemorySource(np.ascontiguousarray(self.X[rows]), weights)

    def rows_at_ranks(self, ranks):
        """The rows of non-zero weight with the given ranks (0-based, in row order), in the
        order of ``ranks``, and their weights (or None)."""
        if self.sample_weight is None:
            return np.ascontiguousarray(self.X[ranks]), None
        index = np.flatnonzero(self.sample_weight > 0)[ranks]
        return np.ascontiguousarray(self.X[index]), self.sample_weight[index]

    def lloyd_step(self, centres, n_threads, labels=None):
        """One Lloyd step: ``(cluster weights, new centres)``; an empty cluster keeps its
        centre. ``labels`` (n_samples,) int64, if given, receives the partition; otherwise
        the rows go through in blocks, whose labels are all that is ever stored."""
        if labels is not None:
            counts = np.empty(centres.shape[0])
            new_centres = np.empty_like(centres)
            _kmeans.lloyd_step(self.X, self.sample_weight, centres, new_centres, counts,
                               labels, n_threads)
            return counts, new_centres
        counts = np.zeros(centres.shape[0])
        shifted_sums = np.zeros_like(centres)
        for _, _, _, block_counts, block_means in self._nearest(centres, n_threads):
            counts += block_counts
            shifted_sums += (block_means - centres) * block_counts[:, None]
        new_centres = centres.copy()
        filled = counts > 0
        new_centres[filled] += shifted_sums[filled] / counts[filled, None]
        return counts, new_centres

    def nearest_centre_statistics(self, centres, form, n_threads):
        """Statistics of the partition of the rows by nearest centre, about the centres."""
        stats = Statistics.zeros(form, centres)
        for rows, weights, labels, _, _ in self._nearest(centres, n_threads):
            # Each block's statistics are added to the running totals.
            _em.stats_from_labels(rows, weights, labels, stats.shifts, stats.nk, stats.sums,
                                  stats.scatter, n_threads)
        return stats

    def _nearest(self, centres, n_threads):
        """Per block of rows, in order: (rows, weights, labels of the nearest centre,
        cluster weights, cluster means); one buffer of labels serves every block."""
        buffer = np.empty(min(self.n_samples, LABEL_BLOCK_ROWS), dtype=np.int64)
        for rows, weights in row_blocks(self.X, self.sample_weight):
            labels = buffer[:len(rows)]
            counts = np.empty(centres.shape[0])
            means = np.empty_like(centres)
            _kmeans.lloyd_step(rows, weights, centres, means, counts, labels, n_threads)
            yield rows, weights, labels, counts, means

    def random_resp_statistics(self, n_components, random_state, form, n_threads):
        """Statistics of uniform random responsibilities drawn from ``random_state``."""
        mean, _ = self.mean_and_variance(n_threads)
        shifts = np.ascontiguousarray(np.broadcast_to(mean, (n_components, self.n_features)))
        return Statistics(*stats_from_random_resp(self.X, self.sample_weight, n_components,
                                                  random_state, form, n_threads, shifts))

    def farthest_rows(self, centres, new_centres, n_rows, n_threads):
        """The ``n_rows`` rows of non-zero weight farthest from the new centre of the
        cluster that their nearest (old) centre defines: where empty clusters go."""
        labels = np.empty(self.n_samples, dtype=np.int64)
        self.lloyd_step(centres, n_threads, labels)
        distances = np.empty(self.n_samples)
        block = 65536
        for start in range(0, self.n_samples, block):
            stop = start + block
            diff = self.X[start:stop] - new_centres[labels[start:stop]]
            distances[start:stop] = np.einsum("ij,ij->i", diff, diff)
        if self.sample_weight is not None:
            distances[self.sample_weight == 0] = -1.0
        farthest = np.argsort(distances, kind="stable")[::-1][:n_rows]
        return self.X[farthest]


# ----------------------------------------------------------------------------------------
# initialisation: one dispatch, one k-means driver
# ----------------------------------------------------------------------------------------


def initial_statistics(source, n_components, init_params, forms, random_state, n_threads):
    """{form: Statistics of the initial responsibilities chosen by ``init_params``}.

    The draws do not depend on the form: k-means runs once and its partition is
    accumulated once per form; random responsibilities are drawn again from the same RNG
    state for each form. ``random_state`` ends as after one draw, whatever ``forms`` holds.
    """
    if init_params == "kmeans":
        centres = kmeans_centres(source, n_components, random_state, n_threads)
        return {form: source.nearest_centre_statistics(centres, form, n_threads)
                for form in forms}
    if init_params == "k-means++":
        sample = source.seeding_sample(n_components, random_state)
        seeds = kmeans_plusplus(sample.X, sample.sample_weight, n_components, random_state,
                                n_threads)
        return {form: Statistics(*stats_from_seeds(sample.X, sample.sample_weight, seeds,
                                                   form)) for form in forms}
    if init_params == "random_from_data":
        ranks = random_state.choice(source.n_positive, size=n_components, replace=False)
        rows, weights = source.rows_at_ranks(ranks)
        seeds = np.arange(n_components)
        return {form: Statistics(*stats_from_seeds(rows, weights, seeds, form))
                for form in forms}
    if init_params == "random":
        state = random_state.get_state()
        per_form = {}
        for form in forms:
            random_state.set_state(state)
            per_form[form] = source.random_resp_statistics(n_components, random_state, form,
                                                           n_threads)
        return per_form
    raise ValueError(f"init_params must be one of {SINGLE_START_METHODS}, got {init_params!r}")


def kmeans_centres(source, n_clusters, random_state, n_threads):
    """k-means centres of the source's rows: k-means++ seeds and Lloyd's iterations on a
    seeding sample, then Lloyd's iterations over all the rows.

    Lloyd stops when the centres move by less than ``KMEANS_TOL`` times the mean variance
    of the rows (squared, summed; a partition that no longer changes moves them by 0), or
    after ``KMEANS_MAX_ITER`` steps. An empty cluster moves onto the sample's row farthest
    from its cluster's centre.
    """
    _, variance = source.mean_and_variance(n_threads)
    tolerance = KMEANS_TOL * float(np.mean(variance))
    sample = source.seeding_sample(n_clusters, random_state)
    seeds = kmeans_plusplus(sample.X, sample.sample_weight, n_clusters, random_state,
                            n_threads)
    centres = np.ascontiguousarray(sample.X[seeds], dtype=np.float64)
    if sample is not source:
        centres = lloyd(sample, centres, tolerance, sample, n_threads)
        # The centres of the sample's final partition, as the source's first step expects.
        centres = sample.lloyd_step(centres, n_threads)[1]
    return lloyd(source, centres, tolerance, sample, n_threads)


def lloyd(source, centres, tolerance, relocation_rows, n_threads):
    """Lloyd's iterations on ``source`` from ``centres`` until they move by at most
    ``tolerance`` (squared), or by no more than rounding (a partition that no longer
    changes); empty clusters move onto the farthest of ``relocation_rows`` (a source held
    in memory)."""
    for _ in range(KMEANS_MAX_ITER):
        counts, new_centres = source.lloyd_step(centres, n_threads)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            new_centres[empty] = relocation_rows.farthest_rows(centres, new_centres,
                                                               empty.size, n_threads)
        with np.errstate(over="ignore", invalid="ignore"):  # data whose scale overflows
            shift = float(((new_centres - centres) ** 2).sum())
            rounding = ((ROUNDING_STEPS * np.finfo(np.float64).eps) ** 2
                        * float((centres**2).sum()))
        centres = new_centres
        if shift <= max(tolerance, rounding):
            break
    return centres


# ----------------------------------------------------------------------------------------
# the EM mixture model
# ----------------------------------------------------------------------------------------


def mixture_kernel_parameters(theta, covariance_type):
    """The kernels' form of a mixture θ = (weights, means, covariances or None,
    precisions_cholesky, …) whose arrays have the shapes of the scikit-learn
    ``covariance_type``."""
    weights, means, covariances, precisions_chol = theta[:4]
    means, precisions_chol, log_norm = _mstep_core.kernel_parameters(
        weights, means, precisions_chol, covariance_type, np.shape(means)[1])
    if covariances is not None:
        covariances = _in_factors_shape(covariances, covariance_type, precisions_chol.shape)
    return KernelParameters(means, precisions_chol, log_norm, covariances)


def _in_factors_shape(covariances, covariance_type, shape):
    """Covariances shaped as the kernels' factors: tied is one (1, D, D) matrix, spherical
    one variance per feature."""
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "tied":
        return covariances[None]
    if covariance_type == "spherical":
        return np.broadcast_to(covariances[:, None], shape)
    return covariances


def sample_mixture(weights, means, covariances, covariance_type, n_samples, rng):
    """``n_samples`` rows drawn from a mixture whose arrays have the shapes of the
    scikit-learn ``covariance_type``, by the ``numpy.random.RandomState`` ``rng``: (X
    float64 (n_samples, D) grouped by component, their int64 component labels)."""
    n_features = np.shape(means)[1]
    counts = rng.multinomial(n_samples, weights)
    if covariance_type == "full":
        X = np.vstack([
            rng.multivariate_normal(mean, covariance, int(count))
            for mean, covariance, count in zip(means, covariances, counts)
        ])
    elif covariance_type == "tied":
        X = np.vstack([
            rng.multivariate_normal(mean, covariances, int(count))
            for mean, count in zip(means, counts)
        ])
    else:
        X = np.vstack([
            mean + rng.standard_normal(size=(count, n_features)) * np.sqrt(covariance)
            for mean, covariance, count in zip(means, covariances, counts)
        ])
    y = np.concatenate([np.full(count, j, dtype=np.int64) for j, count in enumerate(counts)])
    return X.astype(np.float64, copy=False), y


class MixtureModel:
    """EM for a Gaussian mixture with ``covariance_type`` any name of
    ``gmmfast._covariance_models.COVARIANCE_NAMES``; the lower bound is the weighted
    average log-likelihood.

    ``screening``: see :meth:`for_screening`.

    θ is ``(weights, means, covariances, precisions_cholesky)`` in float64, the arrays in
    the shapes of the scikit-learn type ``layout`` (:func:`sklearn_layout`). Scikit-learn's
    four models, under either name, are fitted by the compiled M-steps. The other ten
    append the M-step's :class:`CovarianceEstimate` to θ: its decomposition, and the warm
    start of the next M-step (the iterative ones then never decrease the likelihood).
    Its per-component full scatters leave out the responsibilities below
    ``EM_LOG_RESP_FLOOR`` of their row's largest, which float64 cannot see.
    """

    def __init__(self, covariance_type, reg_covar, dtype, screening=False, prior=None):
        self.covariance_type = covariance_type
        self.layout = sklearn_layout(covariance_type)
        self.prior = prior
        # The prior's M-step adjusts the statistics handed to the covariance models' M-step.
        self.constrained = needs_constrained_m_step(covariance_type) or prior is not None
        self.reg_covar = float(reg_covar)
        self.dtype = np.dtype(dtype)
        self.screening = screening
        self._inner_iterations = (
            {"max_iter": SCREENING_INNER_ITERATIONS, "warn": False} if screening else {})
        self.form = kernel_form(self.layout)
        # The compiled tied M-step needs only the components' scatters summed; the
        # constrained fits (a prior's terms) take them one by one.
        self.pooled = self.layout == "tied" and not self.constrained
        self.log_resp_floor = (EM_LOG_RESP_FLOOR if self.form == "full" and not self.pooled
                               else None)
        self.float32 = np.dtype(dtype) == np.float32
        self.eps = float(np.finfo(dtype).eps)
        # float32 bounds are rounded as scikit-learn computes them; float64 ones stay
        # Python floats (the same values, without a NumPy scalar per iteration).
        self.bound_type = np.float32 if self.float32 else float

    def for_screening(self):
        """The model for short runs that only compare starts: generalised EM, whose
        iterative M-steps stop after SCREENING_INNER_ITERATIONS inner iterations (each
        still raises the bound), and whose cold EVE and VVE M-steps start from the
        common axes of EEE's closed form instead of searching for them (about ten times
        the cost)."""
        return MixtureModel(self.covariance_type, self.reg_covar, self.dtype, screening=True,
                            prior=self.prior)

    def lower_bound(self, loglik, theta, total_weight):
        """The bound EM climbs under θ, given the rows' ``Σ w log p(x)``: the weighted
        average log-likelihood, or with a prior the log posterior per unit of weight."""
        if self.prior is not None:
            kernel_params = self.kernel_parameters(theta)
            loglik += self.prior.log_density(kernel_params.means,
                                             kernel_params.precisions_chol)
        return self.bound_type(loglik / total_weight)

    def kernel_parameters(self, theta):
        return self._with_pass_options(mixture_kernel_parameters(theta, self.layout))

    def _with_pass_options(self, kernel_params):
        """Kernel parameters with what the model asks of a pass: pooled statistics, the
        responsibility floor."""
        return kernel_params._replace(pooled=self.pooled, log_resp_floor=self.log_resp_floor)

    def kernel_parameters_of_sets(self, thetas):
        """:meth:`kernel_parameters` of each θ of the list (one number of components), as
        :class:`KernelParameterSets` ([] for no θ): one compiled call for the components
        of all the sets, as each has its own factor (tied ones share theirs: one call per
        set)."""
        if not thetas:
            return []
        if self.layout == "tied" or any(theta[2] is None for theta in thetas):
            return KernelParameterSets.of([self.kernel_parameters(theta) for theta in thetas])
        n_sets, n_components = len(thetas), len(thetas[0][0])
        weights, means, covariances, precisions_chol = (
            np.concatenate(part) for part in zip(*(theta[:4] for theta in thetas)))
        means, precisions_chol, log_norm = _mstep_core.kernel_parameters(
            weights, means, precisions_chol, self.layout, means.shape[1])
        covariances = _in_factors_shape(covariances, self.layout, precisions_chol.shape)

        def per_set(array):
            return array.reshape((n_sets, n_components) + array.shape[1:])

        return KernelParameterSets(per_set(means), per_set(precisions_chol), per_set(log_norm),
                                   per_set(covariances), self.log_resp_floor, self.pooled)

    def m_step(self, stats, previous=None):
        """θ from the statistics; ``previous`` (the θ these statistics were computed
        under, or None) warm-starts the iterative M-steps. Raises the "ill-defined
        empirical covariance" error."""
        if self.constrained:
            nk, means, estimate = self._constrained_estimate(stats, previous)
            return (nk / nk.sum(), means, *self._constrained_covariances(estimate))
        theta = _mstep_core.m_step(*stats, self.layout, self.reg_covar, self.eps)
        if theta is None:
            raise ill_defined_covariance(self.float32)
        return theta

    def m_step_of_sets(self, stats_list, previous):
        """:meth:`m_step` of each statistics of the list (one number of components and
        form), under the θ of the same index of ``previous``: a list of θ, None for a set
        whose M-step raises a ValueError (an ill-defined covariance).

        The ten constrained models' M-steps run on all the sets together
        (:func:`estimate_covariances_of_sets`): the same numbers as one call per set, for
        about the cost of one.
        """
        return self._parameters_of_sets(stats_list, previous, None)

    def initial_parameters_of_sets(self, stats_list, total_weight):
        """:meth:`initial_parameters` of each statistics of the list, as
        :meth:`m_step_of_sets` gives :meth:`m_step`'s."""
        return self._parameters_of_sets(stats_list, [None] * len(stats_list), total_weight)

    def _parameters_of_sets(self, stats_list, previous, total_weight):
        """θ of each set: its M-step's, or with ``total_weight`` its initial θ."""
        if not self.constrained or self.prior is not None or not stats_list:
            return self._one_by_one(stats_list, previous, total_weight)
        nk, means, scatter = self._sets_estimates(stats_list)
        starts = [theta[4] if theta is not None and len(theta) > 4 else None
                  for theta in previous]
        starts, failed = self._screening_starts(nk, scatter, starts)
        estimates = estimate_covariances_of_sets(
            mclust_name(self.covariance_type), nk, scatter, self.reg_covar, previous=starts,
            **self._inner_iterations)
        estimates = [None if m in failed else estimate
                     for m, estimate in enumerate(estimates)]
        chol = self._precisions_cholesky_of_sets(estimates)
        if chol is None:  # a covariance that is not positive definite: find its set
            return self._one_by_one(stats_list, previous, total_weight)
        # As one set's: an M-step normalises the weights, an initialisation does not.
        weights = nk / (nk.sum(axis=1, keepdims=True) if total_weight is None
                        else total_weight)
        return [None if estimate is None else
                (weights[m], means[m], estimate.covariances, chol[m], estimate)
                for m, estimate in enumerate(estimates)]

    def _precisions_cholesky_of_sets(self, estimates):
        """The precisions' factors of the sets' estimates (M, ...) in one compiled call
        (None: a covariance is not positive definite); a set without an estimate gets
        another set's factors, which are not used."""
        usable = next((estimate.covariances for estimate in estimates
                       if estimate is not None), None)
        if usable is None:
            return [None] * len(estimates)
        covariances = np.array([usable if estimate is None else estimate.covariances
                                for estimate in estimates])
        # The constrained models' layouts, "full" and "diag", factor each component alone.
        chol = _mstep_core.precisions_cholesky(
            covariances.reshape((-1,) + covariances.shape[2:]), self.layout)
        return None if chol is None else chol.reshape(covariances.shape)

    def _one_by_one(self, stats_list, previous, total_weight):
        """:meth:`_parameters_of_sets` by one :meth:`m_step` or
        :meth:`initial_parameters` per set."""
        thetas = []
        for stats, theta in zip(stats_list, previous):
            try:
                thetas.append(self.m_step(stats, previous=theta) if total_weight is None
                              else self.initial_parameters(stats, total_weight))
            except ValueError:
                thetas.append(None)
        return thetas

    def _sets_estimates(self, stats_list):
        """The sets' counts (M, K), means (M, K, D) and scatters about their means
        (M, K, D, D) or (M, K, D), without reg_covar: one compiled call for the
        components of all the sets, as each component's are its own."""
        n_sets, n_components = len(stats_list), len(stats_list[0].nk)
        stacked = [np.concatenate(part) for part in zip(*stats_list)]
        nk, means, sample_covariances = _mstep_core.estimate_parameters(
            *stacked, self.form, 0.0, self.eps)
        scale = nk[:, None, None] if self.form == "full" else nk[:, None]
        scatter = sample_covariances * scale
        return (nk.reshape(n_sets, n_components),
                means.reshape(n_sets, n_components, -1),
                scatter.reshape((n_sets, n_components) + scatter.shape[1:]))

    def _screening_starts(self, nk, scatter, starts):
        """``(starts, failed)``: the sets' starts, with EEE's estimate for the cold sets
        of a screening EVE or VVE (see :meth:`for_screening`), and the indices of the sets
        whose EEE estimate failed."""
        cold = [m for m, start in enumerate(starts) if start is None]
        if not (cold and self.screening
                and mclust_name(self.covariance_type) in SEARCHED_AXES):
            return starts, set()
        starts = list(starts)
        eee = estimate_covariances_of_sets("EEE", nk[cold], scatter[cold], self.reg_covar)
        for m, estimate in zip(cold, eee):
            starts[m] = estimate
        return starts, {m for m, estimate in zip(cold, eee) if estimate is None}

    def initial_parameters(self, stats, total_weight):
        """θ from the statistics of initial responsibilities. As scikit-learn's
        initialisation, the weights are ``nk / total_weight``, not renormalised."""
        if self.constrained:
            nk, means, estimate = self._constrained_estimate(stats, None)
            return (nk / total_weight, means, *self._constrained_covariances(estimate))
        nk, means, covariances = _mstep_core.estimate_parameters(
            *stats, self.layout, self.reg_covar, self.eps)
        chol = precision_cholesky(covariances, self.layout, self.float32)
        return nk / total_weight, means, covariances, chol

    def _constrained_estimate(self, stats, previous):
        """``(nk, means, CovarianceEstimate)`` of one of the ten constrained models."""
        # The compiled step gives the components' sample covariances W_k / n_k without
        # reg_covar, which the constrained fit adds itself.
        nk, means, sample_covariances = _mstep_core.estimate_parameters(
            *stats, self.form, 0.0, self.eps)
        scale = nk[:, None, None] if self.form == "full" else nk[:, None]
        scatter = sample_covariances * scale
        counts = nk
        if self.prior is not None:
            means, counts, scatter = self.prior.posterior_mode_statistics(nk, means, scatter)
        start = previous[4] if previous is not None and len(previous) > 4 else None
        model = mclust_name(self.covariance_type)
        try:
            if start is None and self.screening and model in SEARCHED_AXES:
                start = estimate_covariances("EEE", counts, scatter, self.reg_covar)
            estimate = estimate_covariances(model, counts, scatter, self.reg_covar,
                                            previous=start, **self._inner_iterations)
        except ValueError as error:
            if str(error) != ILL_DEFINED_COVARIANCE:
                raise
            raise ill_defined_covariance(self.float32) from None
        return nk, means, estimate

    def _constrained_covariances(self, estimate):
        """``(covariances, precisions_cholesky, estimate)``: the tail of a constrained θ,
        the covariances in the shapes of the model's layout."""
        covariances = estimate.covariances
        if self.layout == "tied":
            covariances = covariances[0]
        elif self.layout == "spherical":
            covariances = covariances[:, 0]
        chol = precision_cholesky(covariances, self.layout, self.float32)
        return covariances, chol, estimate

    def em_step(self, source, n_threads):
        """A function θ → (lower bound under θ, next θ): one EM iteration over ``source``."""
        bound_type, total_weight, float32 = self.bound_type, source.total_weight, self.float32
        isfinite = math.isfinite
        if isinstance(source, InMemorySource) and not self.constrained:
            fused = source.fused_em_step(self.layout, self.reg_covar, self.eps, n_threads,
                                         self.log_resp_floor)

            def step(theta):
                loglik, theta = fused(theta)
                if theta is None or not isfinite(loglik):
                    source.check_finite()
                    if theta is None:
                        raise ill_defined_covariance(float32)
                return bound_type(loglik / total_weight), theta

            return step

        def step(theta):
            loglik, stats = source.statistics(self.kernel_parameters(theta), n_threads)
            return (self.lower_bound(loglik, theta, total_weight),
                    self.m_step(stats, previous=theta))

        return step


# ----------------------------------------------------------------------------------------
# online EM
# ----------------------------------------------------------------------------------------


class StreamState(NamedTuple):
    """Where online EM stands in a stream of batches: the running statistics, expressed in
    units of ``weight`` (the total weight of the batch that last updated them), and the
    number of batches blended into them."""

    statistics: Statistics
    weight: float
    n_batches: int


def learning_rate(n_batches, learning_offset, learning_decay):
    """The step size ρ = (learning_offset + t)^(−learning_decay) of the batch that follows
    t batches (t ≥ 1; the first batch of a stream replaces the statistics, ρ = 1)."""
    return (learning_offset + n_batches) ** -learning_decay


class OnlineModel:
    """Online EM of ``model`` over a stream of batches: stepwise EM (Cappé & Moulines,
    2009, "On-line expectation-maximization algorithm for latent data models").

    θ is ``(the model's θ, StreamState or None)``. A step over one batch computes the
    batch's statistics under θ, blends them into the running statistics per unit of weight,

        s ← (1 − ρ) s + ρ ŝ(batch),

    with ρ from :func:`learning_rate`, and applies the model's M-step to the result. Each
    batch is one observation of the stream, whatever its size or total weight. The bound a
    step returns is the model's bound for the batch under θ (for EM, the batch's weighted
    average log-likelihood before the update). With ρ = 1 a step is one EM iteration on the
    batch.
    """

    def __init__(self, model, learning_offset, learning_decay):
        self.model = model
        self.form = model.form
        self.learning_offset = float(learning_offset)
        self.learning_decay = float(learning_decay)

    def kernel_parameters(self, theta):
        return self.model.kernel_parameters(theta[0])

    def blended(self, state, stats, weight):
        """The stream's state after a batch of total ``weight`` with statistics ``stats``."""
        if state is None:
            return StreamState(stats, weight, 1)
        rho = learning_rate(state.n_batches, self.learning_offset, self.learning_decay)
        # Running statistics per unit of weight, re-expressed in the batch's units.
        keep = (1.0 - rho) * weight / state.weight
        running = state.statistics.recentred(stats.shifts)
        if stats.form == "pooled":  # a stream whose state was saved in the full form
            running = running.pooled()
        blended = Statistics(keep * running.nk + rho * stats.nk,
                             keep * running.sums + rho * stats.sums,
                             keep * running.scatter + rho * stats.scatter, stats.shifts)
        return StreamState(blended, weight, state.n_batches + 1)

    def em_step(self, source, n_threads):
        """A function θ → (bound, next θ): one step of online EM over the batch ``source``."""
        model, total_weight = self.model, source.total_weight

        def step(theta):
            parameters, state = theta
            loglik, stats = source.statistics(model.kernel_parameters(parameters), n_threads)
            state = self.blended(state, stats, total_weight)
            # θ warm-starts the iterative M-steps of mclust's constrained models.
            return model.lower_bound(loglik, parameters, total_weight), (
                model.m_step(state.statistics, parameters), state)

        return step


# ----------------------------------------------------------------------------------------
# several parameter sets at once
# ----------------------------------------------------------------------------------------


class ParameterSets(NamedTuple):
    """The θ of each of several parameter sets of one model (None for a set that was
    dropped), the lower bound each had at the last step it took (−inf before the first),
    the indices of the sets that have converged, and the sets that are copies of an
    earlier one, as pairs (copy, original) (see :class:`MultiSetModel`)."""

    thetas: tuple
    bounds: tuple
    settled: frozenset = frozenset()
    copies: tuple = ()

    @classmethod
    def of(cls, thetas):
        return cls(tuple(thetas), (-np.inf,) * len(thetas))

    def keep_best(self, n_sets, always=None):
        """The ``n_sets`` live sets with the highest bounds (earlier sets win ties), and
        the set ``always`` (an index, if given) if it is live."""
        kept = set(self.ranked()[:n_sets])
        if always is not None:
            kept.add(always)
        return self._replace(thetas=tuple(t if i in kept else None
                                          for i, t in enumerate(self.thetas)))

    def only(self, admissible):
        """The sets that ``admissible`` accepts; the others are dropped. It is given the
        list of the live sets' θ and says of each whether it is admissible."""
        live = [i for i, theta in enumerate(self.thetas) if theta is not None]
        kept = {i for i, accepted in zip(live, admissible([self.thetas[i] for i in live]))
                if accepted}
        return self._replace(thetas=tuple(theta if i in kept else None
                                          for i, theta in enumerate(self.thetas)))

    def ranked(self):
        """Indices of the live sets, highest bound first (earlier sets first among
        equals)."""
        live = [i for i, theta in enumerate(self.thetas) if theta is not None]
        return sorted(live, key=lambda i: -self.bounds[i])

    def best(self):
        """Index of the live set with the highest bound (the first among equals)."""
        ranked = self.ranked()
        return ranked[0] if ranked else None


class Race(NamedTuple):
    """A round of successive halving among parameter sets: after ``n_steps`` steps the
    ``n_kept`` best go on. A set that could not reach the ``n_kept``-th best bound even
    if it rose ``margin`` times its last rise at every step left is out of the race: the
    round cannot keep it, so it stops climbing. ``reference`` (an index, or None) climbs
    whatever its rank."""

    n_kept: int
    n_steps: int
    margin: float
    reference: object = None

    def out_of_reach(self, bounds, previous, climbing, steps_left):
        """The sets of ``climbing`` that are out of the race after a step from bounds
        ``previous`` to ``bounds``, with ``steps_left`` steps to go."""
        live = sorted((b for b in bounds if b > -np.inf), reverse=True)
        if len(live) <= self.n_kept:
            return set()
        cut = live[self.n_kept - 1]
        return {i for i in climbing
                if i != self.reference and -np.inf < previous[i] <= bounds[i] < cut
                and bounds[i] + self.margin * steps_left * (bounds[i] - previous[i]) < cut}


class MultiSetModel:
    """Several parameter sets of ``model`` climbed together: a step scores every live set
    in one pass over the rows (the source's ``statistics_of_sets``, under the model's
    ``kernel_parameters_of_sets``) and applies the model's M-step to all of them in one
    call (its ``m_step_of_sets``). θ is a :class:`ParameterSets`; the bound is the sum of
    the live sets' bounds (EM raises each, so the sum changes by less than ``tol`` only
    when every set's bound does). A set whose bound is not finite or whose M-step finds
    an ill-defined covariance is dropped, not an error: the others go on.

    With ``tol``, a set whose bound changed by less than ``tol`` at its last step has
    settled: it takes no further steps (its θ and bound stay as they are), so the sets
    still climbing no longer pay a pass and an M-step for each set that has arrived. A
    copy (the same start as an earlier set) takes no step of its own either: it follows
    its original, so the sets rank, converge and are kept exactly as if it climbed. With
    a :class:`Race`, a set out of the race settles too."""

    def __init__(self, model, tol=None, race=None):
        self.model = model
        self.form = model.form
        self.tol = tol
        self.race = race

    def em_step(self, source, n_threads):
        model, total_weight, tol, race = self.model, source.total_weight, self.tol, self.race
        steps_taken = 0

        def step(sets):
            nonlocal steps_taken
            following = {copy for copy, _ in sets.copies}
            climbing = [i for i, theta in enumerate(sets.thetas) if theta is not None
                        and i not in sets.settled and i not in following]
            results = source.statistics_of_sets(
                model.kernel_parameters_of_sets([sets.thetas[i] for i in climbing]),
                n_threads)
            thetas = list(sets.thetas)
            bounds = [b if theta is not None else -np.inf
                      for theta, b in zip(sets.thetas, sets.bounds)]
            settled = set(sets.settled)
            stepping, new_bounds, statistics = [], [], []
            for i, (loglik, stats) in zip(climbing, results):
                thetas[i], bounds[i] = None, -np.inf
                bound = model.lower_bound(loglik, sets.thetas[i], total_weight)
                if math.isfinite(bound):
                    stepping.append(i)
                    new_bounds.append(bound)
                    statistics.append(stats)
            new_thetas = model.m_step_of_sets(statistics,
                                              [sets.thetas[i] for i in stepping])
            for i, bound, theta in zip(stepping, new_bounds, new_thetas):
                if theta is None:
                    continue
                thetas[i] = theta
                if tol is not None and abs(bound - sets.bounds[i]) < tol:
                    settled.add(i)
                bounds[i] = bound
            steps_taken += 1
            if race is not None:
                settled |= race.out_of_reach(bounds, sets.bounds, climbing,
                                             race.n_steps - steps_taken)
            for copy, original in sets.copies:
                if thetas[copy] is not None:
                    thetas[copy], bounds[copy] = thetas[original], bounds[original]
            return (math.fsum(b for b in bounds if b > -np.inf),
                    sets._replace(thetas=tuple(thetas), bounds=tuple(bounds),
                                  settled=frozenset(settled)))

        return step


# ----------------------------------------------------------------------------------------
# the one loop
# ----------------------------------------------------------------------------------------


class Interrupted(Exception):
    """Raised by :func:`run_em` when its ``stop`` event is set between two iterations."""


class EMResult(NamedTuple):
    """The best of a run's starts: its parameters, final lower bound, the bound after each
    iteration (float64: the estimator stores them in the dtype its attributes have), the
    number of iterations, whether it converged, the labels of the final E-step (None
    unless asked for), and the final lower bound of every start, in order."""

    parameters: tuple
    lower_bound: float
    lower_bounds: list
    n_iter: int
    converged: bool
    labels: object = None
    start_bounds: tuple = ()


# Iterations between two checks of a climbing start's admissibility (run_em): the check
# costs about a tenth of an EM iteration on small data, and a collapsed start that climbs a
# few iterations more loses nothing.
HALT_INTERVAL = 4


def run_em(model, source, start, *, n_init, max_iter, tol, n_threads, verbose=0,
           verbose_interval=10, final_labels=False, stop=None, warn=True, admissible=None):
    """EM from ``n_init`` starts; the one with the best lower bound is returned.

    ``start(i)`` gives start ``i`` as ``(θ, lower bound before the first iteration)``
    (``-inf`` for a fresh start; a warm start passes its previous bound, so that a model
    already at its optimum converges in one iteration). EM runs until the bound changes by
    less than ``tol`` or for ``max_iter`` iterations; with ``max_iter`` 0 the last start is
    returned as it is. A ConvergenceWarning says when the best run did not converge.
    Verbose output follows scikit-learn's format. With ``final_labels`` the result carries
    the labels of a final E-step with the chosen parameters (what ``fit_predict`` returns).
    ``stop``, a ``threading.Event``, ends the run with :class:`Interrupted` at the next
    iteration once it is set: how work running in other threads is cancelled (Ctrl-C
    reaches the main thread only). ``warn=False`` leaves the ConvergenceWarning out (for
    runs that are cut short on purpose). ``admissible(θ)``, if given, says whether a
    start's result may be kept: an inadmissible one is kept only when no start gives an
    admissible one. So a start stops climbing once its θ is inadmissible (a collapsed
    component can take EM, and an iterative M-step, many slow iterations to settle), and
    when every start stopped so, the highest of them climbs on to convergence.
    """
    step = model.em_step(source, n_threads)
    halt = None if admissible is None else (lambda theta: not admissible(theta))
    best = None
    start_bounds = []
    for init in range(n_init):
        if verbose >= 1:
            print(f"Initialization {init}")
        theta, lower_bound = start(init)
        if max_iter == 0:
            best = EMResult(theta, -np.inf, [], 0, False)
            start_bounds.append(-np.inf)
            continue
        result, halted = _climb(step, theta, lower_bound, max_iter, tol, verbose,
                                verbose_interval, stop, halt)
        start_bounds.append(result.lower_bound)
        rank = (not halted and (admissible is None or admissible(result.parameters)),
                result.lower_bound)
        if best is None or rank > best_rank:
            best, best_rank, best_init, best_halted = result, rank, init, halted
    if max_iter > 0 and best_halted:
        best = _climb_on(step, best, max_iter, tol, verbose, verbose_interval, stop)
        start_bounds[best_init] = best.lower_bound
    best = best._replace(start_bounds=tuple(start_bounds))
    if warn and not best.converged and max_iter > 0:
        # Imported here: importing the engine must not import scikit-learn (the command
        # line's predict and sample use it without), and a fit has imported it by now.
        from gmmfast._compat import ConvergenceWarning

        warnings.warn(
            "Best performing initialization did not converge. "
            "Try different init parameters, or increase max_iter, "
            "tol, or check for degenerate data.",
            ConvergenceWarning,
        )
    if final_labels:
        best = best._replace(labels=source.labels(model.kernel_parameters(best.parameters),
                                                  n_threads))
    return best


def _climb(step, theta, lower_bound, max_iter, tol, verbose, verbose_interval, stop,
           halt=None):
    """EM iterations from θ until the lower bound changes by less than ``tol``, or until
    ``halt(θ)`` (asked every HALT_INTERVAL iterations): ``(EMResult, whether it halted)``."""
    lower_bounds = []
    converged = halted = False
    n_iter = 0
    start = iteration_start = time.time()
    for n_iter in range(1, max_iter + 1):
        if stop is not None and stop.is_set():
            raise Interrupted("stopped by the caller")
        previous = lower_bound
        lower_bound, theta = step(theta)
        lower_bounds.append(lower_bound)
        change = lower_bound - previous
        if verbose and n_iter % verbose_interval == 0:
            iteration_start = _print_iteration(verbose, n_iter, iteration_start, change)
        if abs(change) < tol:
            converged = True
            break
        if (halt is not None and n_iter % HALT_INTERVAL == 0 and n_iter < max_iter
                and halt(theta)):
            halted = True
            break
    if verbose:
        _print_init_end(verbose, converged, lower_bound, start)
    return EMResult(theta, lower_bound, lower_bounds, n_iter, converged), halted


def _climb_on(step, result, max_iter, tol, verbose, verbose_interval, stop):
    """A halted climb continued to convergence (or to ``max_iter`` iterations in all):
    the iterations it would have made without halting."""
    more, _ = _climb(step, result.parameters, result.lower_bound, max_iter - result.n_iter,
                     tol, verbose, verbose_interval, stop)
    return more._replace(lower_bounds=result.lower_bounds + more.lower_bounds,
                         n_iter=result.n_iter + more.n_iter)


def _print_iteration(verbose, n_iter, iteration_start, change):
    now = time.time()
    if verbose == 1:
        print(f"  Iteration {n_iter}")
    else:
        print(f"  Iteration {n_iter}\t time lapse {now - iteration_start:.5f}s\t "
              f"ll change {change:.5f}")
    return now


def _print_init_end(verbose, converged, lower_bound, start):
    status = "converged" if converged else "did not converge"
    if verbose == 1:
        print(f"Initialization {status}.")
    else:
        print(f"Initialization {status}. time lapse {time.time() - start:.5f}s\t "
              f"lower bound {lower_bound:.5f}.")


def scale_overflow_error(source):
    """The ValueError to give when a fit of ``source`` found no positive-definite
    covariance because the data's scale overflows its dtype's arithmetic (squared
    deviations beyond the largest float), or None when the scale is not the cause. Called
    only after such a failure."""
    info = np.finfo(source.dtype)
    reach = source.magnitude()
    # Squared deviations, summed over a few thousand rows, must stay finite.
    if not np.isfinite(reach) or reach < np.sqrt(info.max) / 1e4:
        return None
    advice = " or pass float64 data" if source.dtype == np.float32 else ""
    return ValueError(
        f"The data's scale overflows {source.dtype} arithmetic: its values reach about "
        f"{reach:.3g}, and EM needs their squares (up to {info.max:.3g} in {source.dtype}). "
        f"Scale the data before fitting (for instance divide each column by its standard "
        f"deviation, as sklearn.preprocessing.StandardScaler does){advice}."
    )


# ----------------------------------------------------------------------------------------
# information criteria
# ----------------------------------------------------------------------------------------


def information_criteria(mean_loglik, total_weight, n_parameters):
    """``(bic, aic)`` of a model with ``n_parameters`` free parameters whose weighted
    average log-likelihood on data of total weight ``total_weight`` is ``mean_loglik``."""
    log_likelihood = mean_loglik * total_weight
    return (-2 * log_likelihood + n_parameters * np.log(total_weight),
            -2 * log_likelihood + 2 * n_parameters)
