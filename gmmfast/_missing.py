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
source's bit for bit. The patterns that observe the same number of columns have their
marginals and completions computed together (stacked arrays, a few NumPy calls per
iteration instead of a few per pattern), and every group's pass is a part of one compiled
call, whose threads share the large groups and draw the small ones.

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
    statistics_form,
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
        raise nothing_observed_error()
    weights = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    return np.where(observed, weights, 0.0)


def nothing_observed_error():
    """The error of scoring rows none of which has an observed entry."""
    return ValueError(
        "Every row of X is missing all its entries (NaN): there is nothing to score. "
        "Pass rows with at least one observed value."
    )


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
    stacked = marginals(kernel_params, covariances, observed[None], missing[None])
    regression = None if stacked.regression is None else stacked.regression[0]
    return Marginal(stacked.kernel_params(0), regression, stacked.conditional[0])


class Marginals(NamedTuple):
    """The :class:`Marginal` of P patterns that observe the same number o of columns (and
    miss m), stacked: ``means`` (P, K, o), ``chol`` (P, F, o, o) or the diag form's
    (P, K, o), ``log_norm`` (P, K), ``regression`` (P, F, m, o) or None, ``conditional``
    (P, F, m, m) or the diag form's (P, K, m); the mixture's ``log_resp_floor``."""

    means: np.ndarray
    chol: np.ndarray
    log_norm: np.ndarray
    regression: np.ndarray | None
    conditional: np.ndarray
    log_resp_floor: float | None = None

    def kernel_params(self, index):
        """The marginal mixture of pattern ``index``, in the kernels' form."""
        return KernelParameters(self.means[index], self.chol[index], self.log_norm[index],
                                log_resp_floor=self.log_resp_floor)


def marginals(kernel_params, covariances, observed, missing):
    """The :class:`Marginals` of the mixture ``kernel_params`` (covariances
    ``covariances``, in the factors' shape) over each pattern's observed columns
    (``observed`` (P, o) column indices) given its missing ones (``missing`` (P, m)): a
    few array operations for all P patterns."""
    means, chol, log_norm = kernel_params[:3]
    n_patterns, n_observed = observed.shape
    observed_means = np.ascontiguousarray(means[:, observed].transpose(1, 0, 2))
    if chol.ndim == 2:  # diag form: the columns are independent given the component
        observed_chol = np.ascontiguousarray(chol[:, observed].transpose(1, 0, 2))
        dropped_log_det = np.log(chol[:, missing]).sum(axis=2).T
        regression = None
        conditional = covariances[:, missing].transpose(1, 0, 2)
    else:
        covariances_oo = _blocks(covariances, observed, observed)
        factors = _mstep_core.precisions_cholesky(
            np.ascontiguousarray(covariances_oo.reshape(-1, n_observed, n_observed)), "full")
        if factors is None:  # Σ_oo of a positive definite Σ is positive definite
            raise ill_defined_covariance(False)
        observed_chol = factors.reshape(covariances_oo.shape)
        dropped_log_det = _log_det(chol) - _log_det(observed_chol)
        # Σ_oo⁻¹ = U Uᵀ with U the marginal's factor.
        regression = (_blocks(covariances, missing, observed) @ observed_chol
                      @ observed_chol.swapaxes(-1, -2))
        conditional = (_blocks(covariances, missing, missing)
                       - regression @ _blocks(covariances, observed, missing))
    # log π_k + log det U_k − ½ D log 2π loses the missing columns' share of each term.
    log_norms = log_norm - dropped_log_det + 0.5 * missing.shape[1] * LOG_2PI
    return Marginals(observed_means, observed_chol,
                     np.ascontiguousarray(np.broadcast_to(log_norms, (n_patterns, len(means)))),
                     regression, conditional, log_resp_floor_of(kernel_params))


def _blocks(covariances, rows, columns):
    """(P, F, r, c): the block of rows ``rows[p]`` and columns ``columns[p]`` of each of
    the F matrices ``covariances``, for each pattern p."""
    return covariances[:, rows[:, :, None], columns[:, None, :]].transpose(1, 0, 2, 3)


def _log_det(upper):
    """log det of triangular matrices (..., n, n)."""
    return np.log(np.diagonal(upper, axis1=-2, axis2=-1)).sum(axis=-1)


