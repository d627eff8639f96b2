"""mclust's fourteen covariance models in the estimators: fits, constraints, monotone EM,
scikit-learn's four under both names, parameter counts, scoring and the model search."""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, special_ortho_group

from gmmfast import GaussianMixture, GaussianMixtureIC, select_model
from gmmfast._covariance_models import COVARIANCE_MODELS, SKLEARN_NAMES

DIAGONAL_MODELS = COVARIANCE_MODELS[:6]
# mclust's nVarParams for K components in D dimensions (Scrucca et al. 2016, Table 3).
HAND_COVARIANCE_PARAMETERS = {
    "EII": lambda k, d: 1,
    "VII": lambda k, d: k,
    "EEI": lambda k, d: d,
    "VEI": lambda k, d: k + d - 1,
    "EVI": lambda k, d: 1 + k * (d - 1),
    "VVI": lambda k, d: k * d,
    "EEE": lambda k, d: d * (d + 1) // 2,
    "VEE": lambda k, d: k + d - 1 + d * (d - 1) // 2,
    "EVE": lambda k, d: 1 + k * (d - 1) + d * (d - 1) // 2,
    "VVE": lambda k, d: k * d + d * (d - 1) // 2,
    "EEV": lambda k, d: d + k * d * (d - 1) // 2,
    "VEV": lambda k, d: k + d - 1 + k * d * (d - 1) // 2,
    "EVV": lambda k, d: k * d * (d + 1) // 2 - (k - 1),
    "VVV": lambda k, d: k * d * (d + 1) // 2,
}


