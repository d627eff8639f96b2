"""The multi-start initialisation (init_params="multistart") and the multi-set model it
screens starts with."""

import math
import warnings

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster

from gmmfast import GaussianMixture, GaussianMixtureIC, select_model
from gmmfast._compat import ConvergenceWarning
from gmmfast._engine import (
    InMemorySource,
    KernelParameterSets,
    MixtureModel,
    MultiSetModel,
    ParameterSets,
    Race,
    run_em,
)
from gmmfast._mstep import precision_cholesky
from gmmfast._starts import (
    COLLAPSED_VARIANCE,
    FINALIST_ROWS,
    FLOOR_FACTOR,
    KMEANS_PLUSPLUS_STARTS,
    KMEANS_STARTS_WITHIN_SCREEN,
    MODEL_BASED_TREE_ROWS,
    RANDOM_RESPONSIBILITY_STARTS,
    RANDOM_ROW_STARTS,
    RANDOM_ROWS_WITHIN_SCREEN,
    RANKING_ROWS,
    SCREEN_KMEANS_STARTS,
    SCREEN_ROWS,
    SAMPLE_NOISE,
    SETTLED_FRACTION,
    SPHERICAL_MERGES_FROM,
    Collapse,
    Screen,
    rounding_variances,
    _fixed_subsample,
    _leader,
    _within_sample_noise,
    draw_starts,
    multistart_em,
    screened_winner,
)

TYPES = ("full", "tied", "diag", "spherical", "VEV", "EVI")


def old_faithful():
    from gmmfast._datafile import read_table

    return read_table(None).X


def blobs(n_samples=900, n_features=3, n_components=5, seed=0):
    """Overlapping blobs of unequal sizes and shapes: several local optima."""
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-4, 4, size=(n_components, n_features))
    sizes = rng.multinomial(n_samples, rng.dirichlet(np.full(n_components, 2.0)))
    parts = [c + rng.randn(m, n_features) @ (rng.randn(n_features, n_features) * 0.6)
             for c, m in zip(centres, sizes)]
    return rng.permutation(np.vstack(parts))


