"""Bad input is rejected with scikit-learn's messages, and a failed fit changes nothing."""

import copy
import re
import warnings

import numpy as np
import pytest

from gmmfast import GaussianMixture

from conftest import COVARIANCE_TYPES

sklearn = pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402

ILL_DEFINED = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease "
    "the number of components, increase reg_covar, or scale the input data."
)
FLOAT32_SUFFIX = (
    " The numerical accuracy can also be improved by passing float64 data instead of "
    "float32."
)


@pytest.fixture
def X():
    return np.random.RandomState(0).randn(30, 3)


@pytest.fixture
def fitted(X):
    return GaussianMixture(n_components=2, random_state=0).fit(X)


# --------------------------------------------------------------------------------------
# X at fit time
# --------------------------------------------------------------------------------------


def test_nan_in_X(X):
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        GaussianMixture().fit(X)


def test_inf_in_X(X):
    X[3, 1] = np.inf
    with pytest.raises(
        ValueError,
        match=re.escape("Input X contains infinity or a value too large for "
                        "dtype('float64')."),
    ):
        GaussianMixture().fit(X)


def test_1d_X(X):
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array instead"):
        GaussianMixture().fit(X[:, 0])


def test_single_sample(X):
    msg = re.escape("Found array with 1 sample(s) (shape=(1, 3)) while a minimum of 2 is "
                    "required by GaussianMixture.")
    with pytest.raises(ValueError, match=msg):
        GaussianMixture().fit(X[:1])


def test_zero_features(X):
    msg = re.escape("Found array with 0 feature(s) (shape=(30, 0)) while a minimum of 1 is "
                    "required by GaussianMixture.")
    with pytest.raises(ValueError, match=msg):
        GaussianMixture().fit(X[:, :0])


def test_fewer_samples_than_components(X):
    msg = "Expected n_samples >= n_components but got n_components = 12, n_samples = 10"
    with pytest.raises(ValueError, match=msg):
        GaussianMixture(n_components=12).fit(X[:10])


def test_complex_data(X):
    with pytest.raises(ValueError, match="Complex data not supported"):
        GaussianMixture().fit(X + 1j * X)


def test_string_data():
    X_str = np.array([["a", "b"], ["c", "d"], ["e", "f"]])
    with pytest.raises(ValueError, match="could not convert string to float"):
        GaussianMixture().fit(X_str)


def test_sparse_matrix(X):
    sparse = pytest.importorskip("scipy.sparse")
    msg = "Sparse data was passed for X, but dense data is required"
    with pytest.raises(TypeError, match=msg):
        GaussianMixture().fit(sparse.csr_matrix(X))
    model = GaussianMixture().fit(X)
    with pytest.raises(TypeError, match=msg):
        model.predict(sparse.csr_matrix(X))


# --------------------------------------------------------------------------------------
# X at predict time, unfitted models, sample()
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "score_samples", "score", "bic", "aic"]
)
def test_wrong_n_features_at_predict(fitted, X, method):
    msg = re.escape("X has 2 features, but GaussianMixture is expecting 3 features as "
                    "input.")
    with pytest.raises(ValueError, match=msg):
        getattr(fitted, method)(X[:, :2])


def test_nan_at_predict(fitted, X):
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fitted.predict(X)


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "score_samples", "score", "bic", "aic"]
)
def test_unfitted(X, method):
    msg = re.escape("This GaussianMixture instance is not fitted yet. Call 'fit' with "
                    "appropriate arguments before using this estimator.")
    with pytest.raises(NotFittedError, match=msg):
        getattr(GaussianMixture(), method)(X)


def test_unfitted_sample():
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        GaussianMixture().sample(3)


@pytest.mark.parametrize("n_samples", [0, -1])
def test_sample_needs_one_sample(fitted, n_samples):
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        fitted.sample(n_samples)


# --------------------------------------------------------------------------------------
# user-provided initial parameters
# --------------------------------------------------------------------------------------


def test_weights_init_shape(X):
    msg = re.escape("The parameter 'weights' should have the shape of (2,), but got (2, 1)")
    with pytest.raises(ValueError, match=msg):
        GaussianMixture(n_components=2, weights_init=[[0.5], [0.5]]).fit(X)


def test_weights_init_range(X):
    # scikit-learn's message prints the minimum as "max value" and the maximum as
    # "min value"; code matching it depends on the swap.
    msg = re.escape("The parameter 'weights' should be in the range [0, 1], but got max "
                    "value -0.20000, min value 1.20000")
    with pytest.raises(ValueError, match=msg):
        GaussianMixture(n_components=2, weights_init=[1.2, -0.2]).fit(X)