def completed_statistics(stats, group, shifts):
    """Statistics over all D columns about ``shifts`` (K, D) from ``stats`` of the
    ``group``'s observed columns about ``shifts[:, observed]``, each missing entry at the
    shift (it adds nothing to the sums and the scatter)."""
    observed = group.observed
    n_components, n_features = shifts.shape
    sums = np.zeros((n_components, n_features))
    sums[:, observed] = stats.sums
    if stats.scatter.ndim == 3:
        scatter = np.zeros((n_components, n_features, n_features))
        scatter[:, observed[:, None], observed] = stats.scatter
    else:
        scatter = np.zeros((n_components, n_features))
        scatter[:, observed] = stats.scatter
    return Statistics(stats.nk, sums, scatter, shifts)


def conditionally_completed(observed_stats, batch, stacked, shifts):
    """The sum over a batch's patterns of their statistics over all D columns about
    ``shifts`` (K, D), from ``observed_stats``, the patterns' statistics of their observed
    columns about ``shifts[:, observed]`` under their marginals (``stacked``, the batch's
    :class:`Marginals`), stacked: counts (P, K), sums (P, K, o), scatter (P, K, o, o) or
    the diag form's (P, K, o). Each missing entry counts at its conditional expectation,
    with the conditional covariance added to the scatter.

    Within a pattern, x̂ − μ = T (x_o − μ_o) with T the D × o matrix whose rows o are the
    identity and rows m are the regression R = Σ_mo Σ_oo⁻¹: the sums are T s, the scatter
    T S Tᵀ plus n_k times the conditional covariance C in the missing block. In the
    pattern's column order (o, then m) those are (s, R s) and the blocks S, (R S)ᵀ, R S and
    R S Rᵀ + n_k C, put in place as the patterns are summed.
    """
    observed, missing = batch.observed, batch.missing
    n_patterns = observed.shape[0]
    n_components, n_features = shifts.shape
    nk, observed_sums, observed_scatter = observed_stats
    if stacked.regression is None:  # diag form: T places the observed columns
        patterns = np.arange(n_patterns)[:, None]
        sums = np.zeros((n_patterns, n_components, n_features))
        sums[patterns, :, observed] = observed_sums.transpose(0, 2, 1)
        scatter = np.zeros_like(sums)
        scatter[patterns, :, observed] = observed_scatter.transpose(0, 2, 1)
        scatter[patterns, :, missing] += (nk[:, :, None] * stacked.conditional
                                          ).transpose(0, 2, 1)
        return Statistics(nk.sum(axis=0), sums.sum(axis=0), scatter.sum(axis=0), shifts)
    regression = stacked.regression
    regressed_scatter = regression @ observed_scatter
    missing_block = (regressed_scatter @ regression.swapaxes(-1, -2)
                     + nk[:, :, None, None] * stacked.conditional)
    sums = np.concatenate([observed_sums, (regression @ observed_sums[..., None])[..., 0]],
                          axis=2)
    scatter = np.concatenate([
        np.concatenate([observed_scatter, regressed_scatter.swapaxes(-1, -2)], axis=3),
        np.concatenate([regressed_scatter, missing_block], axis=3)], axis=2)
    columns = np.concatenate([observed, missing], axis=1)
    scatter = _summed_in_column_order(scatter, columns)
    # One triangle of the rounding, so that the M-step's Σ is exactly symmetric.
    scatter = 0.5 * (scatter + scatter.swapaxes(-1, -2))
    return Statistics(nk.sum(axis=0), _summed_in_column_order(sums, columns), scatter, shifts)


def _summed_in_column_order(values, columns):
    """The sum over patterns of ``values`` (P, K, D) or (P, K, D, D), whose last axes run
    over each pattern's ``columns`` (P, D), a permutation of the D columns: (K, D) or
    (K, D, D) in the columns' order, the patterns added in order (one ``bincount``)."""
    n_patterns, n_components, n_features = values.shape[:3]
    places = columns
    if values.ndim == 4:
        places = columns[:, :, None] * n_features + columns[:, None, :]
    size = places[0].size
    index = (np.arange(n_components)[None, :, None] * size
             + places.reshape(n_patterns, 1, size))
    totals = np.bincount(index.reshape(-1), weights=values.reshape(-1),
                         minlength=n_components * size)
    return totals.reshape(values.shape[1:])


