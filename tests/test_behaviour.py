"""scikit-learn's GaussianMixture contract: fit_predict, warm_start, max_iter=0, n_init,
sample, BIC/AIC, dtypes, feature names, pickling, verbose output."""

import pickle
import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from gmmfast import GaussianMixture

from conftest import COVARIANCE_TYPES, INIT_METHODS

sklearn = pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

FITTED_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
CONVERGENCE_MESSAGE = (
    "Best performing initialization did not converge. Try different init parameters, "
    "or increase max_iter, tol, or check for degenerate data."
)


def _quiet_fit(model, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, **kwargs)


# --------------------------------------------------------------------------------------
# fit_predict, convergence, n_init
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_predict_equals_fit_then_predict(covariance_type, seed, X_small):
    params = dict(n_components=3, covariance_type=covariance_type, max_iter=2, n_init=5,
                  random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = GaussianMixture(**params).fit_predict(X_small)
        model = GaussianMixture(**params).fit(X_small)
    assert labels.dtype == np.int64
    assert_array_equal(labels, model.predict(X_small))


@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_fit_predict_equals_fit_then_predict_all_inits(init_params, X_small):
    params = dict(n_components=3, init_params=init_params, max_iter=2, n_init=5,
                  random_state=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = GaussianMixture(**params).fit_predict(X_small)
        model = GaussianMixture(**params).fit(X_small)
    assert_array_equal(labels, model.predict(X_small))


def test_convergence_warning(X_small):
    model = GaussianMixture(n_components=3, max_iter=1, tol=0, random_state=0)
    with pytest.warns(ConvergenceWarning, match=re.escape(CONVERGENCE_MESSAGE)):
        model.fit(X_small)
    assert model.converged_ is False
    assert model.n_iter_ == 1
    assert len(model.lower_bounds_) == 1


def test_no_warning_when_converged(X_small):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = GaussianMixture(n_components=3, random_state=0).fit(X_small)
    assert model.converged_ is True
    assert isinstance(model.n_iter_, int) and 1 <= model.n_iter_ < 100
    assert len(model.lower_bounds_) == model.n_iter_
    # stopped because the last change was below tol
    assert abs(model.lower_bounds_[-1] - model.lower_bounds_[-2]) < model.tol
    assert model.lower_bound_ == model.lower_bounds_[-1]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_not_converged_runs_max_iter_and_em_is_monotone(covariance_type, X_small):
    model = _quiet_fit(GaussianMixture(n_components=3, covariance_type=covariance_type,
                                       max_iter=15, tol=0, random_state=0), X_small)
    assert model.n_iter_ == 15 and model.converged_ is False
    bounds = np.asarray(model.lower_bounds_)
    assert bounds.shape == (15,)
    assert all(isinstance(b, np.float64) for b in model.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))  # EM never goes down
    assert model.lower_bound_ == bounds[-1]
    # the lower bound is the likelihood before the last M-step
    assert model.score(X_small) >= model.lower_bound_ - 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_n_init_keeps_the_best(seed, init_params, make_data):
    X = make_data(n_samples=400, n_components=5, n_features=2, seed=seed, spread=2.0)
    params = dict(n_components=5, init_params=init_params, random_state=seed, max_iter=10)
    single = _quiet_fit(GaussianMixture(n_init=1, **params), X)
    multi = _quiet_fit(GaussianMixture(n_init=5, **params), X)
    # init 0 of the n_init=5 fit is the n_init=1 fit (one RNG stream, drawn in order)
    assert multi.lower_bound_ >= single.lower_bound_
    assert multi.lower_bound_ == multi.lower_bounds_[-1]


def test_n_init_first_init_equals_single_init(X_small):
    # With max_iter=0 the *last* init wins (no comparison); with n_init=1 it is init 0.
    params = dict(n_components=3, random_state=0, max_iter=0, init_params="random")
    one = GaussianMixture(n_init=1, **params).fit(X_small)
    again = GaussianMixture(n_init=1, **params).fit(X_small)
    two = GaussianMixture(n_init=2, **params).fit(X_small)
    assert_array_equal(one.means_, again.means_)
    assert not np.array_equal(one.means_, two.means_)


# --------------------------------------------------------------------------------------
# warm_start
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_warm_start_two_single_iterations_equal_one_cold_fit(covariance_type, seed):
    rng = np.random.RandomState(seed)
    X = rng.rand(500, 2)
    common = dict(n_components=2, covariance_type=covariance_type, reg_covar=0, n_init=1,
                  random_state=seed)
    cold = _quiet_fit(GaussianMixture(max_iter=2, **common), X)
    warm = GaussianMixture(max_iter=1, warm_start=True, **common)
    score1 = _quiet_fit(warm, X).score(X)
    score2 = _quiet_fit(warm, X).score(X)
    for name in FITTED_ARRAYS:
        assert_allclose(getattr(warm, name), getattr(cold, name), rtol=1e-12, atol=1e-14,
                        err_msg=name)
    assert warm.n_iter_ == 1 and len(warm.lower_bounds_) == 1
    assert_allclose(warm.lower_bounds_[0], cold.lower_bounds_[1], rtol=1e-12)
    assert score2 > score1


def test_warm_start_never_decreases_and_converges():
    rng = np.random.RandomState(3)
    X = np.vstack([rng.randn(200, 2), rng.randn(200, 2) + 3])
    model = GaussianMixture(n_components=2, max_iter=1, reg_covar=0, warm_start=True,
                            random_state=0, tol=1e-6)
    scores = []
    for _ in range(200):
        _quiet_fit(model, X)
        scores.append(model.score(X))
        if model.converged_:
            break
    assert model.converged_
    assert np.all(np.diff(scores) >= -1e-12)


def test_warm_start_first_fit_uses_n_init(X_small):
    params = dict(n_components=3, random_state=0, max_iter=3, init_params="random")
    warm = _quiet_fit(GaussianMixture(warm_start=True, n_init=3, **params), X_small)
    cold = _quiet_fit(GaussianMixture(n_init=3, **params), X_small)
    for name in FITTED_ARRAYS:
        assert_array_equal(getattr(warm, name), getattr(cold, name))


# --------------------------------------------------------------------------------------
# max_iter=0: the initialisation itself
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("init_params", INIT_METHODS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_max_iter_zero_returns_init(covariance_type, init_params, X_small, make_inits):
    means_init = make_inits(X_small, 3, covariance_type, seed=9)["means_init"]
    model = GaussianMixture(n_components=3, covariance_type=covariance_type,
                            init_params=init_params, means_init=means_init, max_iter=0,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning, nothing else either
        model.fit(X_small)
    assert_array_equal(model.means_, means_init)
    assert model.lower_bound_ == -np.inf
    assert model.lower_bounds_ == []
    assert model.converged_ is False
    assert model.n_iter_ == 0
    for name in FITTED_ARRAYS:
        assert np.all(np.isfinite(getattr(model, name))), name
    assert model.predict(X_small).shape == (600,)


def test_max_iter_zero_with_all_inits(X_small, make_inits):
    inits = make_inits(X_small, 3, "full", seed=10)
    model = GaussianMixture(n_components=3, max_iter=0, **inits).fit(X_small)
    assert_array_equal(model.weights_, inits["weights_init"])
    assert_array_equal(model.means_, inits["means_init"])
    assert_allclose(model.precisions_, inits["precisions_init"], rtol=1e-12)
    assert_allclose(model.covariances_, np.linalg.inv(inits["precisions_init"]),
                    rtol=1e-12)


@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
def test_max_iter_zero_seed_inits_are_data_points(init_params, X_small):
    # scikit-learn: one-hot responsibilities on the seed rows only, so the initial means
    # are data points, covariances reg_covar, and weights 1/n_samples each.
    model = GaussianMixture(n_components=3, init_params=init_params, max_iter=0,
                            random_state=0, covariance_type="diag").fit(X_small)
    for mean in model.means_:
        assert np.any(np.all(X_small == mean, axis=1))
    assert_allclose(model.covariances_, model.reg_covar, rtol=1e-6)
    assert_allclose(model.weights_, 1 / X_small.shape[0], rtol=1e-12)


# --------------------------------------------------------------------------------------
# sample()
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_moments(covariance_type, make_data):
    X = make_data(n_samples=600, n_components=3, n_features=2, seed=11)
    model = GaussianMixture(n_components=3, covariance_type=covariance_type,
                            random_state=0).fit(X)
    n_samples = 20000
    X_s, y_s = model.sample(n_samples)
    assert X_s.shape == (n_samples, 2) and y_s.shape == (n_samples,)
    assert X_s.dtype == np.float64 and y_s.dtype == np.int64
    assert set(np.unique(y_s)) <= set(range(3))
    assert_array_equal(y_s, np.sort(y_s))  # component order, not shuffled
    for k in range(3):
        X_k = X_s[y_s == k]
        if covariance_type == "full":
            expected = model.covariances_[k]
            observed = np.cov(X_k.T)
        elif covariance_type == "tied":
            expected = model.covariances_
            observed = np.cov(X_k.T)
        elif covariance_type == "diag":
            expected = model.covariances_[k]
            observed = np.diag(np.cov(X_k.T))
        else:
            expected = model.covariances_[k]
            observed = np.var(X_k - X_k.mean(axis=0))
        assert_allclose(observed, expected, atol=0.1 * max(1.0, np.abs(expected).max()))
        assert_allclose(X_k.mean(axis=0), model.means_[k], atol=0.1)
    counts = np.bincount(y_s, minlength=3) / n_samples
    assert_allclose(counts, model.weights_, atol=0.02)


def test_sample_shapes_and_reproducibility(X_small):
    model = GaussianMixture(n_components=3, random_state=0).fit(X_small)
    for n in range(1, 100, 7):
        X_s, y_s = model.sample(n)
        assert X_s.shape == (n, 4) and y_s.shape == (n,)
    # int random_state: every call draws the same sample
    a, b = model.sample(50), model.sample(50)
    assert_array_equal(a[0], b[0])
    assert_array_equal(a[1], b[1])
    # a RandomState instance advances
    model.set_params(random_state=np.random.RandomState(0))
    c, d = model.sample(50), model.sample(50)
    assert not np.array_equal(c[0], d[0])


def test_sample_float32_model_returns_float64(X_small):
    model = GaussianMixture(n_components=3, covariance_type="diag",
                            random_state=0).fit(X_small.astype(np.float32))
    X_s, y_s = model.sample(10)
    assert X_s.dtype == np.float64 and y_s.dtype == np.int64


# --------------------------------------------------------------------------------------
# BIC / AIC
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "covariance_type, expected", [("spherical", 13), ("diag", 21), ("tied", 26),
                                  ("full", 41)]
)
def test_n_parameters_and_bic_aic(covariance_type, expected):
    rng = np.random.RandomState(0)
    X = rng.randn(60, 5)
    model = GaussianMixture(n_components=2, covariance_type=covariance_type,
                            random_state=0).fit(X)
    n_params = model._n_parameters()
    assert n_params == expected and isinstance(n_params, int)
    n = X.shape[0]
    log_likelihood = model.score(X) * n
    assert isinstance(model.score(X), float)
    assert model.bic(X) == pytest.approx(-2 * log_likelihood + expected * np.log(n),
                                         rel=1e-12)
    assert model.aic(X) == pytest.approx(-2 * log_likelihood + 2 * expected, rel=1e-12)
    assert model.score(X) == pytest.approx(np.mean(model.score_samples(X)), rel=1e-14)


def test_bic_one_dimensional_same_for_all_covariance_types():
    X = np.random.RandomState(0).randn(100, 1)
    bics = [GaussianMixture(n_components=1, covariance_type=ct, random_state=0).fit(X).bic(X)
            for ct in COVARIANCE_TYPES]
    assert_allclose(bics, bics[0], rtol=1e-12)


def test_bic_selects_true_number_of_components(make_data):
    X = make_data(n_samples=900, n_components=3, n_features=2, seed=12, spread=6.0)
    bics = [GaussianMixture(n_components=k, random_state=0).fit(X).bic(X)
            for k in (1, 2, 3, 4, 5)]
    assert int(np.argmin(bics)) + 1 == 3


# --------------------------------------------------------------------------------------
# dtypes, predict_proba, feature names, pickling
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_preserved(covariance_type, X_small):
    X32 = X_small.astype(np.float32)
    model = GaussianMixture(n_components=3, covariance_type=covariance_type,
                            random_state=0).fit(X32)
    for name in FITTED_ARRAYS:
        assert getattr(model, name).dtype == np.float32, name
    assert model.lower_bound_.dtype == np.float32
    assert all(b.dtype == np.float32 for b in model.lower_bounds_)
    assert model.score_samples(X32).dtype == np.float32
    assert model.score_samples(X32).mean().dtype == np.float32
    assert model.predict_proba(X32).dtype == np.float32
    assert model.predict(X32).dtype == np.int64
    # float64 X on a float32 model: float64 outputs
    assert model.score_samples(X_small).dtype == np.float64
    assert model.predict_proba(X_small).dtype == np.float64
    assert isinstance(model.score(X32), float)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, bool])
