"""``nan_policy`` on the estimators: "raise" is scikit-learn's behaviour, "omit" the exact EM
over the observed entries (against tests/_missing_reference.py) and marginal scores."""

import warnings

import numpy as np
import pytest

import _missing_reference as reference
from conftest import COVARIANCE_TYPES, _mixture_data
from gmmfast import (
    BayesianGaussianMixture,
    GaussianMixture,
    GaussianMixtureIC,
    select_model,
)

N_COMPONENTS = 3


def _incomplete(fraction=0.2, seed=1, n_samples=300, dtype=np.float64):
    """Blobs with ``fraction`` of the entries NaN at random, and row 1 entirely NaN."""
    X = _mixture_data(n_samples, N_COMPONENTS, 4, seed=seed)
    rng = np.random.RandomState(seed)
    X[rng.uniform(size=X.shape) < fraction] = np.nan
    X[1] = np.nan
    return X.astype(dtype)


def _fit(estimator, X, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 or few iterations: no convergence
        return estimator.fit(X, **fit_params)


# -- "raise" ---------------------------------------------------------------------------------


def test_raise_is_the_default_with_scikit_learns_message():
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    X = _incomplete()
    with pytest.raises(ValueError) as ours:
        GaussianMixture(2).fit(X)
    with pytest.raises(ValueError) as theirs:
        SklearnGaussianMixture(2).fit(X)
    assert str(ours.value) == str(theirs.value)
    fitted = GaussianMixture(2).fit(np.nan_to_num(X))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fitted.predict(X)


@pytest.mark.parametrize("make", [
    lambda: GaussianMixture(nan_policy="drop"),
    lambda: BayesianGaussianMixture(nan_policy="drop"),
    lambda: GaussianMixtureIC(n_components=2, nan_policy="drop"),
])
def test_unknown_nan_policy_lists_the_options(make):
    with pytest.raises(ValueError, match="'nan_policy' parameter .* among") as error:
        make().fit(_mixture_data(60))
    assert "'omit'" in str(error.value) and "'raise'" in str(error.value)


def test_select_model_checks_nan_policy():
    with pytest.raises(ValueError, match="nan_policy"):
        select_model(_mixture_data(60), 2, nan_policy="ignore")


# -- without NaN, "omit" is "raise" ------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("estimator_class", [GaussianMixture, BayesianGaussianMixture])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_without_nan_omit_fits_bit_for_bit_as_raise(estimator_class, covariance_type, dtype):
    X = _mixture_data(300).astype(dtype)
    weights = np.random.RandomState(0).uniform(0.5, 2.0, len(X))
    fits = [estimator_class(n_components=3, covariance_type=covariance_type,
                            random_state=0, nan_policy=policy).fit(X, sample_weight=weights)
            for policy in ("raise", "omit")]
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "lower_bounds_"):
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))
    for method in ("score_samples", "predict_proba", "predict"):
        np.testing.assert_array_equal(getattr(fits[0], method)(X), getattr(fits[1], method)(X))
    assert fits[0].score(X) == fits[1].score(X)


def test_without_nan_the_search_under_omit_is_the_search_under_raise():
    X = _mixture_data(200)
    searches = [GaussianMixtureIC(n_components=[1, 2, 3], covariance_type=["full", "diag"],
                                  criterion="icl", random_state=0, nan_policy=policy).fit(X)
                for policy in ("raise", "omit")]
    for column in ("bic", "icl", "log_likelihood"):
        np.testing.assert_array_equal(searches[0].criterion_table_[column],
                                      searches[1].criterion_table_[column])


# -- "omit": the exact EM and the marginal scores ------------------------------------------------


