"""Validation of user-provided initial parameters, with scikit-learn's messages."""

import numpy as np

from gmmfast._covariance_models import sklearn_layout


def _as_float_array(value, name):
    # Imported here: the checks of a model file use this module without scikit-learn.
    from gmmfast._compat import check_array_fallback

    return check_array_fallback(value, name=name, ensure_2d=False)


def _check_shape(param, expected, name):
    if param.shape != tuple(expected):
        raise ValueError(
            f"The parameter '{name}' should have the shape of {tuple(expected)}, "
            f"but got {param.shape}"
        )


def check_weights(weights, n_components):
    weights = _as_float_array(weights, "weights_init")
    _check_shape(weights, (n_components,), "weights")
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        # scikit-learn prints the minimum as "max value" and the maximum as "min value";
        # code matching its message depends on that order, so it is kept.
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got max value "
            f"{np.min(weights):.5f}, min value {np.max(weights):.5f}"
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if not np.allclose(abs(1.0 - float(np.sum(weights))), 0.0, atol=atol):
        raise ValueError(
            "The parameter 'weights' should be normalized, but got sum(weights) = "
            f"{np.sum(weights):.5f}"
        )
    return weights


def check_means(means, n_components, n_features):
    means = _as_float_array(means, "means_init")
    _check_shape(means, (n_components, n_features), "means")
    return means


def check_precisions(precisions, covariance_type, n_components, n_features):
    precisions = _as_float_array(precisions, "precisions_init")
    expected = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]
    _check_shape(precisions, expected, f"{covariance_type} precision")
    if covariance_type in ("diag", "spherical"):
        if np.any(precisions <= 0.0):
            raise ValueError(f"'{covariance_type} precision' should be positive")
        return precisions
    stack = precisions[None] if covariance_type == "tied" else precisions
    if not all(is_symmetric_positive_definite(matrix) for matrix in stack):
        raise ValueError(
            f"'{covariance_type} precision' should be symmetric, positive-definite"
        )
    return precisions


def is_symmetric_positive_definite(matrix):
    return np.allclose(matrix, matrix.T) and bool(np.all(np.linalg.eigvalsh(matrix) > 0.0))


def check_initial_parameters(estimator, n_features):
    """Validate weights_init, means_init and precisions_init and store the arrays back.

    The precisions of mclust's models take the shapes of their scikit-learn layout (see
    ``gmmfast._covariance_models.sklearn_layout``): any positive-definite start, which
    the first M-step projects onto the model's constraint.

    scikit-learn replaces the user's objects (e.g. lists) by the validated arrays; code
    that reads them after fit sees arrays, so gmmfast does the same.
    """
    k = estimator.n_components
    if estimator.weights_init is not None:
        estimator.weights_init = check_weights(estimator.weights_init, k)
    if estimator.means_init is not None:
        estimator.means_init = check_means(estimator.means_init, k, n_features)
    if estimator.precisions_init is not None:
        estimator.precisions_init = check_precisions(
            estimator.precisions_init, sklearn_layout(estimator.covariance_type), k,
            n_features
        )
