"""Model files: the portable, pickle-free ``.npz`` archive that holds one fitted model.

This module is the container: which members a file of each model kind holds, writing it
atomically, and reading it back with bounded reads and integrity checks. It imports no
estimator, so that the estimators' ``save`` can use it; turning the arrays back into an
estimator, and checking that they form a valid model, is ``gmmfast._io``'s job.

Format version 5. A file is written with the lowest version that holds it, so that an older
gmmfast loads what it can and asks for an upgrade otherwise: version 5 for a
``GaussianMixture`` whose saved stream holds tied statistics in the pooled form (below),
version 4 for one with a conjugate prior (its ``prior`` parameter or the ``prior_`` it was
fitted with, below), version 3 for one with one of mclust's covariance names (which holds
its decomposition, below), version 2 for every other file. Version 1, which had no ``kind``, is still read:
its files are ``GaussianMixture`` models. The archive (``numpy.savez``, readable by any
NumPy ≥ 1.x with ``allow_pickle=False``) holds one ``.npy`` member per array:

- ``metadata``: a 0-d unicode array, the JSON text described below;
- the fitted arrays of the kind (:data:`KINDS`), in the training data's dtype (float32 or
  float64), except a Bayesian mixture's priors (their own dtype) and lower bounds
  (float64); ``lower_bound_`` is 0-d and ``lower_bounds_`` 1-d;
- ``feature_names_in_`` (1-d unicode), only if the model was fitted on named columns;
- a ``GaussianMixture`` with an mclust name (any of :data:`COVARIANCE_MODELS`, including
  VVV, EEE, VVI and VII; from version 3 on): its decomposition ``Σ_k = λ_k D_k A_k D_kᵀ``,
  :data:`DECOMPOSITION_ARRAYS` in the training data's dtype: ``volumes_`` (K,),
  ``shapes_`` (K, D) and, except for the six diagonal models (EII … VVI),
  ``orientations_`` (K, D, D). Its ``covariances_``, ``precisions_`` and
  ``precisions_cholesky_`` have the shapes of the model's scikit-learn layout
  (``gmmfast._covariance_models.sklearn_layout``: (K, D) for EII, EEI, VEI, EVI, (K, D, D)
  for VEE … EVV);
- the array-valued constructor parameters (float64), only if they were given;
- a ``GaussianMixture`` fitted with a conjugate prior (from version 4 on): the hyperparameters
  it used (its ``prior_``) as :data:`PRIOR_ARRAYS` (float64): ``prior_shrinkage_`` and
  ``prior_dof_`` 0-d, ``prior_mean_`` (D,), ``prior_scale_`` 0-d for the diagonal and
  spherical models, (D, D) for the others; all four or none;
- a ``GaussianMixture`` in the middle of a stream of ``partial_fit`` calls (and only then):
  the running statistics of online EM, :data:`STREAM_ARRAYS` (float64: ``stream_nk``
  (K,), ``stream_sums`` and ``stream_shifts`` (K, D), ``stream_scatter`` (K, D, D) for full
  and tied covariances (tied also (1, D, D), the components' sum, from version 5 on), its
  diagonal (K, D) for diag and spherical ones, ``stream_weight`` 0-d;
  ``stream_n_batches`` 0-d int64), all six or none.

The JSON metadata: ``format`` (``"gmmfast.GaussianMixture"``, the name of the format for
every kind), ``format_version`` (2 to 5), ``kind`` (``"GaussianMixture"`` or
``"BayesianGaussianMixture"``), ``gmmfast_version``, ``params`` (the constructor's scalar
parameters; a ``random_state`` that is not an int is stored as null; in version 4 a
``GaussianMixture``'s ``prior`` when it is not None: ``"default"`` or an object of the given
hyperparameters, numbers or nested lists of numbers), ``fitted`` (the
fitted scalars: ``converged_``, ``n_iter_``, ``n_features_in_``, and the resolved scalar
priors of a Bayesian mixture), ``arrays`` (each member's dtype, shape and SHA-256 of its
bytes), ``extra`` (free JSON given by the writer, e.g. the command line's column names) and
``checksum``, the SHA-256 of the canonical JSON of everything else.

Reading never unpickles, never reads more than the file holds (every member is stored
uncompressed, as ``numpy.savez`` writes it, and its size is checked against its ``.npy``
header and the metadata before it is read) and refuses, with :class:`ModelFileError`,
anything that is not exactly such a file: not a regular file, not a zip archive or
truncated, a missing, unexpected, compressed or encrypted member, a format, version or kind
it does not know, an array whose bytes, dtype or shape differ from the metadata, or a
checksum that does not match (an edited file). The checksum detects damage and casual
edits, it is not a signature: a file from an untrusted source is only as trustworthy as its
arrays.
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
from typing import NamedTuple

import numpy as np

from gmmfast._covariance_models import COVARIANCE_MODELS, COVARIANCE_NAMES
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
from gmmfast._version import __version__

FORMAT = "gmmfast.GaussianMixture"
FORMAT_VERSION = 5
# The version that added mclust's covariance models; files without their decomposition are
# still written as version 2.
DECOMPOSITION_VERSION = 3
# The version that added the conjugate prior; files without one are written as before.
PRIOR_VERSION = 4
# The version that added online EM's tied statistics in the pooled form (one scatter for
# all components): a reader before it knows only one scatter per component.
POOLED_STREAM_VERSION = 5
# Version 1 files have no "kind": they are GaussianMixture models.
KIND_OF_VERSION_1 = "GaussianMixture"

MIXTURE_ARRAYS = ("weights_", "means_", "covariances_", "precisions_",
                  "precisions_cholesky_")
BOUND_ARRAYS = ("lower_bound_", "lower_bounds_")
EM_PARAMS = ("n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
             "init_params")
RUN_PARAMS = ("random_state", "warm_start", "verbose", "verbose_interval", "n_threads",
              "nan_policy")
ONLINE_PARAMS = ("learning_decay", "learning_offset")
# Parameters that came after format version 1, and the values its files were fitted with.
PARAMS_AFTER_VERSION_1 = {"nan_policy": "raise", "learning_decay": 0.7,
                          "learning_offset": 10.0}
FITTED_SCALARS = ("converged_", "n_iter_", "n_features_in_")
# Online EM's running state (gmmfast._engine.StreamState): its statistics, then its scalars.
STREAM_STATISTICS = ("stream_nk", "stream_sums", "stream_scatter", "stream_shifts")
STREAM_ARRAYS = STREAM_STATISTICS + ("stream_weight", "stream_n_batches")
# An mclust model's Σ_k = λ_k D_k A_k D_kᵀ (orientations_ is None for diagonal models).
DECOMPOSITION_ARRAYS = ("volumes_", "shapes_", "orientations_")
# The conjugate prior a GaussianMixture was fitted with (its prior_ dict), key by key.
PRIOR_KEYS = ("shrinkage", "mean", "dof", "scale")
PRIOR_ARRAYS = tuple(f"prior_{key}_" for key in PRIOR_KEYS)


class ModelKind(NamedTuple):
    """What a model file of one estimator holds."""

    arrays: tuple          # fitted arrays, always members
    scalar_params: tuple   # constructor parameters stored in the JSON
    array_params: tuple    # constructor parameters stored as members when they are given
    fitted_scalars: tuple  # fitted attributes stored in the JSON
    covariance_types: tuple  # the names its covariance_type takes
    stream_arrays: tuple = ()  # the running state of partial_fit, all or none of them
    decomposition_arrays: tuple = ()  # an mclust model's decomposition, when it has one
    prior_arrays: tuple = ()  # the conjugate prior it was fitted with, when it had one


KINDS = {
    "GaussianMixture": ModelKind(
        arrays=MIXTURE_ARRAYS + BOUND_ARRAYS,
        scalar_params=EM_PARAMS + RUN_PARAMS + ONLINE_PARAMS,
        array_params=("weights_init", "means_init", "precisions_init"),
        fitted_scalars=FITTED_SCALARS,
        covariance_types=COVARIANCE_NAMES,
        stream_arrays=STREAM_ARRAYS,
        decomposition_arrays=DECOMPOSITION_ARRAYS,
        prior_arrays=PRIOR_ARRAYS,
    ),
    "BayesianGaussianMixture": ModelKind(
        # weight_concentration_ is (2, K) for the Dirichlet process (the Beta parameters of
        # each stick), (K,) for the Dirichlet distribution; degrees_of_freedom_ and a
        # spherical covariance_prior_ are 0-d where the estimator has a scalar.
        arrays=MIXTURE_ARRAYS + ("weight_concentration_", "mean_precision_",
                                 "degrees_of_freedom_", "mean_prior_", "covariance_prior_")
        + BOUND_ARRAYS,
        scalar_params=EM_PARAMS + ("weight_concentration_prior_type",
                                   "weight_concentration_prior", "mean_precision_prior",
                                   "degrees_of_freedom_prior") + RUN_PARAMS,
        array_params=("mean_prior", "covariance_prior"),
        fitted_scalars=FITTED_SCALARS + ("weight_concentration_prior_",
                                         "mean_precision_prior_",
                                         "degrees_of_freedom_prior_"),
        covariance_types=COVARIANCE_TYPES,
    ),
}


class ModelFileError(ValueError):
    """A model file that gmmfast refuses to load: malformed, damaged, edited or unknown."""


def refuse(path, reason):
    """The :class:`ModelFileError` for the file ``path``, saying ``reason``."""
    return ModelFileError(f"{path}: not a valid gmmfast model file: {reason}")


# ----------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------


def kind_of(model):
    """The model kind of an estimator: the name of the first gmmfast estimator class it
    is an instance of (a subclass saves as its gmmfast base)."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("gmmfast.") and cls.__name__ in KINDS:
            return cls.__name__
    raise TypeError(f"{type(model).__name__} has no model file format; gmmfast saves "
                    f"{' and '.join(KINDS)}")