def fitted_bound(X, init_params, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(init_params=init_params, **params).fit(X).lower_bound_


# ----------------------------------------------------------------------------------------
# what the strategy promises
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_never_worse_than_its_own_kmeans_start(covariance_type, seed):
    X = blobs(seed=seed)
    for k in (2, 4, 6):
        params = dict(n_components=k, covariance_type=covariance_type, random_state=seed)
        assert fitted_bound(X, "multistart", **params) >= fitted_bound(X, "kmeans", **params)


def test_finds_mclusts_optimum_on_old_faithful_where_kmeans_stops_short():
    X = old_faithful()
    kmeans = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    multi = GaussianMixture(3, covariance_type="tied", init_params="multistart",
                            random_state=0).fit(X)
    # mclust's EEE, 3 components: BIC 2314.3 (the k-means start stops on a plateau).
    assert multi.bic(X) == pytest.approx(2314.30, abs=0.01)
    assert kmeans.bic(X) > multi.bic(X) + 20


def test_the_default_search_chooses_three_tied_components_on_old_faithful():
    search = GaussianMixtureIC(covariance_type=["full", "tied", "diag", "spherical"],
                               random_state=0).fit(old_faithful())
    assert (search.n_components_, search.covariance_type_) == (3, "tied")
    table = search.criterion_table_
    assert table["bic"][search.best_index_] == pytest.approx(2314.30, abs=0.01)
    assert table["gain_over_kmeans"][search.best_index_] > 10
    assert table["start"][search.best_index_] != "kmeans"


def standardised_wine():
    from sklearn.datasets import load_wine

    X = load_wine().data
    return (X - X.mean(axis=0)) / X.std(axis=0)


def winning_start(X, n_components, covariance_type):
    """(log-likelihood, name of the winning start) of the search's one candidate."""
    table = select_model(X, [n_components], [covariance_type], random_state=0, tol=1e-5,
                         max_iter=1000).criterion_table_
    return table["log_likelihood"][0], table["start"][0]


def test_random_responsibilities_reach_mclusts_optimum_where_no_partition_does():
    # mclust's EEE with 7 components on the standardised wine data: log L −2267.77; the
    # pool's other starts end 3.8 below it.
    log_likelihood, start = winning_start(standardised_wine(), 7, "EEE")
    assert log_likelihood > -2267.77
    assert start.startswith("random responsibilities")


def test_more_random_rows_on_small_data_reach_an_optimum_the_others_miss():
    # EEV with 3 components on the standardised wine data: the best of 9
    # scikit-learn-style fits reaches log L −2095.28; the pool without its extra random
    # rows ends 4.8 below it.
    log_likelihood, start = winning_start(standardised_wine(), 3, "EEV")
    assert log_likelihood > -2095.28
    assert start.startswith("random rows")
    assert int(start.split()[-1]) > RANDOM_ROW_STARTS


@pytest.mark.parametrize("covariance_type", ["full", "VEV"])
def test_reproducible_and_independent_of_threads(covariance_type):
    X = blobs(seed=3)
    fits = [GaussianMixture(4, covariance_type=covariance_type, init_params="multistart",
                            random_state=7, n_threads=threads).fit(X)
            for threads in (1, 2, 1)]
    for fit in fits[1:]:
        np.testing.assert_array_equal(fit.means_, fits[0].means_)
        np.testing.assert_array_equal(fit.covariances_, fits[0].covariances_)
        assert fit.lower_bound_ == fits[0].lower_bound_


def test_a_search_candidate_is_the_fit_of_an_estimator_with_the_same_seed():
    X = blobs(seed=4)
    search = select_model(X, [2, 3], ["diag", "EEV"], random_state=5)
    table = search.criterion_table_
    for k, covariance_type, loglik in zip(table["n_components"], table["covariance_type"],
                                          table["log_likelihood"]):
        alone = GaussianMixture(int(k), covariance_type=str(covariance_type),
                                init_params="multistart", random_state=5).fit(X)
        assert alone.score(X) * X.shape[0] == pytest.approx(loglik, rel=1e-12)


def test_n_init_runs_the_strategy_again_and_keeps_the_best():
    X = blobs(seed=5)
    one = GaussianMixture(5, init_params="multistart", random_state=0).fit(X)
    three = GaussianMixture(5, init_params="multistart", n_init=3, random_state=0).fit(X)
    assert three.lower_bound_ >= one.lower_bound_


def test_the_table_reports_the_winning_start_and_its_gain():
    X = old_faithful()
    table = select_model(X, [1, 2, 3, 4], ["tied", "spherical"],
                         random_state=0).criterion_table_
    assert set(table["start"][table["n_components"] == 1]) == {"kmeans"}
    assert np.all(table["gain_over_kmeans"][table["n_components"] == 1] == 0)
    names = {"kmeans", "kmeans 2", "kmeans 3", "k-means++ 1", "k-means++ 2", "k-means++ 3",
             "random rows 1", "random rows 2", "random rows 3", "hierarchical",
             "hierarchical (standardised)", "hierarchical (whitened)",
             "model-based hierarchical"}
    assert (table["status"] == "ok").all()
    assert set(table["start"]) <= names
    assert np.all(table["gain_over_kmeans"] >= 0)
    kmeans_rows = table["start"] == "kmeans"
    assert np.all(table["gain_over_kmeans"][kmeans_rows] == 0)
    plain = select_model(X, [1, 2, 3, 4], ["tied", "spherical"], init_params="kmeans",
                         random_state=0).criterion_table_
    assert set(plain["start"]) == {"kmeans"} and np.isnan(plain["gain_over_kmeans"]).all()
    # The gain is the difference of the final lower bounds (as total log-likelihoods) with
    # the plain k-means fit of the same seed.
    for i in np.flatnonzero(table["gain_over_kmeans"] > 0):
        params = dict(n_components=int(table["n_components"][i]),
                      covariance_type=str(table["covariance_type"][i]), random_state=0)
        gain = (fitted_bound(X, "multistart", **params)
                - fitted_bound(X, "kmeans", **params)) * X.shape[0]
        assert table["gain_over_kmeans"][i] == pytest.approx(gain, rel=1e-9)


# ----------------------------------------------------------------------------------------
# collapsed components
# ----------------------------------------------------------------------------------------


def test_collapsed_fits_on_rounded_data_are_not_kept():
    # Old Faithful's waiting times are whole minutes: a diagonal component can sit on a
    # column of equal values, with a variance of reg_covar and an unbounded likelihood.
    X = old_faithful()
    fit = GaussianMixture(8, covariance_type="diag", init_params="multistart",
                          random_state=0).fit(X)
    variance = X.var(axis=0)
    assert np.min((fit.covariances_ - fit.reg_covar) / variance) > COLLAPSED_VARIANCE


def test_a_search_candidate_whose_every_start_collapsed_is_chosen_only_as_a_last_resort():
    # Five rows per component in six dimensions: every full covariance is singular.
    X = np.random.RandomState(0).randn(40, 6)
    search = select_model(X, [1, 8], ["full", "spherical"], random_state=0)
    table = search.criterion_table_
    collapsed = (table["n_components"] == 8) & (table["covariance_type"] == "full")
    assert table["collapsed"].tolist() == collapsed.tolist()
    # Its BIC is the lowest, and spurious.
    assert table["bic"][collapsed][0] == np.nanmin(table["bic"])
    assert not collapsed[search.best_index_]
    alone = select_model(X, [8], ["full"], random_state=0)
    assert alone.criterion_table_["collapsed"].tolist() == [True]
    assert alone.n_components_ == 8


@pytest.mark.parametrize("layout", ["full", "tied", "diag", "spherical"])
def test_collapse_measures_the_smallest_standardised_spread(layout):
    rng = np.random.RandomState(0)
    variance = np.array([4.0, 0.25, 9.0])
    reg = 1e-6
    a = rng.randn(3, 3)
    full = np.stack([a @ a.T + np.eye(3), np.diag([2.0, 1e-12, 3.0])]) + reg * np.eye(3)
    covariances = {"full": full, "tied": full[1], "diag": np.diagonal(full, axis1=1, axis2=2),
                   "spherical": np.array([1.0, 1e-12]) + reg}[layout]
    collapse = Collapse(layout, reg, variance)
    matrices = np.reshape(covariances, (-1,) + covariances.shape[-2:]) if layout in (
        "full", "tied") else None
    if matrices is not None:
        s = 1 / np.sqrt(variance)
        expected = min(np.linalg.eigvalsh((m - reg * np.eye(3)) * np.outer(s, s)).min()
                       for m in matrices)
    elif layout == "diag":
        expected = ((covariances - reg) / variance).min()
    else:
        expected = (covariances - reg).min() / variance.max()
    assert collapse.smallest_spread(covariances) == pytest.approx(expected, abs=1e-15)
    theta = (None, None, covariances)
    assert not collapse(theta)
    healthy = {"full": full[:1], "tied": full[0], "diag": np.diagonal(full[:1], axis1=1,
                                                                       axis2=2),
               "spherical": np.array([1.0])}[layout]
    assert collapse((None, None, healthy))


@pytest.mark.parametrize("layout", ["full", "tied", "diag", "spherical"])
def test_collapse_decides_as_both_checks_and_decomposes_a_healthy_fit_once(layout,
                                                                           monkeypatch):
    rng = np.random.RandomState(1)
    reg, variance = 1e-6, np.array([1e4, 1.0, 1e-4])
    collapse = Collapse(layout, reg, variance)
    n_covariances = 1 if layout == "tied" else 2
    for smallest in np.logspace(-13, 2, 61):
        # Covariances whose smallest spread beyond reg_covar is near the thresholds.
        axes = np.linalg.qr(rng.randn(n_covariances, 3, 3))[0]
        spreads = np.sort(rng.uniform(1, 10, size=(n_covariances, 3)), axis=1)
        spreads[:, 0] = smallest
        full = (axes * spreads[:, None, :]) @ axes.transpose(0, 2, 1) + reg * np.eye(3)
        covariances = {"full": full, "tied": full[0],
                       "diag": spreads * variance + reg,
                       "spherical": spreads[:, 0] * variance.min() + reg}[layout]
        expected = (collapse.smallest_variances(covariances[None])[0] > FLOOR_FACTOR * reg
                    and collapse.smallest_spread(covariances) > COLLAPSED_VARIANCE)
        assert collapse((None, None, covariances)) == expected
        others = {"full": full[::-1], "tied": full[-1], "diag": covariances[::-1] / 1e6,
                  "spherical": covariances[::-1] / 1e6}[layout]
        thetas = [(None, None, covariances), (None, None, others)]
        assert collapse.of_sets(thetas) == [collapse(theta) for theta in thetas]
        # The precisions' factors clear some without a decomposition, never wrongly.
        with_factors = [theta + (precision_cholesky(theta[2], layout),) for theta in thetas]
        assert collapse.of_sets(with_factors) == collapse.of_sets(thetas)
        assert not any(cleared and not admissible for cleared, admissible
                       in zip(collapse.cleared(with_factors), collapse.of_sets(thetas)))
    decompositions = []
    eigvalsh = np.linalg.eigvalsh
    monkeypatch.setattr(np.linalg, "eigvalsh",
                        lambda a: decompositions.append(a) or eigvalsh(a))
    healthy = {"full": full, "tied": full[0], "diag": spreads * variance + reg,
               "spherical": spreads[:, 0] * variance.min() + reg}[layout]
    assert collapse((None, None, healthy))
    assert len(decompositions) == (1 if layout in ("full", "tied") else 0)
    # With its factor, a healthy fit is cleared without one.
    healthy_theta = (None, None, healthy, precision_cholesky(healthy, layout))
    assert collapse(healthy_theta)
    assert collapse.cleared([healthy_theta]) == [layout in ("full", "tied")]
    assert len(decompositions) == (1 if layout in ("full", "tied") else 0)
    if layout == "full":  # one collapsed component is enough to refuse the mixture
        collapsed = np.diag([1e-12, 1.0, 1.0]) * variance + reg * np.eye(3)
        mixed = np.stack([healthy[0], collapsed])
        theta = (None, None, mixed, precision_cholesky(mixed, layout))
        assert collapse.cleared([theta]) == [False] and not collapse(theta)


# ----------------------------------------------------------------------------------------
# the screen and the pool
# ----------------------------------------------------------------------------------------


def test_large_data_is_screened_on_a_fixed_sample_shared_by_every_seed():
    X = blobs(n_samples=3 * SCREEN_ROWS, seed=6)
    screens = [Screen(InMemorySource(X)) for _ in range(2)]
    assert screens[0].sample.n_samples == SCREEN_ROWS
    np.testing.assert_array_equal(screens[0].sample.X, screens[1].sample.X)
    small = Screen(InMemorySource(X[:SCREEN_ROWS]))
    assert small.sample is small.source


def test_zero_weight_rows_are_never_screened():
    X = blobs(n_samples=3 * SCREEN_ROWS, seed=7)
    weights = np.ones(len(X))
    weights[::2] = 0.0
    screen = Screen(InMemorySource(X, weights))
    assert np.all(screen.sample.sample_weight > 0)


def test_the_pool_starts_with_the_kmeans_start_and_cuts_one_tree_per_transformation():
    X = blobs(seed=8)
    screen = Screen(InMemorySource(X))
    starts = draw_starts(screen, 4, np.random.RandomState(0), 1)
    names = [start.name for start in starts]
    assert names[0] == "kmeans"
    trees = [name for name, _, _ in screen._agglomerations()]
    assert trees == ["hierarchical", "hierarchical (standardised)", "hierarchical (whitened)",
                     "model-based hierarchical"]
    cuts = [start.name for start in screen.hierarchical_starts(4)]
    first_cut = names.index(cuts[0])
    assert names[first_cut:first_cut + len(cuts)] == cuts
    assert cuts == [name for name in trees if name in cuts]
    assert all(start.centres.shape == (4, X.shape[1]) for start in starts)
    # The trees are built once and serve every K.
    trees = screen._agglomerations()
    draw_starts(screen, 6, np.random.RandomState(0), 1)
    assert screen._agglomerations() is trees
    assert [s.name for s in draw_starts(screen, 1, np.random.RandomState(0), 1)] == ["kmeans"]


@pytest.mark.parametrize("kind, count, constant", [
    ("kmeans", KMEANS_STARTS_WITHIN_SCREEN, "KMEANS_STARTS_WITHIN_SCREEN"),
    ("random rows", RANDOM_ROWS_WITHIN_SCREEN, "RANDOM_ROWS_WITHIN_SCREEN"),
    ("random responsibilities", RANDOM_RESPONSIBILITY_STARTS, "RANDOM_RESPONSIBILITY_STARTS"),
])
def test_a_screen_of_every_row_draws_more_starts_after_the_other_starts(monkeypatch, kind,
                                                                         count, constant):
    X = blobs(n_samples=300, seed=11)
    screen = Screen(InMemorySource(X))
    starts = draw_starts(screen, 4, np.random.RandomState(0), 1)
    assert count > 0
    assert len({s.name for s in starts}) == len(starts)
    # Drawn after the pool's own kinds, whose draws are then those of a pool without them.
    monkeypatch.setattr(f"gmmfast._starts.{constant}", 0)
    fewer = draw_starts(screen, 4, np.random.RandomState(0), 1)
    extra = [s for s in starts if s.name not in {f.name for f in fewer}]
    assert len(extra) == count and all(s.name.startswith(kind) for s in extra)
    first_extra = starts.index(extra[0])
    assert first_extra >= 1 + SCREEN_KMEANS_STARTS + KMEANS_PLUSPLUS_STARTS + RANDOM_ROW_STARTS
    for start, same in zip(starts[:first_extra], fewer):
        assert start.name == same.name
        np.testing.assert_array_equal(start.centres, same.centres)
    # Each is a draw of its own, not a copy of another.
    assert len({s.centres.tobytes() for s in extra}) == count


def test_a_larger_screen_draws_no_more_starts():
    screen = Screen(InMemorySource(blobs(n_samples=2 * SCREEN_ROWS, seed=12)))
    starts = draw_starts(screen, 3, np.random.RandomState(0), 1)
    n_randomised = SCREEN_KMEANS_STARTS + KMEANS_PLUSPLUS_STARTS + RANDOM_ROW_STARTS
    assert len(starts) == 1 + n_randomised + len(screen.hierarchical_starts(3))
    assert not any(start.name.startswith("random responsibilities") for start in starts)


@pytest.mark.parametrize("weighted", [False, True])
def test_a_random_responsibility_start_is_the_m_step_of_uniform_random_responsibilities(
        weighted):
    X = blobs(n_samples=240, seed=16)
    weights = np.random.RandomState(1).uniform(0.5, 2.0, len(X)) if weighted else None
    source = InMemorySource(X, weights)
    starts = [start for start in draw_starts(Screen(source), 4, np.random.RandomState(2), 1)
              if start.name.startswith("random responsibilities")]
    assert len(starts) == RANDOM_RESPONSIBILITY_STARTS
    for start in starts:
        # scikit-learn's init_params="random": uniform draws, each row normalised.
        random_state = np.random.RandomState()
        random_state.set_state(start.responsibilities.state)
        resp = random_state.uniform(size=(len(X), 4))
        resp /= resp.sum(axis=1, keepdims=True)
        expected = responsibility_m_step(X, weights, resp, 1e-6)
        np.testing.assert_allclose(start.centres, expected[1], rtol=1e-12)
        for covariance_type in ("full", "diag"):
            model = MixtureModel(covariance_type, 1e-6, X.dtype)
            theta = model.initial_parameters(start.statistics(source, model.form, 1),
                                             source.total_weight)
            covariances = (expected[2] if covariance_type == "full"
                           else np.diagonal(expected[2], axis1=1, axis2=2))
            for fitted, value in zip(theta, (*expected[:2], covariances)):
                np.testing.assert_allclose(fitted, value, rtol=1e-10, atol=1e-12)
    # Each start draws its own responsibilities.
    assert len({start.centres.tobytes() for start in starts}) == len(starts)


def test_the_pool_is_reproducible_and_independent_of_threads():
    screen = Screen(InMemorySource(blobs(n_samples=300, seed=13)))
    pools = [draw_starts(screen, 5, np.random.RandomState(3), threads)
             for threads in (1, 2, 1)]
    for starts in pools[1:]:
        assert [s.name for s in starts] == [s.name for s in pools[0]]
        for start, first in zip(starts, pools[0]):
            np.testing.assert_array_equal(start.centres, first.centres)


def partition_m_step(X, weights, labels, reg_covar):
    """Weights, means and full covariances of one M-step of a weighted partition."""
    return responsibility_m_step(X, weights, np.eye(labels.max() + 1)[labels], reg_covar)


def responsibility_m_step(X, weights, resp, reg_covar):
    """Weights, means and full covariances of one M-step of weighted responsibilities."""
    weights = np.ones(len(X)) if weights is None else weights
    weighted = resp * weights[:, None]
    mass = weighted.sum(axis=0)
    means = weighted.T @ X / mass[:, None]
    covariances = np.array([(weighted[:, k, None] * (X - means[k])).T @ (X - means[k])
                            / mass[k] for k in range(resp.shape[1])])
    return mass / mass.sum(), means, covariances + reg_covar * np.eye(X.shape[1])


@pytest.mark.parametrize("weighted", [False, True])
def test_a_tree_start_is_the_m_step_of_its_cut_not_of_the_partition_by_its_means(weighted):
    X = blobs(n_samples=240, seed=14)
    weights = np.random.RandomState(0).uniform(0.5, 2.0, len(X)) if weighted else None
    source = InMemorySource(X, weights)
    screen = Screen(source)
    model = MixtureModel("full", 1e-6, X.dtype)
    cuts = screen.hierarchical_starts(5)
    trees = {name: tree for name, tree, _ in screen._agglomerations()}
    assert len(cuts) >= 4
    differ = 0
    for start in cuts:
        tree = trees[start.name]
        labels = fcluster(tree, 5, criterion="maxclust") - 1
        theta = model.initial_parameters(start.statistics(source, model.form, 1),
                                         source.total_weight)
        for fitted, expected in zip(theta, partition_m_step(X, weights, labels, 1e-6)):
            np.testing.assert_allclose(fitted, expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(start.centres, theta[1], rtol=1e-12, atol=1e-12)
        nearest = source.nearest_centre_statistics(start.centres, model.form, 1)
        differ += not np.array_equal(nearest.nk, start.statistics(source, "full", 1).nk)
    # On these elongated clusters some cuts are not the partitions by their means.
    assert differ > 0


def test_a_cut_of_a_subsample_starts_the_whole_screen_from_the_subsample_m_step():
    X = blobs(n_samples=3 * SCREEN_ROWS, seed=10)
    screen = Screen(InMemorySource(X))
    (_, tree, rows), = [tree for tree in screen._agglomerations()
                        if tree[0] == "model-based hierarchical"]
    start, = [s for s in screen.hierarchical_starts(3) if s.name == "model-based hierarchical"]
    model = MixtureModel("full", 1e-6, X.dtype)
    stats = start.statistics(screen.sample, model.form, 1)
    assert stats.nk.sum() == pytest.approx(screen.sample.total_weight)
    theta = model.initial_parameters(stats, screen.sample.total_weight)
    labels = fcluster(tree, 3, criterion="maxclust") - 1
    expected = partition_m_step(screen.points[rows], None, labels, 1e-6)
    for fitted, value in zip(theta, expected):
        np.testing.assert_allclose(fitted, value, rtol=1e-9, atol=1e-12)


def test_on_small_data_the_cuts_partitions_by_nearest_centre_join_and_copies_follow():
    # Three compact, distant clusters: every cut is the partition by its clusters' means.
    rng = np.random.RandomState(15)
    X = np.vstack([centre + 0.1 * rng.randn(50, 2) for centre in ([0, 0], [5, 0], [0, 5])])
    screen = Screen(InMemorySource(X))
    starts = draw_starts(screen, 3, np.random.RandomState(0), 1)
    names = [start.name for start in starts]
    cuts = [start.name for start in screen.hierarchical_starts(3)]
    nearest = [f"{name}, nearest centres" for name in cuts]
    first_cut = names.index(cuts[0])
    assert names[first_cut:first_cut + 2 * len(cuts)] == cuts + nearest
    assert FINALIST_ROWS // len(X) >= len(starts)
    # Each such partition is a copy of an earlier start, and climbs with it.
    copies = dict(screen.copies([start.statistics(screen.sample, "full", 1)
                                 for start in starts]))
    assert all(names.index(name) in copies for name in nearest)
    # On a full screen the pool stays within the budget of its few finalists.
    larger = Screen(InMemorySource(blobs(n_samples=SCREEN_ROWS, seed=15)))
    assert not any(start.name.endswith("nearest centres")
                   for start in draw_starts(larger, 3, np.random.RandomState(0), 1))


def test_the_model_based_tree_joins_a_fixed_subsample_of_a_large_screen():
    X = blobs(n_samples=3 * SCREEN_ROWS, seed=10)
    screen = Screen(InMemorySource(X))
    (name, tree, rows), = [tree for tree in screen._agglomerations()
                           if tree[0] == "model-based hierarchical"]
    assert len(rows) == MODEL_BASED_TREE_ROWS and len(tree) == len(rows) - 1
    again, = [tree for tree in Screen(InMemorySource(X))._agglomerations()
              if tree[0] == "model-based hierarchical"]
    np.testing.assert_array_equal(again[2], rows)
    np.testing.assert_array_equal(again[1], tree)
    start, = [s for s in screen.hierarchical_starts(3) if s.name == name]
    labels = fcluster(tree, 3, criterion="maxclust") - 1
    np.testing.assert_allclose(start.centres[1], screen.points[rows][labels == 1].mean(axis=0))


def test_a_subsample_of_equal_rows_has_no_model_based_tree():
    screened = _fixed_subsample(2 * SCREEN_ROWS, SCREEN_ROWS)
    joined = screened[_fixed_subsample(SCREEN_ROWS, MODEL_BASED_TREE_ROWS)]
    X = np.zeros((2 * SCREEN_ROWS, 2))
    X[np.setdiff1d(screened, joined)[:2]] = [[1.0, 0.0], [0.0, 1.0]]
    screen = Screen(InMemorySource(X))
    assert [tree[0] for tree in screen._agglomerations()][-1] == "hierarchical (whitened)"
    assert len(draw_starts(screen, 2, np.random.RandomState(0), 1)) > 1


def test_a_start_that_fails_is_dropped_not_fatal():
    # Two distinct values per column: most partitions into 5 leave a cluster of equal rows.
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]]),
                  20, axis=0)
    X = X + np.random.RandomState(0).randn(*X.shape) * 0.05
    fit = GaussianMixture(5, init_params="multistart", random_state=0).fit(X)
    assert np.isfinite(fit.lower_bound_)