class PatternBatch(NamedTuple):
    """The groups whose patterns observe the same number of columns, stacked so that
    their marginals and completions take a few array operations instead of a few per
    pattern: their positions in the list of groups, and their observed (P, o) and missing
    (P, m) column indices."""

    positions: np.ndarray
    observed: np.ndarray
    missing: np.ndarray


def pattern_batches(groups):
    """The :class:`PatternBatch` es of the groups with a missing entry, by increasing
    number of observed columns."""
    positions_by_size = {}
    for position, group in enumerate(groups):
        if group.missing.size:
            positions_by_size.setdefault(group.observed.size, []).append(position)
    return [PatternBatch(np.array(positions),
                         np.stack([groups[p].observed for p in positions]),
                         np.stack([groups[p].missing for p in positions]))
            for _, positions in sorted(positions_by_size.items())]


def grouped_statistics(groups, batches, kernel_params, n_threads):
    """``(Σ w log p(x_o), Statistics)`` of grouped rows (see :func:`group_rows`, and
    their :func:`pattern_batches`) about the kernel parameters' means.

    Every group's pass, the complete rows' under the mixture and each pattern's over its
    observed columns under its marginal, is part of one compiled call
    (``em_pass_blocks``): the threads share the large groups and draw the small ones, with
    no Python between the passes. The patterns' statistics are then completed a batch at
    a time, and the parts added in a fixed order.
    """
    means, precisions_chol = kernel_params[:2]
    form = "full" if precisions_chol.ndim == 3 else "diag"
    complete = Statistics.zeros(form, means)
    if not groups:
        return 0.0, _in_requested_form(complete, kernel_params)
    covariances = _covariances_if_needed(groups, kernel_params)
    stacked = [marginals(kernel_params, covariances, batch.observed, batch.missing)
               for batch in batches]
    observed_stats = [_zero_observed_statistics(batch, len(means), form) for batch in batches]
    params, stats = _block_arguments(len(groups), batches, stacked, observed_stats,
                                     kernel_params, complete)
    loglik = _em.em_pass_blocks(
        [group.source.X for group in groups], [group.source.sample_weight for group in groups],
        *zip(*params), *zip(*stats), n_threads, log_resp_floor=log_resp_floor_of(kernel_params))
    completed = [conditionally_completed(batch_stats, batch, batch_marginals, means)
                 for batch, batch_marginals, batch_stats in zip(batches, stacked, observed_stats)]
    has_complete_rows = not groups[0].missing.size
    stats = ordered_sum([complete] * has_complete_rows + completed)
    return float(loglik.sum()), _in_requested_form(stats, kernel_params)


def _in_requested_form(stats, kernel_params):
    """Full-form ``stats`` in the form the kernel parameters ask for (see
    ``gmmfast._engine.statistics_form``). A missing entry's conditional covariance is its
    component's own, so the pooled pass's identity does not hold for rows with missing
    entries: their scatters are pooled once completed."""
    return stats.pooled() if statistics_form(kernel_params) == "pooled" else stats


def _block_arguments(n_groups, batches, stacked, observed_stats, kernel_params, complete):
    """``(parameters, statistics)``: each group's, by its position in the list of groups,
    for its block of ``em_pass_blocks``. The complete rows' are ``kernel_params`` and
    ``complete``; a pattern's are views of its batch's :class:`Marginals` (``stacked``)
    and stacked statistics (``observed_stats``)."""
    params = [kernel_params[:3]] * n_groups
    stats = [complete[:3]] * n_groups
    for batch, batch_marginals, batch_stats in zip(batches, stacked, observed_stats):
        for index, position in enumerate(batch.positions.tolist()):
            params[position] = (batch_marginals.means[index], batch_marginals.chol[index],
                                batch_marginals.log_norm[index])
            stats[position] = tuple(part[index] for part in batch_stats)
    return params, stats


def _zero_observed_statistics(batch, n_components, form):
    """Zeroed statistics of a batch's patterns over their o observed columns, stacked:
    counts (P, K), sums (P, K, o), scatter (P, K, o, o) or the diag form's (P, K, o)."""
    n_patterns, n_observed = batch.observed.shape
    scatter_shape = (n_observed,) * (2 if form == "full" else 1)
    return (np.zeros((n_patterns, n_components)),
            np.zeros((n_patterns, n_components, n_observed)),
            np.zeros((n_patterns, n_components) + scatter_shape))