def test_other_dtypes_become_float64(dtype):
    X = (np.random.RandomState(0).randn(100, 2) * 3).astype(dtype)
    model = GaussianMixture(n_components=2, random_state=0, reg_covar=1e-3).fit(X)
    for name in FITTED_ARRAYS:
        assert getattr(model, name).dtype == np.float64, name
    assert model.score_samples(X).dtype == np.float64


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predict_proba_rows_sum_to_one(covariance_type, X_small):
    model = GaussianMixture(n_components=3, covariance_type=covariance_type,
                            random_state=0).fit(X_small)
    proba = model.predict_proba(X_small)
    assert proba.shape == (600, 3)
    assert np.all(proba >= 0) and np.all(proba <= 1)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_array_equal(proba.argmax(axis=1), model.predict(X_small))
    # responsibilities are weighted likelihoods normalised by the density
    log_resp = np.log(np.maximum(proba, 1e-300))
    log_density = model.score_samples(X_small)
    assert np.all(np.isfinite(log_density))
    assert_allclose(np.exp(log_resp + log_density[:, None]).sum(axis=1),
                    np.exp(log_density), rtol=1e-10)


def test_user_inits_are_stored_as_arrays(X_small):
    model = GaussianMixture(n_components=2, weights_init=[0.5, 0.5],
                            means_init=[[0, 0, 0, 0], [1, 1, 1, 1]]).fit(X_small)
    assert isinstance(model.weights_init, np.ndarray)
    assert isinstance(model.means_init, np.ndarray)
    assert_array_equal(model.weights_init, [0.5, 0.5])