def test_weights_init_not_normalised(X):
    msg = re.escape("The parameter 'weights' should be normalized, but got "
                    "sum(weights) = 0.60000")
    with pytest.raises(ValueError, match=msg):
        GaussianMixture(n_components=2, weights_init=[0.3, 0.3]).fit(X)


def test_weights_init_normalisation_tolerance(X):
    # atol 1e-8 for float64 weights, 1e-6 for float32 weights (scikit-learn's rule)
    off = np.array([0.5, 0.5 + 5e-7])
    with pytest.raises(ValueError, match="should be normalized"):
        GaussianMixture(n_components=2, weights_init=off).fit(X)
    GaussianMixture(n_components=2, weights_init=off.astype(np.float32)).fit(
        X.astype(np.float32))
    GaussianMixture(n_components=2, weights_init=np.array([0.5, 0.5 + 5e-9])).fit(X)


def test_means_init_shape(X):
    msg = re.escape("The parameter 'means' should have the shape of (2, 3), but got (3, 3)")
    with pytest.raises(ValueError, match=msg):
        GaussianMixture(n_components=2, means_init=np.zeros((3, 3))).fit(X)


@pytest.mark.parametrize(
    "covariance_type, bad_shape, expected",
    [
        ("full", (2, 3), "(2, 3, 3)"),
        ("tied", (2, 3, 3), "(3, 3)"),
        ("diag", (3,), "(2, 3)"),
        ("spherical", (3,), "(2,)"),
    ],
)
def test_precisions_init_shape(X, covariance_type, bad_shape, expected):
    msg = re.escape(f"The parameter '{covariance_type} precision' should have the shape of "
                    f"{expected}, but got {bad_shape}")
    model = GaussianMixture(n_components=2, covariance_type=covariance_type,
                            precisions_init=np.ones(bad_shape))
    with pytest.raises(ValueError, match=msg):
        model.fit(X)


def test_full_precisions_not_symmetric(X):
    precisions = np.stack([np.eye(3)] * 2)
    precisions[1, 0, 1] = 0.5
    with pytest.raises(ValueError,
                       match="'full precision' should be symmetric, positive-definite"):
        GaussianMixture(n_components=2, precisions_init=precisions).fit(X)


def test_full_precisions_not_positive_definite(X):
    precisions = np.stack([np.eye(3)] * 2)
    precisions[0, 2, 2] = -1.0
    with pytest.raises(ValueError,
                       match="'full precision' should be symmetric, positive-definite"):
        GaussianMixture(n_components=2, precisions_init=precisions).fit(X)


def test_tied_precision_not_positive_definite(X):
    precision = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # eig -1
    with pytest.raises(ValueError,
                       match="'tied precision' should be symmetric, positive-definite"):
        GaussianMixture(n_components=2, covariance_type="tied",
                        precisions_init=precision).fit(X)


@pytest.mark.parametrize("bad_value", [0.0, -1.0])
def test_diag_precisions_not_positive(X, bad_value):
    precisions = np.ones((2, 3))
    precisions[1, 2] = bad_value
    with pytest.raises(ValueError, match="'diag precision' should be positive"):
        GaussianMixture(n_components=2, covariance_type="diag",
                        precisions_init=precisions).fit(X)


@pytest.mark.parametrize("bad_value", [0.0, -1.0])
def test_spherical_precisions_not_positive(X, bad_value):
    with pytest.raises(ValueError, match="'spherical precision' should be positive"):
        GaussianMixture(n_components=2, covariance_type="spherical",
                        precisions_init=np.array([1.0, bad_value])).fit(X)


# --------------------------------------------------------------------------------------
# sample_weight
# --------------------------------------------------------------------------------------


def test_negative_sample_weight(X):
    weights = np.ones(30)
    weights[4] = -1.0
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        GaussianMixture().fit(X, sample_weight=weights)


@pytest.mark.parametrize(
    "bad_value, message",
    [(np.nan, "Input sample_weight contains NaN"),
     (np.inf, "Input sample_weight contains infinity")],
)
def test_non_finite_sample_weight(X, bad_value, message):
    weights = np.ones(30)
    weights[4] = bad_value
    with pytest.raises(ValueError, match=message):
        GaussianMixture().fit(X, sample_weight=weights)


def test_all_zero_sample_weight(X):
    with pytest.raises(ValueError,
                       match="Sample weights must contain at least one non-zero number"):
        GaussianMixture().fit(X, sample_weight=np.zeros(30))


def test_wrong_length_sample_weight(X):
    msg = re.escape("sample_weight.shape == (29,), expected (30,)!")
    with pytest.raises(ValueError, match=msg):
        GaussianMixture().fit(X, sample_weight=np.ones(29))


