"""Reading a data table for the command line: CSV/TSV text, ``.npy`` or ``.parquet``.

Every problem a user can cause (a missing file, a non-numeric or missing value, an unknown
column, NaN) is a :class:`DataError` whose message says where it is and what to do. Missing
values are read as NaN when the caller allows them (``--missing omit``).
Text tables are parsed by pyarrow's CSV reader or pandas when installed (NumPy's
``loadtxt`` otherwise); whichever ran, the array and the messages are the same.
:class:`BatchedTable` reads a file a batch of rows at a time instead, for files larger
than memory (``gmmfast fit --online``), with the same checks and messages.
"""

import contextlib
import csv
import functools
import importlib
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

    def batches(self, batch_rows):
        """The rows, ``batch_rows`` at a time (as :meth:`BatchedTable.batches`)."""
        for start in range(0, self.X.shape[0], batch_rows):
            yield self.X[start:start + batch_rows]

    def describe(self):
        n, d = self.X.shape
        return (f"{self.source}: {n} rows x {d} column{'s' * (d != 1)} "
                f"({', '.join(self.names)})")


def read_table(path=None, columns=None, allow_missing=False, progress=None):
    """The float64 matrix of ``path`` (None: the bundled Old Faithful data).

    ``columns`` is a list of column names, 0-based indices (as strings or ints), ranges of
    indices (``"0-3"``) or exclusions (``"^id"``, ``"^2-3"``); None keeps every column.
    With ``allow_missing``, missing values (NaN, and in text files the cells of
    MISSING_CELLS) are read as NaN instead of refused. ``progress(bytes_read,
    total_bytes)``, if given, is called as a text file is read.
    """
    if path is None:
        resource = resources.files("gmmfast").joinpath("data", "old_faithful.csv")
        return _read_text(io.BytesIO(resource.read_bytes()), ",", columns, BUNDLED_NAME,
                          allow_missing, None)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"no such file: {path}")
    if os.path.isdir(path):
        raise DataError(f"{path} is a directory, not a data file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in TEXT_SUFFIXES:
        with _open(path) as f:
            delimiter = "\t" if suffix == ".tsv" else None
            return _read_text(f, delimiter, columns, path, allow_missing, progress)
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
    if not all(names) or "^" in names:
        raise DataError(f"--columns {text!r}: empty column name")
    return names


# ----------------------------------------------------------------------------------------


def _open(path):
    """The regular file ``path`` opened for binary reading: a device or FIFO is refused."""
    return open_regular_file(path, lambda reason: DataError(f"{path}: {reason}"))


def _open_text(path):
    return io.TextIOWrapper(_open(path), encoding="utf-8-sig", newline="")


def _bounded_lines(f, source, first_number=1):
    """The lines of ``f``, refusing one longer than MAX_LINE_LENGTH characters.

    A text table's line is a row; a longer one is a file without newlines (or not a
    table), and reading it whole could exhaust the memory.
    """
    for number in itertools.count(first_number):
        line = f.readline(MAX_LINE_LENGTH + 1)
        if not line:
            return
        if len(line) > MAX_LINE_LENGTH and not line.endswith(
                b"\n" if isinstance(line, bytes) else "\n"):
            raise _line_too_long(source, number)
        yield line


def _line_too_long(source, number):
    return DataError(f"{source}: line {number} is longer than {MAX_LINE_LENGTH} characters "
                     "(a file without line breaks?); a text table has one row per line")


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


class _Layout:
    """What the first line of a text table says (delimiter, names, header), the columns
    selected, and whether missing cells are allowed (read as NaN)."""

    def __init__(self, first, delimiter, columns, source, allow_missing):
        self.delimiter = delimiter or _sniff_delimiter(first)
        self.allow_missing = allow_missing
        fields = _split(first, self.delimiter)
        # A header is a first line with a field that is not a number ("nan" is a number
        # here, and is refused later as missing data unless allowed, like other missing
        # cells).
        self.has_header = not all(_is_number(field)
                                  or (allow_missing and field in MISSING_CELLS)
                                  for field in fields)
        self.names = fields if self.has_header else [f"x{i}" for i in range(len(fields))]
        if self.has_header and len(set(self.names)) != len(self.names):
            duplicated = sorted({n for n in self.names if self.names.count(n) > 1})
            raise DataError(f"{source}: duplicated column names in the header: {duplicated}")
        self.indices = _column_indices(columns, self.names, source)


def _read_text(f, delimiter, columns, source, allow_missing, progress):
    """The table of the binary stream ``f`` (at its start), by the fastest reader installed.

    Whatever the reader, a table it cannot read cleanly (a ragged row, a non-numeric or
    missing cell, an infinite value) is read again line by line by :func:`_first_problem`,
    so every reader reports the same problem in the same words.
    """
    start = f.tell()
    layout, body_line = _read_layout(f, delimiter, columns, source, allow_missing)
    body_start = f.tell()
    size = f.seek(0, io.SEEK_END)
    f.seek(body_start)
    reader = _text_reader(layout.delimiter, size)
    X = None
    if reader is _read_body_numpy or _first_row_is_whole(f, layout, source, body_line):
        X = _parse_body(reader, f, layout, source, body_line, size, progress)
    if X is None or not _acceptable(X, allow_missing).all():
        f.seek(start)
        problem = _first_problem(f, layout, source)
        if problem is not None:
            raise problem
        # Nothing wrong by the rules every reader shares: what NumPy's reader makes of it
        # stands (a fast reader can refuse more, e.g. an empty cell in a column not used).
        f.seek(body_start)
        X = _parse_body(_read_body_numpy, f, layout, source, body_line, size, progress)
        if X is None:
            raise DataError(f"{source}: cannot read the table")
    if X.shape[0] == 0:
        raise DataError(f"{source}: no data rows")
    return Table(np.ascontiguousarray(X), [layout.names[i] for i in layout.indices], source)


def _acceptable(X, allow_missing):
    """Where X holds a value the caller takes: a finite one, or NaN if missing is allowed."""
    return ~np.isinf(X) if allow_missing else np.isfinite(X)


def _read_layout(f, delimiter, columns, source, allow_missing):
    """The table's layout from its first non-blank line, and the line number of its data.

    ``f`` is left at the first data line (the header, if any, read).
    """
    lines = _bounded_lines(f, source)
    try:
        first, number = next(lines, b""), 1
        while first and not first.strip():
            first, number = next(lines, b""), number + 1
        if not first:
            raise DataError(f"{source}: the file is empty")
        layout = _Layout(first.decode("utf-8-sig"), delimiter, columns, source,
                         allow_missing)
    except UnicodeDecodeError:
        raise DataError(f"{source}: not a UTF-8 text file") from None
    if layout.has_header:
        return layout, number + 1
    f.seek(-len(first), io.SEEK_CUR)
    return layout, number


def _parse_body(reader, f, layout, source, body_line, size, progress):
    """The reader's array of the rows from ``f``'s position, or None if it refused them."""
    watched = _WatchedReader(f, source, body_line, size, progress)
    try:
        return reader(watched, layout)
    except Exception:  # any reader's complaint: _first_problem names it in our words
        if watched.error is not None:
            raise watched.error from None
        return None


def _first_row_is_whole(f, layout, source, line_number):
    """True if the first non-blank line from ``f``'s position has the header's field count.

    (The fast readers take the field count from the first row they read.) ``f`` is left
    where it was.
    """
    start = f.tell()
    try:
        for line in _bounded_lines(f, source, line_number):
            if line.strip():
                return _count_fields(line.decode("utf-8"), layout.delimiter) == len(layout.names)
        return True
    except UnicodeDecodeError:
        return False
    finally:
        f.seek(start)


# Files smaller than this are read by NumPy: importing pandas or pyarrow costs more than
# their faster parsing saves.
FAST_READER_MIN_BYTES = 2**20


def _text_reader(delimiter, size):
    """The body reader to use: pyarrow's CSV, pandas' C parser, or NumPy's loadtxt."""
    if size >= FAST_READER_MIN_BYTES:
        if delimiter is not None and _optional_import("pyarrow.csv") is not None:
            return _read_body_pyarrow
        if _optional_import("pandas") is not None:
            return _read_body_pandas
    return _read_body_numpy


def _optional_import(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# Cells that stand for "no value" (the common spellings that pandas and pyarrow also
# treat as missing); a cell that parses as NaN is one too.
MISSING_CELLS = ("", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null",
                 "None", "#N/A", "<NA>")


def _read_body_pyarrow(stream, layout):
    import pyarrow.csv as pv

    options, selected = _pyarrow_csv_options(layout, block_size=4 * 2**20)
    return _arrow_columns(pv.read_csv(stream, **options), range(len(selected)))


def _pyarrow_csv_options(layout, **read_options):
    """pyarrow's CSV options for the table's selected columns (float64, MISSING_CELLS as
    null), and the names it gives them."""
    import pyarrow as pa
    import pyarrow.csv as pv

    field_names = [f"f{i}" for i in range(len(layout.names))]
    selected = [field_names[i] for i in layout.indices]
    options = dict(
        read_options=pv.ReadOptions(column_names=field_names, **read_options),
        parse_options=pv.ParseOptions(delimiter=layout.delimiter, quote_char='"'),
        convert_options=pv.ConvertOptions(
            include_columns=selected, column_types={n: pa.float64() for n in selected},
            null_values=list(MISSING_CELLS), strings_can_be_null=True))
    return options, selected


def _read_body_pandas(stream, layout):
    import pandas as pd

    frame = pd.read_csv(stream, **_pandas_csv_options(layout))
    if _has_short_rows(frame, layout):
        # (or an empty cell in the last column, if unused: NumPy's reader decides)
        return None
    return frame[layout.indices].to_numpy(dtype=np.float64)


def _pandas_csv_options(layout):
    """``pandas.read_csv``'s options for the table's body.

    Every field is read: with usecols, pandas lets a long row pass. It takes the field
    count from the first row (the caller checked it), refuses a longer row and fills a
    short row's missing fields with NaN, which the last field shows.
    """
    import pandas as pd

    last = len(layout.names) - 1
    # pandas 3 parses floats exactly by default; earlier versions needed asking.
    precision = {"float_precision": "round_trip"} if pd.__version__ < "3" else {}
    return dict(sep=layout.delimiter or r"\s+", header=None,
                dtype={i: np.float64 for i in layout.indices},
                na_values={i: list(MISSING_CELLS) for i in {*layout.indices, last}},
                keep_default_na=False, quotechar='"', engine="c", encoding="utf-8",
                **precision)


def _has_short_rows(frame, layout):
    last = len(layout.names) - 1
    return frame.shape[1] != last + 1 or frame[last].isna().any()


def _number_or_missing(cell):
    """loadtxt's converter when missing cells are allowed: NaN for one of MISSING_CELLS."""
    return np.nan if cell.strip() in MISSING_CELLS else float(cell)


def _read_body_numpy(stream, layout):
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    every_column = layout.indices == list(range(len(layout.names)))
    with warnings.catch_warnings():
        # "input contained no data" is reported by the caller, as a DataError.
        warnings.simplefilter("ignore", UserWarning)
        # loadtxt checks the field count of every row only when it reads every field; the
        # line-by-line check costs a third of the reading time, so it runs only if needed.
        return np.loadtxt(text if every_column else _whole_rows(text, layout),
                          delimiter=layout.delimiter, dtype=np.float64, ndmin=2,
                          usecols=None if every_column else layout.indices, quotechar='"',
                          comments=None,
                          converters=_number_or_missing if layout.allow_missing else None)


class _RaggedRow(ValueError):
    pass


def _whole_rows(lines, layout):
    """The lines, refusing a row whose field count is not the header's.

    (loadtxt checks only the fields it reads.)
    """
    n_fields = len(layout.names)
    for line in lines:
        if line.strip() and _count_fields(line, layout.delimiter) != n_fields:
            raise _RaggedRow(line)
        yield line


def _count_fields(line, delimiter):
    if delimiter is None:
        return len(line.split())
    if '"' in line:
        return len(next(csv.reader([line], delimiter=delimiter)))
    return line.count(delimiter) + 1


class _WatchedReader(io.RawIOBase):
    """Binary reads of a file that report progress and refuse an endless line.

    The fast readers take the file in large blocks; this is where a line longer than
    MAX_LINE_LENGTH is noticed (as ``error``) before it is read whole.
    """

    def __init__(self, f, source, line_number, size, progress):
        self._f = f
        self._source = source
        self._line_number = line_number
        self._line_length = 0
        self._size = size
        self._progress = progress
        self.error = None

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size=-1):
        data = self._f.read(size)
        newlines = data.count(b"\n")
        if newlines:
            self._line_number += newlines
            self._line_length = len(data) - data.rfind(b"\n") - 1
        else:
            self._line_length += len(data)
        if self._line_length > MAX_LINE_LENGTH:
            self.error = _line_too_long(self._source, self._line_number)
            raise self.error
        if self._progress is not None and data:
            self._progress(self._f.tell(), self._size)
        return data


def _first_problem(f, layout, source):
    """The DataError naming the first bad line of a text table ``f`` (read from its start).

    None if there is none.

    Goes through the lines as they are in the file, so the line numbers are true ones
    (blank lines and the header counted).
    """
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    n_fields = len(layout.names)
    n_rows = 0
    header_ahead = layout.has_header
    try:
        for number, line in enumerate(_bounded_lines(text, source), start=1):
            fields = _fields(line, layout.delimiter)
            if not fields or header_ahead:  # a blank line, or the header
                header_ahead = header_ahead and not fields
                continue
            n_rows += 1
            if len(fields) != n_fields:
                what = "the header" if layout.has_header else "the first line"
                return DataError(f"{source}: line {number} has {len(fields)} field"
                                 f"{'s' * (len(fields) != 1)} where {what} has {n_fields}")
            for index in layout.indices:
                problem = _cell_problem(fields[index])
                if problem and not (layout.allow_missing and problem[0] == "missing"):
                    return _bad_cell(source, f"line {number}", layout.names[index], problem)
    except UnicodeDecodeError:
        return DataError(f"{source}: not a UTF-8 text file")
    finally:
        text.detach()
    if n_rows == 0:
        return DataError(f"{source}: no data rows")
    return None


def _fields(line, delimiter):
    if delimiter is None:
        return line.split()
    line = line.rstrip("\r\n")
    if not line:
        return []
    return [field.strip() for field in next(csv.reader([line], delimiter=delimiter))]


# What a cell holding one number looks like (what every reader accepts).
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity)",
                    re.IGNORECASE)


