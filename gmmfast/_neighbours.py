"""Starts from the neighbouring numbers of components' optima: the split and merge moves of
SMEM (Ueda, Nakano, Ghahramani & Hinton, 2000, "SMEM algorithm for mixture models").

EM from a start of K components often ends with one component over two clusters and two
components sharing one; no start of the multi-start pool fixes that but by luck (another
draw). The search's fits at K − 1 and K + 1 components of the same covariance model hold
the structure that does: the K − 1 fit with one of its components split in two, and the
K + 1 fit with its two most overlapping components merged, are K-component starts whose
other components already sit at an optimum.

- **Split**: a component cut along its principal axis into the halves on either side of
  its mean, moment-matched: each half weighs half the parent, its mean lies √(2/π)
  standard deviations along the axis (a half-normal's mean), and its covariance is the
  parent's less that offset's outer product, so the two halves pool to the parent's
  weight, mean and covariance. Every component of the K − 1 fit is split in turn
  (K − 1 starts).
- **Merge**: the pair replaced by one component with the pair's pooled weight, mean and
  covariance. The pairs are those of SMEM's merge criterion, the cosine of their columns
  of responsibilities (weighted by the rows' weights): the ``MERGED_PAIRS`` most
  overlapping ones.

- **Across**: the other covariance models' fits with as many components, each fit's own
  weights, means and covariances ("from VVV" in the criterion table). Another model's
  constraints lead EM to other optima, and from some of them the candidate's model
  climbs higher than from any start of its own (wine, EEV with 4 components: 9.7 above
  the splits' and merges' best, from EVV's fit; benchmarks/results/STARTS.md). There
  are many of them (13 in the default search), so they climb ``ACROSS_SCREEN_STEPS`` EM
  steps together and only the ``ACROSS_KEPT`` best climb on beside the splits and
  merges.

Each start is the M-step of its components' statistics, so the covariance model's
constraints hold (a tied model pools the moved components' covariances with the others).

Where in the search (``gmmfast._selection``): a second phase, after the first fits. A
candidate (model, K) is refitted once its own first fit and its model's first fits at
K − 1 and K + 1 (those of the grid) are done: all its neighbour starts climb together to
convergence (:class:`gmmfast._engine.MultiSetModel`), and the best admissible one replaces
the first fit when it ends higher by more than the fit's ``tol`` (per unit of weight, the
resolution of both climbs), or when the first fit collapsed. The phase runs in rounds
(``NEIGHBOUR_ROUNDS``, :class:`Neighbourhood`): a round's starts come from the fits of
the round before, never from a refit of the same round, so that no refit depends on the
order or the threads that ran the others. The across starts join in the last round
only, from every other model's fit at K after the round before: the rounds before it
are those of the splits and merges alone, so that the across starts only add optima and
never lead a later split or merge away from one (from the first round on, they leave
some cells lower: benchmarks/results/STARTS.md). Per candidate and round: K − 1 splits
and ``MERGED_PAIRS`` merges (each component in turn: the winning splits spread over the
components whatever their rank by weight, and the winning merges over the three most
overlapping pairs alike, in benchmarks/results/STARTS.md). Only on data within the
screen (``gmmfast._starts.SCREEN_ROWS``), where every start of the pool already climbs
to convergence and a climb costs little; on larger data the phase would add a climb on
every row to each candidate of a search whose cost is what limits it.
"""

import math
from typing import NamedTuple

import numpy as np

from gmmfast._engine import MultiSetModel, ParameterSets, Statistics, run_em
from gmmfast.plot import full_covariances

# A half-normal's mean, in standard deviations: where the mean of each half of a Gaussian
# cut through its mean normal to an axis lies along that axis.
HALF_NORMAL_MEAN = math.sqrt(2 / math.pi)
# Pairs of the K + 1 fit merged, the most overlapping first: the pair that shares one
# cluster overlaps most, and a few more cover pairs that share less of it.
MERGED_PAIRS = 3
# Rounds of the phase: after a round, the candidates beside one it refitted start again
# from that refit. A second round reaches more optima (benchmarks/results/STARTS.md: Old
# Faithful's last cell below the references, five of wine's), and costs little more, as
# few candidates change in it.
NEIGHBOUR_ROUNDS = 2

