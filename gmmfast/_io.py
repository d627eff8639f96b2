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

Loading never unpickles, never reads more than the file holds (every member is stored
uncompressed, as ``numpy.savez`` writes it, and its size is checked against its ``.npy``
header and the metadata before it is read) and refuses, with :class:`ModelFileError`,
anything that is not exactly such a file: not a regular file, not a zip archive or
truncated, a missing, unexpected, compressed or encrypted member, a format or version it
does not know, an array whose bytes, dtype or shape differ from the metadata, a checksum
that does not match (an edited file), parameters outside the estimator's constraints, or
arrays that are not one valid mixture (shapes that disagree, non-finite values, weights
that do not sum to one, a ``precisions_cholesky_`` that is not upper triangular with a
positive diagonal or disagrees with ``covariances_`` or ``precisions_``). The checksum
detects damage and casual edits, it is not a signature: a file from an untrusted source is
only as trustworthy as its arrays.
"""

import contextlib
import hashlib
import json
import os
import secrets
import stat
import struct
import zipfile
from numbers import Integral, Real

import numpy as np

from gmmfast._compat import validate_params, check_is_fitted
from gmmfast._files import (
    error_summary,
    file_size,
    format_bytes,
    npy_data_size,
    open_regular_file,
    read_npy_data,
    read_npy_header,
)
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
    write_atomically(path, lambda f: np.savez(f, **members))


def write_atomically(path, write):
    """Call ``write(f)`` on a new file that replaces ``path`` only once it is complete.

    The file is written beside ``path`` (same file system, so the final ``os.replace`` is
    atomic) and flushed to disk first: an error, a full disk, Ctrl-C or a crash leaves
    either the previous file or the new one, never a partial file, and no temporary file.
    A symlink at ``path`` is followed; an existing file's permissions are kept.
    """
    target = os.path.realpath(os.fspath(path))
    folder, name = os.path.split(target)
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    # Mode 0o666 so the umask applies as it does to open(path, "w").
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:  # name the file the caller asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from None
    try:
        with os.fdopen(descriptor, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(target):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(folder)


def _sync_folder(folder):
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


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
    gmmfast model file of a known format version, ``FileNotFoundError`` for a missing
    one (and ``PermissionError`` for one that cannot be read). Never unpickles anything,
    never reads more than the file holds.
    """
    return read_model(path)[0]


def read_model(path):
    """(fitted GaussianMixture, metadata dict) from a model file; see :func:`load`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such model file: {path}")
    with open_regular_file(path, lambda reason: _refuse(path, reason)) as f:
        try:
            metadata, arrays = _read_archive(f, path)
        except ModelFileError:
            raise
        except _ARCHIVE_ERRORS as exc:
            raise _refuse(path, f"unreadable or damaged archive ({error_summary(exc)})") \
                from None
    model = _build_model(metadata, arrays, path)
    return model, metadata


# What the zipfile module raises, besides BadZipFile, for a damaged archive: a zip feature
# it does not implement, offsets before the start of the file (OSError from seek) or past
# its end, undecodable member names.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
                   NotImplementedError, struct.error, OverflowError, KeyError)

# The JSON metadata is a few kB (the command line adds the column names); this bound
# keeps a damaged size field from making load read or parse gigabytes of text.
MAX_METADATA_BYTES = 64 * 2**20
_ZIP_MAGIC = b"PK\x03\x04"
_SNIFF_BYTES = 2**16


def _refuse(path, reason):
    return ModelFileError(f"{path}: not a valid gmmfast model file: {reason}")


def _read_archive(f, path):
    """The metadata and the arrays, each member's size checked before it is read."""
    start = f.read(_SNIFF_BYTES)
    if not start.startswith(_ZIP_MAGIC):
        raise _refuse(path, _not_a_zip(start))
    f.seek(0)
    try:
        archive = zipfile.ZipFile(f)
    except zipfile.BadZipFile:
        raise _refuse(path, "the archive is truncated or damaged (its zip directory, at "
                            "the end of the file, is missing)") from None
    with archive:
        members = _list_members(archive, file_size(f), path)
        if "metadata" not in members:
            raise _refuse(path, "the 'metadata' member is missing")
        metadata = _parse_metadata(_read_metadata_text(archive, members["metadata"], path),
                                   path)
        _check_member_names(members, metadata, path)
        arrays = {name: _read_array(archive, info, metadata["arrays"][name], path)
                  for name, info in members.items() if name != "metadata"}
    return metadata, arrays


def _not_a_zip(start):
    """Why a file that does not begin with a zip header is refused, from its first bytes."""
    if start.startswith(b"\x93NUMPY"):
        return "it is a single .npy array, not an .npz archive"
    if _ZIP_MAGIC in start:
        return "bytes were added before the zip archive"
    return "it is not an .npz archive (not a zip file)"