def _cell_problem(cell):
    """None for a finite number, else ``(kind, cell)``: missing, infinite or non-numeric."""
    if cell in MISSING_CELLS or cell.lower() in ("nan", "+nan", "-nan"):
        return "missing", cell
    if not NUMBER.fullmatch(cell):
        return "non-numeric", cell
    if not np.isfinite(float(cell)):
        return "infinite", cell
    return None


# What a user can do about a missing value where gmmfast needs complete data.
MISSING_ADVICE = ("drop or impute the rows with missing values first, or let gmmfast handle "
                  "them: 'gmmfast fit --missing omit' fits over the observed values, "
                  "'gmmfast impute' fills them in")


def _bad_cell(source, where, name, problem):
    kind, cell = problem
    if kind == "missing":
        shown = repr(cell) if cell else "an empty cell"
        return DataError(f"{source}: missing value ({shown}) in column {name!r}, {where}: "
                         f"{MISSING_ADVICE}")
    if kind == "infinite":
        return DataError(f"{source}: {where}, column {name!r} is an infinite value "
                         f"({cell}); every value must be finite")
    return DataError(f"{source}: {where}, column {name!r} has the non-numeric value "
                     f"{cell!r}; every selected column must be numeric (choose columns with "
                     "--columns)")


def _column_indices(columns, names, source):
    """The 0-based indices that ``columns`` selects (see :func:`read_table`), in order.

    A name that exists in the file wins over reading it as an index, a range or an
    exclusion. Exclusions alone keep every other column.
    """
    if columns is None:
        return list(range(len(names)))
    texts = [str(column) for column in columns]
    excluded = [t for t in texts if t.startswith("^") and t not in names]
    kept = [t for t in texts if t not in excluded]
    indices = []
    for text in kept:
        for index in _resolve_column(text, names, source):
            if index in indices:
                raise DataError(f"{source}: column {names[index]!r} is selected twice")
            indices.append(index)
    if not kept:
        indices = list(range(len(names)))
    dropped = {i for text in excluded for i in _resolve_column(text[1:], names, source)}
    indices = [i for i in indices if i not in dropped]
    if not indices:
        raise DataError(f"{source}: --columns {','.join(texts)} leaves no column")
    return indices


