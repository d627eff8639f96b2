"""Dask arrays as a source of the EM engine: EM as per-block statistics, summed on the
client.

DESIGN §2 makes EM a stream of sufficient statistics; on Dask the stream is the row blocks
of ``X``. One EM iteration is:

1. the current parameters become **one** key of the graph, computed once and fetched by the
   workers that need it (never copied into every block's task);
2. every row block runs :func:`gmmfast._engine.block_statistics`, the very function the
   in-memory source runs on all of X, on the worker that holds the block, and sends back
   only its statistics (K·D² numbers, not data);
3. the client adds them up **in block order**, so the result does not depend on the
   number of workers, on scheduling or on retried tasks; the model's M-step follows.

Before the loop, X (and the sample weights) is validated block by block and persisted on
the cluster: the iterations then read the blocks from the workers' memory instead of
recomputing X's graph (loading files, preprocessing) every time. The persisted blocks are
released when the fit returns. Under the threaded or synchronous scheduler "the cluster" is
this process, so persisting holds X in local memory.

Initialisation (the engine's one dispatch, ``gmmfast._engine.initial_statistics``) never
collects X: k-means seeds k-means++ and runs its first Lloyd iterations on a bounded
uniform sample of the rows (``INIT_SAMPLE_ROWS``) fetched to the client, then Lloyd's
iterations over all blocks, reduced like the E-step; ``"random"`` draws every block's
responsibilities on its worker from a seed drawn from ``random_state``;
``"random_from_data"`` fetches only the K chosen rows, chosen exactly as in memory.
Prediction and scoring run block by block without communication.

Under ``nan_policy="omit"`` (:class:`DaskMissingSource`) NaN entries are missing values:
each block is grouped by its patterns of missing entries once, on its worker
(``gmmfast._missing.GroupedRows``), and every pass runs a method of each block's groups,
whose parts the client adds in block order, as above.

This module imports Dask; ``gmmfast._gaussian_mixture`` imports it only after it has been
given a Dask collection (see ``gmmfast._dask_input``).
"""

import functools
import warnings

import dask
import dask.array as da
import numpy as np

from gmmfast._compat import (
    HAS_SKLEARN,
    assert_finite,
    check_sample_weight,
    check_sample_weight_shape,
)
from gmmfast._engine import (
    InMemorySource,
    SetStatistics,
    Statistics,
    block_statistics,
    check_enough_samples,
    ordered_sum,
    weight_shift,
    score_arrays,
)
from gmmfast._initialisation import (
    SEEDING_ROWS_PER_CLUSTER,
    stats_from_labels,
    stats_from_random_resp,
)
from gmmfast._missing import (
    GroupedRows,
    check_enough_observed_rows,
    check_no_infinity,
    check_observed_columns,
    combined_moments,
    fewest_missing_limit,
    has_observation,
    impute_missing,
    mean_imputed,
    moved_centres,
    nothing_observed_error,
    score_missing,
)
from gmmfast._kernels import kmeans as _kmeans  # the widest variant this CPU runs
from gmmfast._threads import single_threaded_blas

if HAS_SKLEARN:
    from sklearn.utils.validation import check_non_negative

# k-means++ seeding (init_params "kmeans" and "k-means++") runs on the client on a uniform
# sample of at most this many rows (D = 8, float64: 6.4 MB). Seeding is a rough start that
# Lloyd's iterations (on the sample, then over all rows) and EM refine, and k-means++ on a
# uniform sample is the classic scalable substitute; k-means|| would cost ~5 extra passes
# over X plus a re-clustering of its candidates.
INIT_SAMPLE_ROWS = 100_000


# ----------------------------------------------------------------------------------------
# validation from metadata; per-block checks run where the blocks are
# ----------------------------------------------------------------------------------------


