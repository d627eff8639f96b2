"""Reading a data table for the command line: CSV/TSV text, ``.npy`` or ``.parquet``.

Every problem a user can cause (a missing file, a non-numeric or missing value, an unknown
column, NaN) is a :class:`DataError` whose message says where it is and what to do.
"""

import io
import itertools
import os
import re
import warnings
from importlib import resources

import numpy as np

from gmmfast._files import (
    error_summary,
    file_size,
    format_bytes,
    npy_data_size,
    open_regular_file,
    read_npy_data,
    read_npy_header,
)

TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".dat")
PARQUET_SUFFIXES = (".parquet", ".pq")
BUNDLED_NAME = "Old Faithful geyser eruptions (bundled with gmmfast)"
# A row of a million numbers is about 20 Mi characters: far above any real table's line,
# far below what reading a file without line breaks as one line would cost.
MAX_LINE_LENGTH = 64 * 2**20


class DataError(ValueError):
    """The data file cannot be used: the message says why, in one line."""


class Table:
    """The numeric matrix read from a file, its column names and where it came from."""

    def __init__(self, X, names, source):
        self.X = X
        self.names = list(names)
        self.source = source

    def describe(self):
        n, d = self.X.shape
        return (f"{self.source}: {n} rows x {d} column{'s' * (d != 1)} "
                f"({', '.join(self.names)})")