def test_feature_names_in(X_small):
    pd = pytest.importorskip("pandas")
    columns = ["a", "b", "c", "d"]
    frame = pd.DataFrame(X_small, columns=columns)
    model = GaussianMixture(n_components=3, random_state=0).fit(frame)
    assert model.n_features_in_ == 4
    assert isinstance(model.feature_names_in_, np.ndarray)
    assert model.feature_names_in_.dtype == object
    assert list(model.feature_names_in_) == columns
    # same result as the ndarray fit
    plain = GaussianMixture(n_components=3, random_state=0).fit(X_small)
    assert not hasattr(plain, "feature_names_in_")
    assert_array_equal(model.predict(frame), plain.predict(X_small))
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        model.predict(X_small)
    with pytest.warns(UserWarning, match="X has feature names, but GaussianMixture was "
                                         "fitted without feature names"):
        plain.predict(frame)
    with pytest.raises(ValueError, match="The feature names should match those that were "
                                         "passed during fit"):
        model.predict(frame[["b", "a", "c", "d"]])
    mixed = pd.DataFrame(X_small, columns=["a", "b", 3, 4])
    with pytest.raises(TypeError, match="Feature names are only supported if all input "
                                        "features have string names"):
        GaussianMixture(n_components=3).fit(mixed)
    # refitting on an ndarray removes the names
    model.fit(X_small)
    assert not hasattr(model, "feature_names_in_")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pickle_round_trip(covariance_type, X_small):
    model = GaussianMixture(n_components=3, covariance_type=covariance_type,
                            random_state=0, n_threads=1).fit(X_small)
    restored = pickle.loads(pickle.dumps(model))
    assert type(restored) is GaussianMixture
    assert restored.get_params() == model.get_params()
    assert_array_equal(restored.predict(X_small), model.predict(X_small))
    assert_array_equal(restored.predict_proba(X_small), model.predict_proba(X_small))
    assert_array_equal(restored.score_samples(X_small), model.score_samples(X_small))
    for name in FITTED_ARRAYS:
        assert_array_equal(getattr(restored, name), getattr(model, name))
    assert_array_equal(restored.sample(20)[0], model.sample(20)[0])


