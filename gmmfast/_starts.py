"""The "multistart" initialisation: many cheap, diverse starts screened by short EM runs,
the best one continued to convergence beside the plain k-means start ("emEM": Biernacki,
Celeux & Govaert, 2003, "Choosing starting values for the EM algorithm").

EM climbs to the optimum nearest its start, and no kind of start wins everywhere: k-means
partitions, k-means++ seeds, random rows, random responsibilities and hierarchical
agglomerations each find the best optimum on some data sets and miss it on others. So:

1. A **screen**: the rows themselves, or a fixed pseudo-random sample of ``SCREEN_ROWS`` of
   them on larger data (rows with missing entries: their mean-imputed copy, see the
   sources' ``screen_of``). Its sample does not depend on ``random_state``, so one
   agglomeration tree per transformation of the screen serves every number of components
   and every covariance model of a search.
2. A **pool** of starts for K components, shared by every covariance model: the plain
   k-means start (exactly ``init_params="kmeans"``'s, on all the rows), k-means runs
   and random rows (more of both when the screen holds every row) and k-means++ seeds on
   the screen, the cuts at K clusters of Ward's agglomeration (the classification
   likelihood of mclust's EII model) of the screen's rows raw, standardised and
   whitened, and the cut of the VVV criterion's agglomeration of the whitened rows
   (mclust's default start, :mod:`gmmfast._agglomeration`; on a fixed subsample of
   ``MODEL_BASED_TREE_ROWS`` of a larger screen), and on a screen that samples the rows
   the cut of that tree whose merges above ``SPHERICAL_MERGES_FROM`` clusters are the
   spherical criterion's: with fewer components than true clusters a model merges whole
   clusters, and the spherical and diagonal models fit best other mergings than the VVV
   criterion's (a cut that is the VVV tree's is left out). A
   randomised start is a set of centres, and its θ the M-step of the partition of the
   screen's rows by nearest centre;
   a tree's cut is a partition of the rows the tree joined, and its θ that partition's
   M-step, as mclust starts EM (on non-spherical clusters the cut and the partition by
   its clusters' means differ; a cut of a subsample starts the other rows from the
   subsample's M-step, as mclust does with its subset). On data so small that every
   start climbs to convergence (see 4.), the partition by each cut's means joins too:
   the two reach different optima, and each finds cells the other misses. When the
   screen holds every row, random responsibilities join (scikit-learn's
   ``init_params="random"``): each row shared among the components at random, so that
   every component starts near the data's mean and covariance and EM breaks the symmetry
   along the data's own directions. They reach optima that no partition of the rows
   starts (on wine, EEE with 7 components: 9.6 above mclust's optimum, which the pool's
   other starts miss by 3.8).
3. **Successive halving** on the screen: every start climbs ``SCREEN_ROUNDS[0]`` EM
   iterations, all of them scored in the same pass over the rows; the better half climbs
   the next round's iterations, and so on. A round ends early once every start's bound
   has converged (by the fit's ``tol``): on well-separated data, screening then costs a
   few iterations per start. Work that cannot change the ranking is skipped: a start
   that partitions the screen's rows as an earlier one did (k-means runs and tree cuts
   often agree) follows that start instead of climbing again, and on a sample of the
   rows a start whose bound has settled (``SETTLED_FRACTION``), or that has fallen so
   far behind that the round cannot keep it (``RACE_MARGIN``), stops climbing while the
   others go on.
4. The winner is run to convergence on all the rows. When the screen holds all the
   rows, so are the other survivors of the last round and the plain k-means start, from
   its initial θ, and the best is the fit: a multi-start fit is then never worse than
   the "kmeans" fit with the same ``random_state``. There an iteration costs little, and
   the start that leads after the short rounds does not always end highest, so halving
   keeps at least as many distinct starts as hold ``FINALIST_ROWS`` rows together (a
   budget of starts × rows per iteration: six starts on a full screen of
   ``SCREEN_ROWS`` rows, every start of the pool on data of up to about 230 rows, and
   on Old Faithful's 272); they
   climb every round, then to convergence. On larger data that second EM on all the
   rows would double the cost; the k-means start competed on the screen (it runs every
   round, as the reference), and it is the fit's start only when it won there. A sample
   cannot rank optima whose difference is within its noise (``SAMPLE_NOISE``): then the
   winner and the runner-up are scored on ``RANKING_ROWS`` rows (every row of smaller
   data), and the higher climbs.
   :class:`StartReport` says which start was kept and by how much it beat the plain
   k-means start.
5. In a search on data within the screen, a second phase refits each candidate from its
   covariance model's fits at one component fewer and one more, split and merged
   (:mod:`gmmfast._neighbours`).

More starts find more optima, spurious ones among them: a component that collapses onto
a few rows sharing a value (discrete or rounded data), or on fewer rows than it has
dimensions, has a variance held up by ``reg_covar`` alone and a likelihood without bound.
On rounded data a component can also sit on a few rows that share one value of a
feature without collapsing outright: its spread along that feature is then narrower
than the rounding itself (a few hundredths of a minute on Old Faithful's waiting times,
recorded in whole minutes), and its likelihood grows with how few rows it holds, not
with how well it describes them. Such fits are not admissible
(:class:`Collapse`): the screening drops them, a finalist stops climbing once it
collapses (EM, and an iterative M-step, can take many slow iterations to settle on a
collapsed component), and the final choice keeps one only when every finalist collapsed:
then the highest climbs on to convergence.
"""

import math
import threading
from typing import NamedTuple

import numpy as np

