"""The command line with missing values: ``fit --missing omit``, ``predict --missing omit``
and ``gmmfast impute`` (in process; tests/test_cli.py covers the subprocess behaviour)."""

import csv
import io

import numpy as np
import pytest

from gmmfast._cli import main

INCOMPLETE = ("a,b,c\n1,2,3\n2,,4\nNA,5,6\n3,4,\n1.5,2.5,3.5\n2,3,4.5\n,,\n4,6,8\n"
              "2.5,3.5,5\nnan,4.5,6.5\n3.5,5,7\n1,2.2,2.8\n")


def run(tmp_path, monkeypatch, capsys, *args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "incomplete.csv").write_text(INCOMPLETE)
    try:
        status = main(list(args))
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def read_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def incomplete_values():
    from gmmfast._datafile import read_table

    return read_table("incomplete.csv", allow_missing=True).X


def test_fit_refuses_missing_values_by_default_and_names_the_option(tmp_path, monkeypatch,
                                                                    capsys):
    status, out, err = run(tmp_path, monkeypatch, capsys, "fit", "incomplete.csv", "-q")
    assert status == 2 and out == ""
    assert "missing value (an empty cell) in column 'b', line 3" in err
    assert "--missing omit" in err and "gmmfast impute" in err


def test_fit_with_missing_omit_fits_over_the_observed_values(tmp_path, monkeypatch, capsys):
    status, out, err = run(tmp_path, monkeypatch, capsys, "fit", "incomplete.csv", "-k", "1-2",
                           "-c", "diag", "--missing", "omit", "-q", "--labels", "labels.csv",
                           "--plot", "figure.png")
    assert status == 0, err
    assert "12 rows x 3 columns (a, b, c)" in out
    header, labels = read_csv((tmp_path / "labels.csv").read_text())
    assert header[0] == "label" and labels.shape[0] == 12
    assert (tmp_path / "figure.png").stat().st_size > 0


def test_predict_with_missing_omit(tmp_path, monkeypatch, capsys):
    run(tmp_path, monkeypatch, capsys, "fit", "incomplete.csv", "-k", "2", "-c", "diag",
        "--missing", "omit", "-q", "--save", "model.npz")
    status, out, err = run(tmp_path, monkeypatch, capsys, "predict", "model.npz",
                           "incomplete.csv", "--missing", "omit")
    assert status == 0, err
    header, rows = read_csv(out)
    assert header == ["label", "p_0", "p_1"] and rows.shape == (12, 3)
    status, _, err = run(tmp_path, monkeypatch, capsys, "predict", "model.npz",
                         "incomplete.csv")
    assert status == 2 and "--missing omit" in err


def test_impute_writes_the_completed_table(tmp_path, monkeypatch, capsys):
    status, out, err = run(tmp_path, monkeypatch, capsys, "impute", "incomplete.csv", "-k",
                           "1", "-c", "full")
    assert status == 0, err
    header, completed = read_csv(out)
    original = incomplete_values()
    assert header == ["a", "b", "c"]
    assert np.isfinite(completed).all()
    observed = ~np.isnan(original)
    np.testing.assert_array_equal(completed[observed], original[observed])
    # The row with nothing observed gets the mixture's mean: the column means (one
    # Gaussian, whose mean EM estimates from all the observed values).
    assert np.all(np.abs(completed[6] - np.nanmean(original, axis=0)) < 1.0)


def test_impute_to_files(tmp_path, monkeypatch, capsys):
    status, out, err = run(tmp_path, monkeypatch, capsys, "impute", "incomplete.csv", "-k",
                           "1", "-o", "completed.csv")
    assert status == 0, err
    assert "filled in from a mixture of 1 component" in out
    assert "written to completed.csv" in out
    _, from_csv = read_csv((tmp_path / "completed.csv").read_text())
    status, _, err = run(tmp_path, monkeypatch, capsys, "impute", "incomplete.csv", "-k",
                         "1", "-o", "completed.npy")
    assert status == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "completed.npy"), from_csv)


def test_impute_with_posterior_draws_is_seeded(tmp_path, monkeypatch, capsys):
    args = ("impute", "incomplete.csv", "-k", "1", "--sample-posterior")
    first = run(tmp_path, monkeypatch, capsys, *args, "--seed", "3")[1]
    assert first == run(tmp_path, monkeypatch, capsys, *args, "--seed", "3")[1]
    assert first != run(tmp_path, monkeypatch, capsys, *args, "--seed", "4")[1]


@pytest.mark.parametrize("text, message", [
    ("a,b\n1,inf\n2,3\n", "column 'b' is an infinite value"),
    ("a,b\n1,\n2,\n3,\n", "Column 1 of X has no observed value"),
])
def test_impute_reports_bad_input_in_one_line(tmp_path, monkeypatch, capsys, text, message):
    (tmp_path / "bad.csv").write_text(text)
    status, out, err = run(tmp_path, monkeypatch, capsys, "impute", "bad.csv", "-k", "1")
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
