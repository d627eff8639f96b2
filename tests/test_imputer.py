"""GaussianMixtureImputer against a slow NumPy reference of the conditional mean
(tests/_missing_reference.py), and as a scikit-learn transformer."""

import numpy as np
import pytest

import _missing_reference as reference
from conftest import COVARIANCE_TYPES, _mixture_data
from gmmfast import (
    BayesianGaussianMixture,
    GaussianMixture,
    GaussianMixtureIC,
    GaussianMixtureImputer,
)
from gmmfast._covariance_models import sklearn_layout


def _incomplete(fraction=0.2, seed=1, n_samples=300, dtype=np.float64):
    """Correlated blobs with ``fraction`` of the entries NaN at random, row 1 entirely
    NaN and row 0 complete."""
    X = _mixture_data(n_samples, 3, 4, seed=seed)
    rng = np.random.RandomState(seed)
    X[rng.uniform(size=X.shape) < fraction] = np.nan
    X[0] = [1.0, 2.0, 3.0, 4.0]
    X[1] = np.nan
    return X.astype(dtype)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_fills_the_conditional_mean_under_the_mixture(covariance_type, dtype, rtol):
    X = _incomplete(dtype=dtype)
    imputer = GaussianMixtureImputer(GaussianMixture(3, covariance_type=covariance_type,
                                                     random_state=0)).fit(X)
    mixture = imputer.estimator_
    expected = reference.conditional_mean_imputation(
        X, (mixture.weights_, mixture.means_, mixture.covariances_), covariance_type)
    imputed = imputer.transform(X)
    assert imputed.dtype == dtype
    np.testing.assert_allclose(imputed, expected, rtol=rtol, atol=rtol)
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(imputed[observed], X[observed])
    np.testing.assert_allclose(imputed[1], mixture.weights_ @ mixture.means_, rtol=rtol)


def test_the_default_is_the_model_search_over_the_observed_entries():
    X = _incomplete()
    imputer = GaussianMixtureImputer(random_state=0).fit(X)
    assert isinstance(imputer.estimator_, GaussianMixtureIC)
    assert imputer.estimator_.nan_policy == "omit"
    best = imputer.estimator_.best_estimator_
    # The search may choose one of mclust's models: its arrays have a scikit-learn layout.
    expected = reference.conditional_mean_imputation(
        X, (best.weights_, best.means_, best.covariances_), sklearn_layout(best.covariance_type))
    np.testing.assert_allclose(imputer.transform(X), expected, rtol=1e-10, atol=1e-10)


def test_a_given_estimator_is_cloned_with_nan_policy_omit():
    estimator = GaussianMixture(3, random_state=0)
    imputer = GaussianMixtureImputer(estimator).fit(_incomplete())
    assert imputer.estimator_ is not estimator
    assert imputer.estimator_.nan_policy == "omit"
    assert estimator.nan_policy == "raise" and not hasattr(estimator, "means_")


def test_a_bayesian_mixture_serves_too():
    X = _incomplete()
    imputed = GaussianMixtureImputer(BayesianGaussianMixture(n_components=3, random_state=0)
                                     ).fit_transform(X)
    assert np.isfinite(imputed).all()


def test_an_estimator_that_cannot_omit_nan_is_refused():
    from sklearn.cluster import KMeans

    with pytest.raises(ValueError, match="estimator must be a gmmfast mixture"):
        GaussianMixtureImputer(KMeans(2)).fit(_incomplete())