def _covariances_if_needed(groups, kernel_params):
    """The covariances (see :func:`kernel_covariances`) if a group has a missing entry."""
    if all(not group.missing.size for group in groups):
        return None
    return kernel_covariances(kernel_params)


def map_groups(func, groups, n_threads, pair_cost, per_group=None):
    """``[func(group, threads[, per_group[i]]) for group in groups]``, in group order, on
    ``n_threads`` threads (<= 0: the OpenMP default).

    The threads are those of one compiled pass over all the rows, of ``pair_cost``
    ``(components, operations per row and component)`` (``_em.pass_threads``: never more
    than the CPUs, nor than the work pays for). A group with more than its share of the
    rows (1 / threads) gets them all for its pass; the others run whole, one thread each,
    the largest first, on this thread and ``threads − 1`` more: ``func`` should spend its
    time in compiled passes, which release the GIL (one OpenMP team per pattern costs a
    scheduler time slice when the cores are busy). The compiled passes give the same
    result on any number of threads, so neither does the list depend on it.
    """
    extra = [()] * len(groups) if per_group is None else [(item,) for item in per_group]
    n_rows = sum(len(group.rows) for group in groups)
    threads = _em.pass_threads(n_threads, n_rows, n_rows, *pair_cost)
    if threads == 1:
        return [func(group, 1, *args) for group, args in zip(groups, extra)]
    results = [None] * len(groups)
    pooled = []
    for index, group in enumerate(groups):
        if len(group.rows) * threads > n_rows:
            results[index] = func(group, threads, *extra[index])
        else:
            pooled.append(index)
    pooled.sort(key=lambda i: -len(groups[i].rows))  # the largest first: balanced ends
    pooled_results = _on_threads(lambda i: func(groups[i], 1, *extra[i]), pooled, threads)
    for index, result in zip(pooled, pooled_results):
        results[index] = result
    return results


def _on_threads(func, items, threads):
    """``[func(item) for item in items]``, computed on this thread and ``threads − 1``
    more, each drawing the next item from one queue (an iterator's next is atomic under
    the GIL; a future per item would cost this thread ~10 µs each). Raises what a thread
    raised."""
    results = [None] * len(items)
    queue = iter(range(len(items)))

    def run_queue():
        for position in queue:
            results[position] = func(items[position])

    with ThreadPoolExecutor(threads - 1) as pool:
        helpers = [pool.submit(run_queue) for _ in range(threads - 1)]
        run_queue()
        for helper in helpers:
            helper.result()
    return results


def _pair_cost(kernel_params):
    """``(components, operations per row and component)`` of a density pass under
    ``kernel_params``: D² for full factors, D for diagonal ones (``pass_work``)."""
    means, chol = kernel_params[:2]
    n_features = means.shape[1]
    return len(means), n_features * n_features if chol.ndim == 3 else n_features


def missing_block_statistics(X, sample_weight, kernel_params, n_threads=0):
    """:func:`gmmfast._engine.block_statistics` of a block of rows that may hold NaN:
    grouped here, then :func:`grouped_statistics`."""
    groups = group_rows(X, sample_weight)[0]
    return grouped_statistics(groups, pattern_batches(groups), kernel_params, n_threads)


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

    map_groups(group_scores, groups, n_threads, _pair_cost(kernel_params))
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

    map_groups(fill, groups, n_threads, _pair_cost(kernel_params))
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
# the rows of a source (all of X, or one block of a dask array)
# ----------------------------------------------------------------------------------------