def _list_members(archive, size, path):
    """``{name without .npy: ZipInfo}``, refusing what numpy.savez never writes."""
    members = {}
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            raise _refuse(path, f"unexpected member {name!r} (every member is an .npy array)")
        if name[:-4] in members:
            raise _refuse(path, f"the member {name!r} appears twice")
        if info.flag_bits & 0x1:
            raise _refuse(path, f"the member {name!r} is encrypted")
        # Stored members never expand: reading one allocates no more than the file holds.
        if info.compress_type != zipfile.ZIP_STORED:
            raise _refuse(path, f"the member {name!r} is compressed; gmmfast model files "
                                "store their arrays uncompressed, as numpy.savez writes them")
        if info.file_size != info.compress_size:
            raise _refuse(path, f"the member {name!r} has two different sizes in the zip "
                                "headers (damaged)")
        if info.header_offset + info.compress_size > size:
            raise _refuse(path, f"the member {name!r} claims {format_bytes(info.file_size)}, "
                                f"more than the whole file ({format_bytes(size)}): "
                                "truncated or damaged")
        members[name[:-4]] = info
    return members


def _read_metadata_text(archive, info, path):
    if info.file_size > MAX_METADATA_BYTES:
        raise _refuse(path, f"the 'metadata' member claims {format_bytes(info.file_size)} "
                            f"(metadata is at most {format_bytes(MAX_METADATA_BYTES)})")
    with archive.open(info) as member:
        shape, fortran_order, dtype = _read_header(member, "metadata", path)
        if dtype.kind != "U" or shape != ():
            raise _refuse(path, "the 'metadata' member is not JSON text")
        _check_member_size(info, member.tell(), shape, dtype, "metadata", path)
        raw = bytes(read_npy_data(member, shape, fortran_order, dtype).data)
    codec = "utf-32-le" if dtype.str.startswith("<") else "utf-32-be"
    try:
        return raw.decode(codec).rstrip("\0")
    except UnicodeDecodeError:
        raise _refuse(path, "the 'metadata' member is not valid text") from None


def _read_header(member, name, path):
    try:
        return read_npy_header(member)
    except ValueError as exc:
        raise _refuse(path, f"member {name!r}: {exc}") from None


def _check_member_size(info, header_size, shape, dtype, name, path):
    expected = header_size + npy_data_size(shape, dtype)
    if info.file_size != expected:
        raise _refuse(path, f"member {name!r} holds {format_bytes(info.file_size)} but its "
                            f"header describes {format_bytes(expected)} (a {dtype} array "
                            f"of shape {shape})")


def _read_array(archive, info, declared, path):
    """One array member, read only if its header matches the metadata's description."""
    name = info.filename[:-4]
    with archive.open(info) as member:
        shape, fortran_order, dtype = _read_header(member, name, path)
        if declared.get("dtype") != dtype.str or declared.get("shape") != list(shape):
            raise _refuse(path, f"array {name!r} differs from its description in the "
                                "metadata (edited or damaged)")
        _check_member_size(info, member.tell(), shape, dtype, name, path)
        array = read_npy_data(member, shape, fortran_order, dtype)
    if _describe_array(array) != declared:
        raise _refuse(path, f"array {name!r} differs from its description in the "
                            "metadata (edited or damaged)")
    return array


def _parse_metadata(text, path):
    try:
        metadata = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an int of more than 4300 digits
        raise _refuse(path, f"the metadata is not valid JSON ({error_summary(exc)})") from None
    except RecursionError:
        raise _refuse(path, "the metadata is nested too deeply") from None
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
    try:
        checksum = _checksum(metadata)
    except RecursionError:
        raise _refuse(path, "the metadata is nested too deeply") from None
    if metadata["checksum"] != checksum:
        raise _refuse(path, "checksum mismatch: the metadata was edited or damaged")
    if not all(isinstance(entry, dict) for entry in metadata["arrays"].values()):
        raise _refuse(path, "the metadata's 'arrays' entry is not a description per array")
    return metadata


def _check_member_names(members, metadata, path):
    declared = metadata["arrays"]
    required = set(PARAMETER_ARRAYS) | {"lower_bound_", "lower_bounds_"}
    allowed = required | {"feature_names_in_"} | set(INIT_ARRAYS)
    if set(declared) - allowed:
        raise _refuse(path, f"unknown arrays {sorted(set(declared) - allowed)}")
    if required - set(declared):
        raise _refuse(path, f"missing arrays {sorted(required - set(declared))}")
    present = set(members) - {"metadata"}
    if present != set(declared):
        extra = sorted(present - set(declared))
        missing = sorted(set(declared) - present)
        raise _refuse(path, f"archive members do not match the metadata (unexpected "
                            f"{extra}, missing {missing})")


