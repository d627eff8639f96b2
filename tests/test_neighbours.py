"""The search's second phase: starts from the neighbouring numbers of components' fits, by
splitting a component of the K - 1 fit or merging a pair of the K + 1 fit."""

import numpy as np
import pytest

from gmmfast import GaussianMixture, select_model
from gmmfast._engine import MixtureModel
from gmmfast._neighbours import (
    ACROSS,
    HALF_NORMAL_MEAN,
    MERGE,
    MERGED_PAIRS,
    SPLIT,
    Neighbour,
    Neighbourhood,
    CandidateFit,
    StartingFits,
    across_starts,
    is_neighbour_start,
    merge_criterion,
    merge_moments,
    merge_starts,
    split_moments,
    split_starts,
)
from gmmfast._starts import SCREEN_ROWS


def random_covariance(rng, n_features):
    factor = rng.randn(n_features, n_features)
    return factor @ factor.T + 0.1 * np.eye(n_features)


def mixture_moments(weights, means, covariances):
    """The weight, mean and covariance of a mixture, slowly: from its raw second moment
    E[x xᵀ] = Σ_k w_k (Σ_k + μ_k μ_kᵀ) / Σ_k w_k, component by component."""
    total = 0.0
    first = np.zeros(means.shape[1])
    second = np.zeros((means.shape[1], means.shape[1]))
    for weight, mean, covariance in zip(weights, means, covariances):
        total += weight
        first += weight * mean
        second += weight * (covariance + np.outer(mean, mean))
    mean = first / total
    return total, mean, second / total - np.outer(mean, mean)


class FittedStub:
    """What the moves read of a fitted mixture."""

    def __init__(self, weights, means, covariances):
        self.weights_, self.means_, self.covariances_ = weights, means, covariances
        self.covariance_type = "full"


def stub(rng, n_components, n_features):
    weights = rng.dirichlet(np.ones(n_components))
    means = rng.randn(n_components, n_features) * 3
    covariances = np.array([random_covariance(rng, n_features)
                            for _ in range(n_components)])
    return FittedStub(weights, means, covariances)


# ----------------------------------------------------------------------------------------
# the moves
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_features", [1, 2, 5])
def test_a_split_has_its_parents_pooled_moments(n_features):
    rng = np.random.RandomState(n_features)
    covariance = random_covariance(rng, n_features)
    mean = rng.randn(n_features)
    halves = split_moments(0.3, mean, covariance)
    weights, means, covariances = map(np.array, zip(*halves))
    weight, pooled_mean, pooled_covariance = mixture_moments(weights, means, covariances)
    assert weight == pytest.approx(0.3, rel=1e-14)
    np.testing.assert_allclose(pooled_mean, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pooled_covariance, covariance, rtol=1e-12, atol=1e-12)
    # The halves sit along the principal axis, each a positive definite covariance.
    values, axes = np.linalg.eigh(covariance)
    offset = means[0] - mean
    assert abs(offset @ axes[:, -1]) == pytest.approx(np.linalg.norm(offset), rel=1e-12)
    assert np.all(np.linalg.eigvalsh(covariances[0]) > 0)


def test_a_split_puts_each_half_at_the_mean_of_the_gaussian_cut_through_its_mean():
    rng = np.random.RandomState(0)
    covariance = np.array([[4.0, 1.5], [1.5, 1.0]])
    rows = rng.multivariate_normal([1.0, -2.0], covariance, size=400_000)
    axis = np.linalg.eigh(covariance)[1][:, -1]
    side = (rows - [1.0, -2.0]) @ axis > 0
    halves = split_moments(1.0, np.array([1.0, -2.0]), covariance)
    upper = halves[0] if (halves[0][1] - [1.0, -2.0]) @ axis > 0 else halves[1]
    # Monte Carlo: the half's mean and covariance to about 3 standard errors.
    np.testing.assert_allclose(upper[1], rows[side].mean(axis=0), atol=0.01)
    np.testing.assert_allclose(upper[2], np.cov(rows[side].T), atol=0.03)
    assert HALF_NORMAL_MEAN == pytest.approx(np.sqrt(2 / np.pi))


