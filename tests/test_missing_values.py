"""EM with missing entries (gmmfast._missing) against a slow, exact NumPy EM
(tests/_missing_reference.py), run through the engine's one loop."""

import threading
import time
import warnings

import numpy as np
import pytest

import _missing_reference as reference
from conftest import COVARIANCE_TYPES, INIT_METHODS, _mixture_data
from gmmfast._engine import (
    InMemorySource,
    MixtureModel,
    initial_statistics,
    mixture_kernel_parameters,
    ordered_sum,
    run_em,
)
from gmmfast import _missing
from gmmfast._missing import (
    MissingValueSource,
    fit_source,
    group_rows,
    missing_block_statistics,
    score_missing,
)

N_COMPONENTS = 3
REG_COVAR = 1e-6


def _incomplete_data(dtype=np.float64, fraction=0.2, seed=1, n_samples=240):
    """A well-separated mixture with ``fraction`` of its entries missing at random, a
    complete row, a row with no observed entry and a row with one."""
    X = _mixture_data(n_samples, N_COMPONENTS, 4, seed=seed)
    rng = np.random.RandomState(seed)
    X[rng.uniform(size=X.shape) < fraction] = np.nan
    X[0] = [1.0, 2.0, 3.0, 4.0]
    X[1] = np.nan
    X[2, 1:] = np.nan
    return np.ascontiguousarray(X, dtype=dtype)


def _weights(n_samples, seed=2):
    weights = np.random.RandomState(seed).uniform(0.0, 2.0, n_samples)
    weights[3:9] = 0.0
    return weights


def _fit(source, covariance_type, max_iter, init_params="kmeans"):
    """run_em from one initialisation; the start (θ) and the result."""
    model = MixtureModel(covariance_type, REG_COVAR, source.dtype)
    stats = initial_statistics(source, N_COMPONENTS, init_params, (model.form,),
                               np.random.RandomState(0), 1)
    start = model.initial_parameters(stats[model.form], source.total_weight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: never converges
        result = run_em(model, source, lambda init: (start, -np.inf), n_init=1,
                        max_iter=max_iter, tol=0.0, n_threads=1)
    return start, result


def _reference_fit(X, sample_weight, start, covariance_type, n_iter, eps):
    theta, bounds = start[:3], []
    for _ in range(n_iter):
        bound, theta = reference.em_step(X, sample_weight, theta, covariance_type,
                                         REG_COVAR, eps)
        bounds.append(bound)
    return theta, np.array(bounds)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype, rtol, weighted", [(np.float64, 1e-10, False),
                                                   (np.float64, 1e-10, True),
                                                   (np.float32, 2e-4, True)])