def read_table(path=None, columns=None, allow_missing=False):
    """The float64 matrix of ``path`` (None: the bundled Old Faithful data).

    ``columns`` is a list of column names or 0-based indices (as strings or ints); None
    keeps every column. With ``allow_missing``, missing values (NaN, and in text files
    empty fields and ``NA``) are read as NaN instead of refused.
    """
    if path is None:
        resource = resources.files("gmmfast").joinpath("data", "old_faithful.csv")
        with resource.open("r", encoding="utf-8") as f:
            return _read_text(f, ",", columns, BUNDLED_NAME, allow_missing)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"no such file: {path}")
    if os.path.isdir(path):
        raise DataError(f"{path} is a directory, not a data file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in TEXT_SUFFIXES:
        with _open_text(path) as f:
            delimiter = "\t" if suffix == ".tsv" else None
            try:
                return _read_text(f, delimiter, columns, path, allow_missing)
            except UnicodeDecodeError:
                raise DataError(f"{path}: not a UTF-8 text file") from None
    if suffix == ".npy":
        with _open(path) as f:
            return _read_npy(f, columns, path, allow_missing)
    if suffix in PARQUET_SUFFIXES:
        with _open(path) as f:
            return _read_parquet(f, columns, path, allow_missing)
    raise DataError(f"{path}: unsupported file type {suffix or '(no suffix)'!r}; use .csv, "
                    ".tsv, .txt, .npy or .parquet")


def column_names(path):
    """The column names of a file's header (None if it has none), without reading the data."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix in TEXT_SUFFIXES:
            with _open_text(path) as f:
                first = next(_bounded_lines(f, path), "")
            fields = _split(first, "\t" if suffix == ".tsv" else _sniff_delimiter(first))
            return None if all(_is_number(field) for field in fields) else fields
        if suffix in PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            with _open(path) as f:
                return list(pq.read_schema(f).names)
    except (OSError, UnicodeDecodeError, ImportError, ValueError):
        return None  # read_table reports the problem (DataError is a ValueError)
    return None


def parse_columns(text):
    """``"a,b,3"`` → ``["a", "b", "3"]`` (the value of ``--columns``)."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise DataError(f"--columns {text!r}: empty column name")
    return names


# ----------------------------------------------------------------------------------------


def _open(path):
    """The regular file ``path`` opened for binary reading: a device or FIFO is refused."""
    return open_regular_file(path, lambda reason: DataError(f"{path}: {reason}"))


def _open_text(path):
    return io.TextIOWrapper(_open(path), encoding="utf-8-sig", newline="")


def _bounded_lines(f, source):
    """The lines of ``f``, refusing one longer than MAX_LINE_LENGTH characters.

    A text table's line is a row; a longer one is a file without newlines (or not a
    table), and reading it whole could exhaust the memory.
    """
    for number in itertools.count(1):
        line = f.readline(MAX_LINE_LENGTH + 1)
        if not line:
            return
        if len(line) > MAX_LINE_LENGTH and not line.endswith("\n"):
            raise DataError(f"{source}: line {number} is longer than {MAX_LINE_LENGTH} "
                            "characters (a file without line breaks?); a text table has "
                            "one row per line")
        yield line


def _sniff_delimiter(line):
    counts = {d: line.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=counts.get)
    return best if counts[best] else None  # None: fields separated by whitespace


def _split(line, delimiter):
    fields = line.rstrip("\r\n").split(delimiter) if delimiter else line.split()
    return [field.strip().strip('"').strip() for field in fields]


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


# How a text table may write a missing value (with ``allow_missing``), lower case.
MISSING_TEXT = frozenset({"", "na", "nan", "null", "none"})


def _number_or_missing(text):
    """loadtxt's converter when missing values are allowed: NaN for MISSING_TEXT."""
    return np.nan if text.strip().lower() in MISSING_TEXT else float(text)


def _read_text(f, delimiter, columns, source, allow_missing=False):
    lines = _bounded_lines(f, source)
    first = next(lines, "")
    while first and not first.strip():
        first = next(lines, "")
    if not first:
        raise DataError(f"{source}: the file is empty")
    delimiter = delimiter or _sniff_delimiter(first)
    fields = _split(first, delimiter)
    # A header is a first line with a field that is not a number ("nan" is a number here,
    # and is refused later as missing data).
    has_header = not all(_is_number(field) or (allow_missing and field.lower() in MISSING_TEXT)
                         for field in fields)
    names = fields if has_header else [f"x{i}" for i in range(len(fields))]
    if has_header and len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{source}: duplicated column names in the header: {duplicated}")
    indices = _column_indices(columns, names, source)
    body = lines if has_header else itertools.chain([first], lines)
    try:
        with warnings.catch_warnings():
            # "input contained no data" is reported below, as a DataError.
            warnings.simplefilter("ignore", UserWarning)
            X = np.loadtxt(body, delimiter=delimiter, dtype=np.float64, ndmin=2,
                           usecols=indices, quotechar='"', comments=None,
                           converters=_number_or_missing if allow_missing else None)
    except DataError:  # a line too long, from _bounded_lines
        raise
    except ValueError as exc:
        raise DataError(_explain_text_error(exc, names, indices, has_header, source)) \
            from None
    if X.shape[0] == 0:
        raise DataError(f"{source}: no data rows")
    return _checked(X, [names[i] for i in indices], source, first_line=1 + has_header,
                    allow_missing=allow_missing)


def _explain_text_error(exc, names, indices, has_header, source):
    message = str(exc).splitlines()[0].rstrip(".")
    match = re.search(r"could not convert string '(.*)' to float64 at row (\d+), column "
                      r"(\d+)", message)
    if match:
        value, row, column = match.group(1), int(match.group(2)), int(match.group(3))
        line = row + 1 + has_header
        # numpy numbers the columns of the file from 1, whatever usecols selects.
        name = names[column - 1] if column - 1 < len(names) else str(column)
        what = "a missing value" if value == "" else f"the non-numeric value {value!r}"
        advice = (MISSING_ADVICE if value == "" else
                  "every selected column must be numeric (choose columns with --columns)")
        return f"{source}: line {line}, column {name!r} has {what}; {advice}"
    match = re.search(r"the number of columns changed from (\d+) to (\d+) at row (\d+)",
                      message)
    if match:
        line = int(match.group(3)) + has_header
        return (f"{source}: line {line} has {match.group(2)} fields where the first line "
                f"has {match.group(1)}")
    return f"{source}: cannot read the table ({message})"


def _column_indices(columns, names, source):
    if columns is None:
        return list(range(len(names)))
    indices = []
    for column in columns:
        text = str(column)
        if text in names:
            index = names.index(text)
        elif re.fullmatch(r"-?\d+", text):
            index = int(text)
            if not -len(names) <= index < len(names):
                raise DataError(f"{source}: column index {index} is out of range (the file "
                                f"has {len(names)} columns, numbered from 0)")
            index %= len(names)
        else:
            raise DataError(f"{source}: no column named {text!r} (columns: "
                            f"{', '.join(names)})")
        if index in indices:
            raise DataError(f"{source}: column {names[index]!r} is selected twice")
        indices.append(index)
    return indices


# What a user can do about a missing value where gmmfast needs complete data.
MISSING_ADVICE = ("drop or impute missing values first, or let gmmfast handle them: "
                  "'gmmfast fit --missing omit' fits over the observed values, "
                  "'gmmfast impute' fills them in")


def _checked(X, names, source, first_line=0, allow_missing=False):
    """X itself if every value is finite (NaN allowed with ``allow_missing``); otherwise a
    DataError naming the first bad cell."""
    finite = ~np.isinf(X) if allow_missing else np.isfinite(X)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        kind = "NaN (a missing value)" if np.isnan(X[row, column]) else "an infinite value"
        where = f"line {row + first_line}" if first_line else f"row {row}"
        advice = ("gmmfast needs finite values" if allow_missing else
                  f"gmmfast needs complete data here ({MISSING_ADVICE})")
        raise DataError(f"{source}: {where}, column {names[column]!r} is {kind}; {advice}")
    return Table(np.ascontiguousarray(X), names, source)


def _read_npy(f, columns, path, allow_missing=False):
    try:
        shape, fortran_order, dtype = read_npy_header(f)
    except ValueError as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    if dtype.names is not None:
        raise DataError(f"{path}: structured .npy arrays are not supported; save a plain "
                        "2-d numeric array")
    if dtype.kind not in "biuf":
        raise DataError(f"{path}: the array's dtype {dtype} is not numeric")
    size, available = npy_data_size(shape, dtype), file_size(f) - f.tell()
    if size > available:
        raise DataError(f"{path}: the .npy header describes a {dtype} array of shape "
                        f"{shape} ({format_bytes(size)}) but the file holds "
                        f"{format_bytes(available)} of data (truncated or damaged)")
    try:
        array = read_npy_data(f, shape, fortran_order, dtype)
    except EOFError as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(f"{path}: expected a 1-d or 2-d array, got {array.ndim} dimensions")
    if array.shape[0] == 0:
        raise DataError(f"{path}: no data rows")
    names = [f"x{i}" for i in range(array.shape[1])]
    indices = _column_indices(columns, names, path)
    return _checked(array[:, indices].astype(np.float64), [names[i] for i in indices], path,
                    allow_missing=allow_missing)


def _read_parquet(f, columns, path, allow_missing=False):
    try:
        import pandas as pd
        frame = pd.read_parquet(f)
    except ImportError:
        raise DataError("reading .parquet files needs pandas and pyarrow: "
                        "pip install pandas pyarrow") from None
    except Exception as exc:  # pyarrow's errors have no common base worth naming
        raise DataError(f"{path}: not a readable parquet file ({error_summary(exc)})") \
            from None
    names = [str(name) for name in frame.columns]
    indices = _column_indices(columns, names, path)
    selected = frame.iloc[:, indices]
    for name, dtype in zip(selected.columns, selected.dtypes):
        if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
            raise DataError(f"{path}: column {str(name)!r} is not numeric ({dtype}); choose "
                            "numeric columns with --columns")
    if len(selected) == 0:
        raise DataError(f"{path}: no data rows")
    X = selected.to_numpy(dtype=np.float64, na_value=np.nan)
    return _checked(X, [names[i] for i in indices], path, allow_missing=allow_missing)