def _checked_array(X, estimator_name, min_samples):
    """X as a float32/float64 dask array with one column chunk, checked from metadata only."""
    if not isinstance(X, da.Array):
        raise TypeError(
            f"{estimator_name} accepts dask.array.Array among Dask collections, got "
            f"{type(X).__module__}.{type(X).__name__}. Convert a Dask DataFrame with "
            "df.to_dask_array(lengths=True)."
        )
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead. Reshape your data either "
            "using array.reshape(-1, 1) if your data has a single feature or "
            "array.reshape(1, -1) if it contains a single sample."
        )
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    if X.dtype not in (np.float32, np.float64):
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must contain only numbers, got dtype {X.dtype}")
        X = X.astype(np.float64)  # as in memory: any other number type becomes float64
    if np.isnan(X.shape[0]):
        raise ValueError(
            "X has unknown chunk sizes (for instance after boolean indexing); call "
            "X.compute_chunk_sizes() first."
        )
    n_samples, n_features = X.shape
    if n_samples < min_samples or n_features < 1:
        what = "sample(s)" if n_samples < min_samples else "feature(s)"
        count, needed = (n_samples, min_samples) if what == "sample(s)" else (n_features, 1)
        raise ValueError(
            f"Found array with {count} {what} (shape={X.shape}) while a minimum of "
            f"{needed} is required by {estimator_name}."
        )
    # The kernels take whole rows: one chunk across the columns.
    return X.rechunk({1: -1}) if X.numblocks[1] > 1 else X


def _checked_weights(sample_weight, X):
    """sample_weight as a float64 dask array chunked like X's rows, or None.

    NumPy weights (or a scalar) are validated here and split like X; the values of dask
    weights are checked block by block, with the in-memory fit's messages.
    """
    if sample_weight is None:
        return None
    n_samples = X.shape[0]
    if not isinstance(sample_weight, da.Array):
        rows = np.broadcast_to(0.0, (n_samples, 1))  # check_sample_weight reads the length
        weights = check_sample_weight(sample_weight, rows)
        return da.from_array(weights, chunks=(X.chunks[0],))
    check_sample_weight_shape(sample_weight.shape, n_samples)
    weights = sample_weight.astype(np.float64)
    if weights.chunks[0] != X.chunks[0]:
        weights = weights.rechunk((X.chunks[0],))
    return weights.map_blocks(_checked_weight_block, dtype=np.float64)


def _checked_row_block(block, estimator_name, nan_allowed):
    if nan_allowed:  # NaN marks a missing entry
        check_no_infinity(block)
    else:
        assert_finite(block, "X", estimator_name)
    return np.ascontiguousarray(block)


def _checked_weight_block(weights):
    assert_finite(weights, "sample_weight", None)
    if HAS_SKLEARN and weights.size:  # (its check fails on an empty block)
        check_non_negative(weights, "`sample_weight`")
    elif np.any(weights < 0):
        raise ValueError("Negative values in data passed to `sample_weight`")
    return np.ascontiguousarray(weights)


def _checked_blocks(X, estimator_name, nan_allowed=False):
    """X with its per-block checks attached (they run wherever the blocks are computed):
    finite values, or under ``nan_allowed`` no infinity."""
    return X.map_blocks(_checked_row_block, estimator_name, nan_allowed, dtype=X.dtype,
                        meta=np.empty((0, 0), dtype=X.dtype))


# ----------------------------------------------------------------------------------------
# running one function on every block
# ----------------------------------------------------------------------------------------


def _run_on_block(func, block_args, shared, *extra):
    return func(*block_args, *shared, *extra)


def _block_results(block_args, func, shared, blocks=None, per_block=None):
    """``func(*block_args[i], *shared[, per_block[i]])`` for the blocks, in block order;
    ``block_args`` holds a tuple of delayed objects per block (its rows and weights, say).

    ``shared`` becomes a single key of the graph that every block's task depends on, so
    it is sent to the cluster once (and fetched once per worker), not once per block.
    ``blocks`` (default: all) lists the blocks to run on; ``per_block`` one extra argument
    for each of them. Runs on Dask's current scheduler (a distributed Client if one is
    active); returns the results as a list ordered like ``blocks``.
    """
    shared_key = dask.delayed(tuple(shared), traverse=False, pure=True)
    blocks = range(len(block_args)) if blocks is None else blocks
    tasks = []
    for position, b in enumerate(blocks):
        extra = () if per_block is None else (per_block[position],)
        task = dask.delayed(_run_on_block, pure=True)
        tasks.append(task(func, block_args[b], shared_key, *extra))
    return list(dask.compute(*tasks, optimize_graph=False))


