"""The checks of a model file's arrays: that they form one valid model of the file's kind.

The archive itself (its members, integrity checks and bounded reads) is
``gmmfast._model_file``'s; building the estimator is ``gmmfast._io``'s. Between the two,
:func:`read_checked_model` refuses, with ``gmmfast._model_file.ModelFileError``, parameters
that are not the kind's, arrays that are not one valid mixture: shapes or dtypes that
disagree, non-finite values, weights that do not sum to one, a ``precisions_cholesky_``
that is not upper triangular with a positive diagonal or disagrees with ``covariances_`` or
``precisions_``; for a Bayesian mixture also concentrations, mean precisions or degrees of
freedom that are not positive (degrees of freedom above n_features − 1), weights that are
not those of the concentrations, and priors that are not valid; for a ``GaussianMixture``
with an mclust covariance name, a decomposition that is not finite and positive, shapes
whose product is not 1, orientations that are not orthogonal, covariances that are not
``λ_k D_k A_k D_kᵀ`` of the decomposition, or a decomposition that breaks the model's
constraints (equal volumes, shapes or orientations; spherical shapes); for a
``GaussianMixture`` fitted with a conjugate prior, hyperparameters that are not a valid prior
of its model, or a ``prior`` parameter that is not "default" or a dict of the prior's
keys with finite values; for a ``GaussianMixture`` saved in the middle of a stream of ``partial_fit`` calls, running
statistics of the wrong shapes or dtypes for its components, features and covariance type,
non-finite, with negative counts or scatter diagonals, a weight that is not positive or a
batch count below one.

No estimator is imported here, so that the command line's predict and sample read a model
without importing scikit-learn; the constructor's constraints on the parameters are checked
when the estimator is built.
"""

from typing import NamedTuple, Optional

import numpy as np

from gmmfast._covariance_models import COVARIANCE_MODELS, compose, sklearn_layout
from gmmfast._engine import Statistics, StreamState
from gmmfast._model_file import (
    DECOMPOSITION_ARRAYS,
    KINDS,
    MIXTURE_ARRAYS,
    PARAMS_AFTER_VERSION_1,
    POOLED_STREAM_VERSION,
    PRIOR_ARRAYS,
    PRIOR_KEYS,
    PRIOR_VERSION,
    STREAM_STATISTICS,
    read_model_file,
    refuse,
)
from gmmfast._mstep import kernel_form
from gmmfast._params import is_symmetric_positive_definite
from gmmfast._prior import check_prior_spec, conjugate_prior
from gmmfast._variational import PRIOR_TYPES, dirichlet_process_weights

__all__ = ["CheckedModel", "read_checked_model"]


class CheckedModel(NamedTuple):
    """A model file whose arrays form one valid model of its ``kind``: the constructor's
    ``params`` (array-valued ones included, None where none was given), the
    ``arrays`` and ``metadata`` as read, whether it holds an mclust ``decomposition``,
    the running ``stream`` of online EM (a ``StreamState``) or None, and the hyperparameters
    of the conjugate ``prior`` it was fitted with (its ``prior_``) or None."""

    kind: str
    params: dict
    arrays: dict
    metadata: dict
    decomposition: bool = False
    stream: Optional[StreamState] = None
    prior: Optional[dict] = None


def read_checked_model(path):
    """The :class:`CheckedModel` of the model file ``path``; see the module's docstring."""
    kind, metadata, arrays = read_model_file(path)
    return _CHECKS[kind](metadata, arrays, KINDS[kind], path)


def _checked_gaussian_mixture(metadata, arrays, kind, path):
    params, covariance_type = _checked_params(metadata, kind, path)
    # The bound is in the data's dtype, as scikit-learn's.
    n_features = _check_mixture(arrays, covariance_type, params, arrays["means_"].dtype,
                                path)
    _check_fitted(metadata["fitted"], kind, n_features, path)
    mclust = _check_mclust_model(arrays, covariance_type, metadata["fitted"], path)
    stream = _stream_state(arrays, covariance_type, metadata["format_version"], path)
    prior = _fitted_prior(arrays, covariance_type, path)
    params.update(_array_params(arrays, kind, path))
    return CheckedModel("GaussianMixture", params, arrays, metadata, mclust, stream, prior)