# ----------------------------------------------------------------------------------------
# several parameter sets climbed together
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", ["full", "diag", "VVE"])
def test_sets_climbed_together_equal_each_climbed_alone(covariance_type):
    X = blobs(seed=9)
    source = InMemorySource(X)
    model = MixtureModel(covariance_type, 1e-6, X.dtype)
    screen = Screen(source)
    thetas = []
    for start in draw_starts(screen, 3, np.random.RandomState(1), 1)[:4]:
        stats = source.nearest_centre_statistics(start.centres, model.form, 1)
        thetas.append(model.initial_parameters(stats, source.total_weight))
    together = run_em(MultiSetModel(model), source,
                      lambda _: (ParameterSets.of(thetas), -np.inf), n_init=1, max_iter=5,
                      tol=-1.0, n_threads=1, warn=False).parameters
    for theta, bound, joint in zip(thetas, together.bounds, together.thetas):
        step = model.em_step(source, 1)
        for _ in range(5):
            alone_bound, theta = step(theta)
        np.testing.assert_allclose(joint[1], theta[1], rtol=1e-12)
        np.testing.assert_allclose(joint[2], theta[2], rtol=1e-12)
        assert bound == pytest.approx(alone_bound, rel=1e-12)


def test_multi_set_model_drops_failing_sets_and_sets_drop_inadmissible_ones():
    X = blobs(seed=10)
    source = InMemorySource(X)
    model = MixtureModel("full", 0.0, X.dtype)
    good = model.initial_parameters(
        source.nearest_centre_statistics(X[:3].copy(), model.form, 1), source.total_weight)
    # One component on a single row: no covariance without reg_covar.
    means = np.vstack([X[:2], X[:1] + 1e3])
    bad = (np.full(3, 1 / 3), means, *good[2:])
    step = MultiSetModel(model).em_step(source, 1)
    bound, sets = step(ParameterSets.of([bad, good]))
    assert sets.thetas[0] is None and sets.thetas[1] is not None
    assert bound == sets.bounds[1] and sets.bounds[0] == -np.inf
    assert sets.only(lambda thetas: [False] * len(thetas)).best() is None
    assert sets.only(lambda thetas: [True] * len(thetas)) == sets


