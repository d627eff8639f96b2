"""The pooled form of the statistics of tied covariances: one (1, D, D) scatter, the sum of
the components' scatters, accumulated about one common shift (one D×D product per row
instead of one per row and component). Every path that fits a tied model gets it, and
gives what the components' own scatters, summed, would give.

The compiled pass itself is held to the NumPy reference in ``test_kernels.py`` (the
"pooled" pass form); here are the engine's uses of it.
"""

import numpy as np
import pytest

from _mstep_reference import estimate_parameters as reference_estimate
from gmmfast import GaussianMixture, _mstep_core
from gmmfast._engine import (
    InMemorySource,
    MixtureModel,
    Statistics,
    StreamState,
    block_statistics,
    block_statistics_of_sets,
    ordered_sum,
    statistics_form,
)
from gmmfast._missing import missing_block_statistics
from gmmfast._variational import Priors, VariationalMixtureModel


def _problem(n=2000, offset=0.0, dtype=np.float64, seed=0):
    """Three tied clusters in 3 dimensions, weights with zeros, and a tied model near them."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 1.0], [0.0, 6.0, -2.0]])
    X = centres[rng.integers(3, size=n)] + rng.normal(size=(n, 3)) @ [[1.0, 0.3, 0.0],
                                                                      [0.0, 0.8, 0.2],
                                                                      [0.0, 0.0, 0.6]]
    weights = rng.uniform(0.0, 2.0, size=n)
    weights[rng.random(n) < 0.2] = 0.0
    model = MixtureModel("tied", 1e-6, dtype)
    theta = (np.array([0.3, 0.3, 0.4]), centres + offset + rng.normal(scale=0.3, size=(3, 3)),
             None, np.linalg.cholesky(np.linalg.inv(np.eye(3) * 0.9)).T)
    return (X + offset).astype(dtype), weights, model, theta


def _full_and_pooled(X, weights, model, theta):
    """(full statistics, pooled statistics) of one pass under θ."""
    params = model.kernel_parameters(theta)
    assert params.pooled and statistics_form(params) == "pooled"
    _, full = block_statistics(X, weights, params._replace(pooled=False), 1)
    _, pooled = block_statistics(X, weights, params, 1)
    return full, pooled


def _assert_pooled_of(pooled, full, rtol=1e-12):
    assert pooled.form == "pooled" and full.form == "full"
    np.testing.assert_allclose(pooled.nk, full.nk, rtol=rtol)
    np.testing.assert_allclose(pooled.sums, full.sums, rtol=rtol,
                               atol=rtol * np.abs(full.sums).max())
    expected = full.scatter.sum(axis=0, keepdims=True)
    np.testing.assert_allclose(pooled.scatter, expected, rtol=0,
                               atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_a_tied_model_asks_for_the_pooled_form_and_gets_the_sum(offset):
    X, weights, model, theta = _problem(offset=offset)
    full, pooled = _full_and_pooled(X, weights, model, theta)
    assert pooled.scatter.shape == (1, 3, 3)
    _assert_pooled_of(pooled, full, rtol=1e-12 if offset == 0.0 else 1e-9)
    assert np.array_equal(full.pooled().scatter, full.scatter.sum(axis=0, keepdims=True))


def test_float32_pooled_statistics_match_float64_far_from_the_origin():
    X32, weights, model, theta = _problem(offset=1e4, dtype=np.float32)
    params = model.kernel_parameters(theta)
    _, pooled32 = block_statistics(X32, weights, params, 1)
    # The same rows in float64 (exact): only the pass's arithmetic differs.
    _, exact = block_statistics(X32.astype(np.float64), weights, params, 1)
    assert pooled32.form == exact.form == "pooled"
    for a, b in zip(pooled32[:3], exact[:3]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * np.abs(b).max())


def test_the_m_step_of_the_pooled_form_is_that_of_the_full_form():
    X, weights, model, theta = _problem()
    full, pooled = _full_and_pooled(X, weights, model, theta)
    for a, b in zip(model.m_step(pooled), model.m_step(full)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    eps = np.finfo(np.float64).eps
    for a, b in zip(_mstep_core.estimate_parameters(*pooled, "tied", 1e-6, eps),
                    reference_estimate(*pooled, "tied", 1e-6, eps)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_an_empty_component_adds_nothing_to_the_pooled_form():
    X, weights, model, theta = _problem()
    _, means, _, chol = theta
    theta = (np.array([0.5, 0.5, 0.0]), means, None, chol)  # log π = -inf: never responsible
    full, pooled = _full_and_pooled(X, weights, model, theta)
    assert pooled.nk[2] == 0.0 and not pooled.sums[2].any()
    _assert_pooled_of(pooled, full)
    assert np.all(np.isfinite(model.m_step(pooled)[3]))


def test_pooled_statistics_recentre_and_add_as_the_full_form_does():
    X, weights, model, theta = _problem()
    full, pooled = _full_and_pooled(X, weights, model, theta)
    shifts = np.random.default_rng(3).normal(size=(3, 3))
    _assert_pooled_of(pooled.recentred(shifts), full.recentred(shifts), rtol=1e-11)
    total = ordered_sum([pooled, Statistics.zeros("pooled", pooled.shifts),
                         pooled.recentred(shifts)])
    _assert_pooled_of(total, ordered_sum([full, full]), rtol=1e-11)
    with pytest.raises(ValueError, match="no pooled form"):
        Statistics.zeros("diag", shifts).pooled()


def test_sets_and_rows_with_missing_entries_give_the_pooled_form():
    X, weights, model, theta = _problem()
    params = model.kernel_parameters(theta)
    expected = block_statistics(X, weights, params, 1)
    (_, from_sets), = block_statistics_of_sets(X, weights, [params], 1)
    for a, b in zip(from_sets, expected[1]):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="the pooled statistics or none"):
        block_statistics_of_sets(X, weights, [params, params._replace(pooled=False)], 1)
    with_nan = X.copy()
    with_nan[::3, 1] = np.nan
    _, missing = missing_block_statistics(with_nan, weights, params, 1)
    _, missing_full = missing_block_statistics(with_nan, weights,
                                               params._replace(pooled=False), 1)
    assert missing.form == "pooled"
    _assert_pooled_of(missing, missing_full)


def _flat(theta):
    return np.concatenate([np.ravel(part) for part in theta])


def test_the_variational_bound_and_update_are_the_same_from_either_form():
    X, weights, em_model, em_theta = _problem()
    priors = Priors(1.0 / 3, 1.0, X.mean(axis=0), 3.0, np.cov(X.T))
    model = VariationalMixtureModel("tied", "dirichlet_process", priors, 3, 1e-6, X.dtype)
    source = InMemorySource(X, weights)
    _, start = source.statistics(em_model.kernel_parameters(em_theta), 1)
    params = model.kernel_parameters(model.m_step(start))
    assert params.pooled
    loglik, pooled = source.statistics(params, 1)
    _, full = source.statistics(params._replace(pooled=False), 1)
    assert pooled.form == "pooled"
    assert model.sum_resp_log_resp(loglik, pooled, params) == pytest.approx(
        model.sum_resp_log_resp(loglik, full, params), rel=1e-12)
    np.testing.assert_allclose(_flat(_flat_parts(model.m_step(pooled))),
                               _flat(_flat_parts(model.m_step(full))), rtol=1e-11)


def _flat_parts(theta):
    """θ with the Dirichlet process's pair of concentrations as two parts."""
    concentration, *rest = theta
    return (*concentration, *rest)


def test_a_stream_saved_in_the_full_form_resumes():
    """Model files of online EM before the pooled form hold a tied stream's statistics in
    the full form: the next batch blends them, pooled."""
    X, _, _, _ = _problem()
    pooled = GaussianMixture(3, covariance_type="tied", random_state=0)
    for start in range(0, 900, 300):
        pooled.partial_fit(X[start:start + 300])
    as_saved = GaussianMixture(3, covariance_type="tied", random_state=0)
    for start in range(0, 600, 300):
        as_saved.partial_fit(X[start:start + 300])
    state = as_saved._stream
    assert state.statistics.form == "pooled"
    # The same running statistics in the full form: the pooled scatter on one component.
    scatter = np.zeros((3, 3, 3))
    scatter[0] = state.statistics.scatter[0]
    as_saved._stream = StreamState(state.statistics._replace(scatter=scatter), state.weight,
                                   state.n_batches)
    as_saved.partial_fit(X[600:900])
    np.testing.assert_allclose(as_saved.covariances_, pooled.covariances_, rtol=1e-12)
    np.testing.assert_allclose(as_saved.means_, pooled.means_, rtol=1e-12)