def _checked_bayesian_gaussian_mixture(metadata, arrays, kind, path):
    params, covariance_type = _checked_params(metadata, kind, path)
    if params["weight_concentration_prior_type"] not in PRIOR_TYPES:
        raise refuse(path, "unknown weight_concentration_prior_type "
                           f"{params['weight_concentration_prior_type']!r}")
    # The bound is a float64 sum over the rows whatever the data's dtype.
    n_features = _check_mixture(arrays, covariance_type, params, np.float64, path)
    fitted = metadata["fitted"]
    _check_fitted(fitted, kind, n_features, path)
    _check_posterior(arrays, covariance_type, params["weight_concentration_prior_type"],
                     path)
    _check_priors(arrays, fitted, covariance_type, path)
    params.update(_array_params(arrays, kind, path))
    return CheckedModel("BayesianGaussianMixture", params, arrays, metadata)


_CHECKS = {"GaussianMixture": _checked_gaussian_mixture,
           "BayesianGaussianMixture": _checked_bayesian_gaussian_mixture}


def _stream_state(arrays, covariance_type, format_version, path):
    """The running state of online EM saved with the model (a ``StreamState``), or None:
    statistics in the form of ``covariance_type``'s kernels, finite, with non-negative
    counts and scatter diagonals; a positive weight and at least one batch."""
    if "stream_nk" not in arrays:
        return None
    n_components, n_features = arrays["means_"].shape
    vectors = (n_components, n_features)
    full = kernel_form(sklearn_layout(covariance_type)) == "full"
    # Tied statistics may be pooled: the components' scatters summed, (1, D, D).
    pooled = (sklearn_layout(covariance_type) == "tied"
              and format_version >= POOLED_STREAM_VERSION
              and np.shape(arrays.get("stream_scatter")) == (1, n_features, n_features))
    scatter = (1 if pooled else n_components, n_features, n_features) if full else vectors
    _check_arrays(arrays, {"stream_nk": (n_components,), "stream_sums": vectors,
                           "stream_scatter": scatter, "stream_shifts": vectors,
                           "stream_weight": ()}, np.float64,
                  f"for the running statistics of {n_components} {covariance_type} "
                  f"components in {n_features} dimensions", path)
    n_batches = arrays["stream_n_batches"]
    if n_batches.dtype != np.int64 or n_batches.shape != ():
        raise refuse(path, "stream_n_batches should be an int64 number of batches")
    statistics = Statistics(*(arrays[name] for name in STREAM_STATISTICS))
    if not all(np.all(np.isfinite(a)) for a in (*statistics, arrays["stream_weight"])):
        raise refuse(path, "the running statistics of online EM contain NaN or infinity")
    diagonal = (np.diagonal(statistics.scatter, axis1=1, axis2=2) if scatter != vectors
                else statistics.scatter)
    if np.any(statistics.nk < 0) or np.any(diagonal < 0):
        raise refuse(path, "the running statistics of online EM have negative counts "
                           "(stream_nk) or scatter diagonals (stream_scatter)")
    weight, n_batches = float(arrays["stream_weight"]), int(n_batches)
    if not weight > 0:
        raise refuse(path, f"stream_weight={weight!r} is not positive")
    if n_batches < 1:
        raise refuse(path, f"stream_n_batches={n_batches} is not a positive count")
    return StreamState(statistics, weight, n_batches)