def test_params_and_clone():
    from sklearn.base import clone

    model = GaussianMixture(3, covariance_type="diag", n_threads=2, tol=1e-4)
    params = model.get_params()
    assert params["n_components"] == 3 and params["n_threads"] == 2
    assert set(params) == {
        "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
        "init_params", "weights_init", "means_init", "precisions_init", "random_state",
        "warm_start", "verbose", "verbose_interval", "n_threads", "nan_policy",
        "learning_decay", "learning_offset", "prior",
    }
    assert clone(model).get_params() == params
    assert "n_threads=2" in repr(model)
    with pytest.raises(TypeError):
        GaussianMixture(3, "diag")  # everything but n_components is keyword-only


# --------------------------------------------------------------------------------------
# verbose
# --------------------------------------------------------------------------------------


def test_verbose_1(capsys, X_small, make_inits):
    inits = make_inits(X_small, 3, "full", seed=1)
    model = GaussianMixture(n_components=3, verbose=1, verbose_interval=1, max_iter=3,
                            tol=0, n_init=2, **inits)
    _quiet_fit(model, X_small)
    lines = capsys.readouterr().out.splitlines()
    block = ["  Iteration 1", "  Iteration 2", "  Iteration 3",
             "Initialization did not converge."]
    assert lines == ["Initialization 0", *block, "Initialization 1", *block]

    model.set_params(max_iter=100, tol=1e-3, verbose_interval=10, n_init=1)
    model.fit(X_small)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Initialization 0"
    assert lines[-1] == "Initialization converged."
    assert all(re.fullmatch(r"  Iteration \d*0", line) for line in lines[1:-1])
    assert len(lines) - 2 == model.n_iter_ // 10