def _start(X, covariance_type):
    """Parameters after one EM iteration from k-means: a start for both implementations."""
    return _fit(GaussianMixture(N_COMPONENTS, covariance_type=covariance_type, max_iter=1,
                                random_state=0, nan_policy="omit"), X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_omit_fit_is_the_exact_em(covariance_type, weighted):
    X = _incomplete(n_samples=90)
    weights = np.random.RandomState(3).uniform(0.2, 2.0, len(X)) if weighted else None
    start = _start(X, covariance_type)
    fitted = _fit(GaussianMixture(N_COMPONENTS, covariance_type=covariance_type, max_iter=3,
                                  tol=0.0, weights_init=start.weights_,
                                  means_init=start.means_, precisions_init=start.precisions_,
                                  nan_policy="omit"), X, sample_weight=weights)
    theta = (start.weights_, start.means_, start.covariances_)
    bounds = []
    for _ in range(3):
        bound, theta = reference.em_step(X, weights, theta, covariance_type, 1e-6,
                                         np.finfo(np.float64).eps)
        bounds.append(bound)
    np.testing.assert_allclose(fitted.lower_bounds_, bounds, rtol=1e-10)
    for name, expected in zip(("weights_", "means_", "covariances_"), theta):
        np.testing.assert_allclose(getattr(fitted, name), expected, rtol=1e-10,
                                   atol=1e-10 * np.abs(expected).max())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_scores_are_the_marginal_densities(covariance_type, dtype, rtol):
    X = _incomplete(dtype=dtype)
    model = GaussianMixture(N_COMPONENTS, covariance_type=covariance_type, random_state=0,
                            nan_policy="omit").fit(X)
    log_prob, resp = reference.marginal_log_density(
        X, (model.weights_, model.means_, model.covariances_), covariance_type)
    np.testing.assert_allclose(model.score_samples(X), log_prob, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(model.predict_proba(X), resp, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(model.predict(X), np.argmax(model.predict_proba(X), 1))
    assert model.score_samples(X).dtype == dtype


def test_a_row_with_no_observed_entry_scores_0_with_the_prior_as_probabilities():
    X = _incomplete()
    model = GaussianMixture(N_COMPONENTS, random_state=0, nan_policy="omit").fit(X)
    assert model.score_samples(X)[1] == 0.0
    np.testing.assert_allclose(model.predict_proba(X)[1], model.weights_, rtol=1e-12)
    assert model.predict(X)[1] == np.argmax(model.weights_)


def test_rows_with_no_observed_entry_carry_no_weight():
    X = _incomplete()
    observed = ~np.isnan(X).all(axis=1)
    with_empty = GaussianMixture(N_COMPONENTS, random_state=0, nan_policy="omit").fit(X)
    without = GaussianMixture(N_COMPONENTS, random_state=0, nan_policy="omit").fit(X[observed])
    np.testing.assert_allclose(with_empty.means_, without.means_, rtol=1e-12)
    assert with_empty.lower_bound_ == pytest.approx(without.lower_bound_, rel=1e-12)
    # score and the criteria average over the rows with an observation, as the fit does.
    assert with_empty.score(X) == pytest.approx(with_empty.score_samples(X)[observed].mean())
    assert with_empty.bic(X) == pytest.approx(without.bic(X[observed]), rel=1e-12)
    assert with_empty.score(X) == pytest.approx(with_empty.lower_bound_, rel=1e-3)


def test_fit_predict_is_fit_then_predict():
    X = _incomplete()
    model = GaussianMixture(N_COMPONENTS, random_state=0, nan_policy="omit")
    labels = model.fit_predict(X)
    np.testing.assert_array_equal(labels, model.predict(X))


def test_missing_entries_are_marginalised_not_imputed():
    # Half of the second column missing: the exact EM still finds the blobs' means.
    X = _mixture_data(900, N_COMPONENTS, 4, seed=2)
    truth = GaussianMixture(N_COMPONENTS, random_state=0).fit(X)
    X[::2, 1] = np.nan
    model = GaussianMixture(N_COMPONENTS, random_state=0, nan_policy="omit").fit(X)
    order = [np.argmin(np.linalg.norm(truth.means_ - mean, axis=1)) for mean in model.means_]
    np.testing.assert_allclose(model.means_, truth.means_[order], atol=0.3)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bayesian_mixture_omits_missing_entries(covariance_type):
    X = _incomplete()
    bayes = BayesianGaussianMixture(n_components=N_COMPONENTS, covariance_type=covariance_type,
                                    random_state=0, nan_policy="omit").fit(X)
    plain = GaussianMixture(N_COMPONENTS, covariance_type=covariance_type, random_state=0,
                            nan_policy="omit").fit(X)
    assert bayes.converged_
    assert np.isfinite(bayes.score_samples(X)).all()
    order = [np.argmin(np.linalg.norm(plain.means_ - mean, axis=1)) for mean in bayes.means_]
    np.testing.assert_allclose(bayes.means_, plain.means_[order], atol=0.2)


def test_search_under_omit_fits_the_candidates_as_the_estimator_does():
    X = _incomplete()
    search = GaussianMixtureIC(n_components=[2, 3], covariance_type=["full", "diag"],
                               random_state=0, nan_policy="omit").fit(X)
    best = GaussianMixture(search.n_components_, covariance_type=search.covariance_type_,
                           init_params="multistart", random_state=0,
                           nan_policy="omit").fit(X)
    np.testing.assert_array_equal(search.best_estimator_.means_, best.means_)
    assert search.criterion_table_["bic"][search.best_index_] == pytest.approx(best.bic(X))
    np.testing.assert_array_equal(search.predict(X), best.predict(X))
    assert select_model(X, [2, 3], ["full", "diag"], random_state=0,
                        nan_policy="omit").n_components_ == search.n_components_


def test_search_skips_more_components_than_rows_with_an_observation():
    X = np.full((6, 2), np.nan)
    X[:3] = [[0.0, 1.0], [1.0, np.nan], [np.nan, 3.0]]
    search = GaussianMixtureIC(n_components=[1, 4], covariance_type="spherical",
                               nan_policy="omit").fit(X)
    assert list(search.criterion_table_["status"]) == ["ok", "skipped"]


# -- "omit": bad input ------------------------------------------------------------------------


def test_infinity_still_raises_under_omit():
    X = _incomplete()
    X[5, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixture(2, nan_policy="omit").fit(X)
    model = GaussianMixture(2, nan_policy="omit").fit(_incomplete())
    with pytest.raises(ValueError, match="infinity"):
        model.predict(X)
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixtureIC(n_components=2, nan_policy="omit").fit(X)


def test_a_column_with_no_observed_value_is_named():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_incomplete(), columns=["a", "b", "c", "d"])
    X["c"] = np.nan
    with pytest.raises(ValueError, match="Column 'c' of X has no observed value"):
        GaussianMixture(2, nan_policy="omit").fit(X)
    with pytest.raises(ValueError, match="Column 'c' of X has no observed value"):
        GaussianMixtureIC(n_components=2, nan_policy="omit").fit(X)


def test_fewer_rows_with_an_observation_than_components_raises():
    X = np.full((10, 2), np.nan)
    X[:2] = [[0.0, 1.0], [1.0, np.nan]]
    with pytest.raises(ValueError, match="at least n_components = 3 samples with an observed"):
        GaussianMixture(3, nan_policy="omit").fit(X)


def test_scoring_rows_that_are_all_missing_raises():
    model = GaussianMixture(2, nan_policy="omit").fit(_incomplete())
    with pytest.raises(ValueError, match="nothing to score"):
        model.score(np.full((3, 4), np.nan))


def test_allow_nan_tag_follows_the_policy():
    from sklearn.utils import get_tags

    for estimator in (GaussianMixture(), BayesianGaussianMixture(), GaussianMixtureIC()):
        assert not get_tags(estimator).input_tags.allow_nan
        assert get_tags(estimator.set_params(nan_policy="omit")).input_tags.allow_nan


def test_default_covariance_prior_counts_a_missing_entry_at_its_column_mean_and_variance():
    X = _incomplete()
    X = X[~np.isnan(X).all(axis=1)]
    bayes = BayesianGaussianMixture(n_components=2, max_iter=1, nan_policy="omit")
    _fit(bayes, X)
    mean, variance = np.nanmean(X, axis=0), np.nanvar(X, axis=0)
    centred = np.where(np.isnan(X), 0.0, X - mean)
    expected = (centred.T @ centred + np.diag(np.isnan(X).sum(axis=0) * variance)) / (
        len(X) - 1)
    np.testing.assert_allclose(bayes.covariance_prior_, expected, rtol=1e-10)
    np.testing.assert_allclose(bayes.mean_prior_, mean, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bayesian_bound_with_missing_entries_never_decreases(covariance_type):
    # The missing entries are latent variables of the variational posterior: the bound,
    # which counts the entropy of their conditional distributions, rises at every step.
    bayes = _fit(BayesianGaussianMixture(n_components=4, covariance_type=covariance_type,
                                         tol=0.0, max_iter=40, random_state=0,
                                         nan_policy="omit"), _incomplete(fraction=0.3))
    assert np.all(np.diff(bayes.lower_bounds_) >= -1e-9)
