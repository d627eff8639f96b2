"""Reading text tables: pyarrow's CSV, pandas and NumPy give the same array and the same errors.

Each reader is forced in turn (the fast ones on every file size, the others made
unimportable), so the fallbacks are tested on a machine that has pyarrow and pandas.
"""

import re

import numpy as np
import pytest

from gmmfast import _datafile
from gmmfast._datafile import DataError, read_table

READERS = ["pyarrow", "pandas", "numpy"]


@pytest.fixture(params=READERS)
def reader(request, monkeypatch):
    """Make ``read_table`` use one reader, whatever the file size."""
    name = request.param
    if name == "pyarrow":
        pytest.importorskip("pyarrow.csv")
    if name == "pandas":
        pytest.importorskip("pandas")
    # Hidden from gmmfast only: pandas itself may use pyarrow (for its strings).
    blocked = {"pyarrow": [], "pandas": ["pyarrow.csv"], "numpy": ["pyarrow.csv", "pandas"]}[name]
    original_import = _datafile._optional_import
    monkeypatch.setattr(_datafile, "_optional_import",
                        lambda module: None if module in blocked else original_import(module))
    monkeypatch.setattr(_datafile, "FAST_READER_MIN_BYTES", 0)
    used = []
    original = _datafile._text_reader

    def spy(delimiter, size):
        chosen = original(delimiter, size)
        used.append(chosen.__name__)
        return chosen

    monkeypatch.setattr(_datafile, "_text_reader", spy)
    yield name, used


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_each_reader_gives_the_same_array_bit_for_bit(tmp_path, reader):
    name, used = reader
    rng = np.random.RandomState(0)
    X = rng.standard_normal((2000, 4)) * 10.0 ** rng.randint(-8, 8, size=(2000, 4))
    lines = ["id,a,b,c,d"] + [f"r{i}," + ",".join(repr(float(v)) for v in row)
                              for i, row in enumerate(X)]
    lines[7] = ""  # a blank line is skipped
    X = np.delete(X, 6, axis=0)
    path = write(tmp_path, "t.csv", "\r\n".join(lines) + "\r\n")
    table = read_table(path, ["a", "2-4"])
    assert used == [f"_read_body_{name}"]
    assert table.names == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(table.X, X)
    assert table.X.flags.c_contiguous and table.X.dtype == np.float64


@pytest.mark.parametrize("text, columns, expected", [
    ('"a";"b"\n1;2\n', None, [[1, 2]]),
    ("\ufeffu,v\n+1.,.5\n3e2, 4 \n", None, [[1, 0.5], [300, 4]]),
    ('1,"2"\n3,4\n', None, [[1, 2], [3, 4]]),
    ("p\tq\tr\n1\t2\t3\n", ["^q"], [[1, 3]]),
    ("p,q,r,s\n1,2,3,4\n", ["^0", "^2-3"], [[2]]),
])
def test_small_tables(tmp_path, reader, text, columns, expected):
    assert read_table(write(tmp_path, "t.csv", text), columns).X.tolist() == expected


BAD_TABLES = [
    ("a,b\n1,2\n3,x\n", "t.csv: line 3, column 'b' has the non-numeric value 'x'; every "
     "selected column must be numeric (choose columns with --columns)"),
    ("a,b\n1,2\n3,NA\n", "t.csv: missing value ('NA') in column 'b', line 3: drop or impute "
     "the rows with missing values first, or let gmmfast handle them"),
    ("a,b\n1,2\n\n3,\n", "t.csv: missing value (an empty cell) in column 'b', line 4"),
    ("a,b\n1,2\n3,4\nNaN,1\n", "t.csv: missing value ('NaN') in column 'a', line 4"),
    ("a,b\n1,2\n3,NA\nnan,x\n", "missing value ('NA') in column 'b', line 3"),
    ("a,b\n1,2\n3,-inf\n", "t.csv: line 3, column 'b' is an infinite value (-inf)"),
    ("a,b\n1,2\n\n\n3,4,5\n", "t.csv: line 5 has 3 fields where the header has 2"),
    ("\n\na,b\n1,2\n3\n", "t.csv: line 5 has 1 field where the header has 2"),
    ("a,b,c\n1,2,3\n4,5\n", "t.csv: line 3 has 2 fields where the header has 3"),
    ("1,2\n3,4,5\n", "t.csv: line 2 has 3 fields where the first line has 2"),
    ("a,b\n", "t.csv: no data rows"),
    ("a,b\n1,1_000\n", "non-numeric value '1_000'"),
]