def n_sets(kernel_params_sets):
    """How many sets a multi-set pass is given (stacked, or as a list)."""
    return KernelParameterSets.of(kernel_params_sets).n_sets if kernel_params_sets else 0


class CountingSource(InMemorySource):
    """Rows in memory that record how many parameter sets each multi-set pass scores."""

    def __init__(self, X):
        super().__init__(X)
        self.scored = []

    def statistics_of_sets(self, kernel_params_sets, n_threads):
        self.scored.append(n_sets(kernel_params_sets))
        return super().statistics_of_sets(kernel_params_sets, n_threads)


def test_a_set_that_has_converged_takes_no_further_steps():
    X = blobs(seed=11)
    source = CountingSource(X)
    model = MixtureModel("full", 1e-6, X.dtype)
    thetas = [model.initial_parameters(source.nearest_centre_statistics(
        start.centres, model.form, 1), source.total_weight)
        for start in draw_starts(Screen(source), 3, np.random.RandomState(0), 1)[:2]]
    # The first set at its optimum, the second still far from one.
    thetas[0] = run_em(model, source, lambda _: (thetas[0], -np.inf), n_init=1,
                       max_iter=1000, tol=1e-12, n_threads=1).parameters
    step = MultiSetModel(model, tol=1e-6).em_step(source, 1)
    _, sets = step(ParameterSets.of(thetas))
    _, sets = step(sets)
    assert sets.settled == {0}
    bound, after = step(sets)
    assert source.scored == [2, 2, 1]
    assert after.thetas[0] is sets.thetas[0] and after.bounds[0] == sets.bounds[0]
    assert after.thetas[1] is not sets.thetas[1]
    assert bound == math.fsum(after.bounds)
    # Without a tolerance every live set takes every step.
    step = MultiSetModel(model).em_step(source, 1)
    sets = ParameterSets.of(thetas)
    for _ in range(3):
        _, sets = step(sets)
    assert sets.settled == frozenset() and source.scored[-3:] == [2, 2, 2]