def save_model(model, path, extra=None):
    """Write the fitted gmmfast estimator ``model`` to ``path`` (exactly that name).

    ``extra`` is any JSON-serialisable dict stored with the model (read it back with
    :func:`gmmfast._io.read_model`). A stream of ``partial_fit`` calls in progress (the
    estimator's ``_stream``, a ``gmmfast._engine.StreamState``) is saved with it, and so is
    the decomposition of a model with an mclust covariance name, and a ``GaussianMixture``'s
    conjugate prior (its ``prior`` parameter and the fitted ``prior_``).
    """
    # Imported here: reading a model file must not import scikit-learn (see _engine).
    from gmmfast._compat import check_is_fitted

    kind_name = kind_of(model)
    check_is_fitted(model)
    kind = KINDS[kind_name]
    arrays = {name: _member(getattr(model, name)) for name in kind.arrays}
    arrays["lower_bounds_"] = np.asarray(model.lower_bounds_,
                                         dtype=arrays["lower_bound_"].dtype).reshape(-1)
    if getattr(model, "feature_names_in_", None) is not None:
        arrays["feature_names_in_"] = np.asarray(model.feature_names_in_, dtype=str)
    params = model.get_params()
    for name in kind.array_params:
        if params[name] is not None:
            arrays[name] = np.asarray(params[name], dtype=np.float64)
    if kind.stream_arrays and getattr(model, "_stream", None) is not None:
        arrays.update(stream_members(model._stream))
    if kind.decomposition_arrays and model.covariance_type in COVARIANCE_MODELS:
        arrays.update(decomposition_members(model))
    json_params = {name: _json_scalar(name, params[name]) for name in kind.scalar_params}
    if kind.prior_arrays:
        if getattr(model, "prior_", None) is not None:
            arrays.update(prior_members(model.prior_))
        if params["prior"] is not None:
            json_params["prior"] = _json_prior(params["prior"])
    metadata = {
        "format": FORMAT,
        "format_version": _format_version(arrays, json_params),
        "kind": kind_name,
        "gmmfast_version": __version__,
        "params": json_params,
        "fitted": {name: _json_scalar(name, getattr(model, name))
                   for name in kind.fitted_scalars},
        "arrays": {name: describe_array(a) for name, a in arrays.items()},
        "extra": {} if extra is None else extra,
    }
    metadata["checksum"] = checksum(metadata)
    members = {"metadata": np.asarray(json.dumps(metadata, sort_keys=True)), **arrays}
    # An open file, so numpy does not append ".npz" to the name the user chose.
    write_atomically(path, lambda f: np.savez(f, **members))