from gmmfast._agglomeration import spherical_top, vvv_linkage
from gmmfast._engine import (
    MultiSetModel,
    ParameterSets,
    Race,
    Statistics,
    kmeans_centres,
    run_em,
)
from gmmfast._initialisation import kmeans_plusplus, stats_from_labels
from gmmfast._mstep import kernel_form

# Rows the starts are screened on: enough for the short runs to rank the starts as the
# whole data would (a hundred rows per cluster at K = 10), few enough that screening costs
# a few full-data iterations at most, and that an agglomeration (quadratic in the rows)
# takes some tens of milliseconds.
SCREEN_ROWS = 1000
# The screen's sample is the same for every random_state (see the module's docstring).
SCREEN_SEED = 0
# Rows of the screen the VVV criterion's agglomeration sees: its O(n²) determinants cost
# about 0.35 s of CPU on 1000 rows, which every candidate of a search waits for, and a
# quarter of that on this many (a fixed subsample, like the screen's).
MODEL_BASED_TREE_ROWS = 500
# The VVV tree's cut into this many clusters is merged on under the spherical criterion
# too (a second tree, cut for fewer components only): twice the search's default largest
# K, so the cut's clusters are pieces of true clusters that the VVV tree shaped, and their
# merges cost nothing.
SPHERICAL_MERGES_FROM = 20

# EM iterations of each screening round; half the starts survive each round. Short first
# rounds drop the starts that head for poor optima; the last round separates starts whose
# optima differ in the third digit.
SCREEN_ROUNDS = (4, 8, 16)

# A start whose bound rose by less than this fraction of the fit's tol in one screening
# iteration has settled and stops climbing: EM's steps shrink as it converges, so all the
# iterations left in the screening would raise it by less than a quarter of tol, a
# difference that no comparison at the fit's tolerance resolves.
SETTLED_FRACTION = 1 / (4 * sum(SCREEN_ROUNDS))
# On a sample, a start stops climbing once it could not reach the starts the round keeps
# even rising this many times its last rise at every iteration left: EM's rises shrink
# as it converges, so such a start is not kept by the round. The margin allows for the
# rises that grow for a while as EM leaves a plateau: on the default search of 100 000
# rows a margin of 4 changed no screening's winner, and 2 changed some rounds' survivors.
RACE_MARGIN = 4.0
# Two starts partition the screen's rows alike when their clusters' counts agree to this
# relative precision and their means to this fraction of the data's spread: the rounding
# of sums about different shifts is some 1e-13 of it, while moving one row of a thousand
# between clusters moves their means by about 1e-3 of it.
SAME_PARTITION = 1e-8

# On data within the screen, halving keeps at least FINALIST_ROWS // rows starts, which
# all climb to convergence: an iteration of them all reads at most as many rows as the
# last round's six survivors on a full screen do. Climbing more starts to the end finds
# optima that no short race ranks first (benchmarks/results/STARTS.md: cells of Old
# Faithful, iris and wine that four finalists miss), and the pool's draws on small data
# win their cells only if they climb: a budget of 5 000 rows halves Old Faithful's 22
# starts to 18, and two of its cells are lost.
FINALIST_ROWS = 6 * SCREEN_ROWS

# On a sample, the winner of the screening and the runner-up are scored on more rows when
# the winner's lead is within this many standard errors of the sample's mean difference
# of log-likelihood: optima that merge different clusters differ by much on few rows,
# and a sample of SCREEN_ROWS ranks them as the rows do only when the lead is clear.
SAMPLE_NOISE = 2.0
# Rows those two are scored on: all of them on data of up to this many, else a fixed
# sample, whose noise is a third of the screen's. Scoring every row of the default search's
# 100 000 cost a tenth of its time (two passes for most candidates).
RANKING_ROWS = 10 * SCREEN_ROWS

# Randomised starts drawn on the screen for each number of components, per kind.
SCREEN_KMEANS_STARTS = 2
KMEANS_PLUSPLUS_STARTS = 3
RANDOM_ROW_STARTS = 3
# More k-means runs when the screen holds every row. There the cells the pool misses are
# optima that other draws of its own kinds of start reach (benchmarks/results/STARTS.md),
# and k-means runs are the cheapest draws to add: each reads few rows, and a run that
# ends in an earlier start's partition (about a third of them on small data) follows
# that start instead of climbing. Only there: on larger data a race on a sample keeps
# few starts, and every start drawn costs screening passes of every candidate.
KMEANS_STARTS_WITHIN_SCREEN = 3
# More random rows, and random responsibilities (see the module's docstring), only when
# the screen holds every row, for the same reasons. Random rows reach optima with small,
# elongated components that partitions into compact clusters miss (the standardised
# wine data's EEV with 3 components, 15 higher than the pool without them).
RANDOM_ROWS_WITHIN_SCREEN = 3
RANDOM_RESPONSIBILITY_STARTS = 3

PLAIN_KMEANS = "kmeans"
SPHERICAL_TREE = "model-based hierarchical, spherical merges"

# A component has collapsed when, beyond reg_covar, its variance along some direction is
# below this fraction of the data's (per feature, standardised): far below any real
# cluster's spread, and far above the rounding of a variance that is exactly zero...
COLLAPSED_VARIANCE = 1e-8
# ... or when that variance is at most this multiple of reg_covar: the rows then add no
# more variance in that direction than reg_covar itself does...
FLOOR_FACTOR = 2.0
# ... or when, beyond reg_covar, its variance along a feature is below that feature's
# rounding variance h² / 12 (h the smallest step between the feature's distinct values):
# the spread of a value known only to ±h/2. A Gaussian narrower than that describes the
# rounding of its rows, not their distribution; a real cluster as narrow as the rounding
# would put its rows on one or two values and a variance of at least about h² / 12.