def _fitted_prior(arrays, covariance_type, path):
    """The hyperparameters of the conjugate prior the model was fitted with (its
    ``prior_``), or None: float64 arrays of the shapes of its model that form a valid prior
    (the checks of the prior's own construction)."""
    if PRIOR_ARRAYS[0] not in arrays:
        return None
    n_components, n_features = arrays["means_"].shape
    given = {key: arrays[name] for key, name in zip(PRIOR_KEYS, PRIOR_ARRAYS)}
    if any(value.dtype != np.float64 for value in given.values()):
        raise refuse(path, f"the fitted prior's arrays {PRIOR_ARRAYS} must be float64")
    scale = given["scale"]
    given = {key: value.item() if value.ndim == 0 else value for key, value in given.items()}
    try:
        prior = conjugate_prior(given, covariance_type, n_components, n_features,
                                moments=None)
    except ValueError as exc:
        raise refuse(path, f"the prior it was fitted with is not valid: {exc}") from None
    if np.shape(prior.scale) != scale.shape:
        raise refuse(path, f"prior_scale_ has shape {scale.shape}; a {covariance_type} "
                           f"model's has shape {np.shape(prior.scale)}")
    return prior.hyperparameters()


def _prior_param(prior, path):
    """The ``prior`` parameter as the JSON holds it: None, "default", or a dict of the
    prior's keys whose values are finite numbers or arrays of them."""
    if prior is None or prior == "default":
        return prior
    try:
        spec = check_prior_spec(prior)
        spec = {key: np.asarray(value, dtype=np.float64) for key, value in spec.items()}
    except (TypeError, ValueError) as exc:
        raise refuse(path, f"the parameter prior={prior!r} is not valid ({exc})") from None
    if not all(np.all(np.isfinite(value)) for value in spec.values()):
        raise refuse(path, f"the parameter prior={prior!r} holds NaN or infinity")
    return {key: value.item() if value.ndim == 0 else value for key, value in spec.items()}


def _array_params(arrays, kind, path):
    """The constructor parameters stored as arrays (None where none was given); a number
    (a spherical ``covariance_prior``) is stored 0-d and comes back as a float."""
    params = {}
    for name in kind.array_params:
        given = arrays.get(name)
        if given is not None:
            if given.dtype != np.float64 or not np.all(np.isfinite(given)):
                raise refuse(path, f"the parameter {name} is not an array of finite "
                                   "float64 numbers")
            given = given.item() if given.ndim == 0 else given
        params[name] = given
    return params


# ----------------------------------------------------------------------------------------
# checks every kind shares
# ----------------------------------------------------------------------------------------


def _checked_params(metadata, kind, path):
    """The JSON parameters, which must be exactly the kind's, and the covariance type."""
    params = dict(metadata["params"])
    if metadata["format_version"] == 1:
        params = {**PARAMS_AFTER_VERSION_1, **params}
    # The prior is the one parameter stored only when it is given.
    has_prior = kind.prior_arrays and metadata["format_version"] >= PRIOR_VERSION
    prior = params.pop("prior", None) if has_prior else None
    if set(params) != set(kind.scalar_params):
        raise refuse(path, "the metadata's params are not those of the model kind")
    covariance_type = params["covariance_type"]
    if covariance_type not in kind.covariance_types:
        raise refuse(path, f"unknown covariance_type {covariance_type!r}")
    for name, value in params.items():
        if isinstance(value, float) and not np.isfinite(value):
            raise refuse(path, f"the parameter {name}={value!r} is not a finite number")
    seed = params["random_state"]
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool)
                                 and 0 <= seed < 2**32):
        raise refuse(path, f"random_state={seed!r} is not None or an int in [0, 2**32)")
    if kind.prior_arrays:
        params["prior"] = _prior_param(prior, path)
    return params, covariance_type


def _check_mixture(arrays, covariance_type, params, bound_dtype, path):
    """The arrays of a Gaussian mixture form one (with lower bounds of ``bound_dtype``):
    returns the number of features."""
    _check_shapes(arrays, covariance_type, path)
    n_components, n_features = arrays["means_"].shape
    if not all(np.all(np.isfinite(arrays[name])) for name in MIXTURE_ARRAYS):
        raise refuse(path, "the parameters contain NaN or infinity")
    weights = arrays["weights_"]
    if np.any(weights < 0) or abs(float(weights.sum(dtype=np.float64)) - 1.0) > 1e-4:
        raise refuse(path, "weights_ are not non-negative numbers summing to one")
    _check_covariances(arrays, covariance_type, path)
    if params["n_components"] != n_components:
        raise refuse(path, f"n_components={params['n_components']!r} but the arrays have "
                           f"{n_components} components")
    _check_bounds(arrays, bound_dtype, path)
    names = arrays.get("feature_names_in_")
    if names is not None and (names.dtype.kind != "U" or names.shape != (n_features,)):
        raise refuse(path, "feature_names_in_ must be one string per feature")
    return n_features