def _resolve_column(text, names, source):
    """The indices of one ``--columns`` item: a name, an index (-1 the last) or a range."""
    if text in names:
        return [names.index(text)]
    match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        if low > high:
            raise DataError(f"{source}: empty column range {text!r} (write low-high)")
        _check_index(high, names, source)
        return list(range(low, high + 1))
    if re.fullmatch(r"-?\d+", text):
        index = int(text)
        _check_index(index, names, source)
        return [index % len(names)]
    raise DataError(f"{source}: no column named {text!r} (columns: {', '.join(names)})")


def _check_index(index, names, source):
    if not -len(names) <= index < len(names):
        raise DataError(f"{source}: column index {index} is out of range (the file has "
                        f"{len(names)} columns, numbered from 0)")


def _checked(X, names, source, allow_missing, first_row=0):
    """X itself if every value is finite (or NaN, with ``allow_missing``); otherwise a
    DataError naming the first bad cell (X's rows numbered from ``first_row``)."""
    acceptable = _acceptable(X, allow_missing)
    if not acceptable.all():
        row, column = np.argwhere(~acceptable)[0]
        value = X[row, column]
        problem = ("missing", "NaN") if np.isnan(value) else ("infinite", str(value))
        raise _bad_cell(source, f"row {first_row + row}", names[column], problem)
    return Table(np.ascontiguousarray(X), names, source)