def stream_members(stream):
    """The :data:`STREAM_ARRAYS` members of a ``StreamState``."""
    members = {name: np.ascontiguousarray(value, dtype=np.float64)
               for name, value in zip(STREAM_STATISTICS, stream.statistics)}
    members["stream_weight"] = np.asarray(stream.weight, dtype=np.float64)
    members["stream_n_batches"] = np.asarray(stream.n_batches, dtype=np.int64)
    return members


def _format_version(members, json_params):
    """The lowest format version that holds these members and parameters (see the module's
    docstring)."""
    if holds_pooled_stream(members):
        return POOLED_STREAM_VERSION
    if "prior" in json_params or PRIOR_ARRAYS[0] in members:
        return PRIOR_VERSION
    return DECOMPOSITION_VERSION if "volumes_" in members else 2


def holds_pooled_stream(arrays):
    """Whether ``arrays`` hold online EM's statistics in the pooled form: fewer scatter
    matrices than components."""
    scatter = arrays.get("stream_scatter")
    return (scatter is not None and np.ndim(scatter) == 3
            and np.shape(scatter)[0] < np.shape(arrays["means_"])[0])


def decomposition_members(model):
    """The :data:`DECOMPOSITION_ARRAYS` members of a model fitted under an mclust name
    (no ``orientations_`` for a diagonal model)."""
    return {name: np.asarray(getattr(model, name)) for name in DECOMPOSITION_ARRAYS
            if getattr(model, name) is not None}


