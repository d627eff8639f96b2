"""Results do not depend on the number of threads: bit for bit, not approximately."""

import warnings

import numpy as np
import pytest

from gmmfast import GaussianMixture

from conftest import COVARIANCE_TYPES, INIT_METHODS

FITTED_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")

# 20 000 rows = 79 chunks of 256 rows: many chunk groups, unevenly split between threads.
N_SAMPLES = 20_000


@pytest.fixture(scope="module")
def big_X():
    rng = np.random.RandomState(7)
    centers = np.array([[0.0, 0.0, 0.0], [6.0, 1.0, -2.0], [-3.0, 5.0, 4.0],
                        [2.0, -6.0, 1.0]])
    labels = rng.randint(0, len(centers), N_SAMPLES)
    X = centers[labels] + rng.randn(N_SAMPLES, 3) * rng.uniform(0.5, 2.0, size=(1, 3))
    X.setflags(write=False)
    return X


def _fit(X, n_threads, sample_weight=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning with small max_iter
        return GaussianMixture(n_threads=n_threads, **params).fit(
            X, sample_weight=sample_weight)


def _assert_identical(a, b, X):
    for name in FITTED_ARRAYS:
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.n_iter_ == b.n_iter_
    assert a.converged_ == b.converged_
    assert np.array_equal(np.asarray(a.lower_bounds_), np.asarray(b.lower_bounds_))
    assert np.array_equal(a.lower_bound_, b.lower_bound_)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.array_equal(a.score_samples(X), b.score_samples(X))
    assert np.array_equal(a.predict(X), b.predict(X))
    assert a.score(X) == b.score(X)


@pytest.mark.parametrize("init_params", INIT_METHODS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_and_two_threads_bitwise_identical(covariance_type, init_params, big_X):
    params = dict(n_components=4, covariance_type=covariance_type,
                  init_params=init_params, random_state=0, max_iter=8, tol=0)
    one = _fit(big_X, 1, **params)
    two = _fit(big_X, 2, **params)
    assert len(one.lower_bounds_) == 8
    _assert_identical(one, two, big_X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_thread_count_float32_weighted(covariance_type, big_X):
    # float32 data, sample weights, several inits, and more threads than cores.
    X32 = big_X.astype(np.float32)
    weights = np.random.RandomState(0).randint(0, 3, len(X32)).astype(np.float64)
    params = dict(n_components=3, covariance_type=covariance_type, random_state=3,
                  n_init=2, max_iter=5)
    fits = [_fit(X32, n, sample_weight=weights, **params) for n in (1, 2, 3)]
    for other in fits[1:]:
        _assert_identical(fits[0], other, X32)
    assert fits[0].means_.dtype == np.float32


def test_default_threads_identical_to_explicit(big_X):
    params = dict(n_components=4, random_state=0, max_iter=5)
    _assert_identical(_fit(big_X, None, **params), _fit(big_X, 1, **params), big_X)


def test_threads_identical_on_uneven_sizes():
    # Sizes around chunk boundaries (256 rows per chunk) and fewer chunks than threads.
    rng = np.random.RandomState(1)
    for n in (2, 255, 256, 257, 513, 4097):
        X = rng.randn(n, 2) + (rng.rand(n, 1) > 0.5) * 4
        params = dict(n_components=2, random_state=0, max_iter=4, tol=0)
        _assert_identical(_fit(X, 1, **params), _fit(X, 2, **params), X)


def test_repeated_fits_identical(big_X):
    params = dict(n_components=4, covariance_type="full", random_state=5, max_iter=5)
    _assert_identical(_fit(big_X, 2, **params), _fit(big_X, 2, **params), big_X)