def _ordered_float_sum(parts):
    """Element-wise float64 sum of equally shaped tuples (floats or arrays), in list order
    (independent of which worker computed which part, and of when it arrived)."""
    total = [np.array(value, dtype=np.float64) for value in parts[0]]
    for part in parts[1:]:
        for accumulated, value in zip(total, part):
            accumulated += value
    return total


# ----------------------------------------------------------------------------------------
# block functions (run on the workers)
# ----------------------------------------------------------------------------------------


def _block_summary(block, weights):
    """(rows, total weight, rows of non-zero weight, largest and smallest weight, and the
    total weight as s·2^e without overflow: s, e) of a block."""
    n_rows = block.shape[0]
    if weights is None:
        return n_rows, float(n_rows), n_rows, 1.0, 1.0, float(n_rows), 0
    if not weights.size:
        return 0, 0.0, 0, 0.0, np.inf, 0.0, 0
    _, exponent = np.frexp(weights.max())
    return (n_rows, float(weights.sum()), int(np.count_nonzero(weights)),
            float(weights.max()), float(weights.min()),
            float(np.ldexp(weights, -exponent).sum()), int(exponent))


def _positive_rows(block, weights, local_ranks):
    """The rows of non-zero weight at the given ranks (in block order) and their weights."""
    return InMemorySource(block, weights).rows_at_ranks(local_ranks)


def _lloyd_block(block, weights, centres, n_threads):
    """The block's part of a Lloyd step: each cluster's weight and weighted sum of
    (x − its centre)."""
    counts, new_centres = InMemorySource(block, weights).lloyd_step(centres, n_threads)
    return counts, (new_centres - centres) * counts[:, None]


def _nearest_centre_block(block, weights, centres, form, n_threads):
    """Statistics of the block's partition by nearest centre, about the centres."""
    labels = np.empty(block.shape[0], dtype=np.int64)
    InMemorySource(block, weights).lloyd_step(centres, n_threads, labels)
    return Statistics(*stats_from_labels(block, weights, labels, centres, form, n_threads))


def _random_resp_block(block, weights, n_components, shifts, form, n_threads, seed):
    """Statistics of uniform random responsibilities drawn from the block's own seed."""
    return Statistics(*stats_from_random_resp(block, weights, n_components,
                                              np.random.RandomState(seed), form,
                                              n_threads, shifts))


def _mean_and_variance_block(block, weights, n_threads):
    return InMemorySource(block, weights).mean_and_variance(n_threads)


def _score_block(block, kernel_params, output, n_threads, estimator_name, nan_allowed):
    """One output of :func:`score_arrays` for a block; under ``nan_allowed`` of
    ``score_missing`` (NaN entries are missing)."""
    score = score_missing if nan_allowed else score_arrays
    log_prob, labels, resp = score(
        block, kernel_params, labels=output == "labels", resp=output == "resp",
        n_threads=n_threads, log_prob=output == "log_prob",
        finite_check=functools.partial(assert_finite, name="X", estimator_name=estimator_name),
    )
    return {"log_prob": log_prob, "labels": labels, "resp": resp}[output]


def _weighted_loglik_block(block, weights, kernel_params, n_threads, nan_allowed):
    """(Σ w log p(x), Σ w) of a block; under ``nan_allowed`` of its rows with an observed
    entry, by their marginal densities."""
    if nan_allowed:
        log_prob = score_missing(block, kernel_params, n_threads=n_threads)[0]
        observed = has_observation(block)
        weights = observed.astype(np.float64) if weights is None else observed * weights
    else:
        log_prob = score_arrays(block, kernel_params, n_threads=n_threads)[0]
    if weights is None:
        return float(log_prob.sum(dtype=np.float64)), float(block.shape[0])
    return float(weights @ log_prob), float(weights.sum())


