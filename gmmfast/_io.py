"""``gmmfast.load``: a model file back into the fitted estimator it was written from.

The archive itself (its members, integrity checks and bounded reads) is
``gmmfast._model_file``'s and the checks that its arrays form one valid model of the
file's kind are ``gmmfast._model_checks``'; this module builds the estimator, refusing with
:class:`ModelFileError` parameters outside the estimator's constraints.
"""

import numpy as np

from gmmfast._bayesian_mixture import BayesianGaussianMixture
from gmmfast._compat import validate_params
from gmmfast._gaussian_mixture import GaussianMixture, resume_stream
from gmmfast._model_checks import read_checked_model
from gmmfast._model_file import (
    DECOMPOSITION_ARRAYS,
    MIXTURE_ARRAYS,
    ModelFileError,
    refuse,
    save_model,
)

__all__ = ["ModelFileError", "load", "read_model", "save_model"]


def load(path):
    """Read a model written by ``save`` (:class:`GaussianMixture` or
    :class:`BayesianGaussianMixture`); returns the fitted model.

    Raises :class:`ModelFileError` (a ``ValueError``) for a file that is not a valid
    gmmfast model file of a known format version, ``FileNotFoundError`` for a missing
    one (and ``PermissionError`` for one that cannot be read). Never unpickles anything,
    never reads more than the file holds.
    """
    return read_model(path)[0]


def read_model(path):
    """(fitted estimator, metadata dict) from a model file; see :func:`load`."""
    model_file = read_checked_model(path)
    return _BUILDERS[model_file.kind](model_file, path), model_file.metadata


# ----------------------------------------------------------------------------------------
# the estimators
# ----------------------------------------------------------------------------------------


def _gaussian_mixture(model_file, path):
    model = _estimator(GaussianMixture, model_file.params, path)
    _set_fitted(model, model_file.arrays, model_file.metadata["fitted"], MIXTURE_ARRAYS)
    if model_file.decomposition:  # orientations_ is None for a diagonal model, as after fit
        for name in DECOMPOSITION_ARRAYS:
            setattr(model, name, model_file.arrays.get(name))
    model.prior_ = model_file.prior
    if model_file.stream is not None:
        resume_stream(model, model_file.stream)
    return model


def _bayesian_gaussian_mixture(model_file, path):
    model = _estimator(BayesianGaussianMixture, model_file.params, path)
    fitted = model_file.metadata["fitted"]
    _set_fitted(model, model_file.arrays, fitted,
                MIXTURE_ARRAYS + ("mean_precision_", "mean_prior_"))
    _set_posterior_and_priors(model, model_file.arrays, fitted)
    return model


def _set_posterior_and_priors(model, arrays, fitted):
    """A Bayesian mixture's attributes in the estimator's own types: a pair of arrays for
    the Dirichlet process's concentrations, a scalar for tied degrees of freedom and for a
    spherical covariance prior."""
    concentration = arrays["weight_concentration_"]
    model.weight_concentration_ = (tuple(concentration) if concentration.ndim == 2
                                   else concentration)
    dof = arrays["degrees_of_freedom_"]
    model.degrees_of_freedom_ = dof[()] if dof.ndim == 0 else dof
    prior = arrays["covariance_prior_"]
    model.covariance_prior_ = prior.item() if prior.ndim == 0 else prior
    for name in ("weight_concentration_prior_", "mean_precision_prior_",
                 "degrees_of_freedom_prior_"):
        setattr(model, name, fitted[name])


_BUILDERS = {"GaussianMixture": _gaussian_mixture,
             "BayesianGaussianMixture": _bayesian_gaussian_mixture}


def _estimator(cls, params, path):
    """``cls(**params)``, its parameters checked against the constructor's constraints."""
    model = cls(**params)
    try:
        validate_params(model)
    except ValueError as exc:  # InvalidParameterError, with scikit-learn's message
        raise refuse(path, f"invalid parameters ({exc})") from None
    return model


def _set_fitted(model, arrays, fitted, names):
    """The fitted attributes every kind shares, and the arrays ``names`` as they are."""
    for name in names:
        setattr(model, name, arrays[name])
    model.converged_ = fitted["converged_"]
    model.n_iter_ = fitted["n_iter_"]
    model.lower_bound_ = arrays["lower_bound_"][()]
    model.lower_bounds_ = list(arrays["lower_bounds_"])
    model.n_features_in_ = fitted["n_features_in_"]
    names = arrays.get("feature_names_in_")
    if names is not None:
        model.feature_names_in_ = np.asarray(names.tolist(), dtype=object)