@pytest.mark.parametrize("n_features", [1, 3])
def test_a_merge_has_the_pairs_pooled_moments(n_features):
    rng = np.random.RandomState(10 + n_features)
    fit = stub(rng, 2, n_features)
    merged = merge_moments(fit.weights_, fit.means_, fit.covariances_)
    expected = mixture_moments(fit.weights_, fit.means_, fit.covariances_)
    assert merged[0] == pytest.approx(expected[0], rel=1e-14)
    np.testing.assert_allclose(merged[1], expected[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged[2], expected[2], rtol=1e-12, atol=1e-12)


def test_each_split_start_keeps_the_other_components_and_the_mixtures_moments():
    rng = np.random.RandomState(1)
    fit = stub(rng, 3, 2)
    starts = split_starts(fit)
    assert [start.name for start in starts] == [
        "split: component 1 of 3", "split: component 2 of 3", "split: component 3 of 3"]
    whole = mixture_moments(fit.weights_, fit.means_, fit.covariances_)
    for k, start in enumerate(starts):
        assert start.means.shape == (4, 2) and start.covariances.shape == (4, 2, 2)
        kept = [j for j in range(3) if j != k]
        np.testing.assert_array_equal(start.means[:2], fit.means_[kept])
        np.testing.assert_array_equal(start.covariances[:2], fit.covariances_[kept])
        np.testing.assert_array_equal(start.weights[:2], fit.weights_[kept])
        for got, expected in zip(mixture_moments(start.weights, start.means,
                                                 start.covariances), whole):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def slow_merge_criterion(resp, row_weights):
    n_components = resp.shape[1]
    criterion = np.zeros((n_components, n_components))
    for i in range(n_components):
        for j in range(n_components):
            inner = sum(w * a * b for w, a, b in zip(row_weights, resp[:, i], resp[:, j]))
            norm_i = np.sqrt(sum(w * a * a for w, a in zip(row_weights, resp[:, i])))
            norm_j = np.sqrt(sum(w * b * b for w, b in zip(row_weights, resp[:, j])))
            criterion[i, j] = inner / (norm_i * norm_j)
    return criterion


def test_the_merge_criterion_is_the_cosine_of_weighted_responsibilities():
    rng = np.random.RandomState(2)
    resp = rng.dirichlet(np.ones(4), size=30)
    row_weights = rng.uniform(0.5, 2.0, size=30)
    np.testing.assert_allclose(merge_criterion(resp, row_weights),
                               slow_merge_criterion(resp, row_weights), rtol=1e-12)
    np.testing.assert_allclose(merge_criterion(resp, None),
                               slow_merge_criterion(resp, np.ones(30)), rtol=1e-12)


def test_the_most_overlapping_pairs_are_merged_first():
    rng = np.random.RandomState(3)
    fit = stub(rng, 4, 2)
    # Components 1 and 3 share their rows; 2 and 4 each have rows of their own, and share
    # a few with 1 (2 more than 4).
    resp = np.zeros((40, 4))
    resp[:10, [0, 2]] = 0.5
    resp[10:20, 1] = 1.0
    resp[20:30, 3] = 1.0
    resp[30:34, [0, 1]] = 0.5
    resp[34:36, [0, 3]] = 0.5
    resp[36:, 0] = 1.0
    starts = merge_starts(fit, resp, None)
    assert len(starts) == MERGED_PAIRS
    assert starts[0].name == "merge: components 1 and 3 of 4"
    assert starts[1].name == "merge: components 1 and 2 of 4"
    assert starts[2].name == "merge: components 1 and 4 of 4"
    first = starts[0]
    np.testing.assert_array_equal(first.means[:2], fit.means_[[1, 3]])
    merged = mixture_moments(fit.weights_[[0, 2]], fit.means_[[0, 2]],
                             fit.covariances_[[0, 2]])
    assert first.weights[2] == pytest.approx(merged[0], rel=1e-14)
    np.testing.assert_allclose(first.means[2], merged[1], rtol=1e-12)
    np.testing.assert_allclose(first.covariances[2], merged[2], rtol=1e-12)
    assert all(is_neighbour_start(start.name) for start in starts + split_starts(fit))
    assert not is_neighbour_start("kmeans") and not is_neighbour_start("random rows 2")


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_a_neighbour_start_is_the_m_step_of_its_moments(covariance_type):
    rng = np.random.RandomState(4)
    fit = stub(rng, 3, 3)
    start = Neighbour("a start", fit.weights_, fit.means_, fit.covariances_)
    model = MixtureModel(covariance_type, 1e-3, np.float64)
    theta = model.initial_parameters(start.statistics(1e-3, 250.0, model.form), 250.0)
    np.testing.assert_allclose(theta[0], fit.weights_, rtol=1e-12)
    np.testing.assert_allclose(theta[1], fit.means_, rtol=1e-12)
    expected = (fit.covariances_ if covariance_type == "full"
                else np.diagonal(fit.covariances_, axis1=1, axis2=2))
    np.testing.assert_allclose(theta[2], expected, rtol=1e-12)


def fitted_row(covariance_type, fit):
    return CandidateFit({"covariance_type": covariance_type, "model": fit}, "a result")


@pytest.mark.parametrize("covariance_type", ["tied", "spherical", "VEV"])
def test_a_start_from_another_models_fit_is_the_m_step_of_its_moments(covariance_type):
    rng = np.random.RandomState(5)
    weights = rng.dirichlet(np.ones(3))
    means = rng.randn(3, 2) * 3
    covariances = np.array([random_covariance(rng, 2) for _ in range(3)])
    fit = FittedStub(weights, means, covariances)
    (start,) = across_starts([fitted_row("VVV", fit)])
    assert start.name == ACROSS + "VVV" and is_neighbour_start(start.name)
    model = MixtureModel(covariance_type, 1e-3, np.float64)
    theta = model.initial_parameters(start.statistics(1e-3, 250.0, model.form), 250.0)
    np.testing.assert_allclose(theta[0], weights, rtol=1e-12)
    np.testing.assert_allclose(theta[1], means, rtol=1e-12)
    # The M-step under the model's constraints, slowly: a tied model pools the
    # components' covariances by weight, a spherical one keeps each one's mean variance
    # (reg_covar, which the start's statistics leave out, added back once).
    if covariance_type == "tied":
        pooled = sum(w * (c - 1e-3 * np.eye(2)) for w, c in zip(weights, covariances))
        np.testing.assert_allclose(theta[2], pooled + 1e-3 * np.eye(2), rtol=1e-12)
    elif covariance_type == "spherical":
        expected = [np.trace(c) / 2 for c in covariances]
        np.testing.assert_allclose(theta[2], expected, rtol=1e-12)
    else:
        # VEV: the components' shapes pooled, so each covariance's eigenvalues, scaled
        # to one determinant, are shared by all three.
        shapes = [np.linalg.eigvalsh(c) / np.linalg.det(c) ** 0.5 for c in theta[2]]
        np.testing.assert_allclose(shapes[1], shapes[0], rtol=1e-6)
        np.testing.assert_allclose(shapes[2], shapes[0], rtol=1e-6)


# ----------------------------------------------------------------------------------------
# the phase in a search
# ----------------------------------------------------------------------------------------


def iris():
    from sklearn.datasets import load_iris

    return load_iris().data


def standardised_wine():
    from sklearn.datasets import load_wine

    X = load_wine().data
    return (X - X.mean(axis=0)) / X.std(axis=0)


@pytest.mark.parametrize("data, n_components, covariance_type, reference, move", [
    # The best of 9 scikit-learn-style fits, and mclust, at these cells (log L); the
    # multi-start strategy alone ends 1.7, 1.1 and 18.9 below the best of them.
    (iris, 6, "EEV", -149.60, "merge: "),
    (iris, 6, "EVE", -184.87, "split: "),
    (standardised_wine, 4, "EVV", -1926.11, "merge: "),
])
def test_the_neighbours_fits_reach_optima_the_candidates_own_starts_miss(
        data, n_components, covariance_type, reference, move):
    X = data()
    params = dict(random_state=0, tol=1e-5, max_iter=1000)
    table = select_model(X, [n_components - 1, n_components, n_components + 1],
                         [covariance_type], **params).criterion_table_
    cell = list(table["n_components"]).index(n_components)
    alone = GaussianMixture(n_components, covariance_type=covariance_type,
                            init_params="multistart", **params).fit(X)
    assert alone.score(X) * X.shape[0] < reference
    assert table["log_likelihood"][cell] > reference
    assert table["start"][cell].startswith(move)
    # The gain over the plain k-means fit grows by what the refit gained.
    kmeans = GaussianMixture(n_components, covariance_type=covariance_type, **params).fit(X)
    assert table["gain_over_kmeans"][cell] == pytest.approx(
        (table["log_likelihood"][cell] - kmeans.score(X) * X.shape[0]), abs=1e-3)


def test_a_refitted_candidate_counts_the_iterations_of_its_own_climb():
    X = iris()
    table = select_model(X, [5, 6, 7], ["EEV"], random_state=0, tol=1e-5,
                         max_iter=1000).criterion_table_
    cell = list(table["n_components"]).index(6)
    assert is_neighbour_start(table["start"][cell])
    assert table["converged"][cell] and table["n_iter"][cell] > 1


@pytest.mark.parametrize("data, grid_k, covariance_types, moves", [
    (iris, range(4, 9), ["EEV", "EVE", "VVI"], (SPLIT, MERGE)),
    (standardised_wine, [3, 4, 5], ["EEV", "EVV", "VVI"], (ACROSS,)),
])
def test_the_phase_is_reproducible_and_independent_of_threads(
        data, grid_k, covariance_types, moves):
    X = data()
    tables = [select_model(X, grid_k, covariance_types, random_state=0,
                           n_threads=threads).criterion_table_ for threads in (1, 2, 1)]
    starts = tables[0]["start"].tolist()
    for move in moves:
        assert any(start.startswith(move) for start in starts)
    for table in tables[1:]:
        np.testing.assert_array_equal(table["log_likelihood"], tables[0]["log_likelihood"])
        assert table["start"].tolist() == tables[0]["start"].tolist()


def test_the_phase_never_lowers_a_candidate():
    X = iris()
    grid = dict(covariance_type=["EEV", "EVE", "VVI", "VII"], random_state=0)
    with_phase = select_model(X, range(2, 9), **grid).criterion_table_
    # A grid of every other K leaves no candidate a neighbour: the first fits alone.
    for ks in (range(2, 9, 2), range(3, 9, 2)):
        alone = select_model(X, ks, **grid).criterion_table_
        for k, covariance_type, loglik in zip(alone["n_components"],
                                              alone["covariance_type"],
                                              alone["log_likelihood"]):
            cell = ((with_phase["n_components"] == k)
                    & (with_phase["covariance_type"] == covariance_type))
            assert with_phase["log_likelihood"][cell][0] >= loglik - 1e-9 * abs(loglik)
            if not is_neighbour_start(with_phase["start"][cell][0]):
                assert with_phase["log_likelihood"][cell][0] == loglik


def test_no_phase_on_data_larger_than_the_screen(monkeypatch):
    from gmmfast import _selection

    calls = []
    starts = _selection.neighbour_starts
    monkeypatch.setattr(_selection, "neighbour_starts",
                        lambda *args: calls.append(args) or starts(*args))
    rng = np.random.RandomState(5)
    for n_rows, refitted in ((SCREEN_ROWS, True), (SCREEN_ROWS + 1, False)):
        calls.clear()
        select_model(rng.randn(n_rows, 2), [1, 2], ["EII"], random_state=0)
        assert len(calls) == (2 if refitted else 0)


def test_a_round_waits_for_the_candidates_and_its_neighbours_round_before():
    neighbourhood = Neighbourhood([1, 2, 3, 5], ["VVV", "EII"], rounds=2)

    def done(k, covariance_type, changed=True, failed=False):
        row = {"n_components": k, "covariance_type": covariance_type}
        return neighbourhood.record((k, covariance_type),
                                    CandidateFit(row, None if failed else "a result"),
                                    changed)

    assert done(5, "VVV") == [(5, "VVV")]  # no neighbour in the grid
    # The last round of (5, VVV) waits for the first round of (5, EII).
    assert done(5, "VVV", changed=False) == []
    assert done(2, "VVV") == []
    assert done(1, "EII") == []
    assert done(1, "VVV") == [(1, "VVV")]
    assert sorted(done(3, "VVV")) == [(2, "VVV"), (3, "VVV")]
    assert done(2, "EII", failed=True) == [(1, "EII")]
    # Round 1 of (1, EII) starts from its neighbour's first fit, which failed: nothing;
    # the other models' fits start the last round only.
    assert neighbourhood.starting_fits((1, "EII")) == StartingFits(None, None, [])
    assert neighbourhood.starting_fits((1, "EII")).is_empty()
    # Round 1 of (2, VVV) starts from both neighbours' first fits.
    fewer, more, across = neighbourhood.starting_fits((2, "VVV"))
    assert fewer.row["n_components"] == 1 and more.row["n_components"] == 3
    assert across == []
    # Round 2 of (1, VVV) waits for round 1 of (2, VVV) and of (1, EII); it starts from
    # (2, VVV) only if that round changed it, and from (1, EII) whether it changed or not.
    assert done(1, "VVV", changed=False) == []
    assert not neighbourhood.is_final((1, "VVV"))
    assert done(2, "VVV", changed=False) == []
    assert done(1, "EII", changed=False) == [(1, "VVV")]
    fewer, more, across = neighbourhood.starting_fits((1, "VVV"))
    assert fewer is None and more is None
    assert [fit.row["covariance_type"] for fit in across] == ["EII"]
    assert done(1, "VVV", changed=False) == [] and neighbourhood.is_final((1, "VVV"))
    # Round 2 of (3, VVV) waits for the first round of (3, EII), which starts once (3,
    # EII)'s first fit is done; a failed fit is no start.
    assert done(3, "VVV", changed=False) == []
    assert sorted(done(3, "EII", failed=True)) == [(2, "EII"), (3, "EII")]
    assert done(3, "EII", failed=True, changed=False) == [(3, "VVV")]
    assert neighbourhood.starting_fits((3, "VVV")) == StartingFits(None, None, [])


def test_a_second_round_starts_from_the_first_rounds_refits(monkeypatch):
    from gmmfast import _selection

    X = standardised_wine()
    grid = dict(covariance_type=["EEE"], random_state=0, tol=1e-5, max_iter=1000)
    assert _selection.NEIGHBOUR_ROUNDS == 2
    two = select_model(X, range(6, 10), **grid).criterion_table_
    monkeypatch.setattr(_selection, "NEIGHBOUR_ROUNDS", 1)
    one = select_model(X, range(6, 10), **grid).criterion_table_
    # EEE with 9 components: mclust and the best of 9 reach -2200.30; a round ends 1.5
    # below, a second one, from the refitted fit with 8 components, 15.7 above.
    assert one["log_likelihood"][-1] < -2200.30 < two["log_likelihood"][-1]
    assert two["start"][-1].startswith("split: ")
    assert np.all(two["log_likelihood"] >= one["log_likelihood"])


def test_the_last_round_reaches_optima_from_the_other_models_fits():
    X = standardised_wine()
    grid = dict(random_state=0, tol=1e-5, max_iter=1000)
    table = select_model(X, [3, 4, 5], ["EEV", "EVV"], **grid).criterion_table_
    cell = list(zip(table["n_components"], table["covariance_type"])).index((4, "EEV"))
    # EEV with 4 components: the best of 9 scikit-learn-style fits reaches -1961.44
    # (mclust -1985.92); the splits and merges end at -1963.31, the start from EVV's fit
    # above it.
    assert table["log_likelihood"][cell] > -1961.44
    assert table["start"][cell] == ACROSS + "EVV"