class Start(NamedTuple):
    """One start: its name, its centres (K, D), the statistics its θ is the M-step of, per
    source of rows and kernel form, computed when a covariance model first needs them
    (every model of the form shares them), and its initial responsibilities: a tree's
    :class:`Cut`, :class:`RandomResponsibilities`, or None (the partition of a source's
    rows by nearest centre)."""

    name: str
    centres: np.ndarray
    partitions: dict
    responsibilities: object = None

    def statistics(self, source, form, n_threads):
        """The statistics of the start's responsibilities on the source's rows (a cut's:
        of the rows it joined, weighted as the source's)."""
        key = id(source), form  # the screen keeps its sources alive
        if key not in self.partitions:
            if self.responsibilities is None:
                self.partitions[key] = source.nearest_centre_statistics(
                    np.ascontiguousarray(self.centres), form, n_threads)
            else:
                self.partitions[key] = self.responsibilities.statistics(
                    self.centres, source, form, n_threads)
        return self.partitions[key]


class Cut(NamedTuple):
    """A tree's partition of the rows it joined: the rows (n, D) float64, their weights
    (or None) and their clusters' labels (n,) int64."""

    rows: np.ndarray
    weights: object
    labels: np.ndarray

    def statistics(self, means, source, form, n_threads):
        """The statistics of the partition about its clusters' ``means``, scaled to the
        source's total weight: their M-step is the partition's (means and covariances do
        not change under one common factor), with weights that sum to one over the rows
        EM climbs on."""
        nk, sums, scatter, shifts = stats_from_labels(
            self.rows, self.weights, self.labels, np.ascontiguousarray(means), form,
            n_threads)
        scale = source.total_weight / nk.sum()
        return Statistics(nk * scale, sums * scale, scatter * scale, shifts)


class RandomResponsibilities(NamedTuple):
    """Uniform random responsibilities of ``n_components`` components, rows normalised
    (scikit-learn's ``init_params="random"``), drawn from a saved ``RandomState`` state
    (``get_state()``): every kernel form gets the same draws."""

    n_components: int
    state: tuple

    def statistics(self, means, source, form, n_threads):
        """The statistics of the responsibilities on the source's rows (``means`` is not
        needed: they are about the rows' mean)."""
        random_state = np.random.RandomState()
        random_state.set_state(self.state)
        return source.random_resp_statistics(self.n_components, random_state, form,
                                             n_threads)


class ScreenPartitions(NamedTuple):
    """What every covariance model of one kernel form finds in a pool of starts: each
    start's partition of the screen's rows (its statistics), the starts that repeat an
    earlier one's partition (pairs (copy, original), see :meth:`Screen.copies`) and the
    starts that climb on their own (neither a copy nor with an empty cluster)."""

    statistics: list
    copies: tuple
    fresh: list


class Pool(list):
    """The starts of one number of components drawn for ``screen`` (:class:`Start`, the
    plain k-means start first), shared by every covariance model: what the models of a
    kernel form find in them on the screen is worked out once
    (:meth:`screen_partitions`)."""

    def __init__(self, screen, starts=()):
        super().__init__(starts)
        self.screen = screen
        self._screen_partitions = {}
        # Random starts drawn before the trees' cuts are known, to be placed after them
        # (:func:`add_tree_cuts`).
        self.after_cuts = []

    def screen_partitions(self, form, n_threads):
        """The :class:`ScreenPartitions` of the starts on the screen's rows in ``form``."""
        known = self._screen_partitions.get(form)
        if known is None:
            # Candidates of one form may race to compute it: both get the same value.
            known = self._screen_partitions.setdefault(
                form, _screen_partitions(self.screen, self, form, n_threads))
        return known


def _screen_partitions(screen, starts, form, n_threads):
    statistics = [start.statistics(screen.sample, form, n_threads) for start in starts]
    copies = screen.copies(statistics)
    originals = dict(copies)
    # A start with an empty cluster has no θ; a copy takes its original's.
    fresh = [i for i, stats in enumerate(statistics)
             if i not in originals and np.all(stats.nk > 0)]
    return ScreenPartitions(statistics, copies, fresh)


class StartReport(NamedTuple):
    """Which start a multi-start fit kept, by how much its final log-likelihood (total,
    weighted) beat the fit from the plain k-means start (0 when that start won), and
    whether it collapsed (every finalist did; see :class:`Collapse`)."""

    winner: str
    gain_over_kmeans: float
    collapsed: bool = False


