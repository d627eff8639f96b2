"""scikit-learn's own estimator checks, run on gmmfast's estimators."""

import pytest

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_dataframe_column_names_consistency,
    check_param_validation,
    parametrize_with_checks,
)

from gmmfast import (  # noqa: E402
    BayesianGaussianMixture,
    GaussianMixture,
    GaussianMixtureIC,
    GaussianMixtureImputer,
)


@parametrize_with_checks([
    GaussianMixture(), BayesianGaussianMixture(),
    GaussianMixture(nan_policy="omit"), BayesianGaussianMixture(nan_policy="omit"),
    # A short search from single starts: the checks fit dozens of times and test the
    # estimator's interface (tests/test_starts.py and tests/test_selection.py test the grid).
    GaussianMixtureImputer(GaussianMixtureIC(n_components=[1, 2], covariance_type=["full", "diag"],
                                             init_params="kmeans")),
    GaussianMixtureImputer(GaussianMixture(2), sample_posterior=True, random_state=0),
])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_check_param_validation():
    check_param_validation("GaussianMixture", GaussianMixture(n_init=2, max_iter=5))


def test_check_dataframe_column_names_consistency():
    pytest.importorskip("pandas")
    check_dataframe_column_names_consistency(
        "GaussianMixture", GaussianMixture(n_init=2, max_iter=5)
    )


def test_check_param_validation_bayesian():
    check_param_validation("BayesianGaussianMixture",
                           BayesianGaussianMixture(n_init=2, max_iter=5))


def test_check_param_validation_imputer():
    check_param_validation("GaussianMixtureImputer", GaussianMixtureImputer())