# The other models' fits at the same K are many starts (13 in the default search): they
# climb this many EM steps together, and the best few go on to convergence with the
# splits and merges. Two steps and three kept win the cells that all 13 climbed to
# convergence win on iris, Old Faithful and wine, at a fraction of the cost; one step,
# or two kept, lose wine's EEV with 4 components (benchmarks/results/STARTS.md).
ACROSS_SCREEN_STEPS = 2
ACROSS_KEPT = 3

# How the criterion table's ``start`` column names the starts of this module.
SPLIT = "split: "
MERGE = "merge: "
ACROSS = "from "


class Neighbour(NamedTuple):
    """A start for K components from a neighbouring fit: its name (what the criterion table
    shows), its weights (K,), means (K, D) and covariances (K, D, D)."""

    name: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def statistics(self, reg_covar, total_weight, form):
        """Statistics whose M-step has these moments (less ``reg_covar``, which the M-step
        adds again), for rows of ``total_weight``, in kernel ``form``."""
        nk = self.weights * total_weight
        sample = self.covariances - reg_covar * np.eye(self.means.shape[1])
        scatter = nk[:, None, None] * sample
        if form == "diag":
            scatter = np.ascontiguousarray(np.diagonal(scatter, axis1=1, axis2=2))
        return Statistics(nk, np.zeros_like(self.means), scatter,
                          np.ascontiguousarray(self.means))


def is_neighbour_start(name):
    """Whether the criterion table's ``start`` ``name`` is one of this module's (a split,
    a merge, or another model's fit): the candidate's EM then ran from that start, not on
    from a screening."""
    return name.startswith((SPLIT, MERGE, ACROSS))


def split_moments(weight, mean, covariance):
    """The two halves of a component cut along its principal axis: ``[(weight, mean,
    covariance)] * 2`` whose pooled moments are the component's."""
    variances, axes = np.linalg.eigh(covariance)
    offset = HALF_NORMAL_MEAN * math.sqrt(max(variances[-1], 0.0)) * axes[:, -1]
    half = covariance - np.outer(offset, offset)
    return [(weight / 2, mean + offset, half), (weight / 2, mean - offset, half.copy())]


def merge_moments(weights, means, covariances):
    """``(weight, mean, covariance)`` of the components pooled: the mixture's own first two
    moments."""
    weight = weights.sum()
    mean = weights @ means / weight
    deviations = means - mean
    spread = covariances + deviations[:, :, None] * deviations[:, None, :]
    return weight, mean, np.tensordot(weights, spread, axes=1) / weight


def fit_moments(fit):
    """``(weights, means, covariances (K, D, D))`` of a fitted mixture, float64."""
    return (np.asarray(fit.weights_, dtype=np.float64),
            np.asarray(fit.means_, dtype=np.float64), full_covariances(fit))


def split_starts(fit):
    """The starts of one more component than ``fit`` has: each of its components split in
    turn (:func:`split_moments`)."""
    weights, means, covariances = fit_moments(fit)
    n_components = len(weights)
    starts = []
    for k in range(n_components):
        halves = split_moments(weights[k], means[k], covariances[k])
        keep = [j for j in range(n_components) if j != k]
        moments = [(weights[j], means[j], covariances[j]) for j in keep] + halves
        starts.append(Neighbour(f"{SPLIT}component {k + 1} of {n_components}",
                                *map(np.array, zip(*moments))))
    return starts


def merge_starts(fit, responsibilities, row_weights, n_pairs=MERGED_PAIRS):
    """The starts of one component fewer than ``fit`` has: its ``n_pairs`` most overlapping
    pairs of components merged in turn (:func:`merge_moments`), the overlap of a pair
    being the cosine of their columns of ``responsibilities`` (N, K) under the rows'
    weights (None: equal)."""
    weights, means, covariances = fit_moments(fit)
    overlaps = merge_criterion(responsibilities, row_weights)
    first, second = np.triu_indices(len(weights), k=1)
    # The most overlapping first; among equals, the pair that comes first.
    order = np.argsort(-overlaps[first, second], kind="stable")[:n_pairs]
    starts = []
    for i, j in zip(first[order].tolist(), second[order].tolist()):
        pair = [i, j]
        merged = merge_moments(weights[pair], means[pair], covariances[pair])
        moments = [(weights[k], means[k], covariances[k])
                   for k in range(len(weights)) if k not in pair] + [merged]
        starts.append(Neighbour(f"{MERGE}components {i + 1} and {j + 1} of {len(weights)}",
                                *map(np.array, zip(*moments))))
    return starts