class Screen:
    """The rows starts are screened on, with the agglomeration trees of its rows (built
    once, when first cut)."""

    def __init__(self, source):
        self.source = source
        self.sample = _screen_source(source, SCREEN_ROWS)
        # The sample is always in memory (rows with missing entries: mean-imputed).
        self.points = np.asarray(self.sample.X, dtype=np.float64)
        self._trees = None
        self._ranking_sample = None
        self._rounding = None
        self._lock = threading.Lock()  # a search's candidates share the trees

    def ranking_sample(self):
        """The rows that rank the leaders a sample screen cannot (see SAMPLE_NOISE): a
        fixed sample of RANKING_ROWS of them, or all of them on smaller data."""
        with self._lock:
            if self._ranking_sample is None:
                self._ranking_sample = _screen_source(self.source, RANKING_ROWS)
            return self._ranking_sample

    def admissible(self, model):
        """The :class:`Collapse` test of ``model``'s fits on these data."""
        _, variance = self.source.mean_and_variance(0)
        with self._lock:
            if self._rounding is None:
                self._rounding = rounding_variances(self.points)
        return Collapse(model.layout, model.reg_covar, variance, self._rounding)

    def copies(self, partitions):
        """``((copy, original), ...)``: the starts whose partition of the screen's rows
        (their statistics, in ``partitions``) is that of an earlier start, clusters in any
        order; each is paired with the first such start."""
        mean, variance = self.source.mean_and_variance(0)
        alike = _alike_partitions(partitions,
                                  SAME_PARTITION * (np.sqrt(variance) + np.abs(mean)))
        pairs, copied = [], set()
        for i in range(len(partitions)):
            original = next((j for j in range(i) if alike[i, j] and j not in copied), None)
            if original is not None:
                pairs.append((i, original))
                copied.add(i)
        return tuple(pairs)

    def hierarchical_starts(self, n_components):
        """Each tree's cut into ``n_components`` clusters, with its clusters' means."""
        from scipy.cluster.hierarchy import fcluster

        weights = self.sample.sample_weight
        starts, previous = [], None
        for name, tree, rows in self._agglomerations():
            labels = (fcluster(tree, n_components, criterion="maxclust") - 1).astype(np.int64)
            if labels.max() + 1 != n_components:  # ties merged below K clusters
                continue
            # The spherical merges follow the VVV tree, and cut its partitions from
            # SPHERICAL_MERGES_FROM clusters on (and sometimes below).
            partition, previous = previous, _first_seen_order(labels)
            if name == SPHERICAL_TREE and np.array_equal(partition, previous):
                continue
            points = np.ascontiguousarray(self.points[rows])
            cut = Cut(points, None if weights is None else weights[rows], labels)
            row_weights = np.ones(len(points)) if cut.weights is None else cut.weights
            masses = np.bincount(labels, weights=row_weights, minlength=n_components)
            centres = np.zeros((n_components, points.shape[1]))
            np.add.at(centres, labels, points * row_weights[:, None])
            starts.append(Start(name, centres / masses[:, None], {}, cut))
        return starts

    def one_start(self, n_components):
        """Whether a pool of starts for ``n_components`` holds the plain k-means start
        alone: one cluster, or more than the screen's rows, leaves nothing to screen."""
        return n_components == 1 or n_components > self.sample.n_positive

    def build_trees(self):
        """Build the agglomeration trees now, if no other thread has."""
        self._agglomerations()

    def _agglomerations(self):
        """[(name, linkage, rows of the screen it joins)]: Ward's of every row raw,
        standardised and whitened, and the VVV criterion's (mclust's default start) of a
        fixed subsample of the whitened rows, and on a sample of the rows that tree with
        its top merged again under the spherical criterion."""
        with self._lock:
            if self._trees is None:
                self._trees = self._agglomerate()
            return self._trees

    def _agglomerate(self):
        from scipy.cluster.hierarchy import ward

        points = self.points
        # Ward's merges do not change under one common scale; unit magnitude keeps the
        # squared distances finite on data whose scale would overflow them.
        magnitude = np.max(np.abs(points)) if points.size else 0.0
        if np.isfinite(magnitude) and magnitude > 0:
            points = points / magnitude
        centred = points - points.mean(axis=0)
        scale = centred.std(axis=0)
        scale[scale == 0] = 1.0
        whitened = _whitened(centred)
        every_row = slice(None)
        trees = [("hierarchical", ward(points), every_row),
                 ("hierarchical (standardised)", ward(centred / scale), every_row)]
        if whitened.shape[1]:
            trees.append(("hierarchical (whitened)", ward(whitened), every_row))
            rows = _fixed_subsample(len(points), MODEL_BASED_TREE_ROWS)
            if np.ptp(points[rows], axis=0).any():  # the criterion needs distinct rows
                joined = whitened[rows]
                tree = vvv_linkage(joined)
                trees.append(("model-based hierarchical", tree, rows))
                # Only on a sample: on the rows themselves the pool's size sets how many
                # starts climb to convergence (FINALIST_ROWS), which one more would raise.
                # Unlike the VVV criterion, the spherical one depends on the rows' frame:
                # the joined rows' own whitening makes its merges, like the VVV tree's,
                # not change under an affine map of them.
                if self.sample is not self.source:
                    spherical = spherical_top(tree, _whitened(joined - joined.mean(axis=0)),
                                              SPHERICAL_MERGES_FROM)
                    trees.append((SPHERICAL_TREE, spherical, rows))
        return trees


