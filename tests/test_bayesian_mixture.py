"""BayesianGaussianMixture: scikit-learn's iterations, gmmfast's extras and bad priors.

scikit-learn's own tests run against it in tests/sklearn_mixture/.
"""

import copy
import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from gmmfast import BayesianGaussianMixture
from gmmfast._bayesian_mixture import components_in_use
from gmmfast._compat import ConvergenceWarning, NotFittedError
from gmmfast._engine import InMemorySource

from conftest import COVARIANCE_TYPES

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
FITTED_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
                 "mean_precision_", "degrees_of_freedom_")


@pytest.fixture(scope="module")
def blobs(make_data):
    """Three clusters: fewer than the components the tests allow."""
    return make_data(n_samples=240, n_components=3, n_features=3, seed=3)


def _quiet_fit(estimator, X, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, **fit_params)


def _concentration(model):
    return np.concatenate([np.ravel(a) for a in np.atleast_1d(model.weight_concentration_)])


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_trajectory_matches_sklearn(covariance_type, prior_type, blobs):
    # "random" draws the same responsibilities as scikit-learn from the same seed, so both
    # start from the same parameters.
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    params = dict(n_components=6, covariance_type=covariance_type, init_params="random",
                  weight_concentration_prior_type=prior_type, random_state=1, tol=0,
                  max_iter=10)
    ours = _quiet_fit(BayesianGaussianMixture(**params), blobs)
    theirs = _quiet_fit(sklearn_mixture.BayesianGaussianMixture(**params), blobs)
    assert ours.n_iter_ == theirs.n_iter_ == 10
    assert_allclose(ours.lower_bounds_, np.ravel(theirs.lower_bounds_), rtol=1e-8, atol=0)
    for name in FITTED_ARRAYS:
        assert np.shape(getattr(ours, name)) == np.shape(getattr(theirs, name)), name
        assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-7,
                        atol=1e-10, err_msg=name)
    assert_allclose(_concentration(ours), _concentration(theirs), rtol=1e-8)
    assert_array_equal(ours.predict(blobs), theirs.predict(blobs))
    assert_allclose(ours.predict_proba(blobs), theirs.predict_proba(blobs), atol=1e-8)
    assert_allclose(ours.score_samples(blobs), theirs.score_samples(blobs), rtol=1e-8)


# scikit-learn's "full" takes seconds here: the cheaper types test the convergence rule.
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_default_fit_converges_like_sklearn(covariance_type, blobs):
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    params = dict(n_components=5, covariance_type=covariance_type,
                  init_params="random", random_state=0)
    ours = BayesianGaussianMixture(**params).fit(blobs)
    theirs = sklearn_mixture.BayesianGaussianMixture(**params).fit(blobs)
    assert ours.converged_ and theirs.converged_
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.lower_bound_ == pytest.approx(float(np.ravel(theirs.lower_bound_)[0]),
                                              rel=1e-8)


def test_entropy_from_statistics_equals_direct_sum(blobs):
    # Σ_i Σ_k r_ik log r_ik, computed from the pass's statistics, is the direct sum over
    # the responsibilities.
    model = _quiet_fit(BayesianGaussianMixture(n_components=4, max_iter=3, random_state=0),
                       blobs)
    variational = model._model(blobs.dtype)
    kernel_params = model._kernel_parameters()
    loglik, stats = InMemorySource(blobs).statistics(kernel_params, 1)
    resp = model.predict_proba(blobs)
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.nansum(resp * np.log(resp))
    assert variational.sum_resp_log_resp(loglik, stats, kernel_params) == pytest.approx(
        direct, rel=1e-9, abs=1e-9)


class RecordingSource(InMemorySource):
    """Rows in memory that remember the kernel parameters of their last pass."""

    def statistics(self, kernel_params, n_threads):
        self.last_kernel_params = kernel_params
        return super().statistics(kernel_params, n_threads)