def merge_criterion(responsibilities, row_weights):
    """(K, K): SMEM's merge criterion of each pair of components, the cosine of their
    columns of responsibilities under the rows' weights."""
    resp = np.asarray(responsibilities, dtype=np.float64)
    weighted = resp if row_weights is None else resp * row_weights[:, None]
    inner = weighted.T @ resp
    norms = np.sqrt(np.diagonal(inner))
    with np.errstate(invalid="ignore", divide="ignore"):
        cosines = inner / np.outer(norms, norms)
    return np.nan_to_num(cosines, nan=0.0)


def across_starts(fits):
    """The starts of the same number of components from other covariance models' fits
    (:class:`CandidateFit`): each fit's own moments, which the M-step of the candidate's
    model then bends to its constraints."""
    return [Neighbour(ACROSS + fit.row["covariance_type"], *fit_moments(fit.row["model"]))
            for fit in fits]


def neighbour_starts(model, source, starting, n_threads):
    """The starts of one candidate of ``model`` from its :class:`StartingFits`, on
    ``source``."""
    fewer, more, across = starting
    starts = [] if fewer is None else split_starts(fewer.row["model"])
    if more is not None:
        kernel_params = model.kernel_parameters(more.result.parameters)
        resp = source.score(kernel_params, n_threads, resp=True, log_prob=False)[2]
        starts += merge_starts(more.row["model"], resp, source.sample_weight)
    return starts + across_starts(across)


def neighbour_em(model, source, starts, fitted, *, max_iter, tol, n_threads, admissible,
                 stop=None):
    """``(EMResult, name of its start)`` of the best admissible climb from the
    :class:`Neighbour` ``starts`` when it replaces ``fitted`` (the candidate's EMResult):
    when it ends higher by more than ``tol`` per unit of weight, or ``fitted`` collapsed
    (``admissible`` is :class:`gmmfast._starts.Collapse`); else None. The starts climb
    together; the winner climbs again alone, so that its result is the one run of EM."""
    statistics = [start.statistics(model.reg_covar, source.total_weight, model.form)
                  for start in starts]
    # A start whose M-step finds an ill-defined covariance has no θ (None): it is dropped.
    thetas = model.initial_parameters_of_sets(statistics, source.total_weight)
    across = [i for i, start in enumerate(starts) if start.name.startswith(ACROSS)]
    for i in screened_out(model, source, [thetas[i] for i in across], tol=tol,
                          n_threads=n_threads, admissible=admissible, stop=stop):
        thetas[across[i]] = None
    if all(theta is None for theta in thetas):
        return None
    sets = ParameterSets.of(thetas)
    climbed = run_em(MultiSetModel(model, tol), source, lambda _: (sets, -np.inf),
                     n_init=1, max_iter=max_iter, tol=tol, n_threads=n_threads, stop=stop,
                     warn=False).parameters.only(admissible.of_sets)
    best = climbed.best()
    # A collapsed fit is replaced by any admissible one, as the strategy's final choice.
    to_beat = fitted.lower_bound + tol if admissible(fitted.parameters) else -np.inf
    if best is None or climbed.bounds[best] <= to_beat:
        return None
    result = run_em(model, source, lambda _: (thetas[best], -np.inf), n_init=1,
                    max_iter=max_iter, tol=tol, n_threads=n_threads, stop=stop, warn=False,
                    admissible=admissible)
    if not admissible(result.parameters) or result.lower_bound <= to_beat:
        return None
    return result, starts[best].name