class Collapse:
    """``admissible(θ)``: whether no component of a mixture θ (scikit-learn layout
    ``layout``, see :class:`gmmfast._engine.MixtureModel`) has collapsed (see the module's
    docstring) on data of per-feature ``variance`` and ``rounding`` variance (see
    :func:`rounding_variances`; none: the data are not rounded)."""

    def __init__(self, layout, reg_covar, variance, rounding=None):
        self.layout = layout
        self.reg_covar = reg_covar
        self.scale = 1.0 / np.sqrt(np.where(variance > 0, variance, 1.0))
        self.smallest_scale = float(np.min(self.scale)) if self.scale.size else 1.0
        self.rounding = (np.zeros(self.scale.size) if rounding is None
                         else np.asarray(rounding, dtype=np.float64))

    def __call__(self, theta):
        return self.of_sets([theta])[0]

    def of_sets(self, thetas):
        """``admissible(θ)`` of each mixture of the list (one shape): one
        eigen-decomposition of the covariances of those that their precisions' factors
        do not clear (:meth:`cleared`)."""
        admissible = self.cleared(thetas)
        doubtful = [i for i, cleared in enumerate(admissible) if not cleared]
        if doubtful:
            smallest = self.smallest_variances(np.array([thetas[i][2] for i in doubtful]))
            for i, value in zip(doubtful, smallest.tolist()):
                admissible[i] = self._admissible(np.asarray(thetas[i][2]), value)
        return admissible

    def cleared(self, thetas):
        """Whether each mixture is admissible by a bound on its smallest variance that
        needs no eigen-decomposition: along any direction a covariance Σ holds at least
        1 / tr(Σ⁻¹), and along feature j at least 1 / (Σ⁻¹)ⱼⱼ; with Σ⁻¹ = U Uᵀ for the
        precisions' factor U, θ's fourth array, tr(Σ⁻¹) = ‖U‖² and (Σ⁻¹)ⱼⱼ is the squared
        norm of U's row j (False for a θ without it, and for diagonal covariances, whose
        variances are their entries)."""
        if not thetas:
            return []
        if (kernel_form(self.layout) == "diag"
                or any(len(theta) < 4 or theta[3] is None for theta in thetas)):
            return [False] * len(thetas)
        size = self.scale.size
        factors = np.reshape(np.array([theta[3] for theta in thetas]),
                             (len(thetas), -1, size, size))
        diagonal_precisions = np.sum(factors**2, axis=3)
        bound = 1.0 / np.max(np.sum(diagonal_precisions, axis=2), axis=1)
        along_features = 1.0 / diagonal_precisions
        # The thresholds of _admissible, twice over for rounding: where the bounds
        # clear them, so do the variances.
        return ((bound > 2 * FLOOR_FACTOR * self.reg_covar)
                & ((bound - self.reg_covar) * self.smallest_scale**2
                   > 4 * COLLAPSED_VARIANCE)
                & np.all(along_features - self.reg_covar > 2 * self.rounding,
                         axis=(1, 2))).tolist()

    def _admissible(self, covariances, smallest):
        """Whether covariances whose smallest variance is ``smallest`` have not
        collapsed."""
        if smallest <= FLOOR_FACTOR * self.reg_covar or not self.resolved(covariances):
            return False
        # Every direction holds at least smallest − reg_covar beyond reg_covar, so the
        # standardised spread is at least that times the smallest squared scale: when
        # this bound clears the threshold (twice over, for rounding), the second
        # eigen-decomposition cannot change the answer.
        if (smallest - self.reg_covar) * self.smallest_scale**2 > 2 * COLLAPSED_VARIANCE:
            return True
        return self.smallest_spread(covariances) > COLLAPSED_VARIANCE

    def resolved(self, covariances):
        """Whether every component's variance along each feature, beyond reg_covar, is at
        least the feature's rounding variance."""
        if not np.any(self.rounding):
            return True
        covariances = np.asarray(covariances)
        size = self.scale.size
        if self.layout == "spherical":
            along_features = np.reshape(covariances, (-1, 1))
        elif kernel_form(self.layout) == "diag":
            along_features = np.reshape(covariances, (-1, size))
        else:
            along_features = np.diagonal(np.reshape(covariances, (-1, size, size)),
                                         axis1=1, axis2=2)
        return bool(np.all(along_features - self.reg_covar >= self.rounding))

    def smallest_variances(self, covariances):
        """The smallest variance, over components and directions, in the data's units, of
        each mixture's covariances (stacked on a first axis)."""
        n_sets = len(covariances)
        if self.layout != "spherical" and kernel_form(self.layout) != "diag":
            size = self.scale.size
            covariances = np.linalg.eigvalsh(np.reshape(covariances, (n_sets, -1, size, size)))
        return np.min(np.reshape(covariances, (n_sets, -1)), axis=1)

    def smallest_spread(self, covariances):
        """The smallest variance beyond reg_covar, over components and directions, of the
        standardised data."""
        scale, reg = self.scale, self.reg_covar
        if self.layout == "spherical":
            return float(np.min(covariances - reg) * np.min(scale) ** 2)
        if kernel_form(self.layout) == "diag":
            return float(np.min((covariances - reg) * scale**2))
        matrices = np.reshape(covariances, (-1, scale.size, scale.size))
        eye = np.eye(scale.size)
        standardised = (matrices - reg * eye) * scale[:, None] * scale[None, :]
        return float(np.min(np.linalg.eigvalsh(standardised)))


def rounding_variances(points):
    """Per feature of the rows ``points`` (N, D), the variance h² / 12 of rounding to the
    smallest step h between its distinct values (0 for a feature with one value). On
    unrounded data h is tiny: among N values spread over a range R the smallest gap is
    about R / N²."""
    variances = np.zeros(points.shape[1])
    for j, column in enumerate(points.T):
        steps = np.diff(np.unique(column))
        if steps.size:
            variances[j] = np.min(steps)
    with np.errstate(over="ignore"):  # data whose scale overflows are refused elsewhere
        return variances**2 / 12.0


