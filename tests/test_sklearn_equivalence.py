"""gmmfast follows scikit-learn's EM iteration for iteration, from the same initial parameters.

gmmfast's k-means is its own compiled implementation, so every comparison starts both
estimators from the same weights_init / means_init / precisions_init.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

sklearn_mixture = pytest.importorskip("sklearn.mixture")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from gmmfast import GaussianMixture  # noqa: E402

from conftest import COVARIANCE_TYPES  # noqa: E402

SKGaussianMixture = sklearn_mixture.GaussianMixture

FITTED_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
N_COMPONENTS = 3


def _fit_both(X, X_sklearn=None, **params):
    """Fit gmmfast on X and scikit-learn on X_sklearn (default X) with the same params."""
    X_sklearn = X if X_sklearn is None else X_sklearn
    sk_params = dict(params)
    if "means_init_sklearn" in sk_params:
        sk_params["means_init"] = sk_params.pop("means_init_sklearn")
        params.pop("means_init_sklearn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(**params).fit(X)
        theirs = SKGaussianMixture(**sk_params).fit(X_sklearn)
    return ours, theirs


def _max_rel(actual, desired):
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    return float(np.max(np.abs(actual - desired) / np.abs(desired)))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lower_bounds_trajectory_matches_sklearn(covariance_type, X_small, make_inits):
    inits = make_inits(X_small, N_COMPONENTS, covariance_type, seed=1)
    ours, theirs = _fit_both(
        X_small, n_components=N_COMPONENTS, covariance_type=covariance_type, tol=0,
        max_iter=30, **inits,
    )
    assert ours.n_iter_ == theirs.n_iter_ == 30
    assert len(ours.lower_bounds_) == len(theirs.lower_bounds_) == 30
    assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-8, atol=0)
    assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-8, atol=0)
    assert ours.converged_ is theirs.converged_ is False
    for name in FITTED_ARRAYS:
        ours_value, theirs_value = getattr(ours, name), getattr(theirs, name)
        assert ours_value.shape == theirs_value.shape, name
        assert ours_value.dtype == np.float64, name
        assert_allclose(ours_value, theirs_value, rtol=1e-7,
                        atol=1e-12 * np.abs(theirs_value).max(), err_msg=name)
    assert_array_equal(ours.predict(X_small), theirs.predict(X_small))
    assert_allclose(ours.predict_proba(X_small), theirs.predict_proba(X_small),
                    rtol=1e-7, atol=1e-10)
    assert_allclose(ours.score_samples(X_small), theirs.score_samples(X_small),
                    rtol=1e-8)
    assert ours.score(X_small) == pytest.approx(theirs.score(X_small), rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_default_tol_same_n_iter_as_sklearn(covariance_type, X_small, make_inits):
    inits = make_inits(X_small, N_COMPONENTS, covariance_type, seed=2)
    ours, theirs = _fit_both(
        X_small, n_components=N_COMPONENTS, covariance_type=covariance_type, **inits
    )
    assert theirs.converged_ and ours.converged_
    assert ours.n_iter_ == theirs.n_iter_
    assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-8, atol=0)
    assert_array_equal(ours.predict(X_small), theirs.predict(X_small))
    assert_array_equal(ours.fit_predict(X_small), theirs.fit_predict(X_small))
    for name in ("weights_", "means_", "covariances_"):
        assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-7,
                        atol=1e-12, err_msg=name)


@pytest.mark.parametrize("init_params", ["random", "k-means++", "random_from_data"])
def test_sklearn_partial_inits(init_params, X_small, make_inits):
    # Only means_init given: the covariances come from the init method (RNG dependent),
    # so just check that both converge to the same local optimum from those means.
    inits = make_inits(X_small, N_COMPONENTS, "full", seed=3)
    ours, theirs = _fit_both(
        X_small, n_components=N_COMPONENTS, means_init=inits["means_init"],
        init_params=init_params, random_state=0, tol=1e-10, max_iter=500,
    )
    assert_array_equal(ours.predict(X_small), theirs.predict(X_small))
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-6)
    assert_allclose(ours.means_, theirs.means_, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_matches_sklearn_float32(covariance_type, X_small, make_inits):
    X32 = X_small.astype(np.float32)
    inits = {
        key: value.astype(np.float32)
        for key, value in make_inits(X_small, N_COMPONENTS, covariance_type, seed=1).items()
    }
    ours, theirs = _fit_both(
        X32, n_components=N_COMPONENTS, covariance_type=covariance_type, tol=0,
        max_iter=20, **inits,
    )
    for name in FITTED_ARRAYS:
        assert getattr(ours, name).dtype == np.float32, name
        assert getattr(theirs, name).dtype == np.float32, name
    assert ours.lower_bound_.dtype == np.float32
    assert ours.score_samples(X32).dtype == np.float32
    assert len(ours.lower_bounds_) == len(theirs.lower_bounds_) == 20
    assert_allclose(np.asarray(ours.lower_bounds_, dtype=np.float64),
                    np.asarray(theirs.lower_bounds_, dtype=np.float64), rtol=1e-4)
    for name in ("weights_", "means_", "covariances_"):
        theirs_value = getattr(theirs, name)
        assert_allclose(getattr(ours, name), theirs_value, rtol=1e-3,
                        atol=1e-4 * np.abs(theirs_value).max(), err_msg=name)
    agreement = np.mean(ours.predict(X32) == theirs.predict(X32))
    assert agreement >= 0.999


SHIFT = 1e6


def _covariance_dev(actual, desired, covariance_type):
    """Largest deviation relative to each component's covariance scale."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        return _max_rel(actual, desired)
    if covariance_type == "tied":
        actual, desired = actual[None], desired[None]
    diff = np.abs(actual - desired).max(axis=(1, 2))
    return float(np.max(diff / np.abs(desired).max(axis=(1, 2))))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_from_origin_matches_sklearn_at_origin(covariance_type, make_data, make_inits):
    # Data shifted far from the origin. X_origin = X_far - SHIFT is exact (Sterbenz), so
    # the two data sets are exact translates and EM must give the same lower bounds and
    # covariances, and means shifted by SHIFT.
    X, labels = make_data(n_samples=600, n_components=3, n_features=3, seed=5,
                          return_labels=True)
    X_far = X + SHIFT
    X_origin = X_far - SHIFT
    inits = make_inits(X_origin, N_COMPONENTS, covariance_type, seed=4)
    # Means near the blobs (mean of a few rows of each) keep every component well
    # populated, so the comparison is not dominated by an ill-conditioned tiny component.
    means_origin = np.stack([X_origin[labels == j][:5].mean(axis=0) for j in range(3)])
    means_origin = (means_origin + SHIFT) - SHIFT  # exactly representable when shifted
    means_far = means_origin + SHIFT
    assert_array_equal(means_far - SHIFT, means_origin)
    inits.pop("means_init")
    params = dict(n_components=N_COMPONENTS, covariance_type=covariance_type, tol=0,
                  max_iter=20, **inits)

    ours, reference = _fit_both(
        X_far, X_sklearn=X_origin, means_init=means_far, means_init_sklearn=means_origin,
        **params,
    )
    ours_lb_dev = _max_rel(ours.lower_bounds_, reference.lower_bounds_)
    ours_cov_dev = _covariance_dev(ours.covariances_, reference.covariances_,
                                   covariance_type)
    assert ours_lb_dev <= 1e-8, ours_lb_dev
    assert ours_cov_dev <= 1e-8, ours_cov_dev
    scale = np.sqrt(np.abs(reference.covariances_).max())
    assert_allclose(ours.means_ - SHIFT, reference.means_, rtol=0, atol=1e-7 * scale)
    assert_allclose(ours.weights_, reference.weights_, rtol=1e-8)
    assert_array_equal(ours.predict(X_far), reference.predict(X_origin))

    # scikit-learn itself on the far data: its expanded-form distances cancel badly.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk_far = SKGaussianMixture(means_init=means_far, **params).fit(X_far)
        sk_lb_dev = _max_rel(sk_far.lower_bounds_, reference.lower_bounds_)
        sk_cov_dev = _covariance_dev(sk_far.covariances_, reference.covariances_,
                                     covariance_type)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
        sk_lb_dev = sk_cov_dev = np.inf  # scikit-learn could not even fit it
    sk_dev = max(sk_lb_dev, sk_cov_dev)
    if np.isnan(sk_dev):
        sk_dev = np.inf
    assert sk_dev > max(ours_lb_dev, ours_cov_dev), (sk_lb_dev, sk_cov_dev)