class GroupedRows(SetStatistics):
    """Rows that may hold NaN (not infinities), grouped by pattern once, here, and what a
    fit computes from them: all of X for :class:`MissingValueSource`, one block of a dask
    array on its worker for ``gmmfast._dask.DaskMissingSource`` (whose client adds the
    blocks' parts in block order).

    ``X`` is a C-contiguous float32/float64 array, ``sample_weight`` float64 weights or
    None. ``total_weight`` and ``n_positive`` count only the rows with an observed entry.
    """

    def __init__(self, X, sample_weight=None):
        self.X = X
        self.sample_weight = sample_weight
        self.dtype = X.dtype
        self.n_samples, self.n_features = X.shape
        self.groups, self.empty_rows = group_rows(X, sample_weight)
        self.batches = pattern_batches(self.groups)
        group_weights = np.array([group.source.total_weight for group in self.groups])
        self.total_weight = float(group_weights.sum())
        self.n_positive = sum(group.source.n_positive for group in self.groups)

    def magnitude(self):
        """The largest absolute observed value."""
        return max((group.source.magnitude() for group in self.groups), default=0.0)

    def column_weights(self):
        """(n_features,) the total weight of each column's observed entries."""
        weights = np.zeros(self.n_features)
        for group in self.groups:
            weights[group.observed] += group.source.total_weight
        return weights

    def positive_rows_by_missing(self):
        """(n_features + 1,) int64: how many rows of non-zero weight with an observed entry
        miss 0, 1, … entries."""
        counts = np.zeros(self.n_features + 1, dtype=np.int64)
        for group in self.groups:
            counts[group.missing.size] += group.source.n_positive
        return counts

    # -- EM --------------------------------------------------------------------------------

    def statistics(self, kernel_params, n_threads):
        """``(Σ w log p(x_o), Statistics)`` under the given kernel parameters: the marginal
        log-likelihood and the completed statistics, about the kernel parameters' means."""
        return grouped_statistics(self.groups, self.batches, kernel_params, n_threads)

    def score(self, kernel_params, n_threads, **outputs):
        """:func:`score_groups` of all the rows: ``(log p(x_o), labels, responsibilities)``,
        each None unless asked for (``log_prob``, ``labels``, ``resp``)."""
        return score_groups(self.groups, self.empty_rows, self.n_samples, self.dtype,
                            kernel_params, n_threads=n_threads, **outputs)

    def labels(self, kernel_params, n_threads):
        """The most likely component of every row, given its observed entries."""
        return self.score(kernel_params, n_threads, labels=True, log_prob=False)[1]

    # -- the parts of initialisation ---------------------------------------------------------

    def moments(self, n_threads):
        """:class:`ColumnMoments` of the observed entries: each group's, in one compiled
        pass, combined by :func:`combined_moments`."""
        weighed = [group for group in self.groups if group.source.total_weight > 0]
        moments = map_groups(lambda group, threads: weighted_mean_and_variance(
            group.source.X, group.source.sample_weight, threads), weighed, n_threads,
            (1, self.n_features))
        parts = []
        for group, (mean, variance) in zip(weighed, moments):
            part = ColumnMoments(*np.zeros((3, self.n_features)))
            part.weight[group.observed] = group.source.total_weight
            part.mean[group.observed] = mean
            part.variance[group.observed] = variance
            parts.append(part)
        return combined_moments(parts, self.n_features)

    def positive_rows(self, most_missing=None):
        """The rows of non-zero weight with an observed entry (and at most
        ``most_missing`` missing entries), in row order."""
        if most_missing is None and not self.empty_rows.size:
            rows = np.arange(self.n_samples)
        else:
            limit = self.n_features if most_missing is None else most_missing
            chosen = [group.rows for group in self.groups if group.missing.size <= limit]
            rows = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, np.intp)
        if self.sample_weight is not None:
            rows = rows[self.sample_weight[rows] > 0]
        return rows

    def positive_rows_at_ranks(self, most_missing, ranks):
        """The rows of ``positive_rows(most_missing)`` with the given ranks (0-based), as
        they are (NaN included), and their weights (or None)."""
        rows = self.positive_rows(most_missing)[ranks]
        return np.ascontiguousarray(self.X[rows]), self._weights_of(rows)

    def _weights_of(self, rows):
        return None if self.sample_weight is None else self.sample_weight[rows]

    def lloyd_parts(self, centres, n_threads, labels=None):
        """A Lloyd step's sums, with distances over each row's observed coordinates:
        ``(cluster weights (K,), the weights of each cluster's observed entries per column
        (K, D), their weighted sums of x − centre (K, D))``; see :func:`moved_centres`.
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
                self.groups, map_groups(group_step, self.groups, n_threads, centres.shape)):
            counts += group_counts
            column_counts[:, group.observed] += group_counts[:, None]
            shifted_sums[:, group.observed] += group_shifted_sums
        return counts, column_counts, shifted_sums

    def partition_statistics(self, centres, means, form, n_threads):
        """Statistics of the partition by nearest centre over the observed coordinates,
        about ``means``, the means of that partition (see :meth:`labelled_statistics`)."""
        labels = np.empty(self.n_samples, dtype=np.int64)
        self.lloyd_parts(centres, n_threads, labels)
        return self.labelled_statistics(labels, means, form, n_threads)

    def labelled_statistics(self, labels, means, form, n_threads):
        """Statistics of the partition ``labels`` about ``means`` (K, D), its clusters'
        means of the observed entries: a missing entry counts at its cluster's mean."""
        def group_statistics(group, threads):
            source = group.source
            stats = Statistics(*stats_from_labels(
                source.X, source.sample_weight, labels[group.rows],
                np.ascontiguousarray(means[:, group.observed]), form, threads))
            return completed_statistics(stats, group, means)

        return self._summed(map_groups(group_statistics, self.groups, n_threads,
                                       means.shape), form, means)

    def random_resp_statistics_about(self, shifts, random_state, form, n_threads):
        """Statistics of uniform random responsibilities, drawn from ``random_state`` as
        one (n_samples, K) draw (a row with no observed entry does not use its draw), about
        ``shifts`` (K, D); a missing entry counts at the shift."""
        n_components = shifts.shape[0]
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
                _em.stats_from_resp(group.source.X[first:last],
                                    None if weights is None else weights[first:last],
                                    resp[group.rows[first:last] - start], part.shifts,
                                    part.nk, part.sums, part.scatter, n_threads)
        return self._summed([completed_statistics(part, group, shifts)
                             for group, part in zip(self.groups, parts)], form, shifts)

    @staticmethod
    def _summed(parts, form, shifts):
        """:func:`ordered_sum` of the groups' statistics; zero when there is no group."""
        return ordered_sum(parts) if parts else Statistics.zeros(form, shifts)