def _check_shapes(arrays, covariance_type, path):
    means = arrays["means_"]
    dtype = means.dtype
    if dtype not in (np.float32, np.float64) or means.ndim != 2 or 0 in means.shape:
        raise refuse(path, "means_ must be a non-empty 2-d float32 or float64 array")
    n_components, n_features = means.shape
    covariances = _covariance_shape(covariance_type, n_components, n_features)
    _check_arrays(arrays, {"weights_": (n_components,), "covariances_": covariances,
                           "precisions_": covariances, "precisions_cholesky_": covariances},
                  dtype, f"for {n_components} {covariance_type} components in "
                         f"{n_features} dimensions", path)


def _covariance_shape(covariance_type, n_components, n_features):
    return {"full": (n_components, n_features, n_features),
            "tied": (n_features, n_features),
            "diag": (n_components, n_features),
            "spherical": (n_components,)}[sklearn_layout(covariance_type)]


def _check_arrays(arrays, shapes, dtype, context, path):
    """Each array named in ``shapes`` has that shape and ``dtype``."""
    for name, shape in shapes.items():
        if arrays[name].shape != shape or arrays[name].dtype != dtype:
            raise refuse(path, f"{name} should be {np.dtype(dtype).name} of shape {shape} "
                               f"{context}")


def _check_bounds(arrays, dtype, path):
    bound, bounds = arrays["lower_bound_"], arrays["lower_bounds_"]
    if bound.shape != () or bounds.ndim != 1:
        raise refuse(path, "lower_bound_ must be a scalar and lower_bounds_ a 1-d array")
    for name in ("lower_bound_", "lower_bounds_"):
        if arrays[name].dtype != dtype:
            raise refuse(path, f"{name} should be {np.dtype(dtype).name}")
    # -inf is the bound of a model that ran no iteration (max_iter=0).
    if np.isnan(bound) or bound == np.inf or not np.all(np.isfinite(bounds)):
        raise refuse(path, "lower_bound_ or lower_bounds_ is NaN or infinite")


def _check_covariances(arrays, covariance_type, path):
    """Refuse factors and matrices that do not describe one and the same mixture.

    Scoring uses ``precisions_cholesky_`` (U), sampling ``covariances_`` (Σ): U must be
    a valid factor (upper triangular, positive diagonal) with Uᵀ Σ U = I and
    U Uᵀ = ``precisions_``. Each residual is compared entrywise with a bound of the
    rounding errors that does not depend on the conditioning: for U Uᵀ, the product taken
    in absolute values; for Uᵀ Σ U, |Uᵀ| B |U| with B_ij = √(Σ_ii Σ_jj), which bounds
    |L| |Lᵀ| for the Cholesky factor L of Σ (Cauchy–Schwarz) that U was computed from:
    |Uᵀ| |Σ| |U| alone is too tight where the products of L and Lᵀ cancel in Σ. Fitted models
    are within 2 ε of these bounds, and the tolerance leaves room for the dimension.
    """
    layout = sklearn_layout(covariance_type)
    cholesky, covariances, precisions = (np.asarray(arrays[name], np.float64) for name in
                                         ("precisions_cholesky_", "covariances_",
                                          "precisions_"))
    if layout in ("diag", "spherical"):
        if np.any(cholesky <= 0) or np.any(covariances <= 0):
            raise refuse(path, "covariances_ and precisions_cholesky_ must be positive")
        inverse_bound = covariances * cholesky**2
        inverse_error = inverse_bound - 1
        product = product_bound = cholesky**2
    else:
        if layout == "tied":
            cholesky, covariances, precisions = cholesky[None], covariances[None], \
                precisions[None]
        if np.any(np.tril(cholesky, -1) != 0):
            raise refuse(path, "precisions_cholesky_ must be upper triangular")
        if np.any(np.diagonal(cholesky, axis1=1, axis2=2) <= 0):
            raise refuse(path, "precisions_cholesky_ must have a positive diagonal")
        transposed = np.swapaxes(cholesky, 1, 2)
        inverse_error = transposed @ covariances @ cholesky - np.eye(cholesky.shape[1])
        scale = np.sqrt(np.abs(np.diagonal(covariances, axis1=1, axis2=2)))
        inverse_bound = (np.abs(transposed) @ (scale[:, :, None] * scale[:, None, :])
                         @ np.abs(cholesky))
        product = cholesky @ transposed
        product_bound = np.abs(cholesky) @ np.abs(transposed)
    n_features = arrays["means_"].shape[1]
    tolerance = 4 * (n_features + 2) * np.finfo(arrays["means_"].dtype).eps
    if np.any(np.abs(inverse_error) > tolerance * inverse_bound):
        raise refuse(path, "covariances_ are not the inverse of the precisions "
                           "precisions_cholesky_ gives")
    if np.any(np.abs(precisions - product) > tolerance * product_bound):
        raise refuse(path, "precisions_ differ from precisions_cholesky_ times its "
                           "transpose")