def test_fewer_weighted_samples_than_components(X):
    weights = np.zeros(30)
    weights[[3, 7]] = 1.0
    msg = ("Expected at least n_components samples with a non-zero sample_weight but got "
           "n_components = 3, 2 samples with non-zero weight")
    with pytest.raises(ValueError, match=msg):
        GaussianMixture(n_components=3).fit(X, sample_weight=weights)


def test_sample_weight_validated_in_score(fitted, X):
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        fitted.score(X, sample_weight=-np.ones(30))
    with pytest.raises(ValueError, match=re.escape("sample_weight.shape == (29,)")):
        fitted.bic(X, sample_weight=np.ones(29))


# --------------------------------------------------------------------------------------
# constructor parameters
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_components": 0},
         "The 'n_components' parameter of GaussianMixture must be an int in the range "
         "[1, inf). Got 0 instead."),
        ({"covariance_type": "bad"},
         "The 'covariance_type' parameter of GaussianMixture must be a str among"),
        ({"tol": -1.0},
         "The 'tol' parameter of GaussianMixture must be a float in the range [0.0, inf). "
         "Got -1.0 instead."),
        ({"reg_covar": -1e-6},
         "The 'reg_covar' parameter of GaussianMixture must be a float in the range "
         "[0.0, inf). Got -1e-06 instead."),
        ({"max_iter": -1},
         "The 'max_iter' parameter of GaussianMixture must be an int in the range [0, inf). "
         "Got -1 instead."),
        ({"n_init": 0},
         "The 'n_init' parameter of GaussianMixture must be an int in the range [1, inf). "
         "Got 0 instead."),
        ({"init_params": "kmeans+"},
         "The 'init_params' parameter of GaussianMixture must be a str among"),
        ({"random_state": "seed"},
         "The 'random_state' parameter of GaussianMixture must be an int in the range "
         "[0, 4294967295], an instance of 'numpy.random.mtrand.RandomState' or None. "
         "Got 'seed' instead."),
        ({"warm_start": "yes"},
         "The 'warm_start' parameter of GaussianMixture must be an instance of 'bool' or an "
         f"instance of 'numpy.{np.bool_.__name__}'. Got 'yes' instead."),  # bool_ in NumPy 1
        ({"verbose_interval": 0},
         "The 'verbose_interval' parameter of GaussianMixture must be an int in the range "
         "[1, inf). Got 0 instead."),
        ({"n_threads": 0},
         "The 'n_threads' parameter of GaussianMixture must be an int in the range [1, inf) "
         "or None. Got 0 instead."),
        ({"n_threads": 1.5},
         "The 'n_threads' parameter of GaussianMixture must be an int in the range [1, inf) "
         "or None. Got 1.5 instead."),
        ({"weights_init": 3},
         "The 'weights_init' parameter of GaussianMixture must be an array-like or None. "
         "Got 3 instead."),
    ],
)
def test_invalid_constructor_parameter(X, params, message):
    model = GaussianMixture(**params)  # __init__ never validates
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        model.fit(X)
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        GaussianMixture(**params).fit_predict(X)


def test_valid_n_threads(X):
    for n_threads in (None, 1, 2, 64):
        GaussianMixture(n_components=2, n_threads=n_threads, random_state=0).fit(X)


# --------------------------------------------------------------------------------------
# collapsed components (reg_covar=0)
# --------------------------------------------------------------------------------------