def _imputed_block(block, kernel_params, seeds, n_threads, block_info=None):
    """``impute_missing`` of a block (checked for infinities), drawing from the block's
    own seed when ``seeds`` (one per row block) are given."""
    check_no_infinity(block)
    random_state = None
    if seeds is not None:
        random_state = np.random.RandomState(seeds[block_info[0]["chunk-location"][0]])
    with single_threaded_blas():
        return impute_missing(block, kernel_params, random_state, n_threads)


def _observed_summary(rows):
    """(total weight, column weights, rows of non-zero weight by their number of missing
    entries) of a block's ``GroupedRows``."""
    return rows.total_weight, rows.column_weights(), rows.positive_rows_by_missing()


def _random_resp_grouped(rows, shifts, form, n_threads, seed):
    """Statistics of uniform random responsibilities drawn from the block's own seed."""
    return rows.random_resp_statistics_about(shifts, np.random.RandomState(seed), form,
                                             n_threads)


def _call_method(rows, name, *args):
    """A method of a block's ``GroupedRows``, run on its worker."""
    return getattr(rows, name)(*args)


def _summed_statistics(results):
    """``(Σ w log p, Statistics)`` of the blocks' results, added in block order."""
    loglik = _ordered_float_sum([(block_loglik,) for block_loglik, _ in results])[0]
    return float(loglik), ordered_sum([stats for _, stats in results])


def _sample_ranks(n_rows, random_state):
    """Sorted ranks of a uniform sample of at most ``INIT_SAMPLE_ROWS`` of ``n_rows``
    rows (all of them when they are fewer)."""
    if n_rows <= INIT_SAMPLE_ROWS:
        return np.arange(n_rows)
    return np.unique(random_state.randint(n_rows, size=INIT_SAMPLE_ROWS))


# ----------------------------------------------------------------------------------------
# the source
# ----------------------------------------------------------------------------------------