def _check_fitted(fitted, kind, n_features, path):
    if set(fitted) != set(kind.fitted_scalars):
        raise refuse(path, f"the metadata's fitted entries should be "
                           f"{', '.join(kind.fitted_scalars)}")
    if fitted["n_features_in_"] != n_features:
        raise refuse(path, "n_features_in_ does not match the arrays")
    n_iter = fitted["n_iter_"]
    if not isinstance(fitted["converged_"], bool) or not isinstance(n_iter, int) \
            or isinstance(n_iter, bool):
        raise refuse(path, "converged_ / n_iter_ are missing or of the wrong type")
    if n_iter < 0:
        raise refuse(path, f"n_iter_={n_iter} is negative")


# ----------------------------------------------------------------------------------------
# checks of an mclust model's decomposition
# ----------------------------------------------------------------------------------------


def _check_mclust_model(arrays, covariance_type, fitted, path):
    """Whether the model is one of mclust's names, which hold a decomposition; if so, the
    decomposition is checked: its members, their values (:func:`_check_decomposition`)
    and the model's constraints (:func:`_check_constraints`)."""
    names = _decomposition_names(covariance_type)
    present = tuple(name for name in DECOMPOSITION_ARRAYS if name in arrays)
    if present != names:
        holds = ", ".join(names) if names else "no decomposition"
        raise refuse(path, f"{covariance_type!r} models hold {holds}; the file has "
                           f"{', '.join(present) if present else 'none'}")
    if not names:
        return False
    n_components, n_features = arrays["means_"].shape
    shapes = {"volumes_": (n_components,), "shapes_": (n_components, n_features),
              "orientations_": (n_components, n_features, n_features)}
    _check_arrays(arrays, {name: shapes[name] for name in names}, arrays["means_"].dtype,
                  f"for {n_components} {covariance_type} components in {n_features} "
                  "dimensions", path)
    if not all(np.all(np.isfinite(arrays[name])) for name in names):
        raise refuse(path, f"{', '.join(names)} contain NaN or infinity")
    if np.any(arrays["volumes_"] <= 0) or np.any(arrays["shapes_"] <= 0):
        raise refuse(path, "volumes_ and shapes_ must be positive")
    _check_decomposition(arrays, covariance_type, path)
    if not _holds_given_start(arrays, fitted):
        _check_constraints(arrays, covariance_type, path)
    return True


def _decomposition_names(covariance_type):
    """The decomposition members of a model: none for a scikit-learn name, all but
    ``orientations_`` for the six diagonal models."""
    if covariance_type not in COVARIANCE_MODELS:
        return ()
    if kernel_form(sklearn_layout(covariance_type)) == "diag":
        return DECOMPOSITION_ARRAYS[:2]
    return DECOMPOSITION_ARRAYS