def screening_passes(monkeypatch, X, settled_fraction, race=True):
    """(set-passes of a screening of 4 components, its survivors) with the given
    SETTLED_FRACTION, and with or without the rounds' races on a sample."""
    model = MixtureModel("full", 1e-6, X.dtype)
    screen = Screen(InMemorySource(X))
    scored = []
    sample_statistics = screen.sample.statistics_of_sets

    def counted(kernel_params_sets, n_threads):
        scored.append(n_sets(kernel_params_sets))
        return sample_statistics(kernel_params_sets, n_threads)

    starts = draw_starts(screen, 4, np.random.RandomState(0), 1)
    with monkeypatch.context() as patch:
        patch.setattr(screen.sample, "statistics_of_sets", counted)
        patch.setattr("gmmfast._starts.SETTLED_FRACTION", settled_fraction)
        if not race:
            patch.setattr("gmmfast._starts._race", lambda *args: None)
        survivors = screened_winner(model, screen, starts, 1, 1e-3).survivors
    return sum(scored), survivors


def test_on_a_sample_the_screening_stops_climbing_starts_that_have_settled(monkeypatch):
    X = blobs(n_samples=2 * SCREEN_ROWS, seed=3)
    passes, survivors = screening_passes(monkeypatch, X, SETTLED_FRACTION)
    passes_all, survivors_all = screening_passes(monkeypatch, X, 0.0)
    assert passes < 0.95 * passes_all
    assert survivors[0][2] >= survivors_all[0][2] - 1e-3 / 4


def test_on_a_sample_a_start_out_of_the_race_stops_climbing(monkeypatch):
    X = blobs(n_samples=2 * SCREEN_ROWS, seed=3)
    passes, survivors = screening_passes(monkeypatch, X, SETTLED_FRACTION)
    passes_all, survivors_all = screening_passes(monkeypatch, X, SETTLED_FRACTION,
                                                 race=False)
    assert passes < passes_all
    assert survivors[0][0].name == survivors_all[0][0].name


def test_a_race_stops_the_sets_that_cannot_reach_the_kept_ones():
    race = Race(n_kept=2, n_steps=10, margin=4.0, reference=0)
    previous = (-3.0, -1.0, -1.2, -2.0, -1.91, -np.inf, -1.5)
    bounds = (-2.9, -0.9, -1.1, -1.95, -1.9, -1.8, -1.5)
    # The cut is -1.1; with 4 steps left set 3 could reach -1.15 and set 4 -1.74 (both
    # out), the reference (0) and set 5 (no rise yet) stay, and a set that did not
    # climb (6) is not decided here.
    assert race.out_of_reach(bounds, previous, [0, 1, 2, 3, 4, 5], 4) == {3, 4}
    assert race.out_of_reach(bounds, previous, [3], 10) == set()  # -1.95 + 4·10·0.05 > cut
    assert Race(7, 10, 4.0).out_of_reach(bounds, previous, [3, 4], 4) == set()  # all kept


def test_on_the_rows_themselves_every_survivor_climbs_on(monkeypatch):
    X = blobs(n_samples=600, seed=12)
    passes, survivors = screening_passes(monkeypatch, X, SETTLED_FRACTION)
    passes_all, survivors_all = screening_passes(monkeypatch, X, 0.0)
    assert passes == passes_all
    assert [bound for *_, bound in survivors] == [bound for *_, bound in survivors_all]