def test_iterations_leave_out_the_models_negligible_responsibilities(blobs):
    model = _quiet_fit(BayesianGaussianMixture(n_components=4, max_iter=3, random_state=0),
                       blobs)
    variational = model._model(blobs.dtype)
    source = RecordingSource(blobs)
    variational.em_step(source, 1)(model._current_parameters())
    floor = source.last_kernel_params.log_resp_floor
    # eps · (the smallest prior count, 1/4) / (240 rows · 4 components)
    assert floor == pytest.approx(np.log(np.finfo(float).eps / 4 / 960), rel=1e-12)
    assert floor == variational.log_resp_floor(source.total_weight)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_left_out_responsibilities_do_not_move_the_fit(covariance_type, blobs, monkeypatch):
    params = dict(n_components=6, covariance_type=covariance_type, init_params="kmeans",
                  random_state=1, tol=0, max_iter=10)
    floored = _quiet_fit(BayesianGaussianMixture(**params), blobs)
    resp = floored.predict_proba(blobs)
    floor = floored._model(blobs.dtype).log_resp_floor(len(blobs))
    assert np.any((resp > 0) & (resp < np.exp(floor)))  # the floor leaves some out
    monkeypatch.setattr(type(floored._model(blobs.dtype)), "log_resp_floor",
                        lambda self, total_weight: None)
    every = _quiet_fit(BayesianGaussianMixture(**params), blobs)
    assert_allclose(floored.lower_bounds_, every.lower_bounds_, rtol=1e-13, atol=0)
    for name in FITTED_ARRAYS:
        assert_allclose(getattr(floored, name), getattr(every, name), rtol=1e-12,
                        atol=1e-300, err_msg=name)
    assert_allclose(_concentration(floored), _concentration(every), rtol=1e-13)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
def test_max_iter_zero_is_one_update_from_the_initial_responsibilities(prior_type, blobs):
    # scikit-learn's test_compare_covar_type through the public API: the unnormalised
    # covariances of the other types are averages or diagonals of the full ones.
    def initial(covariance_type):
        model = BayesianGaussianMixture(n_components=6, covariance_type=covariance_type,
                                        weight_concentration_prior_type=prior_type,
                                        max_iter=0, random_state=0)
        return _quiet_fit(model, blobs)

    full = initial("full")
    full_scale = full.covariances_ * full.degrees_of_freedom_[:, None, None]
    tied = initial("tied")
    assert_allclose(tied.covariances_ * tied.degrees_of_freedom_, full_scale.mean(0))
    diag = initial("diag")
    diag_scale = diag.covariances_ * diag.degrees_of_freedom_[:, None]
    assert_allclose(diag_scale, np.array([np.diag(c) for c in full_scale]))
    spherical = initial("spherical")
    assert_allclose(spherical.covariances_ * spherical.degrees_of_freedom_,
                    diag_scale.mean(1))


def test_unused_components_are_switched_off(blobs):
    model = BayesianGaussianMixture(n_components=8, random_state=0, max_iter=500).fit(blobs)
    assert model.n_components_in_use_ == 3
    assert_array_equal(components_in_use(model), model.weights_ > 0.1)
    # The others keep only the prior's share.
    assert np.sort(model.weights_)[:-3].max() < 0.01
    assert np.unique(model.predict(blobs)).size == 3
    with pytest.raises(NotFittedError):
        BayesianGaussianMixture().n_components_in_use_


def test_components_in_use_under_the_dirichlet_distribution_prior(blobs):
    model = BayesianGaussianMixture(n_components=6, random_state=0, max_iter=500,
                                    weight_concentration_prior=1e-3,
                                    weight_concentration_prior_type="dirichlet_distribution")
    model.fit(blobs)
    assert_array_equal(components_in_use(model), model.weights_ > 0.1)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(covariance_type, prior_type, blobs):
    # Both continue from the same parameters (the initialisations sample rows, which
    # repeated rows change).
    weights = np.random.RandomState(0).randint(0, 3, blobs.shape[0])
    start = _quiet_fit(BayesianGaussianMixture(
        n_components=4, covariance_type=covariance_type, max_iter=2, random_state=0,
        weight_concentration_prior_type=prior_type), blobs)
    start.set_params(warm_start=True, max_iter=8, tol=0)
    weighted = _quiet_fit(copy.deepcopy(start), blobs, sample_weight=weights)
    repeated = _quiet_fit(copy.deepcopy(start), np.repeat(blobs, weights, axis=0))
    assert_allclose(weighted.lower_bounds_, repeated.lower_bounds_, rtol=1e-12)
    assert_allclose(weighted.covariance_prior_, repeated.covariance_prior_, rtol=1e-12)
    assert_allclose(weighted.mean_prior_, repeated.mean_prior_, rtol=1e-12)
    for name in FITTED_ARRAYS:
        assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-10,
                        atol=1e-12, err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_is_kept(covariance_type, blobs):
    params = dict(n_components=4, covariance_type=covariance_type, random_state=0,
                  init_params="random", max_iter=10, tol=0)
    single = _quiet_fit(BayesianGaussianMixture(**params), blobs.astype(np.float32))
    double = _quiet_fit(BayesianGaussianMixture(**params), blobs)
    for name in FITTED_ARRAYS:
        assert np.asarray(getattr(single, name)).dtype == np.float32, name
        assert_allclose(getattr(single, name), getattr(double, name), rtol=1e-3, atol=1e-4,
                        err_msg=name)
    assert all(a.dtype == np.float32 for a in np.atleast_1d(single.weight_concentration_))
    # The bound is a float64 sum over the rows, as scikit-learn's, not rounded to float32.
    assert type(single.lower_bound_) is np.float64
    assert all(type(bound) is np.float64 for bound in single.lower_bounds_)
    assert single.lower_bound_ != np.float32(single.lower_bound_)
    assert single.lower_bound_ == pytest.approx(double.lower_bound_, rel=1e-5)
    assert single.predict_proba(blobs.astype(np.float32)).dtype == np.float32