def _decomposition_tolerance(arrays):
    """The relative rounding allowed in the checks of a decomposition, as for the
    covariances (see :func:`_check_covariances`)."""
    return 4 * (arrays["means_"].shape[1] + 2) * np.finfo(arrays["means_"].dtype).eps


def _check_decomposition(arrays, covariance_type, path):
    """Refuse a decomposition ``Σ_k = λ_k D_k A_k D_kᵀ`` that is not one of
    ``covariances_``: the shapes must multiply to 1, the orientations be orthogonal and
    the covariances they compose equal the stored ones.

    The decompositions of VVV and EEE come from a symmetric eigensolver, which is backward
    stable normwise only: each component's error is bounded relative to its largest
    eigenvalue λ_k max_j a_kj. Each log-shape's rounding is relative to its size.
    """
    volumes, shapes = (np.asarray(arrays[name], np.float64)
                       for name in ("volumes_", "shapes_"))
    orientations = arrays.get("orientations_")
    tolerance = _decomposition_tolerance(arrays)
    log_shapes = np.log(shapes)
    if not np.all(np.abs(log_shapes.sum(axis=1))
                  <= tolerance * (1 + np.abs(log_shapes)).sum(axis=1)):
        raise refuse(path, "shapes_ do not multiply to 1 in every component")
    if orientations is not None:
        orientations = np.asarray(orientations, np.float64)
        gram = np.swapaxes(orientations, 1, 2) @ orientations
        if not np.all(np.abs(gram - np.eye(shapes.shape[1])) <= tolerance):
            raise refuse(path, "orientations_ are not orthogonal matrices")
    with np.errstate(over="ignore", invalid="ignore"):
        composed = compose(volumes, shapes, orientations)
        largest = (volumes[:, None] * shapes).max(axis=1)
    stored = _per_component(np.asarray(arrays["covariances_"], np.float64),
                            sklearn_layout(covariance_type), shapes.shape)
    scale = largest.reshape((-1,) + (1,) * (stored.ndim - 1))
    if not np.all(np.abs(stored - composed) <= tolerance * scale):
        raise refuse(path, "covariances_ differ from the volumes_, shapes_ and "
                           "orientations_ they decompose into")


def _per_component(covariances, layout, shape):
    """Covariances of a scikit-learn ``layout`` as their decomposition composes them:
    (K, D) diagonals for spherical and diag, (K, D, D) matrices for tied and full."""
    n_components, n_features = shape
    if layout == "spherical":
        return np.repeat(covariances[:, None], n_features, axis=1)
    if layout == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features))
    return covariances


def _holds_given_start(arrays, fitted):
    """Whether the model holds the user's ``precisions_init`` as given: no EM iteration
    ran (``max_iter=0``), so its covariances need not meet the model's constraints."""
    return fitted["n_iter_"] == 0 and "precisions_init" in arrays


def _check_constraints(arrays, covariance_type, path):
    """The letters of an mclust name hold: E, the volumes (shapes, orientations) are equal
    across components; I as a shape, the shapes are 1."""
    tolerance = _decomposition_tolerance(arrays)
    for letter, name in zip(covariance_type, DECOMPOSITION_ARRAYS):
        if name not in arrays:  # an I orientation: the model has no orientations_
            continue
        values = np.asarray(arrays[name], np.float64)
        # Volumes and shapes are positive: relative; orientations have entries ≤ 1.
        scale = 1.0 if name == "orientations_" else values[0]
        if letter == "E" and not np.all(np.abs(values - values[0]) <= tolerance * scale):
            raise refuse(path, f"{name} differ across components, which "
                               f"{covariance_type} requires to be equal")
        if letter == "I" and name == "shapes_" and not np.all(np.abs(values - 1)
                                                              <= tolerance):
            raise refuse(path, f"shapes_ are not all 1, which {covariance_type} (spherical "
                               f"components) requires")