def test_on_small_data_every_distinct_start_climbs_to_convergence(monkeypatch):
    X = blobs(n_samples=200, seed=12)
    model = MixtureModel("full", 1e-6, X.dtype)
    screen = Screen(InMemorySource(X))
    starts = draw_starts(screen, 4, np.random.RandomState(0), 1)
    assert FINALIST_ROWS // X.shape[0] >= len(starts)  # the whole pool
    copies = screen.copies([start.statistics(screen.sample, model.form, 1)
                            for start in starts])
    survivors = screened_winner(model, screen, starts, 1, 1e-3).survivors
    assert len(survivors) == len(starts) - len(copies) > 4
    climbs = []

    def counted_run_em(model, source, start, **params):
        if not isinstance(model, MultiSetModel):
            climbs.append(params["n_init"])
        return run_em(model, source, start, **params)

    monkeypatch.setattr("gmmfast._starts.run_em", counted_run_em)
    multistart_em(model, screen, 4, None, n_init=1, max_iter=100, tol=1e-3, n_threads=1,
                  pools=[starts])
    # The plain k-means start replaces its screened copy.
    assert climbs == [len(survivors)]


def test_on_a_full_screen_the_last_round_keeps_a_few_starts():
    X = blobs(n_samples=SCREEN_ROWS, seed=12)
    n_finalists = FINALIST_ROWS // SCREEN_ROWS
    assert 4 <= n_finalists <= 8
    model = MixtureModel("full", 1e-6, X.dtype)
    screen = Screen(InMemorySource(X))
    starts = draw_starts(screen, 4, np.random.RandomState(0), 1)
    survivors = screened_winner(model, screen, starts, 1, 1e-3).survivors
    # The plain k-means start, the reference, runs every round beside them.
    assert len([start for start, _, _ in survivors if start.name != "kmeans"]) <= n_finalists


def test_a_reference_that_ranks_low_runs_beside_the_finalists_not_among_them():
    # On these data the plain k-means start ranks below the starts the second round
    # keeps: it climbs beside them, and the last round still halves them to the finalists.
    X = blobs(n_samples=SCREEN_ROWS, seed=25)
    model = MixtureModel("full", 1e-6, X.dtype)
    screen = Screen(InMemorySource(X))
    starts = draw_starts(screen, 4, np.random.RandomState(0), 1)
    survivors = screened_winner(model, screen, starts, 1, 1e-3).survivors
    names = [start.name for start, _, _ in survivors]
    assert "kmeans" in names
    assert len(names) == FINALIST_ROWS // SCREEN_ROWS + 1


def test_starts_that_partition_the_screen_alike_are_copies_of_the_first():
    X = blobs(seed=13)
    source = InMemorySource(X)
    screen = Screen(source)
    centres = draw_starts(screen, 3, np.random.RandomState(0), 1)[0].centres
    # The same clusters in another order, or from centres moved a little, are the same
    # partition; other centres are not.
    alike = [centres[::-1], centres + 1e-6, X[:3]]
    partitions = [source.nearest_centre_statistics(np.ascontiguousarray(c), "full", 1)
                  for c in [centres, *alike, X[:3] + 1e-6]]
    assert screen.copies(partitions) == ((1, 0), (2, 0), (4, 3))


def test_a_copy_follows_its_original_without_a_pass_of_its_own():
    X = blobs(seed=14)
    source = CountingSource(X)
    model = MixtureModel("full", 1e-6, X.dtype)
    thetas = [model.initial_parameters(source.nearest_centre_statistics(
        np.ascontiguousarray(c), model.form, 1), source.total_weight)
        for c in (X[:3], X[3:6])]
    sets = ParameterSets.of([thetas[0], thetas[1], thetas[0]])._replace(copies=((2, 0),))
    step = MultiSetModel(model).em_step(source, 1)
    for _ in range(3):
        bound, sets = step(sets)
    assert source.scored == [2, 2, 2]
    assert sets.thetas[2] is sets.thetas[0] and sets.bounds[2] == sets.bounds[0]
    assert bound == math.fsum(sets.bounds)
    alone = model.em_step(source, 1)
    theta = thetas[0]
    for _ in range(3):
        alone_bound, theta = alone(theta)
    assert sets.bounds[0] == alone_bound
    np.testing.assert_array_equal(sets.thetas[0][1], theta[1])


def test_the_screening_climbs_one_start_of_each_partition(monkeypatch):
    X = blobs(n_samples=600, seed=12)
    model = MixtureModel("full", 1e-6, X.dtype)

    def screening(find_copies):
        source = CountingSource(X)
        screen = Screen(source)
        starts = draw_starts(screen, 3, np.random.RandomState(0), 1)
        copies = screen.copies([start.statistics(source, model.form, 1) for start in starts])
        with monkeypatch.context() as patch:
            patch.setattr("gmmfast._starts.SETTLED_FRACTION", 0.0)
            if not find_copies:
                patch.setattr(Screen, "copies", lambda self, partitions: ())
            survivors = screened_winner(model, screen, starts, 1, 1e-3).survivors
        return (sum(source.scored), {starts[copy].name for copy, _ in copies},
                {start.name: bound for start, _, bound in survivors})

    (passes, copies, survivors), (passes_alone, _, survivors_alone) = (
        screening(True), screening(False))
    assert passes < passes_alone
    # Alone, a copy climbs its original's path and may survive beside it; found, it
    # follows its original and is left out of the survivors, which climbing it to
    # convergence would only repeat.
    assert copies & survivors_alone.keys()
    assert survivors.keys() == survivors_alone.keys() - copies
    for name, bound in survivors.items():
        assert bound == pytest.approx(survivors_alone[name], rel=1e-10)


def test_keep_best_keeps_the_highest_bounds():
    sets = ParameterSets(("a", "b", None, "d"), (1.0, 3.0, 5.0, 2.0))
    assert sets.keep_best(2).thetas == (None, "b", None, "d")
    assert sets.keep_best(1, always=0).thetas == ("a", "b", None, None)
    assert sets.ranked() == [1, 3, 0]
    assert sets.best() == 1
    assert ParameterSets.of([None, None]).best() is None


# ----------------------------------------------------------------------------------------
# where it does not apply
# ----------------------------------------------------------------------------------------


def test_dask_input_is_refused_with_advice():
    da = pytest.importorskip("dask.array")
    X = da.from_array(blobs(seed=11), chunks=300)
    with pytest.raises(ValueError, match="multistart.*in memory"):
        GaussianMixture(3, init_params="multistart").fit(X)


def test_the_bayesian_mixture_has_no_multistart():
    from gmmfast import BayesianGaussianMixture

    with pytest.raises(ValueError, match="init_params"):
        BayesianGaussianMixture(init_params="multistart").fit(blobs(seed=12))