class DaskSource(SetStatistics):
    """The rows of a dask array, a source of the EM engine (``gmmfast._engine``), for a fit
of ``n_components`` components.

    ``X`` (and the sample weights) are validated block by block and persisted on the
    cluster: every pass then reads the blocks from the workers' memory. Statistics are
    computed per block on the workers and summed on the client in block order, so results
    depend neither on the number of workers nor on scheduling.
    """

    # Whether NaN entries are missing values (``DaskMissingSource``) rather than errors.
    _nan_allowed = False

    def __init__(self, X, sample_weight, n_components, estimator_name,
                 scale_free_weights=False):
        self.source = X
        self.estimator_name = estimator_name
        X = _checked_array(X, estimator_name, min_samples=2)
        # From metadata, before anything is computed.
        check_enough_samples(n_components, X.shape[0])
        weights = _checked_weights(sample_weight, X)
        # Persisting runs the per-block checks once and keeps the checked, contiguous blocks
        # on the workers for every later pass.
        self.X, self.sample_weight = dask.persist(
            _checked_blocks(X, estimator_name, self._nan_allowed), weights)
        self.dtype = self.X.dtype
        self.n_samples, self.n_features = self.X.shape
        # Per block, the delayed arguments of the blocks' functions: (rows, weights).
        self._blocks = list(zip(self.X.to_delayed(optimize_graph=False).ravel(),
                                self._weight_blocks()))
        # The first pass: it raises here, before any initialisation, if a block holds NaN
        # (an infinity, under _nan_allowed).
        summaries = self._summaries()
        if weights is not None and scale_free_weights and self._normalise_weights(summaries):
            summaries = self._summaries()
        self._block_weight = summaries[:, 1]
        self._block_positive = summaries[:, 2].astype(np.int64)
        self.total_weight = float(_ordered_float_sum([(w,) for w in self._block_weight])[0])
        self.n_positive = int(self._block_positive.sum())
        if self.total_weight == 0.0:
            raise ValueError("Sample weights must contain at least one non-zero number.")
        self._moments = None

    def _summaries(self):
        return np.array(self._map(_block_summary), dtype=np.float64).reshape(-1, 7)

    def _normalise_weights(self, summaries):
        """Rescale the weights as ``gmmfast._engine.normalised_weights`` does in memory
        (the scale-free weights of maximum likelihood); whether they changed."""
        maximum, minimum = summaries[:, 3].max(), summaries[:, 4].min()
        if 0 < minimum == maximum:
            self.sample_weight = None
            self._blocks = [(rows, None) for rows, _ in self._blocks]
            return True
        max_exponent = int(np.frexp(maximum)[1])
        scaled_total = sum(float(np.ldexp(s, int(e) - max_exponent))
                           for s, e in summaries[:, 5:7])
        shift = weight_shift(max_exponent, scaled_total / self.n_samples)
        if not shift:
            return False
        (self.sample_weight,) = dask.persist(
            self.sample_weight.map_blocks(np.ldexp, shift, dtype=np.float64))
        self._blocks = [(rows, weights) for (rows, _), weights
                        in zip(self._blocks, self._weight_blocks())]
        return True

    def _weight_blocks(self):
        if self.sample_weight is None:
            return [None] * self.X.numblocks[0]
        return list(self.sample_weight.to_delayed(optimize_graph=False))

    def check_finite(self):
        """Nothing to do: every block was checked when X was persisted."""

    def magnitude(self):
        """The largest absolute value in X (a pass over the blocks)."""
        return float(abs(self.X).max().compute())

    def _map(self, func, *shared, blocks=None, per_block=None):
        """``func(block, weights, *shared[, per_block[i]])`` on every block (or ``blocks``),
        in block order (see :func:`_block_results`)."""
        return _block_results(self._blocks, func, shared, blocks, per_block)

    # -- EM ------------------------------------------------------------------------------

    def statistics(self, kernel_params, n_threads):
        """``(Σ w log p(x), Statistics)``: each block's on its worker, summed in order."""
        return _summed_statistics(self._map(block_statistics, kernel_params, n_threads))

    def labels(self, kernel_params, n_threads):
        """fit_predict's labels, lazily, from the X given to fit (its own graph: the fit's
        persisted copy is released when the fit returns)."""
        return _lazy_scores(self.source, kernel_params, "labels", n_threads,
                            self.estimator_name, self._nan_allowed)

    # -- initialisation --------------------------------------------------------------------

    def mean_and_variance(self, n_threads):
        """Weighted per-feature mean and variance of X (one pass, computed once per fit)."""
        if self._moments is None:
            weighed = np.flatnonzero(self._block_weight > 0)  # an empty block has no mean
            parts = self._map(_mean_and_variance_block, n_threads, blocks=weighed)
            w = self._block_weight[weighed][:, None]
            means = np.array([m for m, _ in parts])
            variances = np.array([v for _, v in parts])
            mean = (w * means).sum(axis=0) / w.sum()
            variance = (w * (variances + (means - mean) ** 2)).sum(axis=0) / w.sum()
            self._moments = mean, variance
        return self._moments

    def seeding_sample(self, n_clusters, random_state):
        """A uniform sample of at most ``INIT_SAMPLE_ROWS`` rows of non-zero weight, fetched
        to the client as an in-memory source."""
        return InMemorySource(*self.rows_at_ranks(_sample_ranks(self.n_positive,
                                                                random_state)))

    def rows_at_ranks(self, ranks):
        """Fetch the rows of non-zero weight with the given ranks (global, 0-based, in row
        order), in the order of ``ranks``, with their weights (or None)."""
        return self._rows_at_ranks(ranks, self._block_positive, _positive_rows)

    def _rows_at_ranks(self, ranks, block_counts, func, *shared):
        """The rows with the given global ranks among rows counted ``block_counts`` per
        block, in the order of ``ranks``, and their weights (or None): each block's from
        ``func(*block, *shared, local ranks)``, which returns (rows, weights or None)."""
        order = np.argsort(ranks, kind="stable")
        sorted_ranks = np.asarray(ranks)[order]
        offsets = np.concatenate([[0], np.cumsum(block_counts)])
        block_of = np.searchsorted(offsets, sorted_ranks, side="right") - 1
        blocks = np.unique(block_of)
        local_ranks = [sorted_ranks[block_of == b] - offsets[b] for b in blocks]
        parts = self._map(func, *shared, blocks=blocks, per_block=local_ranks)
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        rows = np.ascontiguousarray(np.concatenate([p[0] for p in parts])[position])
        if self.sample_weight is None:
            return rows, None
        return rows, np.concatenate([p[1] for p in parts])[position]

    def lloyd_step(self, centres, n_threads):
        """One Lloyd step over every block: (cluster weights, new centres)."""
        counts, shifted_sums = _ordered_float_sum(self._map(_lloyd_block, centres, n_threads))
        new_centres = centres.copy()
        filled = counts > 0
        new_centres[filled] += shifted_sums[filled] / counts[filled, None]
        return counts, new_centres

    def nearest_centre_statistics(self, centres, form, n_threads):
        """Statistics of the partition by nearest centre, about the centres."""
        return ordered_sum(self._map(_nearest_centre_block, centres, form, n_threads))

    def random_resp_statistics(self, n_components, random_state, form, n_threads):
        """Uniform random responsibilities, each block drawing from its own seed.

        The seeds come from ``random_state`` in block order, so the draw depends on the
        seed and the chunking only (not on workers or scheduling); shipping N×K random
        numbers from the client is what this avoids.
        """
        mean, _ = self.mean_and_variance(n_threads)
        shifts = np.ascontiguousarray(np.broadcast_to(mean, (n_components, self.n_features)))
        seeds = random_state.randint(np.iinfo(np.int32).max, size=len(self._blocks))
        return ordered_sum(self._map(_random_resp_block, n_components, shifts, form,
                                     n_threads, per_block=seeds))