def _read_npy(f, columns, path, allow_missing):
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
                    allow_missing)


def _read_parquet(f, columns, path, allow_missing):
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
    return _checked(X, [names[i] for i in indices], path, allow_missing)


# ----------------------------------------------------------------------------------------
# tables read in batches, never whole (gmmfast fit --online)
# ----------------------------------------------------------------------------------------


class BatchedTable:
    """A data file read a batch of rows at a time, so that it is never held whole.

    Its kind, columns and header are read (and refused as :func:`read_table` would) when
    it is made; :meth:`batches` reads the rows, and can be called again for another pass.
    Each batch is a float64 array checked as :func:`read_table` checks the whole table,
    with the same messages: text tables through pyarrow's streaming CSV reader, else
    pandas' chunked one, else line by line in Python; ``.npy`` arrays through a memory
    map; Parquet files by record batches (pyarrow).
    """

    def __init__(self, path, columns=None, allow_missing=False):
        path = os.fspath(path)
        if not os.path.exists(path):
            raise DataError(f"no such file: {path}")
        if os.path.isdir(path):
            raise DataError(f"{path} is a directory, not a data file")
        self.source = path
        self.allow_missing = allow_missing
        suffix = os.path.splitext(path)[1].lower()
        if suffix in TEXT_SUFFIXES:
            self._open_body = self._text_layout(columns, "\t" if suffix == ".tsv" else None)
        elif suffix == ".npy":
            self._open_body = self._npy_layout(columns)
        elif suffix in PARQUET_SUFFIXES:
            self._open_body = self._parquet_layout(columns)
        else:
            raise DataError(f"{path}: unsupported file type {suffix or '(no suffix)'!r}; use "
                            ".csv, .tsv, .txt, .npy or .parquet")

    def describe(self):
        d = len(self.names)
        return f"{self.source}: {d} column{'s' * (d != 1)} ({', '.join(self.names)})"

    def batches(self, batch_rows):
        """The rows of the file, ``batch_rows`` at a time (the last batch may be smaller),
        each checked; a DataError for a file without data rows."""
        n_rows = 0
        for X in _rebatched(self._open_body(), batch_rows):
            yield _checked(X, self.names, self.source, self.allow_missing, n_rows).X
            n_rows += X.shape[0]
        if n_rows == 0:
            raise DataError(f"{self.source}: no data rows")

    # -- text ----------------------------------------------------------------------------

    def _text_layout(self, columns, delimiter):
        with _open(self.source) as f:
            layout, body_line = _read_layout(f, delimiter, columns, self.source,
                                             self.allow_missing)
            body_start = f.tell()
            line_bytes = len(f.readline(MAX_LINE_LENGTH))
        self.names = [layout.names[i] for i in layout.indices]
        read_blocks = _text_batch_reader(layout, line_bytes)

        def open_body():
            with _open(self.source) as f:
                f.seek(body_start)
                watched = _WatchedReader(f, self.source, body_line, 0, None)
                # Closed before f is (however the batches end): a reader may read ahead.
                with contextlib.closing(read_blocks(watched, layout)) as blocks:
                    try:
                        for X in blocks:
                            if not _acceptable(X, self.allow_missing).all():
                                raise _RaggedRow("a value no reader accepts")
                            yield X
                    except DataError:
                        raise
                    except Exception:  # any reader's complaint, named as read_table names it
                        blocks.close()  # it stops reading f before f is read from the start
                        if watched.error is not None:
                            raise watched.error from None
                        f.seek(0)
                        problem = _first_problem(f, layout, self.source)
                        raise problem or DataError(
                            f"{self.source}: cannot read the table in batches") from None

        return open_body

    # -- .npy ----------------------------------------------------------------------------

    def _npy_layout(self, columns):
        path = self.source
        with _open(path) as f:
            try:
                shape, fortran_order, dtype = read_npy_header(f)
            except ValueError as exc:
                raise DataError(f"{path}: not a readable .npy array ({exc})") from None
            offset, available = f.tell(), file_size(f) - f.tell()
        if dtype.names is not None or dtype.kind not in "biuf":
            raise DataError(f"{path}: the array's dtype {dtype} is not numeric; save a "
                            "plain 2-d numeric array")
        if len(shape) not in (1, 2):
            raise DataError(f"{path}: expected a 1-d or 2-d array, got {len(shape)} "
                            "dimensions")
        size = npy_data_size(shape, dtype)
        if size > available:
            raise DataError(f"{path}: the .npy header describes a {dtype} array of shape "
                            f"{shape} ({format_bytes(size)}) but the file holds "
                            f"{format_bytes(available)} of data (truncated or damaged)")
        names = [f"x{i}" for i in range(shape[1] if len(shape) == 2 else 1)]
        indices = _column_indices(columns, names, path)
        self.names = [names[i] for i in indices]

        n_rows, n_columns = shape[0], len(names)

        def open_body():
            if size == 0:
                return
            if fortran_order:
                yield from _fortran_npy_blocks(path, offset, shape, dtype, indices)
                return
            # A C-order array's rows are consecutive bytes: read a block at a time, so
            # that only one block is ever in memory.
            with _open(path) as f:
                f.seek(offset)
                for start in range(0, n_rows, NPY_BLOCK_ROWS):
                    rows = min(NPY_BLOCK_ROWS, n_rows - start)
                    block = read_npy_data(f, (rows, n_columns), False, dtype)
                    yield block[:, indices].astype(np.float64)

        return open_body

    # -- Parquet -------------------------------------------------------------------------

    def _parquet_layout(self, columns):
        path = self.source
        pq = _optional_import("pyarrow.parquet")
        if pq is None:
            raise DataError("reading .parquet files in batches needs pyarrow: "
                            "pip install pyarrow")
        import pyarrow as pa

        with _open(path) as f:
            try:
                schema = pq.read_schema(f)
            except Exception as exc:  # pyarrow's errors have no common base worth naming
                raise DataError(f"{path}: not a readable parquet file "
                                f"({error_summary(exc)})") from None
        names = [str(name) for name in schema.names]
        indices = _column_indices(columns, names, path)
        for i in indices:
            kind = schema.field(i).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                raise DataError(f"{path}: column {names[i]!r} is not numeric ({kind}); "
                                "choose numeric columns with --columns")
        self.names = [names[i] for i in indices]

        def open_body():
            with _open(path) as f:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=NPY_BLOCK_ROWS,
                                                            columns=self.names):
                    yield _arrow_columns(batch, range(len(self.names)))

        return open_body