def screened_out(model, source, thetas, *, tol, n_threads, admissible, stop=None):
    """Indices of the θ (None: no start) that a short climb of ``ACROSS_SCREEN_STEPS``
    EM steps together ranks below the ``ACROSS_KEPT`` best admissible ones."""
    if sum(theta is not None for theta in thetas) <= ACROSS_KEPT:
        return []
    sets = ParameterSets.of(thetas)
    climbed = run_em(MultiSetModel(model, tol), source, lambda _: (sets, -np.inf),
                     n_init=1, max_iter=ACROSS_SCREEN_STEPS, tol=tol, n_threads=n_threads,
                     stop=stop, warn=False).parameters.only(admissible.of_sets)
    kept = set(climbed.ranked()[:ACROSS_KEPT])
    return [i for i in range(len(thetas)) if i not in kept]


class CandidateFit(NamedTuple):
    """A candidate's fit in a search: its row of the criterion table, and its EMResult and
    :class:`gmmfast._starts.StartReport` (None when it failed)."""

    row: dict
    result: object = None
    report: object = None


class StartingFits(NamedTuple):
    """The fits (:class:`CandidateFit`) a candidate's round starts from: its model's with a
    component fewer and one more (or None), and the other models' with as many (a list)."""

    fewer: object
    more: object
    across: list

    def is_empty(self):
        """Whether there is nothing to start from."""
        return self.fewer is None and self.more is None and not self.across


class Neighbourhood:
    """The rounds of a search's second phase. Round 0 of a candidate (K, model) is its
    first fit; in round r it is refitted from the fits its model's candidates at K - 1
    and K + 1 had after round r - 1, those of them that changed in that round (a round in
    which none did changes nothing), once its own round r - 1 is done too. Its last round
    also starts from the other models' fits at K after the round before, every one that
    did not fail, once they are done. After ``rounds`` rounds its fit is final.

    Each round reads only the fits of the round before, whichever thread made them and in
    whatever order: the final fits do not depend on the search's threads."""

    def __init__(self, grid_k, types, rounds):
        ks = set(grid_k)
        self.rounds = rounds
        self._beside = {(k, t): [(k + step, t) for step in (-1, 1) if k + step in ks]
                        for k in grid_k for t in types}
        self._across = {(k, t): [(k, other) for other in types if other != t]
                        for k, t in self._beside}
        # Per candidate, its fit (CandidateFit) after each round done, and whether that
        # round changed it; and the next round to start.
        self._fits = {cell: [] for cell in self._beside}
        self._changed = {cell: [] for cell in self._beside}
        self._next_round = dict.fromkeys(self._beside, 1)

    def _waits_for(self, cell, round_index):
        """The candidates whose round before ``round_index`` the candidate's round waits
        for."""
        if round_index == self.rounds:
            return self._beside[cell] + self._across[cell]
        return self._beside[cell]

    def record(self, cell, fit, changed):
        """Record a candidate's fit after its next round, and whether that round changed
        it: the candidates that can start a round now (each round of each is given
        once)."""
        self._fits[cell].append(fit)
        self._changed[cell].append(changed)
        ready = []
        for other in [cell] + self._beside[cell] + self._across[cell]:
            next_round = self._next_round[other]
            if (next_round <= self.rounds and len(self._fits[other]) == next_round
                    and all(len(self._fits[n]) >= next_round
                            for n in self._waits_for(other, next_round))):
                self._next_round[other] += 1
                ready.append(other)
        return ready

    def is_final(self, cell):
        """Whether the candidate has done every round."""
        return len(self._fits[cell]) > self.rounds

    def latest(self, cell):
        """The candidate's fit after the last round it has done."""
        return self._fits[cell][-1]

    def starting_fits(self, cell):
        """The :class:`StartingFits` of the candidate's next round: the fits of the round
        before, where the grid has them and they did not fail; those at K - 1 and K + 1
        only if that round changed them (the other models' at K were never starts
        before)."""
        last = len(self._fits[cell]) - 1
        beside = {n[0]: self._fits[n][last] for n in self._beside[cell]
                  if self._changed[n][last] and self._fits[n][last].result is not None}
        across = ([self._fits[n][last] for n in self._across[cell]
                   if self._fits[n][last].result is not None]
                  if last + 1 == self.rounds else [])
        return StartingFits(beside.get(cell[0] - 1), beside.get(cell[0] + 1), across)