# ----------------------------------------------------------------------------------------
# prediction and scoring
# ----------------------------------------------------------------------------------------


def _validated_for_scoring(model, X):
    """X checked against the fitted ``model``'s public attributes (from metadata)."""
    name = type(model).__name__
    X = _checked_array(X, name, min_samples=1)
    if X.shape[1] != model.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {name} is expecting "
            f"{model.n_features_in_} features as input."
        )
    if getattr(model, "feature_names_in_", None) is not None:
        warnings.warn(
            f"X does not have valid feature names, but {name} was fitted with feature names",
            UserWarning,
        )
    return X


def _lazy_scores(X, kernel_params, output, n_threads, estimator_name, nan_allowed):
    """One task per block, no communication between blocks; the parameters enter the
    graph as a single key shared by all blocks. Under ``nan_allowed`` NaN entries are
    missing (see ``gmmfast._missing.score_missing``)."""
    shared = dask.delayed(kernel_params, traverse=False, pure=True)
    args = (_score_block, shared, output, n_threads, estimator_name, nan_allowed)
    if output == "resp":
        n_components = kernel_params.means.shape[0]
        return X.map_blocks(*args, dtype=X.dtype, chunks=(X.chunks[0], (n_components,)),
                            meta=np.empty((0, 0), dtype=X.dtype))
    dtype = np.int64 if output == "labels" else X.dtype
    return X.map_blocks(*args, dtype=dtype, drop_axis=1, meta=np.empty((0,), dtype=dtype))


def score_lazily(model, X, output, kernel_params, n_threads, nan_allowed=False):
    """Lazy ``score_samples`` ("log_prob"), ``predict`` ("labels") or ``predict_proba``
    ("resp") of a dask array under the fitted ``model`` (its kernel parameters given);
    under ``nan_allowed`` NaN entries are missing."""
    X = _validated_for_scoring(model, X)
    return _lazy_scores(X, kernel_params, output, n_threads, type(model).__name__,
                        nan_allowed)