# Rows taken at a time from a memory map or a Parquet file before they are re-cut into
# batches: large enough for speed, small enough to bound memory.
NPY_BLOCK_ROWS = 65536


def _fortran_npy_blocks(path, offset, shape, dtype, indices):
    """Blocks of rows of a Fortran-order ``.npy`` array (whose rows are scattered through
    the file) through a memory map: the operating system reads the pages a block needs,
    and can drop them again."""
    array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F")
    if array.ndim == 1:
        array = array[:, None]
    for start in range(0, array.shape[0], NPY_BLOCK_ROWS):
        yield array[start:start + NPY_BLOCK_ROWS][:, indices].astype(np.float64)


def _rebatched(blocks, batch_rows):
    """The rows of the arrays ``blocks`` (any number of rows each), ``batch_rows`` at a
    time: the same batches whatever the reader's own block sizes."""
    pending, n_pending = [], 0
    for block in blocks:
        while block.shape[0]:
            take = min(batch_rows - n_pending, block.shape[0])
            pending.append(block[:take])
            n_pending += take
            block = block[take:]
            if n_pending == batch_rows:
                yield np.concatenate(pending) if len(pending) > 1 else pending[0]
                pending, n_pending = [], 0
    if n_pending:
        yield np.concatenate(pending)


def _arrow_columns(table, positions):
    """The columns at ``positions`` of a pyarrow table or record batch, float64, a null
    as NaN."""
    import pyarrow as pa

    X = np.empty((table.num_rows, len(positions)))
    for j, position in enumerate(positions):
        column = table.column(position)
        if column.type != pa.float64():  # a cast imports pyarrow.compute (0.1 s)
            column = column.cast(pa.float64())
        _fill_from_arrow(X[:, j], getattr(column, "chunks", [column]))
    return X


