"""Model files: a fitted ``GaussianMixture`` as a portable, pickle-free ``.npz`` archive.

Format version 1. The archive (``numpy.savez``, readable by any NumPy ≥ 1.x with
``allow_pickle=False``) holds one ``.npy`` member per array:

- ``metadata``: a 0-d unicode array, the JSON text described below;
- ``weights_``, ``means_``, ``covariances_``, ``precisions_``, ``precisions_cholesky_``: the
  fitted parameters, all float32 or all float64 (the training data's dtype);
- ``lower_bound_`` (0-d) and ``lower_bounds_`` (1-d), same dtype;
- ``feature_names_in_`` (1-d unicode), only if the model was fitted on named columns;
- ``weights_init``, ``means_init``, ``precisions_init`` (float64), only if they were given.

The JSON metadata: ``format`` (``"gmmfast.GaussianMixture"``), ``format_version`` (1),
``gmmfast_version``, ``params`` (the constructor parameters except the three ``*_init``
arrays; a ``random_state`` that is not an int is stored as null), ``fitted``
(``converged_``, ``n_iter_``, ``n_features_in_``), ``arrays`` (each member's dtype, shape
and SHA-256 of its bytes), ``extra`` (free JSON given by the writer, e.g. the command line's
column names) and ``checksum``, the SHA-256 of the canonical JSON of everything else.

Loading never unpickles and refuses, with :class:`ModelFileError`, anything that is not
exactly such a file: not a zip archive or truncated, a missing or unexpected member, a
format or version it does not know, an array whose bytes, dtype or shape differ from the
metadata, a checksum that does not match (an edited file), or parameters that are not a
valid mixture (shapes that disagree, non-finite values, weights that do not sum to one).
The checksum detects damage and casual edits, it is not a signature: a file from an
untrusted source is only as trustworthy as its arrays.
"""

import hashlib
import json
import os
import zipfile
from numbers import Integral, Real

import numpy as np

from gmmfast._compat import check_is_fitted
from gmmfast._mstep import COVARIANCE_TYPES

FORMAT = "gmmfast.GaussianMixture"
FORMAT_VERSION = 1

PARAMETER_ARRAYS = ("weights_", "means_", "covariances_", "precisions_",
                    "precisions_cholesky_")
INIT_ARRAYS = ("weights_init", "means_init", "precisions_init")
SCALAR_PARAMS = ("n_components", "covariance_type", "tol", "reg_covar", "max_iter",
                 "n_init", "init_params", "random_state", "warm_start", "verbose",
                 "verbose_interval", "n_threads")


class ModelFileError(ValueError):
    """A model file that gmmfast refuses to load: malformed, damaged, edited or unknown."""


# ----------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------


def save_model(model, path, extra=None):
    """Write the fitted ``GaussianMixture`` ``model`` to ``path`` (exactly that name).

    ``extra`` is any JSON-serialisable dict stored with the model (read it back with
    :func:`read_model`).
    """
    check_is_fitted(model)
    arrays = {name: np.asarray(getattr(model, name)) for name in PARAMETER_ARRAYS}
    dtype = arrays["means_"].dtype
    arrays["lower_bound_"] = np.asarray(model.lower_bound_, dtype=dtype)
    arrays["lower_bounds_"] = np.asarray(model.lower_bounds_, dtype=dtype).reshape(-1)
    if getattr(model, "feature_names_in_", None) is not None:
        arrays["feature_names_in_"] = np.asarray(model.feature_names_in_, dtype=str)
    params = model.get_params()
    for name in INIT_ARRAYS:
        if params[name] is not None:
            arrays[name] = np.asarray(params[name], dtype=np.float64)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gmmfast_version": _gmmfast_version(),
        "params": {name: _json_scalar(name, params[name]) for name in SCALAR_PARAMS},
        "fitted": {
            "converged_": bool(model.converged_),
            "n_iter_": int(model.n_iter_),
            "n_features_in_": int(model.n_features_in_),
        },
        "arrays": {name: _describe_array(a) for name, a in arrays.items()},
        "extra": {} if extra is None else extra,
    }
    metadata["checksum"] = _checksum(metadata)
    members = {"metadata": np.asarray(json.dumps(metadata, sort_keys=True)), **arrays}
    # An open file, so numpy does not append ".npz" to the name the user chose.
    with open(os.fspath(path), "wb") as f:
        np.savez(f, **members)


