"""Rows with missing entries (NaN) as a source of the EM engine: exact EM over the
observed entries (Ghahramani & Jordan 1994; DESIGN §5).

For a row with observed columns o and missing columns m, under component k:

- the E-step uses the marginal density N(x_o | μ_o, Σ_oo);
- the statistics are the complete-data ones of E[x | x_o, k], whose missing part is
  x̂_m = μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o), plus the conditional covariance
  Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om in the scatter, weighted by w r_ik;

so the engine's M-step serves unchanged.

Rows are grouped by their pattern of missing entries once, at construction. Within a
pattern, x̂ − μ = T (x_o − μ_o) with T the D × |o| matrix whose rows o are the identity and
rows m are Σ_mo Σ_oo⁻¹: the pattern's statistics about μ are (n, T s, T S Tᵀ + n C) from
the statistics (n, s, S) of its observed columns under the marginal mixture. Those are
complete-data statistics, so the compiled fused pass computes them, in X's dtype (float32
stays float32, as for complete rows), and each (pattern, component) costs one
factorisation of Σ_oo per iteration. Rows without a missing entry are the first group and
take the complete-data pass unchanged: without any NaN the statistics are the in-memory
source's bit for bit.

A row with no observed entry carries no information: its likelihood is 1 whatever the
parameters. A fit skips it: it adds nothing to the statistics and its weight is not part
of the total weight (the lower bound is the average log-likelihood of the rows with an
observation). Scoring gives it the log-density 0 and the mixture weights as its
responsibilities (its label is the heaviest component).

Initialisation with missing entries:

- k-means measures distances over the coordinates a row has (each row goes to the
  nearest centre over its observed coordinates); a centre's coordinate is the mean of the
  observed entries of its cluster in that column (unchanged when there is none);
- k-means++ seeds (for ``kmeans`` and ``k-means++``) are drawn from a sample of the rows
  with the fewest missing entries: the complete rows when there are at least 100 per
  cluster, else also those with one missing entry, and so on. Missing entries left in the
  sample, in ``random_from_data``'s rows and in the rows that refill empty clusters are
  imputed by the column means (the weighted means of each column's observed entries);
- the statistics of a partition (``kmeans``) or of random responsibilities (``random``)
  count a missing entry at the shift (the cluster's mean, the data's mean): in the counts,
  not in the sums or the scatter. The initial variances are then those of the observed
  entries shrunk by the fraction observed; EM's first M-step replaces them with the
  conditional moments.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from gmmfast import _mstep_core
from gmmfast._engine import (
    InMemorySource,
    KernelParameters,
    SetStatistics,
    Statistics,
    log_resp_floor_of,
    ordered_sum,
)
from gmmfast._initialisation import (
    SEEDING_ROWS_PER_CLUSTER,
    random_resp_blocks,
    seeding_sample,
    stats_from_labels,
    weighted_mean_and_variance,
)
from gmmfast._kernels import em as _em  # the widest variant this CPU runs
from gmmfast._mstep import covariances_from_cholesky, ill_defined_covariance

LOG_2PI = np.log(2.0 * np.pi)

# The estimators' ``nan_policy``, with SciPy's names: "raise" refuses NaN (scikit-learn's
# behaviour), "omit" treats it as a missing entry.
NAN_POLICIES = ("raise", "omit")

# Rows from which a pattern's pass gets all the threads (one OpenMP team per pass); the
# passes of smaller patterns run side by side, one thread each. Starting a team costs
# microseconds on idle cores but milliseconds when they are busy: on 2 shared cores under
# load, a 2-thread pass over 600 rows (D = 5, K = 16) took 20 ms against 0.09 ms on one
# thread. With b's shape at 10 % missing (8 patterns of ~48 000 rows, 225 smaller), an
# iteration on 2 threads took 1.1 s with a team per pattern, 0.60 s with teams from
# 16 384 rows and 0.44 s from 65 536 (1 thread: 0.29-0.36 s; the machine was saturated).
PARALLEL_GROUP_ROWS = 65536


# ----------------------------------------------------------------------------------------
# rows grouped by pattern
# ----------------------------------------------------------------------------------------


class RowGroup(NamedTuple):
    """The rows of one pattern of missing entries: their indices in X (increasing), an
    in-memory source of their observed columns (X's dtype, with their weights), and the
    observed and missing column indices."""

    rows: np.ndarray
    source: InMemorySource
    observed: np.ndarray
    missing: np.ndarray


def group_rows(X, sample_weight=None):
    """``(groups, empty_rows)``: the rows of X that have an observed entry, grouped by
    their pattern of NaN (the complete rows, if any, first; X itself when it has no NaN),
    and the indices of the rows with no observed entry."""
    n_samples, n_features = X.shape
    missing = np.isnan(X)
    keys = _pattern_keys(missing)
    # A stable sort keeps each pattern's rows in increasing order; the complete rows'
    # key, 0, comes first.
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    groups, empty_rows = [], np.empty(0, dtype=np.intp)
    for rows in np.split(order, starts):
        if not rows.size:  # X has no rows
            continue
        observed = np.flatnonzero(~missing[rows[0]])
        if observed.size == 0:
            empty_rows = rows
            continue
        if rows.size == n_samples and observed.size == n_features:
            values = X
        else:
            values = np.ascontiguousarray(X.take(rows, axis=0)[:, observed])
        weights = None if sample_weight is None else sample_weight[rows]
        groups.append(RowGroup(rows, InMemorySource(values, weights), observed,
                               np.flatnonzero(missing[rows[0]])))
    return groups, empty_rows


def _pattern_keys(missing):
    """An unsigned integer per row, the same for the rows with the same pattern of missing
    entries and smallest for a complete row: the bits of the pattern, in the narrowest
    type that holds them (NumPy sorts 8- and 16-bit keys by radix, several times faster
    than by comparison); beyond 64 columns the index of the pattern in lexicographic
    order."""
    packed = np.packbits(missing, axis=1)
    n_bytes = packed.shape[1]
    if n_bytes > 8:
        return np.unique(packed, axis=0, return_inverse=True)[1].reshape(-1)
    width = 1 if n_bytes == 1 else 2 if n_bytes == 2 else 4 if n_bytes <= 4 else 8
    padded = np.zeros((len(packed), width), dtype=np.uint8)
    padded[:, :n_bytes] = packed
    return padded.view(f"u{width}").reshape(-1)


def has_observation(X):
    """(n_samples,) bool: whether each row of X has an observed (non-NaN) entry."""
    return ~np.isnan(X).all(axis=1)


def observed_row_weights(X, sample_weight):
    """The weights of X's rows in an average of their scores under ``nan_policy="omit"``:
    ``sample_weight`` (None: ones) with 0 for the rows with no observed entry; None when
    every row has one and no weights were given."""
    observed = has_observation(X)
    if observed.all():
        return sample_weight
    if not observed.any():
        raise ValueError(
            "Every row of X is missing all its entries (NaN): there is nothing to score. "
            "Pass rows with at least one observed value."
        )
    weights = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    return np.where(observed, weights, 0.0)


def check_no_infinity(X):
    """NaN marks a missing entry; an infinity is an error, with scikit-learn's message."""
    if np.isinf(X).any():
        raise ValueError(f"Input X contains infinity or a value too large for {X.dtype!r}.")


# ----------------------------------------------------------------------------------------
# the marginal and conditional distributions of a pattern
# ----------------------------------------------------------------------------------------


class Marginal(NamedTuple):
    """A mixture over the observed columns of a pattern, in the kernels' form, and the
    conditional distribution of the missing columns given the observed ones:
    ``regression`` Σ_mo Σ_oo⁻¹ ((F, |m|, |o|); None in the diag form, where it is 0) and
    ``conditional_covariances`` ((F, |m|, |m|), or the variances (K, |m|) in the diag form).
    F is the number of factors: K, or 1 for tied covariances."""

    kernel_params: KernelParameters
    regression: np.ndarray | None
    conditional_covariances: np.ndarray


def kernel_covariances(kernel_params):
    """The covariances in the factors' shape: those the parameters carry, or else Σ = U⁻ᵀ
    U⁻¹ from the factors."""
    covariances = getattr(kernel_params, "covariances", None)
    if covariances is not None:
        return covariances
    chol = kernel_params[1]
    return covariances_from_cholesky(chol, "full" if chol.ndim == 3 else "diag")


def marginal(kernel_params, covariances, observed, missing):
    """The :class:`Marginal` of the mixture ``kernel_params`` (covariances ``covariances``,
    in the factors' shape) over the ``observed`` columns, given the ``missing`` ones."""
    means, chol, log_norm = kernel_params[:3]
    if chol.ndim == 2:  # diag form: the columns are independent given the component
        observed_chol = np.ascontiguousarray(chol[:, observed])
        dropped_log_det = np.log(chol[:, missing]).sum(axis=1)
        regression = None
        conditional = covariances[:, missing]
    else:
        covariances_oo = np.ascontiguousarray(covariances[:, observed[:, None], observed])
        observed_chol = _mstep_core.precisions_cholesky(covariances_oo, "full")
        if observed_chol is None:  # Σ_oo of a positive definite Σ is positive definite
            raise ill_defined_covariance(False)
        dropped_log_det = _log_det(chol) - _log_det(observed_chol)
        # Σ_oo⁻¹ = U Uᵀ with U the marginal's factor.
        regression = (covariances[:, missing[:, None], observed] @ observed_chol
                      @ observed_chol.transpose(0, 2, 1))
        conditional = (covariances[:, missing[:, None], missing]
                       - regression @ covariances[:, observed[:, None], missing])
    # log π_k + log det U_k − ½ D log 2π loses the missing columns' share of each term.
    marginal_log_norm = log_norm - dropped_log_det + 0.5 * missing.size * LOG_2PI
    marginal_params = KernelParameters(np.ascontiguousarray(means[:, observed]),
                                       observed_chol, marginal_log_norm,
                                       log_resp_floor=log_resp_floor_of(kernel_params))
    return Marginal(marginal_params, regression, conditional)


def _log_det(upper):
    return np.log(np.diagonal(upper, axis1=1, axis2=2)).sum(axis=1)


def completed_statistics(stats, group, shifts, conditional=None):
    """Statistics over all D columns about ``shifts`` (K, D) from ``stats`` of the
    ``group``'s observed columns about ``shifts[:, observed]``.

    With the pattern's ``conditional`` (a :class:`Marginal`) each missing entry counts at
    its conditional expectation, with the conditional covariance added to the scatter;
    without, at the shift (it adds nothing to the sums and the scatter).
    """
    observed, missing = group.observed, group.missing
    nk, observed_sums, observed_scatter = stats.nk, stats.sums, stats.scatter
    n_components, n_features = shifts.shape
    sums = np.zeros((n_components, n_features))
    full = observed_scatter.ndim == 3
    scatter = np.zeros((n_components, n_features, n_features) if full
                       else (n_components, n_features))
    if conditional is not None and full:
        lift = np.zeros((len(conditional.regression), n_features, observed.size))
        lift[:, observed, np.arange(observed.size)] = 1.0
        lift[:, missing, :] = conditional.regression
        sums[...] = (lift @ observed_sums[:, :, None])[:, :, 0]
        scatter[...] = lift @ observed_scatter @ lift.transpose(0, 2, 1)
        # One triangle of the rounding, so that the M-step's Σ is exactly symmetric.
        scatter = 0.5 * (scatter + scatter.transpose(0, 2, 1))
        scatter[:, missing[:, None], missing] += (nk[:, None, None]
                                                  * conditional.conditional_covariances)
    elif full:
        sums[:, observed] = observed_sums
        scatter[:, observed[:, None], observed] = observed_scatter
    else:
        sums[:, observed] = observed_sums
        scatter[:, observed] = observed_scatter
        if conditional is not None:
            scatter[:, missing] += nk[:, None] * conditional.conditional_covariances
    return Statistics(nk, sums, scatter, shifts)


def grouped_statistics(groups, kernel_params, n_threads):
    """``(Σ w log p(x_o), Statistics)`` of grouped rows (see :func:`group_rows`) about the
    kernel parameters' means: the complete rows' from the complete-data pass, each
    pattern's from the pass over its observed columns under the marginal mixture,
    completed; added in group order."""
    means, precisions_chol = kernel_params[:2]
    if not groups:
        return 0.0, Statistics.zeros("full" if precisions_chol.ndim == 3 else "diag", means)
    covariances = _covariances_if_needed(groups, kernel_params)

    def group_statistics(group, threads):
        if not group.missing.size:
            return group.source.statistics(kernel_params, threads)
        conditional = marginal(kernel_params, covariances, group.observed, group.missing)
        loglik, observed_stats = group.source.statistics(conditional.kernel_params, threads)
        return loglik, completed_statistics(observed_stats, group, means, conditional)

    results = map_groups(group_statistics, groups, n_threads)
    total = results[0][0]
    for loglik, _ in results[1:]:
        total += loglik
    return total, ordered_sum([stats for _, stats in results])


def _covariances_if_needed(groups, kernel_params):
    """The covariances (see :func:`kernel_covariances`) if a group has a missing entry."""
    if all(not group.missing.size for group in groups):
        return None
    return kernel_covariances(kernel_params)


def map_groups(func, groups, n_threads):
    """``[func(group, threads) for group in groups]``, in group order, on ``n_threads``
    threads (<= 0: the OpenMP default).

    A group of at least ``PARALLEL_GROUP_ROWS`` rows gets all the threads for its pass;
    the smaller ones run whole, one thread each, on a pool of Python threads, side by
    side (the compiled passes release the GIL; the NumPy work between them does not
    overlap). The compiled passes give the same result on any number of threads, so
    neither does the list depend on it.
    """
    n_threads = n_threads if n_threads > 0 else _em.max_threads()
    if n_threads == 1:
        return [func(group, 1) for group in groups]
    results = [None] * len(groups)
    small = []
    for index, group in enumerate(groups):
        if len(group.rows) >= PARALLEL_GROUP_ROWS:
            results[index] = func(group, n_threads)
        else:
            small.append(index)
    if small:
        small.sort(key=lambda i: -len(groups[i].rows))  # the largest first: balanced ends
        with ThreadPoolExecutor(n_threads) as pool:
            for index, result in zip(small, pool.map(lambda i: func(groups[i], 1), small)):
                results[index] = result
    return results


def missing_block_statistics(X, sample_weight, kernel_params, n_threads=0):
    """:func:`gmmfast._engine.block_statistics` of a block of rows that may hold NaN (the
    unit of work of a source of blocks, such as Dask's): grouped here, then
    :func:`grouped_statistics`."""
    return grouped_statistics(group_rows(X, sample_weight)[0], kernel_params, n_threads)


# ----------------------------------------------------------------------------------------
# scoring
# ----------------------------------------------------------------------------------------


def score_groups(groups, empty_rows, n_samples, dtype, kernel_params, labels=False,
                 resp=False, n_threads=0, log_prob=True, finite_check=None):
    """:func:`gmmfast._engine.score_arrays` of grouped rows: each row's marginal density
    over its observed columns; a row with no observed entry has log-density 0 and the
    mixture weights as responsibilities."""
    n_components = kernel_params[0].shape[0]
    log_prob_out = np.empty(n_samples, dtype=dtype) if log_prob else None
    label_out = np.empty(n_samples, dtype=np.int64) if labels else None
    resp_out = np.empty((n_samples, n_components), dtype=dtype) if resp else None
    outputs = dict(labels=labels, resp=resp, log_prob=log_prob, finite_check=finite_check)
    covariances = _covariances_if_needed(groups, kernel_params)

    def group_scores(group, threads):
        group_params = kernel_params
        if group.missing.size:
            group_params = marginal(kernel_params, covariances, group.observed,
                                    group.missing).kernel_params
        parts = group.source.score(group_params, threads, **outputs)
        for out, part in zip((log_prob_out, label_out, resp_out), parts):
            if out is not None:
                out[group.rows] = part

    map_groups(group_scores, groups, n_threads)
    if empty_rows.size:
        log_weights = _log_weights(kernel_params)
        for out, value in zip((log_prob_out, label_out, resp_out),
                              (0.0, np.argmax(log_weights), np.exp(log_weights))):
            if out is not None:
                out[empty_rows] = value
    return log_prob_out, label_out, resp_out


def _log_weights(kernel_params):
    """log π_k: the log-density of the marginal over no column, normalised."""
    means, chol, log_norm = kernel_params[:3]
    log_det = np.log(chol).sum(axis=1) if chol.ndim == 2 else _log_det(chol)
    log_weights = log_norm - log_det + 0.5 * means.shape[1] * LOG_2PI
    return log_weights - np.logaddexp.reduce(log_weights)


def score_missing(X, kernel_params, labels=False, resp=False, n_threads=0, log_prob=True,
                  finite_check=None):
    """:func:`gmmfast._engine.score_arrays` of rows that may hold NaN (missing entries):
    the same outputs, from each row's marginal density over its observed columns.

    ``finite_check`` is called with an infinity's block of observed values (which holds no
    NaN) and must raise. A row with no observed entry has log-density 0, the mixture
    weights as responsibilities and the heaviest component as label.
    """
    X = np.ascontiguousarray(X)
    groups, empty_rows = group_rows(X)
    return score_groups(groups, empty_rows, X.shape[0], X.dtype, kernel_params, labels,
                        resp, n_threads, log_prob, finite_check)


# ----------------------------------------------------------------------------------------
# imputation
# ----------------------------------------------------------------------------------------


def impute_missing(X, kernel_params, random_state=None, n_threads=0):
    """A copy of X (validated, float32/float64, NaN for the missing entries, no infinity)
    with every missing entry filled in under the mixture ``kernel_params``.

    Without ``random_state``: by the conditional mean Σ_k r_ik E[x_m | x_o, k], with
    r_ik = p(k | x_o) the responsibilities of the row's observed entries. With a
    ``random_state`` (a ``RandomState``): by a draw from the conditional distribution
    p(x_m | x_o), a component from r_i, then its Gaussian conditional. A row with no
    observed entry gets the mixture's mean, or a draw from the mixture. The complete rows
    are copied untouched.
    """
    X = np.array(X, order="C")
    groups, empty_rows = group_rows(X)
    groups = [group for group in groups if group.missing.size]
    if not groups and not empty_rows.size:
        return X
    covariances = kernel_covariances(kernel_params)
    means = kernel_params.means
    # Each group draws from its own stream, seeded by one draw and its first row: the
    # values do not depend on the threads.
    seed = None if random_state is None else random_state.randint(np.iinfo(np.int32).max)

    def rng_of(rows):
        return None if seed is None else np.random.RandomState([seed, rows[0]])

    def fill(group, threads):
        conditional = marginal(kernel_params, covariances, group.observed, group.missing)
        resp = group.source.score(conditional.kernel_params, threads, resp=True,
                                  log_prob=False)[2]
        affine = ConditionalMeans.of(means, group, conditional.regression)
        X[group.rows[:, None], group.missing] = _filled(
            group.source.X, resp, affine, conditional.conditional_covariances,
            rng_of(group.rows))

    map_groups(fill, groups, n_threads)
    if empty_rows.size:
        prior = np.broadcast_to(np.exp(_log_weights(kernel_params)),
                                (empty_rows.size, len(means)))
        nothing_observed = np.empty((empty_rows.size, 0))
        X[empty_rows] = _filled(nothing_observed, prior, ConditionalMeans(means, None),
                                covariances, rng_of(empty_rows))
    return X


# Rows per block of the conditional means' products: bounds the temporary to
# IMPUTE_BLOCK_ROWS × K × |m| numbers.
IMPUTE_BLOCK_ROWS = 8192


class ConditionalMeans(NamedTuple):
    """The conditional means of a pattern's missing entries as affine maps of its observed
    ones, E[x_m | x_o, k] = ``offsets[k]`` + ``regressions[k]`` x_o: offsets (K, |m|),
    regressions (K, |m|, |o|), or None where the columns are independent given the
    component (diag form: the conditional mean is μ_m)."""

    offsets: np.ndarray
    regressions: np.ndarray | None

    @classmethod
    def of(cls, means, group, regression):
        """Of the ``group``'s pattern, from its :class:`Marginal`'s ``regression``
        Σ_mo Σ_oo⁻¹: E[x_m | x_o, k] = μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o)."""
        offsets = means[:, group.missing]
        if regression is None:
            return cls(offsets, None)
        regressions = np.broadcast_to(regression, (len(means),) + regression.shape[1:])
        offsets = offsets - np.einsum("kmo,ko->km", regressions, means[:, group.observed])
        return cls(offsets, regressions)

    def of_component(self, k, values):
        """E[x_m | x_o, k] of the rows ``values`` (n, |o|), (n, |m|) (or (1, |m|) when it
        does not depend on them)."""
        if self.regressions is None:
            return self.offsets[k][None]
        return self.offsets[k] + values @ self.regressions[k].T

    def mixed(self, values, resp):
        """Σ_k r_ik E[x_m | x_o, k] of the rows ``values`` with responsibilities ``resp``:
        Σ_k r_ik b_k + Σ_k r_ik A_k x_o, every A_k x_o of a block of rows in one product."""
        resp = resp.astype(np.float64, copy=False)
        filled = resp @ self.offsets
        if self.regressions is None:
            return filled
        n_components, n_missing, n_observed = self.regressions.shape
        # (|o|, K·|m|): column block k is A_kᵀ.
        stacked = self.regressions.transpose(2, 0, 1).reshape(n_observed, -1)
        for start in range(0, len(values), IMPUTE_BLOCK_ROWS):
            block = slice(start, start + IMPUTE_BLOCK_ROWS)
            regressed = (values[block] @ stacked).reshape(-1, n_components, n_missing)
            filled[block] += np.einsum("nk,nkm->nm", resp[block], regressed)
        return filled


def _filled(values, resp, affine, conditional_covariances, rng):
    """The filled-in entries of rows with observed ``values`` and responsibilities
    ``resp`` (n, K), the pattern's conditional means ``affine`` (:class:`ConditionalMeans`):
    their mixture Σ_k r_ik E[x_m | x_o, k], or with ``rng`` a draw of each row's component
    from its responsibilities and of the entries from that component's Gaussian
    conditional, covariance the k-th of ``conditional_covariances`` ((F, m, m) matrices
    or (K, m) variances)."""
    if rng is None:
        return affine.mixed(values, resp)
    n_components = resp.shape[1]
    cumulative = np.cumsum(resp, axis=1, dtype=np.float64)
    draws = rng.uniform(size=(len(resp), 1)) * cumulative[:, -1:]
    components = np.minimum((cumulative <= draws).sum(axis=1), n_components - 1)
    filled = np.empty((len(resp), conditional_covariances.shape[-1]))
    for k in range(n_components):
        rows = np.flatnonzero(components == k)
        if not rows.size:
            continue
        noise = rng.standard_normal((rows.size, filled.shape[1]))
        if conditional_covariances.ndim == 2:
            noise *= np.sqrt(conditional_covariances[k])
        else:
            factor = np.linalg.cholesky(
                conditional_covariances[min(k, len(conditional_covariances) - 1)])
            noise = noise @ factor.T
        filled[rows] = affine.of_component(k, values[rows]) + noise
    return filled


# ----------------------------------------------------------------------------------------
# the source
# ----------------------------------------------------------------------------------------


class MissingValueSource(SetStatistics):
    """Rows with missing entries (NaN), a source of the EM engine (``gmmfast._engine``)
    for a fit of ``n_components`` components.

    ``X`` is a validated, C-contiguous float32/float64 array that may hold NaN (not
    infinities), ``sample_weight`` float64 weights or None; ``feature_names`` (optional)
    name the columns in error messages. Raises a ValueError for an infinity, for a column
    with no observed value (of non-zero weight), and for fewer rows with an observed entry
    (and non-zero weight) than components. The rows are grouped by pattern here, once
    (about one more copy of X); see the module's docstring for the method.
    """

    def __init__(self, X, sample_weight, n_components, feature_names=None):
        check_no_infinity(X)
        self.X = X
        self.sample_weight = sample_weight
        self.dtype = X.dtype
        self.n_samples, self.n_features = X.shape
        self.groups, self.empty_rows = group_rows(X, sample_weight)
        group_weights = np.array([group.source.total_weight for group in self.groups])
        self.total_weight = float(group_weights.sum())
        self.n_positive = sum(group.source.n_positive for group in self.groups)
        _check_observed_columns(self.groups, group_weights, self.n_features, feature_names)
        if self.n_positive < n_components:
            raise ValueError(
                f"Expected at least n_components = {n_components} samples with an "
                f"observed (non-NaN) entry and a non-zero sample_weight, got "
                f"{self.n_positive}. Use fewer components, or more data."
            )
        self._moments = None

    def check_finite(self):
        """Nothing to do: the constructor refused infinities, and NaN marks missing."""

    def magnitude(self):
        """The largest absolute observed value."""
        return max((group.source.magnitude() for group in self.groups), default=0.0)

    # -- EM --------------------------------------------------------------------------------

    def statistics(self, kernel_params, n_threads):
        """``(Σ w log p(x_o), Statistics)`` under the given kernel parameters: the marginal
        log-likelihood and the completed statistics, about the kernel parameters' means."""
        return grouped_statistics(self.groups, kernel_params, n_threads)

    def score(self, kernel_params, n_threads, **outputs):
        """:func:`score_groups` of all the rows: ``(log p(x_o), labels, responsibilities)``,
        each None unless asked for (``log_prob``, ``labels``, ``resp``)."""
        return score_groups(self.groups, self.empty_rows, self.n_samples, self.dtype,
                            kernel_params, n_threads=n_threads, **outputs)

    def labels(self, kernel_params, n_threads):
        """The most likely component of every row, given its observed entries."""
        return self.score(kernel_params, n_threads, labels=True, log_prob=False)[1]

    # -- initialisation ----------------------------------------------------------------------

    def mean_and_variance(self, n_threads):
        """Weighted per-feature mean and variance of the observed entries (computed once)."""
        if self._moments is None:
            self._moments = _observed_moments(self.groups, self.n_features, n_threads)
        return self._moments

    def imputed_rows(self, rows):
        """The given rows of X with each missing entry replaced by its column's mean."""
        mean, _ = self.mean_and_variance(0)
        values = np.array(self.X[rows], dtype=self.dtype)
        return np.where(np.isnan(values), mean.astype(self.dtype), values)

    def screening_rows(self):
        """The rows that may screen starts: of non-zero weight, with an observed entry."""
        rows = self._observed_rows()
        if self.sample_weight is not None:
            rows = rows[self.sample_weight[rows] > 0]
        return rows

    def screen_of(self, rows):
        """The given rows with their missing entries at the column means, in memory: the
        starts are ranked by compiled passes, and only the winner climbs over the
        observed entries."""
        return InMemorySource(self.imputed_rows(rows), self._weights_of(rows))

    def _weights_of(self, rows):
        return None if self.sample_weight is None else self.sample_weight[rows]

    def _observed_rows(self):
        """The rows with an observed entry, in row order."""
        if not self.empty_rows.size:
            return np.arange(self.n_samples)
        return np.sort(np.concatenate([group.rows for group in self.groups]))

    def _seeding_rows(self, n_clusters):
        """The rows with the fewest missing entries, at least ``SEEDING_ROWS_PER_CLUSTER``
        per cluster of non-zero weight (every row with an observed entry if need be), in
        row order.

        An imputed row lies off the data (its imputed coordinates sit at the column
        means), so k-means++, which favours far rows, would seed on imputed rows and the
        sample's Lloyd iterations would fit clusters of them.
        """
        needed = SEEDING_ROWS_PER_CLUSTER * n_clusters
        n_missing = sorted({group.missing.size for group in self.groups})
        for most_missing in n_missing:
            chosen = [g for g in self.groups if g.missing.size <= most_missing]
            if sum(g.source.n_positive for g in chosen) >= needed:
                break
        return np.sort(np.concatenate([group.rows for group in chosen]))

    def seeding_sample(self, n_clusters, random_state):
        """A uniform sample of the rows with the fewest missing entries (see
        :meth:`_seeding_rows`), those imputed by the column means, as an in-memory source
        (all of those rows when they are few)."""
        rows = self._seeding_rows(n_clusters)
        # seeding_sample reads only the number of rows and their weights.
        indices = seeding_sample(rows[:, None], self._weights_of(rows), n_clusters,
                                 random_state)
        if indices is not None:
            rows = rows[indices]
        return InMemorySource(self.imputed_rows(rows), self._weights_of(rows))

    def rows_at_ranks(self, ranks):
        """The rows with an observed entry and non-zero weight with the given ranks
        (0-based, in row order), in the order of ``ranks``, missing entries imputed by the
        column means, and their weights (or None)."""
        rows = self._observed_rows()
        if self.sample_weight is not None:
            rows = rows[self.sample_weight[rows] > 0]
        rows = rows[ranks]
        return self.imputed_rows(rows), self._weights_of(rows)

    def lloyd_step(self, centres, n_threads, labels=None):
        """One Lloyd step with distances over each row's observed coordinates:
        ``(cluster weights, new centres)``. A centre's coordinate becomes the mean of its
        cluster's observed entries in that column (unchanged when there is none).
        ``labels`` (n_samples,) int64, if given, receives the partition (rows with no
        observed entry are left as they are)."""
        def group_step(group, threads):
            observed_centres = np.ascontiguousarray(centres[:, group.observed])
            group_labels = np.empty(len(group.rows), dtype=np.int64)
            counts, new_centres = group.source.lloyd_step(observed_centres, threads,
                                                          group_labels)
            if labels is not None:
                labels[group.rows] = group_labels
            return counts, (new_centres - observed_centres) * counts[:, None]

        counts = np.zeros(centres.shape[0])
        column_counts = np.zeros_like(centres)
        shifted_sums = np.zeros_like(centres)
        for group, (group_counts, group_shifted_sums) in zip(
                self.groups, map_groups(group_step, self.groups, n_threads)):
            counts += group_counts
            column_counts[:, group.observed] += group_counts[:, None]
            shifted_sums[:, group.observed] += group_shifted_sums
        new_centres = centres.copy()
        seen = column_counts > 0
        new_centres[seen] += shifted_sums[seen] / column_counts[seen]
        return counts, new_centres

    def nearest_centre_statistics(self, centres, form, n_threads):
        """Statistics of the partition by nearest centre over the observed coordinates,
        about the means of that partition; a missing entry counts at its cluster's mean."""
        labels = np.empty(self.n_samples, dtype=np.int64)
        _, means = self.lloyd_step(centres, n_threads, labels)

        def group_statistics(group, threads):
            source = group.source
            stats = Statistics(*stats_from_labels(
                source.X, source.sample_weight, labels[group.rows],
                np.ascontiguousarray(means[:, group.observed]), form, threads))
            return completed_statistics(stats, group, means)

        return ordered_sum(map_groups(group_statistics, self.groups, n_threads))

    def random_resp_statistics(self, n_components, random_state, form, n_threads):
        """Statistics of uniform random responsibilities, drawn from ``random_state`` as
        one (n_samples, K) draw (a row with no observed entry does not use its draw),
        about the column means; a missing entry counts at its column's mean."""
        mean, _ = self.mean_and_variance(n_threads)
        shifts = np.ascontiguousarray(np.broadcast_to(mean, (n_components, self.n_features)))
        parts = [Statistics(*_mstep_core.empty_stats(form, n_components, g.observed.size),
                            np.ascontiguousarray(shifts[:, g.observed]))
                 for g in self.groups]
        for start, stop, resp in random_resp_blocks(self.n_samples, n_components,
                                                    random_state, self.dtype):
            for group, part in zip(self.groups, parts):
                first, last = np.searchsorted(group.rows, (start, stop))
                if first == last:
                    continue
                weights = group.source.sample_weight
                threads = n_threads if last - first >= PARALLEL_GROUP_ROWS else 1
                _em.stats_from_resp(group.source.X[first:last],
                                    None if weights is None else weights[first:last],
                                    resp[group.rows[first:last] - start], part.shifts,
                                    part.nk, part.sums, part.scatter, threads)
        return ordered_sum([completed_statistics(part, group, shifts)
                            for group, part in zip(self.groups, parts)])

    def farthest_rows(self, centres, new_centres, n_rows, n_threads):
        """The ``n_rows`` rows of non-zero weight farthest, over their observed
        coordinates, from the new centre of the cluster that their nearest (old) centre
        defines, missing entries imputed by the column means."""
        labels = np.empty(self.n_samples, dtype=np.int64)
        self.lloyd_step(centres, n_threads, labels)
        # Rows with no observed entry, or no weight, come last.
        distances = np.full(self.n_samples, -1.0)
        for group in self.groups:
            diff = (group.source.X
                    - new_centres[labels[group.rows]][:, group.observed])
            distances[group.rows] = np.einsum("ij,ij->i", diff, diff)
        if self.sample_weight is not None:
            distances[self.sample_weight == 0] = -1.0
        farthest = np.argsort(distances, kind="stable")[::-1][:n_rows]
        return self.imputed_rows(farthest)


def _check_observed_columns(groups, group_weights, n_features, feature_names):
    """Every column needs an observed value of non-zero weight: else neither its mean nor
    its variance is defined."""
    column_weight = np.zeros(n_features)
    for group, weight in zip(groups, group_weights):
        column_weight[group.observed] += weight
    unobserved = np.flatnonzero(column_weight == 0)
    if unobserved.size:
        column = unobserved[0]
        name = repr(feature_names[column]) if feature_names is not None else column
        raise ValueError(
            f"Column {name} of X has no observed value (every entry is NaN, or its row "
            f"has zero weight): drop the column or fill it in before fitting."
        )


def _observed_moments(groups, n_features, n_threads):
    """Weighted per-column mean and variance of the observed entries: each group's, in
    one compiled pass, combined by the law of total variance."""
    weighed = [group for group in groups if group.source.total_weight > 0]
    moments = map_groups(lambda group, threads: weighted_mean_and_variance(
        group.source.X, group.source.sample_weight, threads), weighed, n_threads)
    weight = np.zeros(n_features)
    weighted_means = np.zeros(n_features)
    for group, (group_mean, _) in zip(weighed, moments):
        weight[group.observed] += group.source.total_weight
        weighted_means[group.observed] += group.source.total_weight * group_mean
    mean = weighted_means / weight
    spread = np.zeros(n_features)
    for group, (group_mean, group_variance) in zip(weighed, moments):
        spread[group.observed] += group.source.total_weight * (
            group_variance + (group_mean - mean[group.observed]) ** 2)
    return mean, spread / weight


def fit_source(X, sample_weight, n_components, feature_names=None):
    """The source of a fit under ``nan_policy="omit"``: the in-memory source when X holds
    no NaN (its fused compiled iteration: the same fit bit for bit), else a
    :class:`MissingValueSource`."""
    if not np.isnan(X).any():
        check_no_infinity(X)
        return InMemorySource(X, sample_weight)
    return MissingValueSource(X, sample_weight, n_components, feature_names)