def test_infinity_is_an_error():
    X = _incomplete()
    imputer = GaussianMixtureImputer(GaussianMixture(2)).fit(X)
    X[4, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        imputer.transform(X)


def test_conditional_mean_beats_the_column_mean_on_correlated_data():
    rng = np.random.RandomState(0)
    complete = rng.randn(2000, 3) @ np.array([[1.0, 0.9, 0.5], [0.0, 0.4, 0.3], [0, 0, 0.3]])
    X = complete.copy()
    missing = rng.uniform(size=X.shape) < 0.2
    missing[missing.all(axis=1)] = False
    X[missing] = np.nan
    imputed = GaussianMixtureImputer(GaussianMixture(1)).fit_transform(X)
    column_means = np.where(missing, np.nanmean(X, axis=0), X)
    error = np.sqrt(np.mean((imputed - complete)[missing] ** 2))
    mean_error = np.sqrt(np.mean((column_means - complete)[missing] ** 2))
    assert error < 0.6 * mean_error


# -- sample_posterior ---------------------------------------------------------------------------


def test_posterior_draws_have_the_conditional_distribution():
    # One Gaussian; the second and third columns missing in every row: their draws must
    # have the conditional mean and covariance given the first.
    rng = np.random.RandomState(0)
    covariance = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 2.0]])
    X = rng.multivariate_normal([1.0, -2.0, 0.5], covariance, size=4000)
    imputer = GaussianMixtureImputer(GaussianMixture(1), sample_posterior=True,
                                     random_state=0).fit(X)
    fitted = imputer.estimator_.covariances_[0]
    query = np.full((20000, 3), np.nan)
    query[:, 0] = 1.5
    draws = imputer.transform(query)[:, 1:]
    conditional_mean = GaussianMixtureImputer(GaussianMixture(1)).fit(X).transform(
        query[:1])[0, 1:]
    np.testing.assert_allclose(draws.mean(axis=0), conditional_mean, atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T),
                               reference.conditional_covariance(
                                   fitted, np.array([True, False, False])), atol=0.04)


def test_posterior_draws_pick_components_by_their_responsibilities():
    X = np.vstack([np.random.RandomState(0).randn(500, 2),
                   np.random.RandomState(1).randn(500, 2) + 20])
    query = np.array([[np.nan, np.nan]] * 4000)
    imputer = GaussianMixtureImputer(GaussianMixture(2, random_state=0),
                                     sample_posterior=True, random_state=0).fit(X)
    draws = imputer.transform(query)
    near_second = np.mean(draws[:, 0] > 10)
    assert near_second == pytest.approx(imputer.estimator_.weights_[
        np.argmax(imputer.estimator_.means_[:, 0])], abs=0.03)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_posterior_draws_are_reproducible_and_thread_count_invariant(covariance_type):
    X = _incomplete(n_samples=600)
    make = lambda threads: GaussianMixtureImputer(  # noqa: E731
        GaussianMixture(3, covariance_type=covariance_type, random_state=0),
        sample_posterior=True, random_state=7, n_threads=threads).fit(X)
    first = make(1).transform(X)
    np.testing.assert_array_equal(first, make(2).transform(X))
    np.testing.assert_array_equal(first, make(2).transform(X))
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(first[observed], X[observed])
    assert np.isfinite(first).all()
    assert not np.allclose(first, make(1).set_params(sample_posterior=False).transform(X))


# -- scikit-learn's transformer protocol ---------------------------------------------------------


def test_in_a_pipeline_and_cloned():
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline

    X = _incomplete()
    pipeline = make_pipeline(GaussianMixtureImputer(GaussianMixture(3, random_state=0)),
                             GaussianMixture(3, random_state=0))
    labels = pipeline.fit(X).predict(X)
    assert labels.shape == (len(X),)
    again = clone(pipeline).fit(X)
    np.testing.assert_array_equal(again.predict(X), labels)


def test_fit_transform_is_fit_then_transform():
    X = _incomplete()
    imputer = GaussianMixtureImputer(GaussianMixture(3, random_state=0))
    np.testing.assert_array_equal(imputer.fit_transform(X), imputer.fit(X).transform(X))


def test_feature_names_pass_through():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_incomplete(), columns=list("abcd"))
    imputer = GaussianMixtureImputer(GaussianMixture(2)).fit(X)
    assert list(imputer.get_feature_names_out()) == list("abcd")