def test_user_initial_parameters_replace_the_strategy():
    X = blobs(seed=13)
    means = X[:3]
    multi = GaussianMixture(3, init_params="multistart", means_init=means,
                            random_state=0).fit(X)
    kmeans = GaussianMixture(3, init_params="kmeans", means_init=means, random_state=0).fit(X)
    np.testing.assert_array_equal(multi.means_, kmeans.means_)


def test_missing_values_and_partial_fit_take_multistart():
    X = blobs(seed=14)
    holed = X.copy()
    holed[::7, 0] = np.nan
    fit = GaussianMixture(3, init_params="multistart", nan_policy="omit",
                          random_state=0).fit(holed)
    assert np.isfinite(fit.lower_bound_)
    stream = GaussianMixture(3, init_params="multistart", random_state=0)
    stream.partial_fit(X[:300]).partial_fit(X[300:600])
    assert stream.n_iter_ == 2 and np.isfinite(stream.lower_bound_)


def test_rounding_variances_are_the_squared_smallest_step_over_twelve():
    rng = np.random.RandomState(0)
    X = np.column_stack([np.round(rng.uniform(0, 10, 200) * 2) / 2,  # halves
                         rng.randn(200),                              # not rounded
                         np.full(200, 3.0)])                          # one value
    gaps = np.diff(np.sort(np.unique(X[:, 1])))
    expected = [0.5**2 / 12, gaps.min() ** 2 / 12, 0.0]
    assert rounding_variances(X) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("layout", ["full", "tied", "diag", "spherical"])
def test_a_component_narrower_than_a_features_rounding_is_not_admissible(layout):
    # Feature 1 rounded to whole units (rounding variance 1/12): a component whose
    # variance along it is a tenth of that sits on rows sharing one value.
    reg, variance, rounding = 1e-6, np.array([4.0, 100.0]), np.array([1e-8, 1 / 12])
    collapse = Collapse(layout, reg, variance, rounding)
    plain = Collapse(layout, reg, variance)
    rng = np.random.RandomState(2)
    for along in np.logspace(-4, 1, 41):
        # Feature 1's variance `along`, correlated with feature 0.
        scale = np.sqrt([1.0, along])
        correlation = np.array([[1.0, 0.6], [0.6, 1.0]])
        full = np.stack([np.diag([2.0, 30.0]), correlation * np.outer(scale, scale)])
        full = full + reg * np.eye(2)
        covariances = {"full": full, "tied": full[1],
                       "diag": np.diagonal(full, axis1=1, axis2=2),
                       "spherical": np.array([30.0, along]) + reg}[layout]
        theta = (None, None, covariances)
        assert plain(theta)  # nowhere near the collapse thresholds
        assert collapse(theta) == (along >= 1 / 12)
        # The precisions' factors never clear a fit the rounding refuses.
        with_factor = theta + (precision_cholesky(covariances, layout),)
        assert collapse.of_sets([with_factor]) == [collapse(theta)]
        assert not (collapse.cleared([with_factor])[0] and not collapse(theta))
    # Well above the rounding, the factor clears it without a decomposition.
    wide = {"full": np.stack([np.diag([2.0, 30.0])] * 2), "tied": np.diag([2.0, 30.0]),
            "diag": np.array([[2.0, 30.0]] * 2), "spherical": np.array([30.0, 30.0])}[layout]
    assert collapse.cleared([(None, None, wide, precision_cholesky(wide, layout))]) == [
        layout in ("full", "tied")]


def test_the_search_refuses_components_on_one_rounded_value_of_old_faithful():
    # Waiting times are whole minutes. With 8 VEV components the pool reaches an optimum
    # whose component holds ~15 rows sharing one waiting time (variance ~1e-4 min²):
    # its log-likelihood is the highest the pool finds, and it describes the rounding.
    X = old_faithful()
    search = select_model(X, [8], ["VEV"], random_state=0, tol=1e-5, max_iter=1000)
    covariances = search.best_estimator_.covariances_
    waiting = covariances[:, 1, 1] - search.best_estimator_.reg_covar
    assert waiting.min() >= 1 / 12
    assert not search.criterion_table_["collapsed"][0]


@pytest.mark.parametrize("layout", ["full", "diag"])
def test_a_component_at_the_reg_covar_floor_has_collapsed_whatever_the_data_scale(layout):
    # Columns of small spread: 0.5 reg_covar beyond the floor is a large share of the
    # second column's variance, yet the rows add no more variance than reg_covar does.
    reg, variance = 1e-6, np.array([1.0, 1e-4])
    diagonals = np.array([[1.0, 1.0], [1.0, (1 + 0.5 * FLOOR_FACTOR) * reg]])
    covariances = diagonals if layout == "diag" else np.stack([np.diag(d) for d in diagonals])
    collapse = Collapse(layout, reg, variance)
    assert collapse.smallest_spread(covariances) > 1e3 * COLLAPSED_VARIANCE
    assert not collapse((None, None, covariances))
    assert collapse((None, None, covariances[:1]))


def test_a_search_compares_each_pools_partitions_once_per_kernel_form(monkeypatch):
    # Every covariance model of a K screens the same pool: which starts copy another's
    # partition depends on the pool and the kernel form only.
    X = blobs(n_samples=600, seed=15)
    compared = []
    copies = Screen.copies
    monkeypatch.setattr(Screen, "copies",
                        lambda screen, partitions: compared.append(len(partitions))
                        or copies(screen, partitions))
    # VVV and VEV read full statistics, VVI and VII diagonal ones. One thread: candidates
    # running at once may both work it out.
    search = GaussianMixtureIC(n_components=[1, 2, 3], covariance_type="VVV,VEV,VVI,VII",
                               random_state=0, n_threads=1).fit(X)
    assert len(compared) == 2 * 2  # K = 2 and 3 (one start at K = 1), two forms
    monkeypatch.setattr(Screen, "copies", copies)
    again = GaussianMixtureIC(n_components=[1, 2, 3], covariance_type="VVV,VEV,VVI,VII",
                              random_state=0).fit(X)
    for name in ("bic", "n_iter", "start", "gain_over_kmeans"):
        np.testing.assert_array_equal(search.criterion_table_[name],
                                      again.criterion_table_[name])


def separated_blobs(n_samples, seed=0):
    """Six well separated 8-dimensional Gaussians with random full covariances (the
    benchmarks' blobs): below six components every model merges whole clusters."""
    rng = np.random.default_rng(seed)
    while True:
        centres = rng.uniform(-10, 10, size=(6, 8))
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
        if gaps[np.triu_indices(6, 1)].min() >= 6.0:
            break
    factors = rng.standard_normal((6, 8, 8))
    covariances = factors @ factors.transpose(0, 2, 1) / 8 + 0.2 * np.eye(8)
    counts = rng.multinomial(n_samples, rng.dirichlet(np.full(6, 5.0)))
    X = np.vstack([rng.multivariate_normal(c, cov, size=m)
                   for c, cov, m in zip(centres, covariances, counts)])
    rng.shuffle(X)
    return X