# ----------------------------------------------------------------------------------------
# checks of a Bayesian mixture
# ----------------------------------------------------------------------------------------


def _check_posterior(arrays, covariance_type, prior_type, path):
    """The variational posterior: positive concentrations, mean precisions and degrees of
    freedom (above n_features − 1, where the Wishart's expectations are finite), and the
    weights its concentrations give."""
    means = arrays["means_"]
    n_components, n_features = means.shape
    concentration = (2, n_components) if prior_type == "dirichlet_process" \
        else (n_components,)
    dof = () if covariance_type == "tied" else (n_components,)
    _check_arrays(arrays, {"weight_concentration_": concentration,
                           "mean_precision_": (n_components,), "degrees_of_freedom_": dof},
                  means.dtype, f"for {n_components} {covariance_type} components with a "
                               f"{prior_type} prior", path)
    for name, low in (("weight_concentration_", 0.0), ("mean_precision_", 0.0),
                      ("degrees_of_freedom_", n_features - 1.0)):
        values = arrays[name]
        if not (np.all(np.isfinite(values)) and np.all(values > low)):
            raise refuse(path, f"{name} must be finite numbers above {low:g}")
    _check_weights_of_concentration(arrays, prior_type, path)


def _check_weights_of_concentration(arrays, prior_type, path):
    """Scoring uses the concentrations, sampling ``weights_``: they must be one mixture.

    The weights are recomputed from the stored concentrations in float64 and compared with
    a relative tolerance of a few roundings per component (the stick-breaking weights are
    products over the components); ``tiny`` absorbs weights that underflowed.
    """
    concentration = np.asarray(arrays["weight_concentration_"], dtype=np.float64)
    if prior_type == "dirichlet_process":
        expected = dirichlet_process_weights(concentration)
    else:
        expected = concentration / concentration.sum()
    weights = arrays["weights_"]
    info = np.finfo(weights.dtype)
    tolerance = 4 * (len(weights) + 2) * info.eps
    if np.any(np.abs(weights - expected) > tolerance * expected + info.tiny):
        raise refuse(path, "weights_ are not the expected weights of "
                           "weight_concentration_")


def _check_priors(arrays, fitted, covariance_type, path):
    """The resolved priors: positive finite numbers, degrees of freedom above
    n_features − 1, a finite mean and a covariance prior of the type's shape that is
    positive (definite)."""
    n_features = arrays["means_"].shape[1]
    for name, low in (("weight_concentration_prior_", 0.0), ("mean_precision_prior_", 0.0),
                      ("degrees_of_freedom_prior_", n_features - 1.0)):
        value = fitted[name]
        if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                and np.isfinite(value) and value > low):
            raise refuse(path, f"{name}={value!r} is not a finite number above {low:g}")
    # A prior the user gave keeps its own dtype, whatever the data's.
    mean_prior = arrays["mean_prior_"]
    _check_float_array(mean_prior, "mean_prior_", (n_features,),
                       f"for {n_features} features", path)
    if not np.all(np.isfinite(mean_prior)):
        raise refuse(path, "mean_prior_ contains NaN or infinity")
    prior = arrays["covariance_prior_"]
    shape = {"full": (n_features, n_features), "tied": (n_features, n_features),
             "diag": (n_features,), "spherical": ()}[covariance_type]
    _check_float_array(prior, "covariance_prior_", shape,
                       f"for {covariance_type} covariances in {n_features} dimensions", path)
    if covariance_type in ("full", "tied"):
        valid = np.all(np.isfinite(prior)) and is_symmetric_positive_definite(prior)
    else:
        valid = np.all(np.isfinite(prior)) and np.all(prior > 0)
    if not valid:
        kind = "positive" if covariance_type in ("diag", "spherical") \
            else "symmetric positive definite"
        raise refuse(path, f"covariance_prior_ is not finite and {kind}")


def _check_float_array(array, name, shape, context, path):
    if array.dtype not in (np.float32, np.float64) or array.shape != shape:
        raise refuse(path, f"{name} should be float32 or float64 of shape {shape} {context}")