def prior_members(prior):
    """The :data:`PRIOR_ARRAYS` members of a fitted ``prior_`` dict."""
    return {name: np.asarray(prior[key], dtype=np.float64)
            for key, name in zip(PRIOR_KEYS, PRIOR_ARRAYS)}


def _json_prior(prior):
    """A ``prior`` parameter ("default" or a mapping of hyperparameters) as JSON: numbers,
    and arrays as nested lists (JSON writes every float64 so that it reads back exactly)."""
    if isinstance(prior, str):
        return prior
    try:
        return {str(key): np.asarray(value, dtype=np.float64).tolist()
                for key, value in prior.items() if value is not None}
    except (AttributeError, TypeError, ValueError):
        raise TypeError(f"Cannot store the parameter prior={prior!r} in a model file: it is "
                        "not 'default' or a dict of numbers and arrays") from None


def _member(value):
    """A fitted attribute as one array: a pair of arrays stacked, a scalar 0-d."""
    if isinstance(value, tuple):
        return np.stack(value)
    return np.asarray(value)


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


def describe_array(array):
    """The metadata's description of one member: dtype, shape and SHA-256 of its bytes."""
    return {"dtype": array.dtype.str, "shape": list(array.shape),
            "sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()}


def checksum(metadata):
    """SHA-256 of the canonical JSON of the metadata without its ``checksum``."""
    content = {key: value for key, value in metadata.items() if key != "checksum"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------


def read_model_file(path):
    """(kind name, metadata dict, {name: array}) of the model file ``path``, its container
    checked (see the module's docstring); the arrays are not yet checked as a model."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such model file: {path}")
    with open_regular_file(path, lambda reason: refuse(path, reason)) as f:
        try:
            return _read_archive(f, path)
        except ModelFileError:
            raise
        except _ARCHIVE_ERRORS as exc:
            raise refuse(path, f"unreadable or damaged archive ({error_summary(exc)})") \
                from None


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


def _read_archive(f, path):
    """The kind, the metadata and the arrays, each member's size checked before it is
    read."""
    start = f.read(_SNIFF_BYTES)
    if not start.startswith(_ZIP_MAGIC):
        raise refuse(path, _not_a_zip(start))
    f.seek(0)
    try:
        archive = zipfile.ZipFile(f)
    except zipfile.BadZipFile:
        raise refuse(path, "the archive is truncated or damaged (its zip directory, at "
                           "the end of the file, is missing)") from None
    with archive:
        members = _list_members(archive, file_size(f), path)
        if "metadata" not in members:
            raise refuse(path, "the 'metadata' member is missing")
        metadata = _parse_metadata(_read_metadata_text(archive, members["metadata"], path),
                                   path)
        kind = _kind(metadata, path)
        _check_member_names(members, metadata, KINDS[kind], path)
        arrays = {name: _read_array(archive, info, metadata["arrays"][name], path)
                  for name, info in members.items() if name != "metadata"}
    return kind, metadata, arrays


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
            raise refuse(path, f"unexpected member {name!r} (every member is an .npy array)")
        if name[:-4] in members:
            raise refuse(path, f"the member {name!r} appears twice")
        if info.flag_bits & 0x1:
            raise refuse(path, f"the member {name!r} is encrypted")
        # Stored members never expand: reading one allocates no more than the file holds.
        if info.compress_type != zipfile.ZIP_STORED:
            raise refuse(path, f"the member {name!r} is compressed; gmmfast model files "
                               "store their arrays uncompressed, as numpy.savez writes them")
        if info.file_size != info.compress_size:
            raise refuse(path, f"the member {name!r} has two different sizes in the zip "
                               "headers (damaged)")
        if info.header_offset + info.compress_size > size:
            raise refuse(path, f"the member {name!r} claims {format_bytes(info.file_size)}, "
                               f"more than the whole file ({format_bytes(size)}): "
                               "truncated or damaged")
        members[name[:-4]] = info
    return members


def _read_metadata_text(archive, info, path):
    if info.file_size > MAX_METADATA_BYTES:
        raise refuse(path, f"the 'metadata' member claims {format_bytes(info.file_size)} "
                           f"(metadata is at most {format_bytes(MAX_METADATA_BYTES)})")
    with archive.open(info) as member:
        shape, fortran_order, dtype = _read_header(member, "metadata", path)
        if dtype.kind != "U" or shape != ():
            raise refuse(path, "the 'metadata' member is not JSON text")
        _check_member_size(info, member.tell(), shape, dtype, "metadata", path)
        raw = bytes(read_npy_data(member, shape, fortran_order, dtype).data)
    codec = "utf-32-le" if dtype.str.startswith("<") else "utf-32-be"
    try:
        return raw.decode(codec).rstrip("\0")
    except UnicodeDecodeError:
        raise refuse(path, "the 'metadata' member is not valid text") from None


def _read_header(member, name, path):
    try:
        return read_npy_header(member)
    except ValueError as exc:
        raise refuse(path, f"member {name!r}: {exc}") from None


def _check_member_size(info, header_size, shape, dtype, name, path):
    expected = header_size + npy_data_size(shape, dtype)
    if info.file_size != expected:
        raise refuse(path, f"member {name!r} holds {format_bytes(info.file_size)} but its "
                           f"header describes {format_bytes(expected)} (a {dtype} array "
                           f"of shape {shape})")


def _read_array(archive, info, declared, path):
    """One array member, read only if its header matches the metadata's description."""
    name = info.filename[:-4]
    with archive.open(info) as member:
        shape, fortran_order, dtype = _read_header(member, name, path)
        if declared.get("dtype") != dtype.str or declared.get("shape") != list(shape):
            raise refuse(path, f"array {name!r} differs from its description in the "
                               "metadata (edited or damaged)")
        _check_member_size(info, member.tell(), shape, dtype, name, path)
        array = read_npy_data(member, shape, fortran_order, dtype)
    if describe_array(array) != declared:
        raise refuse(path, f"array {name!r} differs from its description in the "
                           "metadata (edited or damaged)")
    return array


def _parse_metadata(text, path):
    try:
        metadata = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an int of more than 4300 digits
        raise refuse(path, f"the metadata is not valid JSON ({error_summary(exc)})") from None
    except RecursionError:
        raise refuse(path, "the metadata is nested too deeply") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise refuse(path, f"the metadata does not say format {FORMAT!r}")
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise refuse(path, f"unknown format_version {version!r}")
    if not 1 <= version <= FORMAT_VERSION:
        newer = " (written by a newer gmmfast: upgrade gmmfast)" if version > FORMAT_VERSION \
            else ""
        raise refuse(path, f"format_version {version} is not supported; this gmmfast "
                           f"reads format_version 1 to {FORMAT_VERSION}{newer}")
    for key, kind in (("params", dict), ("fitted", dict), ("arrays", dict),
                      ("extra", dict), ("checksum", str)):
        if not isinstance(metadata.get(key), kind):
            raise refuse(path, f"the metadata has no valid {key!r} entry")
    try:
        expected = checksum(metadata)
    except RecursionError:
        raise refuse(path, "the metadata is nested too deeply") from None
    if metadata["checksum"] != expected:
        raise refuse(path, "checksum mismatch: the metadata was edited or damaged")
    if not all(isinstance(entry, dict) for entry in metadata["arrays"].values()):
        raise refuse(path, "the metadata's 'arrays' entry is not a description per array")
    return metadata


def _kind(metadata, path):
    """The model kind the metadata names (version 1: GaussianMixture, which it omits)."""
    if metadata["format_version"] == 1:
        if "kind" in metadata:
            raise refuse(path, "format_version 1 files have no 'kind' (edited or damaged)")
        return KIND_OF_VERSION_1
    kind = metadata.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise refuse(path, f"unknown model kind {kind!r}; this gmmfast reads "
                           f"{', '.join(KINDS)}")
    return kind


def _check_member_names(members, metadata, kind, path):
    declared = metadata["arrays"]
    required = set(kind.arrays)
    # Format version 1 came before partial_fit, version 3 added mclust's models.
    version = metadata["format_version"]
    stream = set(kind.stream_arrays) if version > 1 else set()
    decomposition = (set(kind.decomposition_arrays) if version >= DECOMPOSITION_VERSION
                     else set())
    prior = set(kind.prior_arrays) if version >= PRIOR_VERSION else set()
    allowed = (required | {"feature_names_in_"} | set(kind.array_params) | stream
               | decomposition | prior)
    if set(declared) - allowed:
        raise refuse(path, f"unknown arrays {sorted(set(declared) - allowed)}")
    if required - set(declared):
        raise refuse(path, f"missing arrays {sorted(required - set(declared))}")
    if stream & set(declared) and stream - set(declared):
        raise refuse(path, "the running state of online EM is incomplete: missing arrays "
                           f"{sorted(stream - set(declared))}")
    if prior & set(declared) and prior - set(declared):
        raise refuse(path, "the fitted prior is incomplete: missing arrays "
                           f"{sorted(prior - set(declared))}")
    present = set(members) - {"metadata"}
    if present != set(declared):
        extra = sorted(present - set(declared))
        missing = sorted(set(declared) - present)
        raise refuse(path, f"archive members do not match the metadata (unexpected "
                           f"{extra}, missing {missing})")