def test_trajectory_matches_exact_em(covariance_type, weighted, dtype, rtol):
    # Small: the reference is a Python loop over the rows.
    X = _incomplete_data(dtype, n_samples=90)
    weights = _weights(len(X)) if weighted else None
    start, result = _fit(MissingValueSource(X, weights, N_COMPONENTS), covariance_type, 4)
    theta, bounds = _reference_fit(X, weights, start, covariance_type, 4,
                                   np.finfo(dtype).eps)
    np.testing.assert_allclose(result.lower_bounds, bounds, rtol=rtol)
    for fitted, expected in zip(result.parameters[:3], theta):
        np.testing.assert_allclose(fitted, expected, rtol=rtol,
                                   atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_likelihood_never_decreases(covariance_type):
    X = _incomplete_data(fraction=0.35, seed=3)
    _, result = _fit(MissingValueSource(X, _weights(len(X)), N_COMPONENTS),
                     covariance_type, 25)
    assert np.all(np.diff(result.lower_bounds) >= -1e-12)


@pytest.mark.parametrize("n_features", [3, 12, 70])
def test_rows_are_grouped_by_pattern(n_features):
    rng = np.random.RandomState(0)
    X = rng.randn(400, n_features)
    # Few patterns, so that groups have several rows.
    patterns = rng.uniform(size=(6, n_features)) < 0.3
    patterns[0] = False
    patterns[1] = True
    X[patterns[rng.randint(6, size=len(X))]] = np.nan
    groups, empty_rows = group_rows(X)
    assert not groups[0].missing.size
    assert np.all(np.isnan(X[empty_rows]))
    seen = [empty_rows]
    for group in groups:
        assert np.all(np.diff(group.rows) > 0)
        np.testing.assert_array_equal(group.source.X, X[group.rows][:, group.observed])
        assert np.all(np.isnan(X[group.rows][:, group.missing]))
        seen.append(group.rows)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(len(X)))
    assert len(groups) == len({tuple(p) for p in np.isnan(X)} - {(True,) * n_features})


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_without_nan_the_statistics_are_the_in_memory_ones_bit_for_bit(covariance_type):
    X = _mixture_data(300, N_COMPONENTS, 4, seed=4)
    weights = _weights(len(X))
    start, _ = _fit(InMemorySource(X, weights), covariance_type, 0)
    params = mixture_kernel_parameters(start, covariance_type)
    loglik, stats = MissingValueSource(X, weights, N_COMPONENTS).statistics(params, 1)
    expected_loglik, expected = InMemorySource(X, weights).statistics(params, 1)
    assert loglik == expected_loglik
    for value, expected_value in zip(stats, expected):
        np.testing.assert_array_equal(value, expected_value)


@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_without_nan_initialisation_is_the_in_memory_one(init_params):
    X = _mixture_data(300, N_COMPONENTS, 4, seed=5)
    for form in ("full", "diag"):
        stats = [initial_statistics(source, N_COMPONENTS, init_params, (form,),
                                    np.random.RandomState(0), 1)[form]
                 for source in (MissingValueSource(X, None, N_COMPONENTS),
                                InMemorySource(X))]
        for value, expected in zip(*stats):
            np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-12)


def test_fit_source_without_nan_is_the_in_memory_source():
    X = _mixture_data(100, 2, 3)
    assert isinstance(fit_source(X, None, 2), InMemorySource)
    X[0, 0] = np.nan
    assert isinstance(fit_source(X, None, 2), MissingValueSource)