def _json_scalar(name, value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (Integral, np.integer)):
        return int(value)
    if isinstance(value, (Real, np.floating)):
        return float(value)
    if name == "random_state":
        return None  # a RandomState instance has no portable form
    raise TypeError(f"Cannot store the parameter {name}={value!r} in a model file")


def _describe_array(array):
    return {"dtype": array.dtype.str, "shape": list(array.shape),
            "sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()}


def _checksum(metadata):
    content = {key: value for key, value in metadata.items() if key != "checksum"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _gmmfast_version():
    from gmmfast import __version__

    return __version__


# ----------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------


def load(path):
    """Read a model written by :meth:`GaussianMixture.save`; returns the fitted model.

    Raises :class:`ModelFileError` (a ``ValueError``) for a file that is not a valid
    gmmfast model file of a known format version, and ``FileNotFoundError`` for a
    missing one. Never unpickles anything.
    """
    return read_model(path)[0]


def read_model(path):
    """(fitted GaussianMixture, metadata dict) from a model file; see :func:`load`."""
    path = os.fspath(path)
    members = _read_members(path)
    metadata = _parse_metadata(members.pop("metadata", None), path)
    arrays = _check_arrays(members, metadata, path)
    model = _build_model(metadata, arrays, path)
    return model, metadata


def _refuse(path, reason):
    return ModelFileError(f"{path}: not a valid gmmfast model file: {reason}")


def _read_members(path):
    """Every member of the archive as an array, read without pickle."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such model file: {path}")
    if not zipfile.is_zipfile(path):
        # Checked first, so np.load never reads anything but a zip of .npy members.
        raise _refuse(path, "it is not an .npz archive (or it is truncated)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _refuse(path, f"unreadable or truncated archive ({detail})") from None


def _parse_metadata(raw, path):
    if raw is None:
        raise _refuse(path, "the 'metadata' member is missing")
    if raw.dtype.kind != "U" or raw.shape != ():
        raise _refuse(path, "the 'metadata' member is not JSON text")
    try:
        metadata = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise _refuse(path, f"the metadata is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise _refuse(path, f"the metadata does not say format {FORMAT!r}")
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _refuse(path, f"unknown format_version {version!r}")
    if version != FORMAT_VERSION:
        newer = " (written by a newer gmmfast: upgrade gmmfast)" if version > FORMAT_VERSION \
            else ""
        raise _refuse(path, f"format_version {version} is not supported; this gmmfast "
                            f"reads format_version {FORMAT_VERSION}{newer}")
    for key, kind in (("params", dict), ("fitted", dict), ("arrays", dict),
                      ("extra", dict), ("checksum", str)):
        if not isinstance(metadata.get(key), kind):
            raise _refuse(path, f"the metadata has no valid {key!r} entry")
    if metadata["checksum"] != _checksum(metadata):
        raise _refuse(path, "checksum mismatch: the metadata was edited or damaged")
    return metadata


def _check_arrays(members, metadata, path):
    declared = metadata["arrays"]
    required = set(PARAMETER_ARRAYS) | {"lower_bound_", "lower_bounds_"}
    allowed = required | {"feature_names_in_"} | set(INIT_ARRAYS)
    if set(declared) - allowed:
        raise _refuse(path, f"unknown arrays {sorted(set(declared) - allowed)}")
    if required - set(declared):
        raise _refuse(path, f"missing arrays {sorted(required - set(declared))}")
    if set(members) != set(declared):
        extra = sorted(set(members) - set(declared))
        missing = sorted(set(declared) - set(members))
        raise _refuse(path, f"archive members do not match the metadata (unexpected "
                            f"{extra}, missing {missing})")
    for name, array in members.items():
        if _describe_array(array) != declared[name]:
            raise _refuse(path, f"array {name!r} differs from its description in the "
                                "metadata (edited or damaged)")
    return members


def _build_model(metadata, arrays, path):
    from gmmfast._gaussian_mixture import GaussianMixture

    params = dict(metadata["params"])
    fitted = metadata["fitted"]
    if set(params) != set(SCALAR_PARAMS):
        raise _refuse(path, "the metadata's params are not those of GaussianMixture")
    covariance_type = params["covariance_type"]
    if covariance_type not in COVARIANCE_TYPES:
        raise _refuse(path, f"unknown covariance_type {covariance_type!r}")
    for name in INIT_ARRAYS:
        params[name] = arrays.get(name)

    weights, means = arrays["weights_"], arrays["means_"]
    dtype = means.dtype
    if dtype not in (np.float32, np.float64) or means.ndim != 2:
        raise _refuse(path, "means_ must be a 2-d float32 or float64 array")
    n_components, n_features = means.shape
    expected = {
        "weights_": (n_components,),
        "covariances_": {"full": (n_components, n_features, n_features),
                         "tied": (n_features, n_features),
                         "diag": (n_components, n_features),
                         "spherical": (n_components,)}[covariance_type],
    }
    expected["precisions_"] = expected["precisions_cholesky_"] = expected["covariances_"]
    for name, shape in expected.items():
        if arrays[name].shape != shape or arrays[name].dtype != dtype:
            raise _refuse(path, f"{name} should be {np.dtype(dtype).name} of shape {shape} "
                                f"for {n_components} {covariance_type} components in "
                                f"{n_features} dimensions")
    for name in ("lower_bound_", "lower_bounds_"):
        if arrays[name].dtype != dtype:
            raise _refuse(path, f"{name} should be {np.dtype(dtype).name}")
    if arrays["lower_bound_"].shape != () or arrays["lower_bounds_"].ndim != 1:
        raise _refuse(path, "lower_bound_ must be a scalar and lower_bounds_ a 1-d array")
    if not all(np.all(np.isfinite(arrays[name])) for name in PARAMETER_ARRAYS):
        raise _refuse(path, "the parameters contain NaN or infinity")
    if np.any(weights < 0) or abs(float(weights.sum(dtype=np.float64)) - 1.0) > 1e-4:
        raise _refuse(path, "weights_ are not non-negative numbers summing to one")
    if params["n_components"] != n_components:
        raise _refuse(path, f"n_components={params['n_components']!r} but the arrays have "
                            f"{n_components} components")
    if fitted.get("n_features_in_") != n_features:
        raise _refuse(path, "n_features_in_ does not match the arrays")
    names = arrays.get("feature_names_in_")
    if names is not None and (names.dtype.kind != "U" or names.shape != (n_features,)):
        raise _refuse(path, "feature_names_in_ must be one string per feature")
    if not isinstance(fitted.get("converged_"), bool) or not isinstance(
            fitted.get("n_iter_"), int):
        raise _refuse(path, "converged_ / n_iter_ are missing or of the wrong type")

    try:
        model = GaussianMixture(**params)
    except TypeError as exc:
        raise _refuse(path, f"invalid parameters ({exc})") from None
    for name in PARAMETER_ARRAYS:
        setattr(model, name, arrays[name])
    model.converged_ = fitted["converged_"]
    model.n_iter_ = fitted["n_iter_"]
    model.lower_bound_ = arrays["lower_bound_"][()]
    model.lower_bounds_ = list(arrays["lower_bounds_"])
    model.n_features_in_ = n_features
    if names is not None:
        model.feature_names_in_ = np.asarray(names.tolist(), dtype=object)
    return model