def total_weight_and_score(model, X, sample_weight, kernel_params, n_threads,
                           nan_allowed=False):
    """(n or Σ w, weighted average log-likelihood) of a dask array, computed now; under
    ``nan_allowed`` over the rows with an observed entry, as in memory."""
    X = _validated_for_scoring(model, X)
    weights = _checked_weights(sample_weight, X)
    x_blocks = _checked_blocks(X, type(model).__name__, nan_allowed).to_delayed().ravel()
    w_blocks = [None] * len(x_blocks) if weights is None else list(weights.to_delayed())
    parts = _block_results(list(zip(x_blocks, w_blocks)), _weighted_loglik_block,
                           (kernel_params, n_threads, nan_allowed))
    loglik, total = _ordered_float_sum(parts)
    if total == 0.0:
        if nan_allowed and sample_weight is None:
            raise nothing_observed_error()
        raise ValueError("Sample weights must contain at least one non-zero number.")
    n = X.shape[0] if sample_weight is None and total == X.shape[0] else float(total)
    return n, float(loglik / total)


# ----------------------------------------------------------------------------------------
# rows with missing entries
# ----------------------------------------------------------------------------------------


class DaskMissingSource(DaskSource):
    """The rows of a dask array whose NaN entries are missing values
    (``nan_policy="omit"``): what ``gmmfast._missing.MissingValueSource`` is in memory,
    and the same fit to rounding (the blocks' sums are added in another order).

    Each block is grouped by its patterns of missing entries once, on its worker, into a
    ``gmmfast._missing.GroupedRows`` persisted there (the persisted X is released: the
    groups hold its rows); every pass runs a method of each block's groups and the client
    adds the parts in block order. Refused as in memory: an infinity, a column with no
    observed value of non-zero weight, fewer rows with an observed entry (and non-zero
    weight) than components.

    Initialisation follows the in-memory source's (see ``gmmfast._missing``), with the
    sample of ``DaskSource``: k-means++ seeds on a uniform sample of at most
    ``INIT_SAMPLE_ROWS`` of the rows with the fewest missing entries (at least
    ``SEEDING_ROWS_PER_CLUSTER`` per cluster), fetched to the client with their missing
    entries at the column means; Lloyd's steps over all the blocks measure distances over
    each row's observed coordinates; ``random_from_data`` fetches its K rows, mean-imputed;
    ``random`` draws each block's responsibilities from the block's own seed.
    """

    _nan_allowed = True

    def __init__(self, X, sample_weight, n_components, estimator_name,
                 scale_free_weights=False):
        super().__init__(X, sample_weight, n_components, estimator_name, scale_free_weights)
        grouped = [dask.delayed(GroupedRows, pure=True)(rows, weights)
                   for rows, weights in self._blocks]
        # The blocks' functions take the groups alone; the persisted X is released.
        self._blocks = [(rows,) for rows in dask.persist(*grouped, optimize_graph=False)]
        self.X = None
        summaries = self._map(_observed_summary)
        self._block_weight = np.array([weight for weight, _, _ in summaries])
        self.total_weight = float(_ordered_float_sum([(w,) for w in self._block_weight])[0])
        check_observed_columns(_ordered_float_sum([(c,) for _, c, _ in summaries])[0])
        # (blocks, n_features + 1): rows of non-zero weight by their number of missing
        # entries, to draw samples of the rows with the fewest.
        self._positive_by_missing = np.array([counts for _, _, counts in summaries])
        self._block_positive = self._positive_by_missing.sum(axis=1)
        self.n_positive = int(self._block_positive.sum())
        check_enough_observed_rows(self.n_positive, n_components)

    def magnitude(self):
        """The largest absolute observed value (a pass over the blocks)."""
        return max(self._map(_call_method, "magnitude"))

    def statistics(self, kernel_params, n_threads):
        """``(Σ w log p(x_o), Statistics)``: each block's completed statistics on its
        worker, summed in block order."""
        return _summed_statistics(self._map(_call_method, "statistics", kernel_params,
                                            n_threads))

    # -- initialisation --------------------------------------------------------------------

    def mean_and_variance(self, n_threads):
        """Weighted per-feature mean and variance of the observed entries (one pass,
        computed once per fit)."""
        if self._moments is None:
            parts = self._map(_call_method, "moments", n_threads)
            self._moments = combined_moments(parts, self.n_features)[1:]
        return self._moments

    def seeding_sample(self, n_clusters, random_state):
        """A uniform sample of at most ``INIT_SAMPLE_ROWS`` of the rows of non-zero weight
        with the fewest missing entries, mean-imputed, as an in-memory source."""
        most_missing = fewest_missing_limit(self._positive_by_missing.sum(axis=0),
                                            SEEDING_ROWS_PER_CLUSTER * n_clusters)
        eligible = self._positive_by_missing[:, :most_missing + 1].sum(axis=1)
        ranks = _sample_ranks(int(eligible.sum()), random_state)
        return InMemorySource(*self._imputed_rows_at_ranks(ranks, eligible, most_missing))

    def rows_at_ranks(self, ranks):
        """The rows of non-zero weight with an observed entry with the given ranks (in row
        order), in the order of ``ranks``, mean-imputed, with their weights (or None)."""
        return self._imputed_rows_at_ranks(ranks, self._block_positive, self.n_features)

    def _imputed_rows_at_ranks(self, ranks, block_counts, most_missing):
        rows, weights = self._rows_at_ranks(ranks, block_counts, _call_method,
                                            "positive_rows_at_ranks", most_missing)
        mean, _ = self.mean_and_variance(0)
        return mean_imputed(rows, mean), weights

    def lloyd_step(self, centres, n_threads):
        """One Lloyd step over every block, distances over the observed coordinates:
        (cluster weights, new centres)."""
        counts, column_counts, shifted_sums = _ordered_float_sum(
            self._map(_call_method, "lloyd_parts", centres, n_threads))
        return counts, moved_centres(centres, column_counts, shifted_sums)

    def nearest_centre_statistics(self, centres, form, n_threads):
        """Statistics of the partition by nearest centre, about its clusters' means (a
        pass for the means, one for the statistics); a missing entry counts at its
        cluster's mean."""
        _, means = self.lloyd_step(centres, n_threads)
        return ordered_sum(self._map(_call_method, "partition_statistics", centres, means,
                                     form, n_threads))

    def random_resp_statistics(self, n_components, random_state, form, n_threads):
        """Uniform random responsibilities, each block drawing from its own seed (from
        ``random_state`` in block order), about the column means."""
        mean, _ = self.mean_and_variance(n_threads)
        shifts = np.ascontiguousarray(np.broadcast_to(mean, (n_components, self.n_features)))
        seeds = random_state.randint(np.iinfo(np.int32).max, size=len(self._blocks))
        return ordered_sum(self._map(_random_resp_grouped, shifts, form, n_threads,
                                     per_block=seeds))


def impute_lazily(model, X, kernel_params, random_state, n_threads):
    """Lazy ``GaussianMixtureImputer.transform`` of a dask array under the fitted
    ``model``'s mixture (``kernel_params``, with its covariances): each block filled in on
    its worker; with ``random_state``, by draws from a seed per block (drawn from it in
    block order)."""
    X = _validated_for_scoring(model, X)
    shared = dask.delayed(kernel_params, traverse=False, pure=True)
    seeds = (None if random_state is None
             else random_state.randint(np.iinfo(np.int32).max, size=X.numblocks[0]))
    return X.map_blocks(_imputed_block, shared, seeds, n_threads, dtype=X.dtype,
                        meta=np.empty((0, 0), dtype=X.dtype))
