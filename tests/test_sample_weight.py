"""sample_weight: an integer weight counts a row that many times, a zero weight drops it."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from gmmfast import GaussianMixture

from conftest import COVARIANCE_TYPES

RTOL = 1e-10


def _fit(X, sample_weight=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning with tol=0
        return GaussianMixture(**params).fit(X, sample_weight=sample_weight)


def _assert_same_fit(a, b, rtol=RTOL):
    assert a.n_iter_ == b.n_iter_
    assert len(a.lower_bounds_) == len(b.lower_bounds_)
    assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol, atol=0)
    assert_allclose(a.lower_bound_, b.lower_bound_, rtol=rtol, atol=0)
    for name in ("weights_", "means_", "covariances_", "precisions_"):
        assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol,
                        atol=rtol * np.abs(getattr(b, name)).max(), err_msg=name)


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(42)
    X = np.vstack([rng.randn(60, 3) + [4, 0, 0], rng.randn(50, 3) @ np.diag([1, 2, 0.5]),
                   rng.randn(40, 3) - [0, 5, 2]])
    X = X[rng.permutation(len(X))]
    int_weights = rng.randint(0, 4, size=len(X))
    int_weights[:3] = [1, 2, 3]  # every kind present
    return X, int_weights


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(covariance_type, data, make_inits):
    X, int_weights = data
    X_repeated = np.repeat(X, int_weights, axis=0)
    inits = make_inits(X, 3, covariance_type, seed=3)
    params = dict(n_components=3, covariance_type=covariance_type, tol=0, max_iter=25,
                  **inits)
    weighted = _fit(X, int_weights.astype(np.float64), **params)
    repeated = _fit(X_repeated, **params)
    _assert_same_fit(weighted, repeated)
    # integer weights given as an int array are accepted too
    _assert_same_fit(_fit(X, int_weights, **params), repeated)
    # default tol: the convergence decision is the same
    params["tol"] = 1e-3
    _assert_same_fit(_fit(X, int_weights, **params), _fit(X_repeated, **params))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_zero_weights_equal_dropped_rows(covariance_type, data, make_inits):
    X, int_weights = data
    keep = int_weights > 0
    assert 0 < keep.sum() < len(X)
    inits = make_inits(X[keep], 3, covariance_type, seed=4)
    params = dict(n_components=3, covariance_type=covariance_type, tol=0, max_iter=25,
                  **inits)
    weights = keep.astype(np.float64)
    weighted = _fit(X, weights, **params)
    dropped = _fit(X[keep], **params)
    _assert_same_fit(weighted, dropped)
    assert_array_equal(weighted.predict(X[keep]), dropped.predict(X[keep]))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_mixed_weights_equal_repeat_and_drop(covariance_type, data, make_inits):
    # zeros and integer repeats together (the int weights contain zeros)
    X, int_weights = data
    inits = make_inits(X, 3, covariance_type, seed=5)
    params = dict(n_components=3, covariance_type=covariance_type, tol=0, max_iter=15,
                  **inits)
    _assert_same_fit(_fit(X, int_weights, **params),
                     _fit(np.repeat(X, int_weights, axis=0), **params))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_single_component_default_init(covariance_type, init_params, data):
    # With one component every init method gives the same initial partition, so the
    # weighted, repeated and dropped fits must agree even without user inits.
    X, int_weights = data
    params = dict(n_components=1, covariance_type=covariance_type, random_state=0,
                  tol=0, max_iter=5, init_params=init_params)
    weighted = _fit(X, int_weights, **params)
    repeated = _fit(np.repeat(X, int_weights, axis=0), **params)
    if init_params in ("kmeans", "random"):
        # The initial parameters are the weighted mean and covariance: identical.
        _assert_same_fit(weighted, repeated)
    else:
        # One seed row: the initial mean depends on the drawn row, but one EM step
        # reaches the same (exact) single-Gaussian optimum; compare from iteration 2 on.
        assert_allclose(weighted.lower_bounds_[1:], repeated.lower_bounds_[1:],
                        rtol=RTOL, atol=0)
        for name in ("weights_", "means_", "covariances_"):
            assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=RTOL,
                            atol=RTOL * np.abs(getattr(repeated, name)).max())

    keep = int_weights > 0
    dropped = _fit(X[keep], **params)
    zero_weighted = _fit(X, keep.astype(np.float64), **params)
    if init_params in ("kmeans", "random"):
        _assert_same_fit(zero_weighted, dropped)
    else:
        assert_allclose(zero_weighted.lower_bounds_[1:], dropped.lower_bounds_[1:],
                        rtol=RTOL, atol=0)
        for name in ("means_", "covariances_"):
            assert_allclose(getattr(zero_weighted, name), getattr(dropped, name),
                            rtol=RTOL, atol=RTOL * np.abs(getattr(dropped, name)).max())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_single_component_is_weighted_mean_and_covariance(covariance_type, data):
    X, int_weights = data
    w = int_weights.astype(np.float64)
    model = _fit(X, w, n_components=1, covariance_type=covariance_type, reg_covar=0)
    mean = np.average(X, axis=0, weights=w)
    cov = np.cov(X, rowvar=False, aweights=w, bias=True)
    assert_allclose(model.means_[0], mean, rtol=1e-12, atol=1e-13)
    expected = {"full": cov[None], "tied": cov, "diag": np.diag(cov)[None],
                "spherical": np.array([np.diag(cov).mean()])}[covariance_type]
    assert_allclose(model.covariances_, expected, rtol=1e-10)
    assert_allclose(model.weights_, [1.0])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_none_equals_all_ones(covariance_type, init_params, data):
    X, _ = data
    params = dict(n_components=3, covariance_type=covariance_type, random_state=0,
                  init_params=init_params, max_iter=20)
    unweighted = _fit(X, None, **params)
    ones = _fit(X, np.ones(len(X)), **params)
    _assert_same_fit(ones, unweighted, rtol=1e-12)
    assert ones.converged_ == unweighted.converged_
    assert_array_equal(ones.predict(X), unweighted.predict(X))
    for method in ("fit_predict",):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = GaussianMixture(**params).fit_predict(X, sample_weight=np.ones(len(X)))
            b = GaussianMixture(**params).fit_predict(X)
        assert_array_equal(a, b)


def test_uniform_scaling_of_weights_does_not_matter(data, make_inits):
    X, int_weights = data
    params = dict(n_components=3, tol=0, max_iter=15, **make_inits(X, 3, "full", seed=6))
    a = _fit(X, int_weights, **params)
    b = _fit(X, 0.125 * int_weights, **params)  # power of two: exact scaling
    _assert_same_fit(a, b, rtol=1e-12)


def test_weighted_score_bic_aic_equal_repeated_rows(data, make_inits):
    X, int_weights = data
    X_repeated = np.repeat(X, int_weights, axis=0)
    model = _fit(X, int_weights, n_components=3, **make_inits(X, 3, "full", seed=7))
    n = X_repeated.shape[0]
    assert model.score(X, sample_weight=int_weights) == pytest.approx(
        model.score(X_repeated), rel=1e-12)
    assert model.bic(X, sample_weight=int_weights) == pytest.approx(
        model.bic(X_repeated), rel=1e-12)
    assert model.aic(X, sample_weight=int_weights) == pytest.approx(
        model.aic(X_repeated), rel=1e-12)
    expected_bic = -2 * model.score(X_repeated) * n + model._n_parameters() * np.log(n)
    assert model.bic(X, sample_weight=int_weights) == pytest.approx(expected_bic, rel=1e-12)
    # without weights, the unweighted definitions
    assert model.score(X) == pytest.approx(model.score_samples(X).mean(), rel=1e-14)


def test_fit_predict_with_weights_equals_fit_then_predict(data):
    X, int_weights = data
    params = dict(n_components=3, random_state=1, max_iter=2, n_init=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = GaussianMixture(**params).fit_predict(X, sample_weight=int_weights)
        model = GaussianMixture(**params).fit(X, sample_weight=int_weights)
    assert_array_equal(labels, model.predict(X))


def test_sample_weight_not_modified(data):
    X, int_weights = data
    weights = int_weights.astype(np.float64)
    copy = weights.copy()
    _fit(X, weights, n_components=2, random_state=0)
    assert_array_equal(weights, copy)