def test_verbose_2(capsys, X_small, make_inits):
    inits = make_inits(X_small, 3, "diag", seed=1)
    model = GaussianMixture(n_components=3, covariance_type="diag", verbose=2,
                            verbose_interval=1, max_iter=4, tol=0, **inits)
    _quiet_fit(model, X_small)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Initialization 0"
    assert len(lines) == 6
    changes = []
    for n, line in enumerate(lines[1:5], start=1):
        match = re.fullmatch(
            rf"  Iteration {n}\t time lapse \d+\.\d{{5}}s\t ll change (inf|-?\d+\.\d{{5}})",
            line)
        assert match, line
        changes.append(match.group(1))
    assert changes[0] == "inf"
    assert changes[1:] == [f"{b - a:.5f}" for a, b in zip(model.lower_bounds_,
                                                          model.lower_bounds_[1:])]
    match = re.fullmatch(
        r"Initialization did not converge\. time lapse \d+\.\d{5}s\t lower bound "
        r"(-?\d+\.\d{5})\.", lines[5])
    assert match, lines[5]
    assert match.group(1) == f"{model.lower_bound_:.5f}"


def test_verbose_output_matches_sklearn(capsys, X_small, make_inits):
    from sklearn.mixture import GaussianMixture as SKGaussianMixture

    inits = make_inits(X_small, 3, "tied", seed=2)
    params = dict(n_components=3, covariance_type="tied", verbose=2, verbose_interval=2,
                  **inits)
    GaussianMixture(**params).fit(X_small)
    ours = capsys.readouterr().out
    SKGaussianMixture(**params).fit(X_small)
    theirs = capsys.readouterr().out

    def mask(text):
        return re.sub(r"time lapse \d+\.\d{5}s", "time lapse Ts", text)

    assert mask(ours) == mask(theirs)