def _alike_partitions(partitions, tolerance):
    """(M, M) booleans: whether two partitions' clusters have the same counts (to the
    relative precision SAME_PARTITION) and means (to ``tolerance``, per feature), in any
    order; a partition with an empty cluster is like none."""
    n_clusters = partitions[0].nk.shape[0] if partitions else 0
    counts = np.full((len(partitions), n_clusters), np.nan)
    means = np.full((len(partitions), n_clusters, tolerance.size), np.nan)
    for i, stats in enumerate(partitions):
        if np.all(stats.nk > 0):
            # Clusters in a canonical order: by their means, lexicographically.
            centres = stats.shifts + stats.sums / stats.nk[:, None]
            order = np.lexsort(centres.T[::-1])
            counts[i], means[i] = stats.nk[order], centres[order]
    same_counts = np.abs(counts[:, None] - counts[None]) <= SAME_PARTITION * counts[None]
    same_means = np.abs(means[:, None] - means[None]) <= tolerance
    return same_counts.all(axis=2) & same_means.all(axis=(2, 3))


def _whitened(centred):
    """The rows of ``centred`` (centred columns) in whitened coordinates: the left singular
    vectors of its nonzero singular values."""
    u, singular, _ = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.count_nonzero(singular > singular[0] * 1e-10)) if singular.size else 0
    return u[:, :rank]