def test_float32_bounds_are_compared_in_float64(blobs):
    # A sum over 10⁶ rows rounded to float32 moves in steps of ~0.5, far above tol.
    X = blobs.astype(np.float32)
    model = BayesianGaussianMixture(n_components=3, random_state=0).fit(X)
    step = model._model(X.dtype).em_step(InMemorySource(X), 1)
    bound, _ = step(model._current_parameters())
    assert type(bound) is float


def test_threads_do_not_change_the_fit(blobs):
    fits = [BayesianGaussianMixture(n_components=4, random_state=0, n_threads=n).fit(blobs)
            for n in (1, 2)]
    assert fits[0].lower_bounds_ == fits[1].lower_bounds_
    assert_array_equal(fits[0].means_, fits[1].means_)


def test_dask_input_fits_the_same_model(blobs):
    da = pytest.importorskip("dask.array")
    import dask

    params = dict(n_components=4, random_state=0, init_params="random_from_data",
                  max_iter=10, tol=0)
    with dask.config.set(scheduler="synchronous"):
        lazy = da.from_array(blobs, chunks=70)
        ours = _quiet_fit(BayesianGaussianMixture(**params), lazy)
        labels = ours.predict(lazy).compute()
    in_memory = _quiet_fit(BayesianGaussianMixture(**params), blobs)
    assert_allclose(ours.lower_bounds_, in_memory.lower_bounds_, rtol=1e-12)
    assert_allclose(ours.means_, in_memory.means_, rtol=1e-10)
    assert_array_equal(labels, in_memory.predict(blobs))


def test_pickle_round_trip(blobs):
    model = BayesianGaussianMixture(n_components=3, random_state=0).fit(blobs)
    restored = pickle.loads(pickle.dumps(model))
    assert_array_equal(restored.score_samples(blobs), model.score_samples(blobs))
    assert restored.n_components_in_use_ == model.n_components_in_use_


@pytest.mark.parametrize("covariance_type, params, match", [
    ("full", {"mean_prior": np.zeros(2)}, r"'mean_prior' should have the shape of \(3,\)"),
    ("full", {"mean_prior": [0.0, np.nan, 0.0]}, "NaN"),
    ("full", {"covariance_prior": np.eye(2)}, "'full covariance_prior' should have the shape"),
    ("tied", {"covariance_prior": -np.eye(3)},
     "'tied covariance_prior' should be symmetric, positive-definite"),
    ("diag", {"covariance_prior": np.ones((3, 3))},
     "'diag covariance_prior' should have the shape"),
    ("diag", {"covariance_prior": [1.0, 0.0, 1.0]}, "'diag covariance_prior' should be positive"),
    ("spherical", {"covariance_prior": [1.0]},
     "'spherical covariance_prior' should be a positive number"),
    ("full", {"weight_concentration_prior": np.inf}, "weight_concentration_prior"),
    ("full", {"degrees_of_freedom_prior": 1.5}, "'degrees_of_freedom_prior' should be greater"),
])
def test_bad_prior_names_the_parameter(covariance_type, params, match, blobs):
    model = BayesianGaussianMixture(covariance_type=covariance_type, **params)
    with pytest.raises(ValueError, match=match):
        model.fit(blobs)


def test_default_covariance_prior_needs_weight_of_more_than_one_sample(blobs):
    weights = np.full(blobs.shape[0], 1.0 / blobs.shape[0])
    with pytest.raises(ValueError, match="covariance_prior"):
        BayesianGaussianMixture().fit(blobs, sample_weight=weights)
    # With a prior given, normalised weights are fine.
    BayesianGaussianMixture(covariance_prior=np.eye(3)).fit(blobs, sample_weight=weights)