@pytest.mark.parametrize("init_params", INIT_METHODS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_every_initialisation_copes_with_missing_entries(init_params, covariance_type):
    X = _incomplete_data(fraction=0.3)
    source = MissingValueSource(X, _weights(len(X)), N_COMPONENTS)
    start, result = _fit(source, covariance_type, 3, init_params)
    for theta in (start, result.parameters):
        assert all(np.all(np.isfinite(a)) for a in theta)
    # (Seed-based starts weigh each seed row alone, as scikit-learn's.)
    np.testing.assert_allclose(result.parameters[0].sum(), 1.0)


def test_kmeans_finds_the_blobs_through_missing_entries():
    X, labels = _mixture_data(300, N_COMPONENTS, 4, seed=6, return_labels=True)
    X[np.random.RandomState(0).uniform(size=X.shape) < 0.2] = np.nan
    source = MissingValueSource(X, None, N_COMPONENTS)
    _, result = _fit(source, "full", 10)
    found = source.labels(mixture_kernel_parameters(result.parameters, "full"), 1)
    # The same partition, up to the components' order.
    pairs = set(zip(labels, found))
    assert len(pairs) == N_COMPONENTS


def test_seeds_come_from_the_rows_with_the_fewest_missing_entries():
    X = _mixture_data(2000, N_COMPONENTS, 4, seed=7)
    X[np.random.RandomState(0).uniform(size=X.shape) < 0.1] = np.nan
    complete = {tuple(row) for row in X[~np.isnan(X).any(axis=1)]}
    n_missing = np.isnan(X).sum(axis=1)
    # Over 1000 complete rows: enough for 3 clusters, not for 15.
    sample = MissingValueSource(X, None, 3).seeding_sample(3, np.random.RandomState(0))
    assert {tuple(row) for row in sample.X} <= complete
    sample = MissingValueSource(X, None, 15).seeding_sample(15, np.random.RandomState(0))
    assert len(sample.X) == np.count_nonzero(n_missing <= 1)
    assert not np.isnan(sample.X).any()


def test_rows_for_seeds_and_empty_clusters_are_imputed_by_the_column_means():
    X = np.array([[0.0, 1.0], [np.nan, 30.0], [2.0, np.nan], [4.0, -1.0], [np.nan, np.nan],
                  [1.0, 0.0]])
    weights = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    source = MissingValueSource(X, weights, 2)
    mean = [(0.0 + 2.0 + 1.0) / 3, (1.0 + 30.0 + 0.0) / 3]
    np.testing.assert_allclose(source.mean_and_variance(1)[0], mean)
    # Ranks among the rows with an observed entry and a weight: 0, 1, 2, 5.
    rows, row_weights = source.rows_at_ranks(np.array([2, 1]))
    np.testing.assert_allclose(rows, [[2.0, mean[1]], [mean[0], 30.0]])
    np.testing.assert_array_equal(row_weights, [1.0, 1.0])
    # Distances over the observed coordinates: row 1 is 30 away, row 3 has no weight.
    centres = np.zeros((1, 2))
    np.testing.assert_allclose(source.farthest_rows(centres, centres, 1, 1),
                               [[mean[0], 30.0]])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_scores_are_marginal_densities(covariance_type, dtype, rtol):
    X = _incomplete_data(dtype, n_samples=120)
    start, result = _fit(MissingValueSource(X, None, N_COMPONENTS), covariance_type, 2)
    theta = result.parameters
    expected_log_prob, expected_resp = reference.marginal_log_density(X, theta[:3],
                                                                      covariance_type)
    # The fitted model's attributes carry no covariances: they are derived from the factors.
    for params in (mixture_kernel_parameters(theta, covariance_type),
                   mixture_kernel_parameters((*theta[:2], None, theta[3]), covariance_type)):
        log_prob, labels, resp = score_missing(X, params, labels=True, resp=True)
        assert log_prob.dtype == resp.dtype == dtype
        np.testing.assert_allclose(log_prob, expected_log_prob, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(resp, expected_resp, rtol=rtol, atol=rtol)
        np.testing.assert_array_equal(labels, np.argmax(resp, axis=1))
    # The row with no observed entry: log-density 0, the weights as responsibilities.
    assert log_prob[1] == 0.0
    np.testing.assert_allclose(resp[1], theta[0], rtol=rtol)
    source_scores = MissingValueSource(X, None, N_COMPONENTS).score(params, 1, resp=True)
    np.testing.assert_array_equal(source_scores[0], log_prob)
    np.testing.assert_array_equal(source_scores[2], resp)


def test_rows_with_no_observed_entry_do_not_change_the_fit():
    X = _incomplete_data()
    padded = np.vstack([X, np.full((5, X.shape[1]), np.nan)])
    fits = [_fit(MissingValueSource(data, None, N_COMPONENTS), "full", 4)[1]
            for data in (X, padded)]
    np.testing.assert_allclose(fits[0].lower_bounds, fits[1].lower_bounds, rtol=1e-12)
    for a, b in zip(fits[0].parameters, fits[1].parameters):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("fraction", [0.04, 0.3], ids=["large-complete-group", "pooled"])
def test_results_do_not_depend_on_the_thread_count(fraction, covariance_type):
    # At 4 % missing the complete rows are more than half of X: scoring and
    # initialisation give their pass every thread; at 30 % every group runs on the pool
    # of 1-thread passes. The statistics are one compiled call either way.
    X = _incomplete_data(fraction=fraction, n_samples=12000)
    source = MissingValueSource(X, _weights(len(X)), N_COMPONENTS)
    largest = max(len(group.rows) for group in source.groups)
    assert (largest > len(X) / 2) == (fraction < 0.1)
    start, _ = _fit(source, covariance_type, 0)
    params = mixture_kernel_parameters(start, covariance_type)
    assert _missing._em.pass_threads(2, len(X), len(X), *_missing._pair_cost(params)) == 2
    one = source.statistics(params, 1)
    for threads in (2, 3):
        other = source.statistics(params, threads)
        assert one[0] == other[0]
        for a, b in zip(one[1], other[1]):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(source.score(params, 1, resp=True), source.score(params, 2, resp=True)):
        np.testing.assert_array_equal(a, b)
    for init_params in ("kmeans", "random"):
        one, two = (initial_statistics(source, N_COMPONENTS, init_params, ("full",),
                                       np.random.RandomState(0), threads)["full"]
                    for threads in (1, 2))
        for a, b in zip(one, two):
            np.testing.assert_array_equal(a, b)


def test_blocks_statistics_add_up_to_the_whole():
    X = np.vstack([_incomplete_data(), np.full((4, 4), np.nan)])
    weights = _weights(len(X))
    source = MissingValueSource(X, weights, N_COMPONENTS)
    params = mixture_kernel_parameters(_fit(source, "tied", 1)[1].parameters, "tied")
    expected_loglik, expected = source.statistics(params, 1)
    # The last block has no observed entry: it adds nothing.
    parts = [missing_block_statistics(X[a:b], weights[a:b], params, 1)
             for a, b in ((0, 100), (100, len(X) - 4), (len(X) - 4, len(X)))]
    assert parts[2][0] == 0.0
    np.testing.assert_allclose(sum(loglik for loglik, _ in parts), expected_loglik,
                               rtol=1e-12)
    for value, expected_value in zip(ordered_sum([stats for _, stats in parts]), expected):
        np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-12)


def test_infinity_raises():
    X = _incomplete_data()
    X[4, 2] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        MissingValueSource(X, None, N_COMPONENTS)
    with pytest.raises(ValueError, match="Input X contains infinity"):
        fit_source(np.where(np.isnan(X), 0.0, X), None, N_COMPONENTS)
    X[4, 2] = 0.0
    params = mixture_kernel_parameters(_fit(MissingValueSource(X, None, N_COMPONENTS),
                                            "full", 0)[0], "full")
    X[4, 2] = np.inf

    def finite_check(block):
        raise ValueError("not finite")

    with pytest.raises(ValueError, match="not finite"):
        score_missing(X, params, finite_check=finite_check)


def test_a_column_with_no_observed_value_raises_naming_it():
    X = _incomplete_data()
    X[:, 2] = np.nan
    with pytest.raises(ValueError, match="Column 2 of X has no observed value"):
        MissingValueSource(X, None, N_COMPONENTS)
    with pytest.raises(ValueError, match="Column 'height' of X has no observed value"):
        MissingValueSource(X, None, N_COMPONENTS, feature_names=["a", "b", "height", "c"])
    # Observed only where the weight is zero is not observed either.
    X[5, 2] = 1.0
    weights = np.ones(len(X))
    weights[5] = 0.0
    with pytest.raises(ValueError, match="Column 2 of X has no observed value"):
        MissingValueSource(X, weights, N_COMPONENTS)


def test_fewer_rows_with_observations_than_components_raises():
    X = np.full((10, 2), np.nan)
    X[0] = [1.0, 2.0]
    X[1, 0] = 3.0
    X[2, 1] = 4.0
    MissingValueSource(X, None, 3)
    with pytest.raises(ValueError, match="at least n_components = 4 samples with an"):
        MissingValueSource(X, None, 4)


def test_an_error_on_a_helper_thread_reaches_the_caller():
    X = _incomplete_data(fraction=0.3, n_samples=2000)
    groups = MissingValueSource(X, None, N_COMPONENTS).groups

    def func(group, threads):
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("a helper failed")
        time.sleep(0.001)  # lets the helper draw groups too
        return len(group.rows)

    heavy = (1000, 1000)  # enough work per row for two threads
    assert _missing._em.pass_threads(2, len(X), len(X), *heavy) == 2
    with pytest.raises(ValueError, match="a helper failed"):
        _missing.map_groups(func, groups, 2, heavy)