def _first_seen_order(labels):
    """``labels`` renumbered in the order their clusters first appear: equal for equal
    partitions."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]


def _fixed_subsample(n_rows, size):
    """Sorted indices of at most ``size`` of ``n_rows`` rows, the same on every call."""
    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(np.random.RandomState(SCREEN_SEED).choice(n_rows, size=size,
                                                             replace=False))


def _screen_source(source, size):
    """The source's screen (see its ``screen_of``) of the rows that may screen starts, or
    of a fixed uniform sample of ``size`` of them."""
    rows = source.screening_rows()
    return source.screen_of(rows[_fixed_subsample(len(rows), size)])


def check_multistart_source(source):
    """Refuse sources whose rows cannot be sampled for a screen (a dask array)."""
    if not hasattr(source, "screen_of"):
        raise ValueError(
            "init_params='multistart' needs the rows in memory: pass X.compute() (a NumPy "
            "array), or another init_params such as 'kmeans'."
        )


def draw_starts(screen, n_components, random_state, n_threads):
    """The pool of starts for ``n_components`` components (see the module's docstring);
    the plain k-means start comes first and consumes ``random_state`` exactly as
    ``init_params="kmeans"`` does: :func:`draw_random_starts`, then
    :func:`add_tree_cuts`."""
    starts = draw_random_starts(screen, n_components, random_state, n_threads)
    add_tree_cuts(starts)
    return starts


def draw_random_starts(screen, n_components, random_state, n_threads):
    """The starts of :func:`draw_starts`'s pool that ``random_state`` draws: all but the
    trees' cuts, which need no random draw. A search draws them while one of its workers
    builds the trees (:meth:`Screen.build_trees`)."""
    source, sample = screen.source, screen.sample
    starts = Pool(screen, [Start(PLAIN_KMEANS, kmeans_centres(source, n_components,
                                                              random_state, n_threads), {})])
    if screen.one_start(n_components):
        return starts
    starts += _kmeans_runs(sample, n_components, random_state, n_threads,
                           range(2, 2 + SCREEN_KMEANS_STARTS))
    points = screen.points
    weights = sample.sample_weight
    for i in range(KMEANS_PLUSPLUS_STARTS):
        seeds = kmeans_plusplus(points, weights, n_components, random_state, n_threads)
        starts.append(Start(f"k-means++ {i + 1}", points[seeds], {}))
    starts += _random_row_starts(sample, n_components, random_state,
                                 range(1, 1 + RANDOM_ROW_STARTS))
    if sample is source:
        # Drawn after the others, whose draws then do not depend on how many these are.
        first = 2 + SCREEN_KMEANS_STARTS
        starts += _kmeans_runs(sample, n_components, random_state, n_threads,
                               range(first, first + KMEANS_STARTS_WITHIN_SCREEN))
        first = 1 + RANDOM_ROW_STARTS
        starts += _random_row_starts(sample, n_components, random_state,
                                     range(first, first + RANDOM_ROWS_WITHIN_SCREEN))
        # Drawn with the other random starts; they join the pool after the trees' cuts.
        starts.after_cuts = _random_responsibilities(
            sample, n_components, random_state, n_threads, RANDOM_RESPONSIBILITY_STARTS)
    return starts


def add_tree_cuts(starts):
    """Append to a pool of :func:`draw_random_starts` the cuts of the screen's trees (built
    on first use), then the starts drawn to follow them."""
    screen = starts.screen
    source, sample = screen.source, screen.sample
    n_components = len(starts[0].centres)
    if screen.one_start(n_components):
        return
    cuts = screen.hierarchical_starts(n_components)
    starts.extend(cuts)
    drawn = starts.after_cuts
    if sample is source and _finalists(sample) >= len(starts) + len(cuts) + len(drawn):
        # Every start climbs to convergence here, and a cut and the partition by its
        # clusters' means reach different optima (benchmarks/results/STARTS.md): both go.
        starts += [Start(f"{cut.name}, nearest centres", cut.centres, {}) for cut in cuts]
    starts += drawn
    starts.after_cuts = []


def _random_responsibilities(sample, n_components, random_state, n_threads, count):
    """Starts named ``random responsibilities {number}``: ``count`` draws of
    :class:`RandomResponsibilities` on the screen's rows, each start's centres the means
    of its draw."""
    starts = []
    for number in range(1, count + 1):
        responsibilities = RandomResponsibilities(n_components, random_state.get_state())
        stats = sample.random_resp_statistics(n_components, random_state, "diag", n_threads)
        centres = stats.shifts + stats.sums / stats.nk[:, None]
        starts.append(Start(f"random responsibilities {number}", centres,
                            {(id(sample), "diag"): stats}, responsibilities))
    return starts


def _random_row_starts(sample, n_components, random_state, numbers):
    """Starts named ``random rows {number}``: distinct rows of the screen drawn uniformly,
    one set per number."""
    starts = []
    for number in numbers:
        rows, _ = sample.rows_at_ranks(random_state.choice(sample.n_positive,
                                                           size=n_components, replace=False))
        starts.append(Start(f"random rows {number}", np.asarray(rows, dtype=np.float64), {}))
    return starts


def _kmeans_runs(sample, n_components, random_state, n_threads, numbers):
    """Starts named ``kmeans {number}``: k-means runs on the screen's rows, one per number,
    each from its own k-means++ seeds."""
    return [Start(f"kmeans {number}", kmeans_centres(sample, n_components, random_state,
                                                     n_threads), {})
            for number in numbers]


class Screening(NamedTuple):
    """The outcome of the successive halving on the screen: the surviving starts, best
    first, as ``(start, θ, bound)`` (empty when every start failed; a start that copies
    an earlier one's partition is left out), and the bound of the
    plain k-means start, which runs every round as the reference (−inf if it failed)."""

    survivors: list
    kmeans_bound: float


def screened_winner(model, screen, starts, n_threads, tol, stop=None):
    """The :class:`Screening` of ``starts`` (the plain k-means start first). A round ends
    early once every set's bound changes by less than ``tol``; a start that repeats an
    earlier start's partition of the screen follows it, and on a sample of the rows a
    start whose bound changes by less than ``tol · SETTLED_FRACTION`` stops climbing. On
    the rows themselves halving keeps at least ``FINALIST_ROWS // rows`` starts."""
    sample = screen.sample
    model = model.for_screening()
    if not isinstance(starts, Pool) or starts.screen is not screen:
        starts = Pool(screen, starts)
    partitions, copies, fresh = starts.screen_partitions(model.form, n_threads)
    originals = dict(copies)
    initial = dict(zip(fresh, model.initial_parameters_of_sets(
        [partitions[i] for i in fresh], sample.total_weight)))
    thetas = []
    for i in range(len(partitions)):
        thetas.append(thetas[originals[i]] if i in originals else initial.get(i))
    sets = ParameterSets.of(thetas)._replace(copies=copies)
    # On the rows themselves the survivors' screening iterations are the first of their
    # climb to convergence, which must not stop early; on a sample they only rank.
    on_every_row = sample is screen.source
    settle_below = None if on_every_row else tol * SETTLED_FRACTION
    admissible = screen.admissible(model)
    n_finalists = _finalists(sample) if on_every_row else 1
    reference_beyond = False  # whether the k-means start runs beside the kept starts
    for round_index, iterations in enumerate(SCREEN_ROUNDS):
        n_live = sum(theta is not None for theta in sets.thetas)
        if n_live == 0 or (round_index and n_live == 1):
            break
        if round_index:
            # Halving counts the starts kept on merit: the reference, kept beside them
            # when it ranks below, would otherwise add a finalist a round.
            n_contenders = n_live - (reference_beyond and sets.thetas[0] is not None)
            n_kept = max((n_contenders + 1) // 2, n_finalists)
            reference_beyond = 0 not in sets.ranked()[:n_kept]
            sets = sets.keep_best(n_kept, always=0)
        multi = MultiSetModel(model, settle_below,
                              None if on_every_row else _race(sets, round_index, iterations))
        result = run_em(multi, sample, lambda _, sets=sets: (sets, -np.inf), n_init=1,
                        max_iter=iterations, tol=tol, n_threads=n_threads, stop=stop,
                        warn=False)
        sets = result.parameters.only(admissible.of_sets)
    kmeans_bound = sets.bounds[0] if sets.thetas[0] is not None else -np.inf
    # A copy's θ is its original's, which ranks before it: climbing both to convergence
    # would repeat one climb.
    following = {copy for copy, _ in copies}
    return Screening([(starts[i], sets.thetas[i], sets.bounds[i]) for i in sets.ranked()
                      if i not in following], kmeans_bound)


def _race(sets, round_index, iterations):
    """The :class:`Race` of a round on a sample: the sets the next round keeps (the
    winner, after the last), the plain k-means start (set 0) climbing as the reference."""
    n_live = sum(theta is not None for theta in sets.thetas)
    last = round_index == len(SCREEN_ROUNDS) - 1
    return Race(1 if last else (n_live + 1) // 2, iterations, RACE_MARGIN, reference=0)


def _finalists(rows):
    """How many starts halving keeps at least on data within the screen, a source of
    ``rows`` (see FINALIST_ROWS)."""
    return max(1, FINALIST_ROWS // max(rows.n_samples, 1))


class Finalist(NamedTuple):
    """A start run to convergence on all the rows: the plain k-means start (``start``)
    or a screened winner (``theta`` and its bound, or −inf), with its gain over the
    plain k-means start on the screen, per unit of weight."""

    name: str
    start: object = None
    theta: object = None
    bound: float = -np.inf
    screen_gain: float = 0.0


def multistart_em(model, screen, n_components, random_state, *, n_init, max_iter, tol,
                  n_threads, pools=None, stop=None, verbose=0, verbose_interval=10,
                  final_labels=False):
    """EM from the multi-start strategy: ``(EMResult, StartReport)``.

    ``n_init`` strategies, each with its own pool of starts (``pools``, if given, holds
    them: a search draws each K's pools once for every covariance model). Each gives its
    finalists: its screened winner, and its plain k-means start (from its initial θ,
    exactly the "kmeans" fit) when the screen holds all the rows or when that start won;
    on larger data the k-means start competed on the screen only, which costs no second
    EM on all the rows. The finalists climb to convergence in one :func:`run_em`, which
    keeps the best admissible one.
    """
    source = screen.source
    on_every_row = screen.sample is source
    if pools is None:
        pools = [draw_starts(screen, n_components, random_state, n_threads)
                 for _ in range(n_init)]
    finalists = []
    for starts in pools:
        survivors, kmeans_bound = (
            screened_winner(model, screen, starts, n_threads, tol, stop)
            if len(starts) > 1 else ([], -np.inf))
        # On the rows themselves every survivor of the last round goes on (see
        # FINALIST_ROWS): cheap on so few rows, and the start that leads after the short
        # runs does not always end highest.
        winners = [(start, theta, bound) for start, theta, bound
                   in (survivors if on_every_row
                       else _leader(model, screen, survivors, n_threads))
                   if start.name != PLAIN_KMEANS]
        if on_every_row or not winners:
            finalists.append(Finalist(PLAIN_KMEANS, start=starts[0]))
        for start, theta, bound in winners:
            # Warm on the same rows the screening iterations count; from a sample, the
            # bound on all the rows is not known yet.
            finalists.append(Finalist(start.name, theta=theta,
                                      bound=bound if on_every_row else -np.inf,
                                      screen_gain=bound - kmeans_bound))

    def start(i):
        finalist = finalists[i]
        if finalist.theta is not None:
            return finalist.theta, finalist.bound
        stats = finalist.start.statistics(source, model.form, n_threads)
        return model.initial_parameters(stats, source.total_weight), -np.inf

    admissible = screen.admissible(model)
    result = run_em(model, source, start, n_init=len(finalists), max_iter=max_iter,
                    tol=tol, n_threads=n_threads, verbose=verbose,
                    verbose_interval=verbose_interval, final_labels=final_labels, stop=stop,
                    admissible=admissible)
    report = _report(finalists, result, source.total_weight)
    return result, report._replace(collapsed=not admissible(result.parameters))


def _leader(model, screen, survivors, n_threads):
    """The screened winner on a sample; when the sample's rows cannot rank it above the
    runner-up (its lead within SAMPLE_NOISE standard errors of the mean of the rows'
    differences of log-likelihood under the two), whichever of the two scores higher on
    the screen's ranking sample (every row on data of up to RANKING_ROWS)."""
    if len(survivors) < 2 or survivors[1][1] is None or not np.isfinite(survivors[1][2]):
        return survivors[:1]
    leaders = survivors[:2]
    if not _within_sample_noise(model, screen.sample, leaders, n_threads):
        return survivors[:1]
    rows = screen.ranking_sample()
    weights = _row_weights(rows) * rows.total_weight
    bounds = [model.lower_bound(weights @ _log_likelihoods(model, rows, theta, n_threads),
                                theta, rows.total_weight)
              for _, theta, _ in leaders]
    return [leaders[int(bounds[1] > bounds[0])]]


def _within_sample_noise(model, sample, leaders, n_threads):
    """Whether the first of the two ``leaders`` leads the second by at most SAMPLE_NOISE
    standard errors of the mean of the sample's rows' differences of log-likelihood."""
    (_, winner, lead), (_, runner_up, behind) = leaders
    differences = (_log_likelihoods(model, sample, winner, n_threads)
                   - _log_likelihoods(model, sample, runner_up, n_threads))
    weights = _row_weights(sample)
    mean = weights @ differences
    standard_error = np.sqrt(weights @ (differences - mean) ** 2 * (weights @ weights))
    return bool(lead - behind <= SAMPLE_NOISE * standard_error)


def _log_likelihoods(model, source, theta, n_threads):
    """log p(x) of each of the source's rows under θ, as float64."""
    log_prob = source.score(model.kernel_parameters(theta), n_threads)[0]
    return np.asarray(log_prob, dtype=np.float64)


def _row_weights(source):
    """The source's rows' weights, summing to one."""
    if source.sample_weight is None:
        return np.full(source.n_samples, 1.0 / source.n_samples)
    return source.sample_weight / np.sum(source.sample_weight)


def screened_start(model, source, n_components, random_state, n_threads, tol):
    """The θ the strategy's screening picks on ``source``, not climbed further (the start
    of online EM's first batch); the plain k-means start when every other start fails."""
    screen = Screen(source)
    starts = draw_starts(screen, n_components, random_state, n_threads)
    survivors = screened_winner(model, screen, starts, n_threads, tol).survivors
    theta = survivors[0][1] if survivors else None
    if theta is None:  # the plain k-means start, with its error if it fails too
        stats = starts[0].statistics(source, model.form, n_threads)
        theta = model.initial_parameters(stats, source.total_weight)
    return theta


def _report(finalists, result, total_weight):
    """The kept finalist and its gain over the plain k-means fit: exact when that fit
    ran, else as measured on the screen."""
    kept = finalists[result.start_bounds.index(result.lower_bound)]
    kmeans_bounds = [bound for finalist, bound in zip(finalists, result.start_bounds)
                     if finalist.name == PLAIN_KMEANS]
    if kept.name == PLAIN_KMEANS:
        gain = 0.0
    elif kmeans_bounds:
        gain = result.lower_bound - max(kmeans_bounds)
    else:
        gain = kept.screen_gain
    gain *= total_weight
    return StartReport(kept.name, float(gain) if np.isfinite(gain) else math.inf)
