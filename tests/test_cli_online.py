"""``gmmfast fit DATA --online``: one GaussianMixture fitted by partial_fit over batches of
rows read from the file, never whole; and the batched readers behind it."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import gmmfast
from gmmfast import GaussianMixture
from gmmfast import _datafile
from gmmfast._cli import main
from gmmfast._datafile import BatchedTable, DataError, read_table

FITTED_ARRAYS = ("weights_", "means_", "covariances_", "precisions_cholesky_")


def blobs(n=2500, seed=0):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.randn(n // 2, 3), rng.randn(n - n // 2, 3) * 0.5 + 4])
    return X[rng.permutation(n)]


def write_csv(path, X, delimiter=","):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(["id", "x", "y", "z"])
        for i, row in enumerate(X):
            writer.writerow([f"row{i}"] + [repr(float(v)) for v in row])
    return path


def by_hand(X, batch_rows, **params):
    """partial_fit over the batches as fit --online runs it (its --init default is
    multistart: the first batch starts from the screening's winner)."""
    params.setdefault("init_params", "multistart")
    model = GaussianMixture(2, random_state=0, **params)
    for start in range(0, X.shape[0], batch_rows):
        model.partial_fit(X[start:start + batch_rows])
    return model


def assert_same_model(a, b):
    for name in FITTED_ARRAYS:
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.n_iter_ == b.n_iter_


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("online")
    X = blobs()
    np.save(folder / "data.npy", X)
    write_csv(folder / "data.csv", X)
    return folder, X


@pytest.mark.parametrize("name, columns", [("data.csv", ["^id"]), ("data.npy", None)])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_the_model_is_partial_fit_over_the_same_batches(data, capsys, name, columns,
                                                        covariance_type):
    folder, X = data
    saved = folder / f"{name}.{covariance_type}.npz"
    argv = ["fit", folder / name, "--online", "-k", "2", "-c", covariance_type,
            "--batch-rows", "300", "--save", saved, "-q"]
    if columns:
        argv += ["--columns", ",".join(columns)]
    assert main(list(map(str, argv))) == 0
    out = capsys.readouterr().out
    expected = by_hand(X, 300, covariance_type=covariance_type)
    loaded = gmmfast.load(saved)
    assert_same_model(loaded, expected)
    assert f"online EM over {len(X)} rows in 9 batches of up to 300 rows" in out
    assert "Components" in out
    # The saved model is mid-stream: it continues as the hand-fitted one does.
    assert_same_model(loaded.partial_fit(X[:300]), expected.partial_fit(X[:300]))


def test_labels_are_written_in_a_second_pass(data, capsys):
    folder, X = data
    labels = folder / "labels.csv"
    assert main(["fit", str(folder / "data.npy"), "--online", "-k", "2", "--batch-rows",
                 "1000", "--labels", str(labels), "-q"]) == 0
    assert f"Labels and probabilities of the {len(X)} rows" in capsys.readouterr().out
    table = np.loadtxt(labels, delimiter=",", skiprows=1)
    model = by_hand(X, 1000)
    np.testing.assert_array_equal(table[:, 0], model.predict(X))
    np.testing.assert_allclose(table[:, 1:], model.predict_proba(X), rtol=1e-15)


def test_progress_shows_rows_and_log_likelihood(data, capsys, monkeypatch):
    folder, _ = data
    from gmmfast import _cli

    monkeypatch.setattr(_cli._StreamProgress, "INTERVAL", 0.0)
    assert main(["fit", str(folder / "data.npy"), "--online", "-k", "2", "--batch-rows",
                 "500", "--progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5
    assert err[-1].startswith("gmmfast: 2500 rows in 5 batches, average log-likelihood")
    assert main(["fit", str(folder / "data.npy"), "--online", "-k", "2", "-q"]) == 0
    assert capsys.readouterr().err == ""


# -- the batched readers -------------------------------------------------------------------


TEXT_READERS = [_datafile._text_blocks_pyarrow, _datafile._text_blocks_pandas,
                _datafile._text_blocks_python]


@pytest.mark.parametrize("reader", TEXT_READERS, ids=lambda r: r.__name__)
@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_every_text_reader_gives_the_table_in_batches(tmp_path, monkeypatch, reader,
                                                      delimiter):
    X = blobs(700)
    path = write_csv(tmp_path / ("data.tsv" if delimiter == "\t" else "data.csv"), X,
                     delimiter)
    monkeypatch.setattr(_datafile, "_text_batch_reader", lambda layout, line_bytes: reader)
    table = BatchedTable(path, ["x", "z"])
    assert table.names == ["x", "z"]
    batches = list(table.batches(256))
    assert [len(b) for b in batches] == [256, 256, 188]
    np.testing.assert_array_equal(np.vstack(batches), read_table(path, ["x", "z"]).X)
    assert np.vstack(list(table.batches(1000))).tobytes() == np.vstack(batches).tobytes()


def test_lines_longer_than_pyarrow_s_block_are_read(tmp_path):
    X = np.random.RandomState(0).randn(12, 30_000)
    np.savetxt(tmp_path / "wide.csv", X, delimiter=",")
    assert (tmp_path / "wide.csv").stat().st_size > 8 * _datafile.TEXT_BLOCK_BYTES
    batches = list(BatchedTable(tmp_path / "wide.csv").batches(5))
    np.testing.assert_array_equal(np.vstack(batches), X)


def test_batches_are_cut_the_same_whatever_the_reader_s_blocks(tmp_path, monkeypatch):
    X = blobs(1000)
    np.save(tmp_path / "data.npy", X)
    monkeypatch.setattr(_datafile, "NPY_BLOCK_ROWS", 7)
    batches = list(BatchedTable(tmp_path / "data.npy").batches(100))
    assert [len(b) for b in batches] == [100] * 10
    np.testing.assert_array_equal(np.vstack(batches), X)


def test_a_fortran_1d_or_integer_npy_is_read_in_batches(tmp_path):
    X = np.asfortranarray(np.arange(30, dtype=np.int32).reshape(10, 3))
    np.save(tmp_path / "f.npy", X)
    np.save(tmp_path / "v.npy", X[:, 0].copy())
    np.testing.assert_array_equal(np.vstack(list(BatchedTable(tmp_path / "f.npy", ["2", "0"])
                                                 .batches(4))), X[:, [2, 0]])
    np.testing.assert_array_equal(np.vstack(list(BatchedTable(tmp_path / "v.npy")
                                                 .batches(4))), X[:, :1])


def test_parquet_is_read_by_record_batches(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X = blobs(500)
    pd.DataFrame(X, columns=["a", "b", "c"]).to_parquet(tmp_path / "d.parquet",
                                                         row_group_size=77)
    table = BatchedTable(tmp_path / "d.parquet", ["c", "a"])
    np.testing.assert_array_equal(np.vstack(list(table.batches(100))), X[:, [2, 0]])


@pytest.mark.parametrize("reader", TEXT_READERS, ids=lambda r: r.__name__)
@pytest.mark.parametrize("line, column", [("row9,1,2", None), ("row9,1,2,3,4", None),
                                          ("row9,1,abc,3", "non-numeric"),
                                          ("row9,1,,3", "missing"),
                                          ("row9,1,inf,3", "infinite")])
def test_a_bad_line_gets_read_table_s_message(tmp_path, monkeypatch, reader, line, column):
    X = blobs(300)
    path = write_csv(tmp_path / "bad.csv", X)
    lines = path.read_text().splitlines()
    lines[250] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as expected:
        read_table(path, ["^id"])
    monkeypatch.setattr(_datafile, "_text_batch_reader", lambda layout, line_bytes: reader)
    with pytest.raises(DataError) as got:
        list(BatchedTable(path, ["^id"]).batches(100))
    assert str(got.value) == str(expected.value)
    assert "line 251" in str(got.value)


def test_a_missing_npy_value_names_its_row(tmp_path):
    X = blobs(300)
    X[123, 1] = np.nan
    np.save(tmp_path / "d.npy", X)
    with pytest.raises(DataError, match="missing value .* column 'x1', row 123"):
        list(BatchedTable(tmp_path / "d.npy").batches(50))
    np.testing.assert_array_equal(
        np.vstack(list(BatchedTable(tmp_path / "d.npy", allow_missing=True).batches(50))), X)


def test_a_truncated_npy_is_refused_before_reading(tmp_path):
    np.save(tmp_path / "d.npy", blobs(300))
    data = (tmp_path / "d.npy").read_bytes()
    (tmp_path / "d.npy").write_bytes(data[:-100])
    with pytest.raises(DataError, match="truncated or damaged"):
        BatchedTable(tmp_path / "d.npy")


# -- the command's errors ------------------------------------------------------------------


def run(cwd, *args):
    return subprocess.run([sys.executable, "-m", "gmmfast", *map(str, args)],
                          capture_output=True, text=True, timeout=180, cwd=cwd)


@pytest.mark.parametrize("options, message", [
    (["--batch-rows", "0"], "argument --batch-rows: must be at least 1, got 0"),
    (["--batch-rows", "ten"], "argument --batch-rows: invalid int value: 'ten'"),
    (["-k", "1-3"], "--online fits one model: give -k K, one number >= 1"),
    (["-k", "auto"], "--online fits one model: give -k K"),
    (["-k", "2", "-c", "full,diag"], "--covariance-type: 'full,diag' is not one of"),
    (["-k", "2", "--criterion", "bic"], "--criterion is not available with --online"),
    (["-k", "2", "--bayesian"], "--bayesian is not available with --online"),
    (["-k", "2", "--scale"], "--scale is not available with --online"),
    (["-k", "2", "--n-init", "3"], "--n-init is not available with --online"),
    (["-k", "2", "--json", "out.json"], "--json is not available with --online"),
])
def test_options_a_stream_cannot_take_exit_2_with_one_line(data, options, message, monkeypatch,
                                                          capsys):
    from gmmfast._cli import main

    folder, _ = data
    monkeypatch.chdir(folder)
    try:  # in process: the subprocess tests above and below cover the exit status itself
        status = main(["fit", "data.csv", "--online", *options])
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    stderr = capsys.readouterr().err
    assert status == 2
    assert len(stderr.strip().splitlines()) == 1
    assert message in stderr


def test_batch_rows_without_online_is_refused(data):
    folder, _ = data
    result = run(folder, "fit", "data.npy", "--batch-rows", "10")
    assert result.returncode == 2 and "--batch-rows is the batch size of --online" in \
        result.stderr


def test_a_ragged_line_exits_2_with_one_line(data, tmp_path):
    folder, X = data
    lines = (folder / "data.csv").read_text().splitlines()
    lines[2000] = "row1999,1,2"
    (tmp_path / "ragged.csv").write_text("\n".join(lines) + "\n")
    result = run(tmp_path, "fit", "ragged.csv", "--online", "-k", "2", "--columns", "^id")
    assert result.returncode == 2
    assert result.stderr.strip() == ("gmmfast fit: error: ragged.csv: line 2001 has 3 fields "
                                     "where the header has 4")
    assert os.listdir(tmp_path) == ["ragged.csv"]