def _fill_from_arrow(out, chunks):
    """``out`` filled with the float64 arrow arrays ``chunks``, a null as NaN.

    Read from the arrays' buffers (arrow's columnar format): pyarrow's ``to_numpy``
    imports pandas, 0.7 s of a 1.5 s ``gmmfast predict``.
    """
    start = 0
    for chunk in chunks:
        n, offset = len(chunk), chunk.offset
        validity, values = chunk.buffers()
        part = out[start:start + n]
        part[:] = np.frombuffer(values, dtype=np.float64, count=n, offset=8 * offset)
        if chunk.null_count:
            bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8),
                                 count=offset + n, bitorder="little")
            part[bits[offset:] == 0] = np.nan
        start += n


def _text_batch_reader(layout, line_bytes):
    """The installed reader of a text table's body in blocks of rows; its first line is
    ``line_bytes`` long.

    pandas' chunks come first: pyarrow's streaming reader reads ahead in a thread of its
    own, and a table refused mid-file once left that thread reading at exit (the process
    aborted, under the wheel's vendored OpenMP runtime).
    """
    if _optional_import("pandas") is not None:
        return _text_blocks_pandas
    if layout.delimiter is not None and _optional_import("pyarrow.csv") is not None:
        # pyarrow's blocks hold whole lines: room for several of the first one's length.
        return functools.partial(_text_blocks_pyarrow,
                                 block_bytes=max(TEXT_BLOCK_BYTES, 8 * line_bytes))
    return _text_blocks_python