def _build_model(metadata, arrays, path):
    from gmmfast._gaussian_mixture import GaussianMixture

    params = dict(metadata["params"])
    fitted = metadata["fitted"]
    if set(params) != set(SCALAR_PARAMS):
        raise _refuse(path, "the metadata's params are not those of GaussianMixture")
    covariance_type = params["covariance_type"]
    if covariance_type not in COVARIANCE_TYPES:
        raise _refuse(path, f"unknown covariance_type {covariance_type!r}")
    _check_params(params, path)
    for name in INIT_ARRAYS:
        params[name] = arrays.get(name)
    _check_shapes(arrays, covariance_type, path)
    n_components, n_features = arrays["means_"].shape
    if not all(np.all(np.isfinite(arrays[name])) for name in PARAMETER_ARRAYS):
        raise _refuse(path, "the parameters contain NaN or infinity")
    weights = arrays["weights_"]
    if np.any(weights < 0) or abs(float(weights.sum(dtype=np.float64)) - 1.0) > 1e-4:
        raise _refuse(path, "weights_ are not non-negative numbers summing to one")
    _check_covariances(arrays, covariance_type, path)
    if params["n_components"] != n_components:
        raise _refuse(path, f"n_components={params['n_components']!r} but the arrays have "
                            f"{n_components} components")
    _check_fitted(fitted, n_features, path)
    names = arrays.get("feature_names_in_")
    if names is not None and (names.dtype.kind != "U" or names.shape != (n_features,)):
        raise _refuse(path, "feature_names_in_ must be one string per feature")

    model = GaussianMixture(**params)
    try:
        validate_params(model)
    except ValueError as exc:  # InvalidParameterError, with scikit-learn's message
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


def _check_params(params, path):
    """What the constructor's constraints do not say: a storable seed, finite numbers."""
    for name, value in params.items():
        if isinstance(value, float) and not np.isfinite(value):
            raise _refuse(path, f"the parameter {name}={value!r} is not a finite number")
    seed = params["random_state"]
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool)
                                 and 0 <= seed < 2**32):
        raise _refuse(path, f"random_state={seed!r} is not None or an int in [0, 2**32)")


def _check_shapes(arrays, covariance_type, path):
    means = arrays["means_"]
    dtype = means.dtype
    if dtype not in (np.float32, np.float64) or means.ndim != 2 or 0 in means.shape:
        raise _refuse(path, "means_ must be a non-empty 2-d float32 or float64 array")
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


def _check_covariances(arrays, covariance_type, path):
    """Refuse factors and matrices that do not describe one and the same mixture.

    Scoring uses ``precisions_cholesky_`` (U), sampling ``covariances_`` (Σ): U must be
    a valid factor (upper triangular, positive diagonal) with Uᵀ Σ U = I and
    U Uᵀ = ``precisions_``. Each residual is compared entrywise with the same product
    taken in absolute values, a bound that does not depend on the conditioning: fitted
    models are within 2 ε of it, and the tolerance leaves room for the dimension.
    """
    cholesky, covariances, precisions = (np.asarray(arrays[name], np.float64) for name in
                                         ("precisions_cholesky_", "covariances_",
                                          "precisions_"))
    if covariance_type in ("diag", "spherical"):
        if np.any(cholesky <= 0) or np.any(covariances <= 0):
            raise _refuse(path, "covariances_ and precisions_cholesky_ must be positive")
        inverse_bound = covariances * cholesky**2
        inverse_error = inverse_bound - 1
        product = product_bound = cholesky**2
    else:
        if covariance_type == "tied":
            cholesky, covariances, precisions = cholesky[None], covariances[None], \
                precisions[None]
        if np.any(np.tril(cholesky, -1) != 0):
            raise _refuse(path, "precisions_cholesky_ must be upper triangular")
        if np.any(np.diagonal(cholesky, axis1=1, axis2=2) <= 0):
            raise _refuse(path, "precisions_cholesky_ must have a positive diagonal")
        transposed = np.swapaxes(cholesky, 1, 2)
        inverse_error = transposed @ covariances @ cholesky - np.eye(cholesky.shape[1])
        inverse_bound = np.abs(transposed) @ np.abs(covariances) @ np.abs(cholesky)
        product = cholesky @ transposed
        product_bound = np.abs(cholesky) @ np.abs(transposed)
    n_features = arrays["means_"].shape[1]
    tolerance = 4 * (n_features + 2) * np.finfo(arrays["means_"].dtype).eps
    if np.any(np.abs(inverse_error) > tolerance * inverse_bound):
        raise _refuse(path, "covariances_ are not the inverse of the precisions "
                            "precisions_cholesky_ gives")
    if np.any(np.abs(precisions - product) > tolerance * product_bound):
        raise _refuse(path, "precisions_ differ from precisions_cholesky_ times its "
                            "transpose")


def _check_fitted(fitted, n_features, path):
    if fitted.get("n_features_in_") != n_features:
        raise _refuse(path, "n_features_in_ does not match the arrays")
    n_iter = fitted.get("n_iter_")
    if not isinstance(fitted.get("converged_"), bool) or not isinstance(n_iter, int) \
            or isinstance(n_iter, bool):
        raise _refuse(path, "converged_ / n_iter_ are missing or of the wrong type")
    if n_iter < 0:
        raise _refuse(path, f"n_iter_={n_iter} is negative")