class ColumnMoments(NamedTuple):
    """Per column (each (n_features,)): the total weight of the observed entries, their
    weighted mean and weighted variance (0 where the weight is 0)."""

    weight: np.ndarray
    mean: np.ndarray
    variance: np.ndarray


def combined_moments(parts, n_features):
    """The :class:`ColumnMoments` of the union of disjoint sets of rows from each set's,
    added in list order (law of total variance)."""
    weight, weighted_means, spread = np.zeros((3, n_features))
    for part in parts:
        weight += part.weight
        weighted_means += part.weight * part.mean
    seen = weight > 0
    mean = np.divide(weighted_means, weight, out=np.zeros(n_features), where=seen)
    for part in parts:
        spread += part.weight * (part.variance + (part.mean - mean) ** 2)
    return ColumnMoments(weight, mean,
                         np.divide(spread, weight, out=np.zeros(n_features), where=seen))


def moved_centres(centres, column_counts, shifted_sums):
    """The centres after a Lloyd step (see :meth:`GroupedRows.lloyd_parts`): each
    coordinate the mean of its cluster's observed entries in that column (unchanged
    where there is none)."""
    new_centres = centres.copy()
    seen = column_counts > 0
    new_centres[seen] += shifted_sums[seen] / column_counts[seen]
    return new_centres


def fewest_missing_limit(positive_rows_by_missing, needed):
    """The smallest number m such that at least ``needed`` rows of non-zero weight miss at
    most m entries (see :meth:`GroupedRows.positive_rows_by_missing`); the largest if no m
    is enough."""
    enough = np.flatnonzero(np.cumsum(positive_rows_by_missing) >= needed)
    return int(enough[0]) if enough.size else len(positive_rows_by_missing) - 1


def mean_imputed(rows, mean):
    """A copy of ``rows`` with each missing entry replaced by its column's ``mean``."""
    return np.where(np.isnan(rows), mean.astype(rows.dtype), rows)


def check_observed_columns(column_weights, feature_names=None):
    """Every column needs an observed value of non-zero weight: else neither its mean nor
    its variance is defined."""
    unobserved = np.flatnonzero(column_weights == 0)
    if unobserved.size:
        column = unobserved[0]
        name = repr(feature_names[column]) if feature_names is not None else column
        raise ValueError(
            f"Column {name} of X has no observed value (every entry is NaN, or its row "
            f"has zero weight): drop the column or fill it in before fitting."
        )