@pytest.mark.parametrize("text, message", BAD_TABLES)
def test_each_reader_reports_the_same_problem(tmp_path, reader, text, message):
    with pytest.raises(DataError) as error:
        read_table(write(tmp_path, "t.csv", text), ["0", "1"])
    assert message in str(error.value)


def test_a_short_row_is_ragged_even_outside_the_selected_columns(tmp_path, reader):
    path = write(tmp_path, "t.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(DataError, match="line 3 has 2 fields where the header has 3"):
        read_table(path, ["a"])


def test_not_utf8(tmp_path, reader):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n1,2\n3,\xff\n")
    with pytest.raises(DataError, match="t.csv: not a UTF-8 text file"):
        read_table(path)


def test_an_endless_line_is_refused_by_every_reader(tmp_path, reader, monkeypatch):
    monkeypatch.setattr(_datafile, "MAX_LINE_LENGTH", 1000)
    path = write(tmp_path, "t.csv", "a,b\n" + "1,2," * 5000)
    with pytest.raises(DataError, match="line 2 is longer than 1000 characters"):
        read_table(path)


def test_progress_is_reported_while_reading(tmp_path, reader):
    rows = "".join(f"{i},{i * 0.5}\n" for i in range(200_000))
    path = write(tmp_path, "t.csv", "a,b\n" + rows)
    calls = []
    table = read_table(path, progress=lambda done, total: calls.append((done, total)))
    size = path.stat().st_size
    assert table.X.shape == (200_000, 2)
    assert calls and calls[-1] == (size, size)
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))


@pytest.mark.parametrize("columns, message", [
    (["3-1"], "empty column range '3-1'"),
    (["0-7"], "column index 7 is out of range (the file has 4 columns"),
    (["^0-3"], "--columns ^0-3 leaves no column"),
    (["a", "0-1"], "column 'a' is selected twice"),
])
def test_column_ranges_and_exclusions_errors(tmp_path, columns, message):
    path = write(tmp_path, "t.csv", "a,b,c,d\n1,2,3,4\n")
    with pytest.raises(DataError, match=re.escape(message)):
        read_table(path, columns)


def test_a_column_named_like_a_range_is_the_column(tmp_path):
    path = write(tmp_path, "t.csv", "0-1,^b,c\n1,2,3\n")
    assert read_table(path, ["0-1"]).X.tolist() == [[1]]
    assert read_table(path, ["^b"]).X.tolist() == [[2]]
    assert read_table(path, ["^c"]).X.tolist() == [[1, 2]]


@pytest.mark.parametrize("missing", ["", "NA", "nan", "NULL"])
def test_each_reader_reads_missing_cells_as_nan_when_allowed(tmp_path, reader, missing):
    rng = np.random.RandomState(1)
    X = rng.standard_normal((500, 3))
    holes = rng.uniform(size=X.shape) < 0.1
    holes[0, 0] = True  # in the first data row too: it is still data, not a header
    lines = ["a,b,c"] + [",".join(missing if hole else repr(float(v))
                                  for v, hole in zip(row, holes_row))
                         for row, holes_row in zip(X, holes)]
    path = write(tmp_path, "t.csv", "\n".join(lines) + "\n")
    table = read_table(path, allow_missing=True)
    expected = np.where(holes, np.nan, X)
    np.testing.assert_array_equal(table.X, expected)
    assert table.names == ["a", "b", "c"]
    with pytest.raises(DataError, match=r"missing value .* in column 'a', line 2: drop or "
                                        r"impute .* --missing omit"):
        read_table(path)


def test_an_infinite_value_is_refused_even_when_missing_values_are_allowed(tmp_path, reader):
    path = write(tmp_path, "t.csv", "a,b\n1,NA\n2,inf\n3,4\n")
    with pytest.raises(DataError, match="line 3, column 'b' is an infinite value"):
        read_table(path, allow_missing=True)