# pyarrow's streaming reader reads a few dozen blocks ahead: 1 MB blocks keep that under
# 100 MB (4 MB ones cost about 200 MB), at no measurable cost in speed.
TEXT_BLOCK_BYTES = 2**20


def _text_blocks_pyarrow(stream, layout, block_bytes=TEXT_BLOCK_BYTES):
    import pyarrow.csv as pv

    options, selected = _pyarrow_csv_options(layout, block_size=block_bytes,
                                             use_threads=False)
    reader = pv.open_csv(stream, **options)
    try:
        for batch in reader:
            yield _arrow_columns(batch, range(len(selected)))
    finally:
        # Stops the reader's read-ahead, which would otherwise go on reading the stream in
        # a thread of its own, even while the process exits.
        reader.close()


def _text_blocks_pandas(stream, layout):
    import pandas as pd

    for frame in pd.read_csv(stream, chunksize=NPY_BLOCK_ROWS, **_pandas_csv_options(layout)):
        if _has_short_rows(frame, layout):
            raise _RaggedRow("a short row")
        yield frame[layout.indices].to_numpy(dtype=np.float64)


def _text_blocks_python(stream, layout):
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    parse = _number_or_missing if layout.allow_missing else float
    n_fields = len(layout.names)
    rows = []
    for line in _bounded_lines(text, "the table"):
        fields = _fields(line, layout.delimiter)
        if not fields:
            continue
        if len(fields) != n_fields:
            raise _RaggedRow(line)
        rows.append([parse(fields[i]) for i in layout.indices])
        if len(rows) == NPY_BLOCK_ROWS:
            yield np.array(rows, dtype=np.float64)
            rows = []
    if rows:
        yield np.array(rows, dtype=np.float64)