def _collapsed_data(dtype=np.float64):
    # 10 distinct integer points, each repeated 20 times: with 10 components every
    # component sits on one point and has exactly zero covariance.
    rng = np.random.RandomState(0)
    points = rng.choice(np.arange(-20, 20), size=(10, 2), replace=False).astype(dtype)
    points[:, 1] = rng.permutation(np.arange(10)) * 3
    return np.repeat(points, 20, axis=0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_collapsed_components_float64(covariance_type):
    X = _collapsed_data(np.float64)
    model = GaussianMixture(n_components=10, covariance_type=covariance_type, reg_covar=0,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError) as excinfo:
            model.fit(X)
    assert str(excinfo.value) == ILL_DEFINED  # no float32 advice for float64 data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.set_params(reg_covar=1e-6).fit(X)
    assert np.all(np.isfinite(model.covariances_))
    assert np.isfinite(model.score(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_collapsed_components_float32(covariance_type):
    X = _collapsed_data(np.float32)
    model = GaussianMixture(n_components=10, covariance_type=covariance_type, reg_covar=0,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError) as excinfo:
            model.fit(X)
    assert str(excinfo.value) == ILL_DEFINED + FLOAT32_SUFFIX

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.set_params(reg_covar=1e-6).fit(X)
    assert model.covariances_.dtype == np.float32
    assert np.all(np.isfinite(model.covariances_))


# --------------------------------------------------------------------------------------
# a failed fit leaves a fitted model unchanged
# --------------------------------------------------------------------------------------

FITTED_ATTRIBUTES = (
    "weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
    "converged_", "n_iter_", "lower_bound_", "lower_bounds_", "n_features_in_",
)


def _snapshot(model):
    return {name: copy.deepcopy(value) for name, value in vars(model).items()}


def _assert_unchanged(model, before):
    after = vars(model)
    assert set(after) == set(before)
    fitted_names = [name for name in before if name.endswith("_")]
    assert set(FITTED_ATTRIBUTES) <= set(fitted_names)
    for name in fitted_names:
        old, new = before[name], after[name]
        if isinstance(old, np.ndarray):
            assert new.dtype == old.dtype, name
            assert np.array_equal(new, old), name
        elif isinstance(old, list):
            assert len(new) == len(old) and np.array_equal(np.asarray(new),
                                                           np.asarray(old)), name
        else:
            assert type(new) is type(old) and new == old, name


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_failed_fit_on_nan_leaves_model_unchanged(covariance_type, X):
    model = GaussianMixture(n_components=2, covariance_type=covariance_type, random_state=0)
    model.fit(X)
    before = _snapshot(model)
    X_bad = np.random.RandomState(1).randn(40, 5)  # other n_features as well
    X_bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.fit(X_bad)
    _assert_unchanged(model, before)
    assert model.n_features_in_ == 3
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.fit_predict(X_bad)
    _assert_unchanged(model, before)
    model.predict(X)  # still usable on the old feature count


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_failed_collapsed_fit_leaves_model_unchanged(covariance_type):
    X_good = np.random.RandomState(0).randn(200, 2) * 5
    model = GaussianMixture(n_components=10, covariance_type=covariance_type,
                            random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_good)
    before = _snapshot(model)
    proba = model.predict_proba(X_good)
    model.set_params(reg_covar=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="ill-defined empirical covariance"):
            model.fit(_collapsed_data())
    _assert_unchanged(model, before)
    assert np.array_equal(model.predict_proba(X_good), proba)


def test_failed_fit_keeps_feature_names():
    pd = pytest.importorskip("pandas")
    X = np.random.RandomState(0).randn(50, 2)
    frame = pd.DataFrame(X, columns=["a", "b"])
    model = GaussianMixture(n_components=2, random_state=0).fit(frame)
    before = _snapshot(model)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.fit(np.full((20, 2), np.nan))
    _assert_unchanged(model, before)
    assert list(model.feature_names_in_) == ["a", "b"]


def test_failed_warm_start_fit_leaves_model_unchanged(X):
    model = GaussianMixture(n_components=2, warm_start=True, random_state=0).fit(X)
    before = _snapshot(model)
    X_bad = X.copy()
    X_bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        model.fit(X_bad)
    _assert_unchanged(model, before)
    # The warm start then continues from the intact model.
    model.fit(X)
    assert model.n_iter_ >= 1


def test_float32_statistics_that_overflow_are_an_error_not_nan():
    # float32 data are computed in float32: below D = 4 a chunk's scatter is summed in
    # float32, and for values ~1e19 (squares ~1e38) it overflows. That must be an error
    # that names the data's scale and suggests float64 (scikit-learn's float32 fit fails
    # here too), and the same data in float64 fit. (From D = 4 the scatter's BLAS product
    # runs in float64.)
    X = np.random.default_rng(0).normal(size=(5000, 3)) * 1e19
    with pytest.raises(ValueError, match="scale overflows float32 .* or pass float64 data"):
        GaussianMixture(2, random_state=0).fit(X.astype(np.float32))
    model = GaussianMixture(2, random_state=0).fit(X)
    assert np.all(np.isfinite(model.covariances_))


def test_float32_model_never_stores_infinite_parameters():
    # Variances near 1e60 are fine in float64 (the M-step's precision) but overflow the
    # float32 attributes of a float32 model: refused, naming the scale, suggesting float64.
    X = np.random.default_rng(0).normal(size=(100, 2)) * 1e30
    with pytest.raises(ValueError, match="scale overflows float32 .* or pass float64 data"):
        GaussianMixture(2, random_state=0).fit(X.astype(np.float32))
    model = GaussianMixture(2, random_state=0).fit(X)
    assert np.all(np.isfinite(model.covariances_)) and model.covariances_.dtype == np.float64