def check_enough_observed_rows(n_positive, n_components):
    """Each component needs a row with an observed entry and non-zero weight."""
    if n_positive < n_components:
        raise ValueError(
            f"Expected at least n_components = {n_components} samples with an "
            f"observed (non-NaN) entry and a non-zero sample_weight, got "
            f"{n_positive}. Use fewer components, or more data."
        )


# ----------------------------------------------------------------------------------------
# the source
# ----------------------------------------------------------------------------------------


class MissingValueSource(GroupedRows):
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
        super().__init__(X, sample_weight)
        check_observed_columns(self.column_weights(), feature_names)
        check_enough_observed_rows(self.n_positive, n_components)
        self._moments = None

    def check_finite(self):
        """Nothing to do: the constructor refused infinities, and NaN marks missing."""

    # -- initialisation ----------------------------------------------------------------------

    def mean_and_variance(self, n_threads):
        """Weighted per-feature mean and variance of the observed entries (computed once)."""
        if self._moments is None:
            self._moments = self.moments(n_threads)[1:]
        return self._moments

    def imputed_rows(self, rows):
        """The given rows of X with each missing entry replaced by its column's mean."""
        mean, _ = self.mean_and_variance(0)
        return mean_imputed(np.asarray(self.X[rows], dtype=self.dtype), mean)

    def screening_rows(self):
        """The rows that may screen starts: of non-zero weight, with an observed entry."""
        return self.positive_rows()

    def screen_of(self, rows):
        """The given rows with their missing entries at the column means, in memory: the
        starts are ranked by compiled passes, and only the winner climbs over the
        observed entries."""
        return InMemorySource(self.imputed_rows(rows), self._weights_of(rows))

    def _seeding_rows(self, n_clusters):
        """The rows with the fewest missing entries, at least ``SEEDING_ROWS_PER_CLUSTER``
        per cluster of non-zero weight (every row with an observed entry if need be), in
        row order.

        An imputed row lies off the data (its imputed coordinates sit at the column
        means), so k-means++, which favours far rows, would seed on imputed rows and the
        sample's Lloyd iterations would fit clusters of them.
        """
        most_missing = fewest_missing_limit(self.positive_rows_by_missing(),
                                            SEEDING_ROWS_PER_CLUSTER * n_clusters)
        return np.sort(np.concatenate([group.rows for group in self.groups
                                       if group.missing.size <= most_missing]))

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
        rows = self.positive_rows()[ranks]
        return self.imputed_rows(rows), self._weights_of(rows)

    def lloyd_step(self, centres, n_threads, labels=None):
        """One Lloyd step with distances over each row's observed coordinates:
        ``(cluster weights, new centres)`` (see :meth:`GroupedRows.lloyd_parts`)."""
        counts, column_counts, shifted_sums = self.lloyd_parts(centres, n_threads, labels)
        return counts, moved_centres(centres, column_counts, shifted_sums)

    def nearest_centre_statistics(self, centres, form, n_threads):
        """Statistics of the partition by nearest centre over the observed coordinates,
        about the means of that partition; a missing entry counts at its cluster's mean."""
        labels = np.empty(self.n_samples, dtype=np.int64)
        _, means = self.lloyd_step(centres, n_threads, labels)
        return self.labelled_statistics(labels, means, form, n_threads)

    def random_resp_statistics(self, n_components, random_state, form, n_threads):
        """Statistics of uniform random responsibilities (see
        :meth:`GroupedRows.random_resp_statistics_about`) about the column means."""
        mean, _ = self.mean_and_variance(n_threads)
        shifts = np.ascontiguousarray(np.broadcast_to(mean, (n_components, self.n_features)))
        return self.random_resp_statistics_about(shifts, random_state, form, n_threads)

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


def fit_source(X, sample_weight, n_components, feature_names=None):
    """The source of a fit under ``nan_policy="omit"``: the in-memory source when X holds
    no NaN (its fused compiled iteration: the same fit bit for bit), else a
    :class:`MissingValueSource`."""
    if not np.isnan(X).any():
        check_no_infinity(X)
        return InMemorySource(X, sample_weight)
    return MissingValueSource(X, sample_weight, n_components, feature_names)