def test_a_sampled_screen_cuts_the_spherical_merges_below_their_first_clusters():
    screen = Screen(InMemorySource(blobs(n_samples=2 * SCREEN_ROWS, seed=16)))
    trees = {name: (tree, rows) for name, tree, rows in screen._agglomerations()}
    spherical, rows = trees["model-based hierarchical, spherical merges"]
    np.testing.assert_array_equal(rows, trees["model-based hierarchical"][1])
    first = len(rows) - SPHERICAL_MERGES_FROM
    np.testing.assert_array_equal(spherical[:first], trees["model-based hierarchical"][0][:first])
    # From SPHERICAL_MERGES_FROM clusters on its cuts are the VVV tree's: left out.
    for k in (SPHERICAL_MERGES_FROM, SPHERICAL_MERGES_FROM + 3):
        assert "model-based hierarchical, spherical merges" not in [
            start.name for start in screen.hierarchical_starts(k)]
    # The pool with it is reproducible and independent of the threads.
    pools = [draw_starts(screen, 3, np.random.RandomState(1), threads) for threads in (1, 2)]
    assert [s.name for s in pools[0]] == [s.name for s in pools[1]]
    for start, same in zip(*pools):
        np.testing.assert_array_equal(start.centres, same.centres)
        stats = start.statistics(screen.sample, "diag", 1), same.statistics(screen.sample,
                                                                            "diag", 2)
        np.testing.assert_array_equal(stats[0].nk, stats[1].nk)
        np.testing.assert_array_equal(stats[0].sums, stats[1].sums)


@pytest.mark.parametrize("covariance_type, n_components", [("VII", 3), ("VEI", 4)])
def test_the_spherical_merges_start_spherical_and_diagonal_models_higher(
        monkeypatch, covariance_type, n_components):
    # Here the VVV criterion joins the six clusters into other groups than those these
    # models fit best, and no other start of the pool reaches those either.
    X = separated_blobs(2 * SCREEN_ROWS)
    params = dict(n_components=n_components, covariance_type=covariance_type,
                  random_state=0, tol=1e-5, max_iter=1000)
    with_merges = fitted_bound(X, "multistart", **params)
    monkeypatch.setattr("gmmfast._starts.spherical_top", lambda tree, *_: tree)
    without = fitted_bound(X, "multistart", **params)
    assert (with_merges - without) * len(X) > 100


def mixture_log_likelihoods(X, theta):
    """log p(x) of each row under a full-covariance mixture θ, by SciPy."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    weights, means, covariances = theta[:3]
    return logsumexp([np.log(w) + multivariate_normal(m, c).logpdf(X)
                      for w, m, c in zip(weights, means, covariances)], axis=0)


@pytest.mark.parametrize("weighted", [False, True])
def test_the_sample_cannot_rank_leaders_within_its_noise(weighted):
    X = blobs(n_samples=2 * SCREEN_ROWS, seed=17)
    weights = np.random.RandomState(1).uniform(0.2, 3.0, len(X)) if weighted else None
    screen = Screen(InMemorySource(X, weights))
    model = MixtureModel("full", 1e-6, X.dtype)
    starts = draw_starts(screen, 4, np.random.RandomState(0), 1)
    survivors = screened_winner(model, screen, starts, 1, 1e-3).survivors
    (first, winner, _), (second, runner_up, _) = survivors[:2]
    sample = screen.sample
    differences = (mixture_log_likelihoods(sample.X, winner)
                   - mixture_log_likelihoods(sample.X, runner_up))
    w = (np.ones(len(sample.X)) if sample.sample_weight is None
         else np.asarray(sample.sample_weight, dtype=np.float64))
    w = w / w.sum()
    spread = np.sqrt(np.sum(w * (differences - np.sum(w * differences)) ** 2))
    standard_error = spread * np.sqrt(np.sum(w**2))  # n_eff = 1 / Σ w²
    for lead, within in ((0.95, True), (1.05, False)):
        leaders = [(first, winner, -1.0 + lead * SAMPLE_NOISE * standard_error),
                   (second, runner_up, -1.0)]
        assert _within_sample_noise(model, sample, leaders, 2) is within
        # Beyond the noise the winner stays; within it, the higher on every row wins.
        kept, = _leader(model, screen, leaders, 1)
        on_every_row = [np.average(mixture_log_likelihoods(X, theta), weights=weights)
                        for theta in (winner, runner_up)]
        expected = second if within and on_every_row[1] > on_every_row[0] else first
        assert kept[0] is expected
    assert _leader(model, screen, survivors[:1], 1) == survivors[:1]


def test_leaders_the_sample_cannot_rank_are_ranked_on_every_row(monkeypatch):
    X = blobs(n_samples=2 * SCREEN_ROWS, seed=17)
    screen = Screen(InMemorySource(X))
    model = MixtureModel("full", 1e-6, X.dtype)
    survivors = screened_winner(model, screen, draw_starts(screen, 4, np.random.RandomState(0),
                                                           1), 1, 1e-3).survivors
    # The runner-up made the leader by a margin the sample cannot see: chosen on every row.
    swapped = [(survivors[1][0], survivors[1][1], 0.0), (survivors[0][0], survivors[0][1], 0.0)]
    assert _leader(model, screen, swapped, 1)[0][0] is survivors[0][0]


def test_a_runner_up_the_sample_cannot_rank_below_the_winner_ends_higher(monkeypatch):
    # The sample ranks the spherical merges' cut first by less than its noise; on every
    # row the runner-up scores higher, and its optimum is higher.
    X = separated_blobs(5 * SCREEN_ROWS)
    params = dict(n_components=4, covariance_type="VII", random_state=0, tol=1e-5,
                  max_iter=1000)
    fits = [GaussianMixture(init_params="multistart", n_threads=threads, **params).fit(X)
            for threads in (1, 2)]
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))
    monkeypatch.setattr("gmmfast._starts.SAMPLE_NOISE", 0.0)
    winner_alone = fitted_bound(X, "multistart", **params)
    assert (fits[0].lower_bound_ - winner_alone) * len(X) > 100


def test_the_ranking_sample_is_every_row_of_smaller_data_and_a_fixed_sample_of_larger():
    small = blobs(n_samples=2 * SCREEN_ROWS, seed=18)
    np.testing.assert_array_equal(Screen(InMemorySource(small)).ranking_sample().X, small)
    X = np.random.RandomState(19).randn(RANKING_ROWS + 500, 2)
    screen = Screen(InMemorySource(X))
    rows = screen.ranking_sample()
    assert rows is screen.ranking_sample()
    assert rows.n_samples == RANKING_ROWS
    np.testing.assert_array_equal(rows.X, X[_fixed_subsample(len(X), RANKING_ROWS)])
    np.testing.assert_array_equal(Screen(InMemorySource(X)).ranking_sample().X, rows.X)