def mixture_data(n_samples=450, n_features=3, seed=0):
    """Three clusters of unequal sizes, volumes, shapes and orientations."""
    rng = np.random.default_rng(seed)
    blocks = []
    for k, size in enumerate((n_samples // 6, n_samples // 3, n_samples // 2)):
        rotation = special_ortho_group.rvs(n_features, random_state=rng)
        scales = np.exp(rng.normal(scale=0.7, size=n_features))
        centre = 6.0 * rng.normal(size=n_features)
        blocks.append(centre + (rng.normal(size=(size, n_features)) * scales) @ rotation.T)
    return rng.permutation(np.vstack(blocks))


@pytest.fixture(scope="module")
def X():
    return mixture_data()


@pytest.fixture(scope="module")
def fitted(X):
    """Every model fitted with three components, cached for the module."""
    models = {}
    for model in COVARIANCE_MODELS:
        models[model] = GaussianMixture(3, covariance_type=model, random_state=0,
                                        tol=1e-6, max_iter=300).fit(X)
    return models


def covariance_matrices(gm):
    """(K, D, D) matrices, whatever the layout of covariances_."""
    k, d = gm.means_.shape
    covariances = np.asarray(gm.covariances_, dtype=np.float64)
    if covariances.ndim == 1:
        return covariances[:, None, None] * np.eye(d)
    if covariances.ndim == 2 and covariances.shape == (k, d) and gm.covariance_type != "EEE":
        return covariances[:, :, None] * np.eye(d)
    return np.broadcast_to(covariances, (k, d, d))


# --------------------------------------------------------------------------------------
# every model fits, its constraint holds, EM is monotone


@pytest.mark.parametrize("model", COVARIANCE_MODELS)
def test_each_model_fits_and_its_constraint_holds(fitted, model):
    gm = fitted[model]
    k, d = gm.means_.shape
    sigma = covariance_matrices(gm)
    eigenvalues = np.linalg.eigvalsh(sigma)[:, ::-1]
    volumes = np.exp(np.log(eigenvalues).mean(axis=1))
    volume_rule, shape_rule, orientation_rule = model
    if volume_rule == "E":
        np.testing.assert_allclose(volumes, volumes[0], rtol=1e-9)
    else:
        assert np.ptp(volumes) > 1e-3 * volumes.mean()
    if orientation_rule == "I":
        # Along the coordinate axes: the shapes are the diagonal over the volume.
        off_diagonal = sigma - np.eye(d) * np.diagonal(sigma, axis1=1, axis2=2)[:, None]
        assert not off_diagonal.any()
        shapes = np.diagonal(sigma, axis1=1, axis2=2) / volumes[:, None]
    else:
        shapes = eigenvalues / volumes[:, None]
    if shape_rule == "I":
        np.testing.assert_allclose(shapes, 1.0, rtol=1e-9)
    elif shape_rule == "E":
        np.testing.assert_allclose(shapes, shapes[[0]].repeat(k, axis=0), rtol=1e-7)
    if orientation_rule == "E":
        # Symmetric matrices with one set of eigenvectors commute.
        for j in range(1, k):
            commutator = sigma[0] @ sigma[j] - sigma[j] @ sigma[0]
            assert np.abs(commutator).max() < 1e-8 * np.abs(sigma).max() ** 2
    # The decomposition attributes recompose covariances_.
    assert gm.volumes_.shape == (k,) and gm.shapes_.shape == (k, d)
    np.testing.assert_allclose(gm.volumes_, volumes, rtol=1e-9)
    np.testing.assert_allclose(np.prod(gm.shapes_, axis=1), 1.0, rtol=1e-9)
    principal = gm.volumes_[:, None] * gm.shapes_
    if gm.orientations_ is None:
        assert model in DIAGONAL_MODELS
        recomposed = principal[:, :, None] * np.eye(d)
    else:
        assert gm.orientations_.shape == (k, d, d)
        recomposed = np.einsum("kij,kj,klj->kil", gm.orientations_, principal,
                               gm.orientations_)
    np.testing.assert_allclose(recomposed, sigma, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("model", COVARIANCE_MODELS)
def test_the_fitted_arrays_are_consistent(fitted, model):
    gm = fitted[model]
    k, d = gm.means_.shape
    expected_shape = {"VII": (k,), "EEE": (d, d)}.get(
        model, (k, d) if model in DIAGONAL_MODELS else (k, d, d))
    for name in ("covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, name).shape == expected_shape
    sigma = covariance_matrices(gm)
    precisions = np.linalg.inv(sigma)
    if len(expected_shape) == 3:
        np.testing.assert_allclose(gm.precisions_, precisions, rtol=1e-8, atol=1e-12)
        u = gm.precisions_cholesky_
        np.testing.assert_allclose(u @ u.swapaxes(1, 2), precisions, rtol=1e-8, atol=1e-12)
        assert not np.tril(u, -1).any()


@pytest.mark.parametrize("model", COVARIANCE_MODELS)
def test_the_log_likelihood_never_decreases(X, model):
    # tol=0: every iteration runs, so a decrease anywhere on the way would show.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(4, covariance_type=model, random_state=1, tol=0.0,
                             max_iter=40, init_params="random").fit(X)
    bounds = np.array(gm.lower_bounds_)
    assert len(bounds) == 40
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))


def test_a_warm_start_continues_without_losing_likelihood(X):
    gm = GaussianMixture(3, covariance_type="EVE", random_state=0, max_iter=3,
                         warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
        first = gm.lower_bound_
        gm.fit(X)
    assert gm.lower_bounds_[0] >= first - 1e-12 * abs(first)


# --------------------------------------------------------------------------------------
# scikit-learn's four under their mclust names


@pytest.mark.parametrize("sklearn_type, model", sorted(SKLEARN_NAMES.items()))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_four_aliases_give_identical_fits(X, sklearn_type, model, dtype):
    data = X.astype(dtype)
    ours = GaussianMixture(3, covariance_type=model, random_state=0, n_init=2).fit(data)
    theirs = GaussianMixture(3, covariance_type=sklearn_type, random_state=0,
                             n_init=2).fit(data)
    for name in ("weights_", "means_", "covariances_", "precisions_",
                 "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
        assert getattr(ours, name).dtype == dtype
    assert (ours.n_iter_, ours.lower_bound_) == (theirs.n_iter_, theirs.lower_bound_)
    assert ours._n_parameters() == theirs._n_parameters()
    assert ours.bic(data) == theirs.bic(data)
    np.testing.assert_array_equal(ours.predict(data), theirs.predict(data))
    # Only the mclust names add the decomposition, and a refit under the other name
    # drops it.
    assert hasattr(ours, "volumes_") and not hasattr(theirs, "volumes_")
    ours.set_params(covariance_type=sklearn_type).fit(data)
    assert not hasattr(ours, "volumes_")


# --------------------------------------------------------------------------------------
# parameter counts, names


@pytest.mark.parametrize("model", COVARIANCE_MODELS)
@pytest.mark.parametrize("k, d", [(1, 1), (3, 4), (5, 2)])
def test_the_parameter_count_is_mclusts(model, k, d):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, d)) + 4 * rng.integers(0, 3, size=(40, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(k, covariance_type=model, random_state=0, max_iter=2).fit(X)
    expected = HAND_COVARIANCE_PARAMETERS[model](k, d) + k * d + (k - 1)
    assert gm._n_parameters() == expected
    n = X.shape[0]
    np.testing.assert_allclose(gm.bic(X), -2 * gm.score(X) * n + expected * np.log(n))


def test_iris_reproduces_mclusts_best_model():
    datasets = pytest.importorskip("sklearn.datasets")
    X = datasets.load_iris().data
    # mclust: Mclust(iris[, 1:4]) chooses VEV with 2 components, BIC -561.7 (its sign),
    # over the four scikit-learn shapes whose best is full (VVV) with 2, BIC 574.0.
    search = GaussianMixtureIC(n_components=range(1, 4), random_state=0).fit(X)
    assert (search.covariance_type_, search.n_components_) == ("VEV", 2)
    assert search.criterion_table_["bic"][search.best_index_] == pytest.approx(561.73,
                                                                               abs=0.01)
    assert search.best_estimator_._n_parameters() == 26


@pytest.mark.parametrize("name", ["VVX", "vev", "", "all", None, 3])
def test_a_bad_name_is_a_value_error_listing_the_options(X, name):
    with pytest.raises(ValueError, match="VEV") as info:
        GaussianMixture(2, covariance_type=name).fit(X)
    assert "full" in str(info.value)


@pytest.mark.parametrize("grid", ["VVV,XYZ", ["EEE", "round"], "VVV,,EEE"])
def test_a_bad_name_in_a_search_grid_is_a_value_error(X, grid):
    with pytest.raises(ValueError, match="covariance_type must be 'all' or among") as info:
        GaussianMixtureIC(n_components=[1, 2], covariance_type=grid).fit(X)
    assert "VEV" in str(info.value)


# --------------------------------------------------------------------------------------
# scoring and sampling


@pytest.mark.parametrize("model", COVARIANCE_MODELS)
def test_score_samples_predict_and_sample_work_for_every_model(X, fitted, model):
    gm = fitted[model]
    sigma = covariance_matrices(gm)
    log_components = np.column_stack([
        np.log(w) + multivariate_normal(mean, cov).logpdf(X)
        for w, mean, cov in zip(gm.weights_, gm.means_, sigma)
    ])
    np.testing.assert_allclose(gm.score_samples(X), logsumexp(log_components, axis=1),
                               rtol=1e-10)
    np.testing.assert_array_equal(gm.predict(X), log_components.argmax(axis=1))
    np.testing.assert_allclose(gm.predict_proba(X).sum(axis=1), 1.0)
    samples, labels = gm.sample(30000)
    assert samples.shape == (30000, X.shape[1])
    largest = np.argmax(np.bincount(labels))
    empirical = np.cov(samples[labels == largest].T)
    np.testing.assert_allclose(empirical, sigma[largest], atol=0.1 * np.abs(sigma).max())


# --------------------------------------------------------------------------------------
# the search


def test_all_searches_the_fourteen_models_with_shared_initialisations(X):
    search = GaussianMixtureIC(n_components=[1, 3], random_state=0).fit(X)
    table = search.criterion_table_
    assert table["covariance_type"].tolist() == list(COVARIANCE_MODELS) * 2
    assert table["mclust_name"].tolist() == list(COVARIANCE_MODELS) * 2
    expected_sklearn = [{v: k for k, v in SKLEARN_NAMES.items()}.get(m, "")
                        for m in COVARIANCE_MODELS]
    assert table["sklearn_name"].tolist() == expected_sklearn * 2
    assert (table["status"] == "ok").all()
    # Each candidate is the model an independent fit with the same seed gives.
    for i in (17, 22, 25):
        k, model = int(table["n_components"][i]), str(table["covariance_type"][i])
        alone = GaussianMixture(k, covariance_type=model, random_state=0).fit(X)
        assert table["bic"][i] == alone.bic(X)
        assert table["n_parameters"][i] == alone._n_parameters()
    lines = str(table).splitlines()
    assert lines[0].split() == ["K", *COVARIANCE_MODELS]
    assert lines[1].split() == ["spherical", "diag", "tied", "full"]


def test_a_comma_separated_grid_restricts_the_search(X):
    search = select_model(X, n_components=[2, 3], covariance_type="VVV, EEE,VEV,full",
                          random_state=0)
    table = search.criterion_table_
    # full is VVV, already in the grid: fitted once, under the name given first.
    assert table["covariance_type"].tolist() == ["VVV", "EEE", "VEV"] * 2
    assert search.covariance_type_ in ("VVV", "EEE", "VEV")
    assert search.best_estimator_.covariance_type == search.covariance_type_


def test_each_m_step_starts_from_the_previous_estimate(X, monkeypatch):
    from gmmfast import _engine

    starts, results = [], []
    original = _engine.estimate_covariances

    def recording(*args, previous=None, **kwargs):
        starts.append(previous)
        results.append(original(*args, previous=previous, **kwargs))
        return results[-1]

    monkeypatch.setattr(_engine, "estimate_covariances", recording)
    gm = GaussianMixture(3, covariance_type="VEV", random_state=0, tol=0.0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    # The initial M-step starts cold; each EM iteration from the one before.
    assert len(starts) == 6 and starts[0] is None
    assert all(start is result for start, result in zip(starts[1:], results[:-1]))
    np.testing.assert_array_equal(gm.volumes_, results[-1].volumes)


@pytest.mark.parametrize("model", ["EEI", "VEV", "VII", "EEE"])
def test_user_given_precisions_are_decomposed_without_em(X, model):
    gm = GaussianMixture(3, covariance_type=model, random_state=0).fit(X)
    start = GaussianMixture(3, covariance_type=model, max_iter=0, weights_init=gm.weights_,
                            means_init=gm.means_, precisions_init=gm.precisions_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start.fit(X)
    np.testing.assert_allclose(start.covariances_, gm.covariances_, rtol=1e-8)
    np.testing.assert_allclose(start.volumes_, gm.volumes_, rtol=1e-8)
    principal = start.volumes_[:, None] * start.shapes_
    if start.orientations_ is None:
        recomposed = principal[:, :, None] * np.eye(X.shape[1])
    else:
        recomposed = np.einsum("kij,kj,klj->kil", start.orientations_, principal,
                               start.orientations_)
    np.testing.assert_allclose(recomposed, covariance_matrices(start), rtol=1e-8,
                               atol=1e-12)
