"""Reading files that may be hostile: only regular files, and never more than they hold.

Shared by the model files (``gmmfast._model_file``) and the command line's data files
(``gmmfast._datafile``), so a device, a FIFO or a header that promises terabytes is refused
the same way, before anything is allocated or read.
"""

import math
import os
import stat
import tokenize

import numpy as np

# What numpy's .npy header parser (ast.literal_eval of the header text, tokenize for
# version 1 and 2 headers, dtype construction) raises for malformed header bytes.
_NPY_HEADER_ERRORS = (ValueError, SyntaxError, TypeError, KeyError, IndexError,
                      OverflowError, RecursionError, MemoryError, tokenize.TokenError)

_READ_SIZE = 2**20

_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def open_regular_file(path, refuse):
    """``path`` opened for binary reading, if it is a regular file (symlinks followed).

    Anything else (a device such as ``/dev/zero``, a FIFO, a directory) raises
    ``refuse(reason)``, without blocking: the file is opened non-blocking, so a FIFO
    with no writer does not hang, and checked with ``fstat`` on the opened descriptor.
    A missing or unreadable file raises the usual ``OSError``.
    """
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                         | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
            raise refuse(f"it is {kind}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def file_size(f):
    return os.fstat(f.fileno()).st_size


def read_npy_header(f):
    """``(shape, fortran_order, dtype)`` of the ``.npy`` stream ``f``, left at its data.

    Raises ``ValueError`` naming what is wrong for anything but a version 1 or 2 header
    describing a non-negative shape (version 3, UTF-8 field names, is never written for
    the plain arrays gmmfast reads).
    """
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except _NPY_HEADER_ERRORS as exc:
        raise ValueError(f"malformed .npy header ({error_summary(exc)})") from None
    if any(n < 0 for n in shape):
        raise ValueError(f"malformed .npy header (negative shape {shape})")
    if dtype.hasobject:
        raise ValueError("the array holds pickled (object) data, which gmmfast never loads")
    return shape, fortran_order, dtype


def npy_data_size(shape, dtype):
    """Bytes of an array's data, as a Python int (no overflow however large the shape)."""
    return math.prod(shape) * dtype.itemsize


def read_npy_data(f, shape, fortran_order, dtype):
    """The array whose data follows in ``f``; the caller has checked that ``f`` holds it.

    Read in 1 MiB pieces straight into the array (no zero-filled buffer, no second copy).
    A short stream raises ``EOFError``. The array is writable and owns its memory.
    """
    data = np.empty(npy_data_size(shape, dtype), dtype=np.uint8)
    filled = 0
    while filled < data.size:
        count = f.readinto(memoryview(data[filled:filled + _READ_SIZE]))
        if not count:
            raise EOFError(f"the array data ends after {filled} of {data.size} bytes")
        filled += count
    array = data.view(dtype)
    if fortran_order:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)


def format_bytes(n):
    """``n`` bytes in the largest unit that keeps a number ≥ 1 (``2.2 GB``)."""
    if n < 1000:
        return f"{n} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000:
            return f"{n:.3g} {unit}"
    return f"{n / 1000:.3g} PB"


def error_summary(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