def test_verbose_max_iter_zero(capsys, X_small):
    GaussianMixture(n_components=2, verbose=2, max_iter=0, n_init=2,
                    random_state=0).fit(X_small)
    assert capsys.readouterr().out.splitlines() == ["Initialization 0", "Initialization 1"]


def test_silent_by_default(capsys, X_small):
    GaussianMixture(n_components=2, random_state=0).fit(X_small)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------
# numerically awkward cases
# --------------------------------------------------------------------------------------


def test_divergent_fit_reports_the_collapsed_components():
    # scikit-learn gh-18216: with these inits (spherical, reg_covar=0) components 0 and 1
    # collapse onto single samples. Their exact variance is zero; scikit-learn's raw-moment
    # formula returns rounding noise (~3.6e-16) and carries on with it, gmmfast computes the
    # variance exactly and reports the ill-defined covariance, as for any other collapse.
    # A deliberate difference from scikit-learn: see the README's compatibility section.
    rnd = np.random.RandomState(0)
    X = rnd.uniform(size=(30, 3))
    means_init = np.array([
        [0.670637869618158, 0.21038256107384043, 0.12892629765485303],
        [0.09394051075844147, 0.5759464955561779, 0.929296197576212],
        [0.5033230372781258, 0.9569852381759425, 0.08654043447295741],
        [0.18578301420435747, 0.5531158970919143, 0.19388943970532435],
        [0.4548589928173794, 0.35182513658825276, 0.568146063202464],
        [0.609279894978321, 0.7929063819678847, 0.9620097270828052],
    ])
    precisions_init = np.array([999999.999604483, 999999.9990869573, 553.7603944542167,
                                204.78596008931834, 15.867423501783637, 85.4595728389735])
    weights_init = [0.03333333333333341, 0.03333333333333341, 0.06666666666666674,
                    0.06666666666666674, 0.7000000000000001, 0.10000000000000007]
    params = dict(covariance_type="spherical", means_init=means_init,
                  weights_init=weights_init, precisions_init=precisions_init,
                  random_state=0, n_components=6, max_iter=1)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(reg_covar=0, **params).fit(X)

    # With the default reg_covar the same start fits, and every component that did not
    # collapse matches scikit-learn.
    model = _quiet_fit(GaussianMixture(**params), X)
    from sklearn.mixture import GaussianMixture as SKGaussianMixture

    reference = _quiet_fit(SKGaussianMixture(**_sk_params(model)), X)
    assert model.converged_ is False and model.n_iter_ == 1
    assert_allclose(model.lower_bounds_, reference.lower_bounds_, rtol=1e-8)
    assert_allclose(model.weights_, reference.weights_, rtol=1e-7)
    assert_allclose(model.means_, reference.means_, rtol=1e-7)
    assert_allclose(model.covariances_, reference.covariances_, rtol=1e-6)


def _sk_params(model):
    params = model.get_params()
    for extra in ("n_threads", "nan_policy", "learning_decay", "learning_offset", "prior"):
        params.pop(extra)
    return params


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_away_points_have_finite_responsibilities(dtype, covariance_type, X_small):
    model = GaussianMixture(n_components=3, covariance_type=covariance_type,
                            random_state=0).fit(X_small.astype(dtype))
    X_far = (X_small[:50] * 300).astype(dtype)  # log-densities of order -1e5
    proba = model.predict_proba(X_far)
    log_density = model.score_samples(X_far)
    assert np.all(np.isfinite(proba)) and np.all(np.isfinite(log_density))
    assert np.all(log_density < -100)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert_array_equal(proba.argmax(axis=1), model.predict(X_far))
