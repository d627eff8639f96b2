"""The command line, end to end: ``python -m gmmfast`` in a subprocess.

Every run happens in a temporary directory, so the installed gmmfast is imported even when
the tests are run from a source checkout.
"""

import csv
import importlib.util
import io
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import gmmfast
from gmmfast._cli import parse_covariance_types, parse_n_components
from gmmfast._covariance_models import COVARIANCE_MODELS

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run(cwd, *args):
    return subprocess.run([sys.executable, "-m", "gmmfast", *map(str, args)],
                          capture_output=True, text=True, timeout=180, cwd=cwd)


def ok(cwd, *args):
    result = run(cwd, *args)
    assert result.returncode == 0, result.stderr
    return result


def read_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def old_faithful():
    from gmmfast._datafile import read_table

    return read_table(None).X


def write_blobs(path):
    """A CSV with a header, a non-numeric id column and three numeric columns."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(60, 3) * 0.5 + c for c in ([0, 0, 0], [5, 5, 0], [0, 6, 4])])
    X = X[rng.permutation(len(X))]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "x", "y", "z"])
        for i, row in enumerate(X):
            writer.writerow([f"row{i}"] + [repr(float(v)) for v in row])
    return X


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One ``gmmfast fit`` of a CSV with a header, writing every output it can."""
    directory = tmp_path_factory.mktemp("cli")
    X = write_blobs(directory / "blobs.csv")
    args = ["fit", "blobs.csv", "--columns", "x,y", "-k", "1-4", "-c", "full,diag",
            "--save", "model.gmm", "--labels", "labels.csv", "--progress"]
    if HAS_MATPLOTLIB:
        args += ["--plot", "clusters.png"]
    result = ok(directory, *args)
    search = gmmfast.select_model(X[:, :2], [1, 2, 3, 4], ["full", "diag"], random_state=0)
    return directory, X, result, search


def test_gmmfast_alone_runs_fit_on_the_bundled_data(tmp_path):
    result = ok(tmp_path)
    out = result.stdout
    # Both lines are longer than 100 characters in one piece.
    assert "Data: Old Faithful geyser eruptions (bundled with gmmfast): 272 rows x 2 " \
           "columns:\n  eruptions, waiting\n" in out
    assert "Search: n_components 1..10 x covariance_type EII, VII, EEI, VEI, EVI, VVI, EEE, " \
           "VEE, EVE, VVE, EEV,\n  VEV, EVV, VVV = 140 candidates, by BIC" in out
    # Fourteen models in two blocks of columns, to fit 100 characters.
    table_rows = [line for line in out.splitlines() if line[:3].strip().isdigit()
                  and len(line.split()) in (9, 7)]
    assert [int(line.split()[0]) for line in table_rows] == 2 * list(range(1, 11))
    assert "Chosen model: n_components=3, covariance_type='EEE'" in out
    assert "BIC 2314.30" in out  # mclust's optimum for EEE with 3 components
    assert "correlation" in out and "Time:" in out
    assert result.stderr == ""  # not a terminal: no progress lines
    # The same search in Python:
    search = gmmfast.select_model(old_faithful(), random_state=0)
    assert (search.n_components_, search.covariance_type_) == (3, "EEE")
    assert f"BIC {search.criterion_table_['bic'][search.best_index_]:.2f}" in out


def test_fit_a_csv_with_a_header(fitted):
    directory, X, result, search = fitted
    assert "blobs.csv: 180 rows x 2 columns (x, y)" in result.stdout
    assert "= 8 candidates" in result.stdout
    assert f"Chosen model: n_components={search.n_components_}" in result.stdout
    progress = result.stderr.strip().splitlines()
    assert len(progress) == 8 and all(line.startswith("gmmfast: [") for line in progress)

    model = gmmfast.load(directory / "model.gmm")
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(model, name),
                                      getattr(search.best_estimator_, name))
    header, values = read_csv((directory / "labels.csv").read_text())
    assert header == ["label"] + [f"p_{k}" for k in range(model.n_components)]
    np.testing.assert_array_equal(values[:, 0], search.predict(X[:, :2]))
    if HAS_MATPLOTLIB:
        assert (directory / "clusters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "Figure written to clusters.png" in result.stdout


def test_predict_reproduces_the_in_memory_model(fitted):
    directory, X, _, search = fitted
    # The file still has the id and z columns: predict picks the model's columns by name.
    predicted = ok(directory, "predict", "model.gmm", "blobs.csv")
    header, values = read_csv(predicted.stdout)
    np.testing.assert_array_equal(values[:, 0], search.predict(X[:, :2]))
    np.testing.assert_allclose(values[:, 1:], search.predict_proba(X[:, :2]), atol=1e-9)
    assert predicted.stdout == (directory / "labels.csv").read_text()

    ok(directory, "predict", "model.gmm", "blobs.csv", "--columns", "1,2", "-o", "out.csv")
    assert (directory / "out.csv").read_text() == predicted.stdout


def test_sample_from_a_saved_model(fitted):
    directory = fitted[0]
    result = ok(directory, "sample", "model.gmm", "-n", "7", "--seed", "1")
    header, values = read_csv(result.stdout)
    assert header == ["x", "y", "component"]
    model = gmmfast.load(directory / "model.gmm").set_params(random_state=1)
    X, labels = model.sample(7)
    np.testing.assert_allclose(values[:, :2], X, rtol=1e-9)
    np.testing.assert_array_equal(values[:, 2], labels)


def test_predict_with_the_wrong_columns_exits_2(fitted):
    directory = fitted[0]
    (directory / "three.csv").write_text("p,q,r\n1,2,3\n4,5,6\n")
    result = run(directory, "predict", "model.gmm", "three.csv")
    assert result.returncode == 2
    assert "has 3 columns but the model was fitted on 2 (x, y)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_npy_input_quietly(tmp_path):
    rng = np.random.RandomState(1)
    np.save(tmp_path / "data.npy", np.vstack([rng.randn(50, 2), rng.randn(50, 2) + 7]))
    result = ok(tmp_path, "fit", "data.npy", "-k", "1-2", "-c", "diag", "--quiet")
    assert "100 rows x 2 columns (x0, x1)" in result.stdout
    assert "Chosen model: n_components=2, covariance_type='diag'" in result.stdout
    assert result.stderr == ""


@pytest.fixture(scope="module")
def bayesian_fit(tmp_path_factory):
    """One ``gmmfast fit --bayesian`` of the blobs (3 clusters) with 8 components at most."""
    directory = tmp_path_factory.mktemp("bayesian")
    X = write_blobs(directory / "blobs.csv")
    args = ["fit", "blobs.csv", "--columns", "x,y", "--bayesian", "-k", "8",
            "--save", "bayes.npz", "--labels", "labels.csv"]
    if HAS_MATPLOTLIB:
        args += ["--plot", "clusters.png"]
    result = ok(directory, *args)
    model = gmmfast.BayesianGaussianMixture(n_components=8, random_state=0).fit(X[:, :2])
    return directory, X[:, :2], result, model


def test_fit_bayesian_prints_the_components_in_use(bayesian_fit):
    from gmmfast._bayesian_mixture import components_in_use

    directory, X, result, model = bayesian_fit
    out = result.stdout
    assert "Model: BayesianGaussianMixture(n_components=8, covariance_type='full'), seed 0" \
        in out
    assert model.n_components_in_use_ == 3
    assert "3 of 8 components in use, 5 switched off\n  (in use: N_k >= 1, the weight of at " \
           "least one row, 1/180 = 0.0056)" in out
    assert f"converged after {model.n_iter_} iterations" in out
    assert f"lower bound {model.lower_bound_:.2f}" in out
    rows = out.split("Components in use")[1].splitlines()[3:]
    shown = [line.split() for line in rows[:rows.index("")]]
    in_use = np.flatnonzero(components_in_use(model))
    assert [int(row[0]) for row in shown] == in_use.tolist()
    assert [row[1] for row in shown] == [f"{model.weights_[k]:.4f}" for k in in_use]
    assert "Search:" not in out and "BIC" not in out
    assert result.stderr == ""


def test_fit_bayesian_saves_a_bayesian_model_that_predict_and_sample_use(bayesian_fit):
    directory, X, result, model = bayesian_fit
    assert "Model written to bayes.npz" in result.stdout
    loaded = gmmfast.load(directory / "bayes.npz")
    assert type(loaded) is gmmfast.BayesianGaussianMixture
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "mean_precision_", "degrees_of_freedom_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    header, labels = read_csv((directory / "labels.csv").read_text())
    assert header == ["label"] + [f"p_{k}" for k in range(8)]
    np.testing.assert_array_equal(labels[:, 0], model.predict(X))
    predicted = ok(directory, "predict", "bayes.npz", "blobs.csv")
    assert predicted.stdout == (directory / "labels.csv").read_text()
    sampled = ok(directory, "sample", "bayes.npz", "-n", "5", "--seed", "3")
    header, values = read_csv(sampled.stdout)
    expected, components = loaded.set_params(random_state=3).sample(5)
    assert header == ["x", "y", "component"]
    np.testing.assert_allclose(values[:, :2], expected, rtol=1e-9)
    np.testing.assert_array_equal(values[:, 2], components)
    if HAS_MATPLOTLIB:
        assert (directory / "clusters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_bayesian_defaults_to_ten_full_components(capsys):
    from gmmfast._cli import main

    assert main(["fit", "--bayesian", "-c", "diag", "--max-iter", "3"]) == 0
    out = capsys.readouterr().out
    assert "Model: BayesianGaussianMixture(n_components=10, covariance_type='diag')" in out
    assert "did NOT converge in 3 iterations (raise --max-iter)" in out
    assert main(["fit", "--bayesian", "--max-iter", "3"]) == 0
    assert "covariance_type='full'" in capsys.readouterr().out


def write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return name


USER_ERRORS = [
    (lambda d: ["fit", "missing.csv"], "no such file: missing.csv"),
    (lambda d: ["fit", write(d, "a.csv", "a,b\n1,2\n3,x\n4,5\n")],
     "line 3, column 'b' has the non-numeric value 'x'"),
    (lambda d: ["fit", write(d, "a.csv", "a,b\n1,2\n3,\n4,5\n")],
     "a.csv: missing value (an empty cell) in column 'b', line 3: drop or impute the rows "
     "with missing values first, or let gmmfast handle them: 'gmmfast fit --missing omit'"),
    (lambda d: ["fit", write(d, "a.csv", "a,b\n1,2\nnan,3\n4,5\n")],
     "a.csv: missing value ('nan') in column 'a', line 3"),
    (lambda d: ["fit", write(d, "a.csv", "a,b\n1,2\n\n3,4\n4,5,6\n")],
     "a.csv: line 5 has 3 fields where the header has 2"),
    (lambda d: ["fit", write(d, "a.csv", "a,b\n1,2\n3,4\n4,5\n"), "-k", "5"],
     "--n-components 5 is larger than the number of rows (3)"),
    (lambda d: ["fit", write(d, "a.csv", "a,b\n1,2\n3,4\n"), "--columns", "c"],
     "no column named 'c' (columns: a, b)"),
    (lambda d: ["fit", "-k", "two"], "--n-components: expected K"),
    (lambda d: ["fit", "-c", "round"], "--covariance-type: 'round' is not one of"),
    (lambda d: ["fit", "--criterion", "xic"], "argument --criterion: invalid choice"),
    (lambda d: ["fit", write(d, "a.xlsx", "")], "unsupported file type '.xlsx'"),
    (lambda d: ["predict", "nope.npz", "x.csv"], "no such model file: nope.npz"),
    (lambda d: ["predict", write(d, "m.npz", "not a model"), "x.csv"],
     "not a valid gmmfast model file"),
    (lambda d: ["sample", "m.npz", "-n", "0"], "argument -n/--n-samples: must be at least 1"),
    (lambda d: ["frobnicate"], "invalid choice: 'frobnicate'"),
    (lambda d: ["fit", "--save", "no/such/dir/m.npz", "-k", "1", "-c", "full", "-q"],
     "--save no/such/dir/m.npz: the folder no/such/dir does not exist"),
    # Absurd sizes: refused before anything is allocated or run.
    (lambda d: ["fit", write_npy_header(d, "huge.npy", (10**12, 2))],
     "huge.npy: the .npy header describes a float64 array of shape (1000000000000, 2) "
     "(16 TB) but the file holds 0 bytes of data"),
    (lambda d: ["fit", "-k", "1-100000000"],
     "--n-components 1-100000000 lists 100000000 values; a search takes at most 10000"),
    (lambda d: ["fit", "-k", "3," + "9" * 30], f"--n-components: {'9' * 30} is too large"),
    (lambda d: ["fit", "--threads", str(2**63)],
     f"argument --threads: must be at most 2147483647, got {2**63}"),
    (lambda d: ["fit", "--max-iter", "9" * 5000], "argument --max-iter: must be at most"),
    (lambda d: ["fit", "--tol", "nan"], "--tol must be a number >= 0, got nan"),
    (lambda d: ["sample", "m.npz", "-n", str(10**12)],
     "argument -n/--n-samples: must be at most 2147483647, got 1000000000000"),
    (lambda d: ["sample", "m.npz", "-n", str(2**63)],
     f"argument -n/--n-samples: must be at most 2147483647, got {2**63}"),
    (lambda d: ["sample", write_wide_model(d), "-n", str(2**31 - 1)],
     "-n 2147483647: the samples would take 34.4 TB, more than this machine's memory"),
    (lambda d: ["fit", "--bayesian", "-k", "auto"], "--bayesian takes -k K, one number >= 1:"
                                                    " the upper bound on the number of "
                                                    "components (default 10), got 'auto'"),
    (lambda d: ["fit", "--bayesian", "-k", "2-6"], "--bayesian takes -k K, one number"),
    (lambda d: ["fit", "--bayesian", "-k", "2,3"], "--bayesian takes -k K, one number"),
    (lambda d: ["fit", "--bayesian", "-k", "0"], "--bayesian takes -k K, one number >= 1"),
    (lambda d: ["fit", "--bayesian", "-c", "auto"],
     "--bayesian fits one covariance type: give -c full | tied | diag | spherical "
     "(default full), got 'auto'"),
    (lambda d: ["fit", "--bayesian", "-c", "full,diag"], "--bayesian fits one covariance"),
    (lambda d: ["fit", "--bayesian", "--criterion", "bic"],
     "--criterion chooses among the candidates of a search; --bayesian fits one model"),
    (lambda d: ["fit", "--bayesian", "-k", "300"],
     "--n-components 300 is larger than the number of rows (272)"),
    (lambda d: ["fit", "--bayesian", "--tol", "-1"], "--tol must be a number >= 0, got -1"),
]


def write_npy_header(tmp_path, name, shape):
    """A .npy file that is only a header, claiming an array of ``shape``."""
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}".ljust(117)
    (tmp_path / name).write_bytes(b"\x93NUMPY\x01\x00v\x00" + header.encode() + b"\n")
    return name


def write_wide_model(tmp_path):
    X = np.random.RandomState(0).rand(4, 1000)
    gmmfast.GaussianMixture(1, covariance_type="diag").fit(X).save(tmp_path / "wide.npz")
    return "wide.npz"


IDS = [message.split(":")[0][:30] for _, message in USER_ERRORS]
# The cases run in a real subprocess too (each costs an interpreter start).
IN_SUBPROCESS = {0, 1, 3, 4, 11, 13, 14, 24}


def assert_user_error(returncode, stderr, message):
    assert returncode == 2, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("gmmfast")
    assert message in stderr, stderr


@pytest.mark.parametrize("make_args, message",
                         [case for i, case in enumerate(USER_ERRORS) if i in IN_SUBPROCESS],
                         ids=[name for i, name in enumerate(IDS) if i in IN_SUBPROCESS])
def test_user_errors_exit_2_with_a_one_line_message(tmp_path, make_args, message):
    result = run(tmp_path, *make_args(tmp_path))
    assert_user_error(result.returncode, result.stderr, message)
    assert result.stdout == ""


@pytest.mark.parametrize("make_args, message", USER_ERRORS, ids=IDS)
def test_user_errors_in_process(tmp_path, monkeypatch, capsys, make_args, message):
    from gmmfast._cli import main

    monkeypatch.chdir(tmp_path)
    try:
        status = main(make_args(tmp_path))
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    assert_user_error(status, capsys.readouterr().err, message)


def test_devices_and_fifos_are_refused_without_blocking(tmp_path):
    if not os.path.exists("/dev/zero") or not hasattr(os, "mkfifo"):
        pytest.skip("needs /dev/zero and FIFOs (POSIX)")
    os.mkfifo(tmp_path / "fifo.csv")  # no writer will ever come
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    write(tmp_path, "a.csv", "a,b\n1,2\n3,4\n4,5\n")
    gmmfast.GaussianMixture(1).fit(old_faithful()).save(tmp_path / "m.npz")
    # One interpreter for the three runs; in a subprocess so that a hang fails (and is
    # killed) instead of stalling the suite.
    script = (
        "import sys\n"
        "from gmmfast._cli import main\n"
        "for args in (['predict', '/dev/zero', 'a.csv'], ['fit', 'fifo.csv'],\n"
        "             ['predict', 'm.npz', 'fifo.csv'], ['fit', 'zero.csv']):\n"
        "    print(main(args), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.stderr.splitlines() == [
        "gmmfast predict: error: /dev/zero: not a valid gmmfast model file: it is a "
        "character device, not a regular file", "2",
        "gmmfast fit: error: fifo.csv: it is a named pipe (FIFO), not a regular file", "2",
        "gmmfast predict: error: fifo.csv: it is a named pipe (FIFO), not a regular file",
        "2",
        "gmmfast fit: error: zero.csv: it is a character device, not a regular file", "2",
    ]


def test_a_line_too_long_is_refused_without_reading_it_whole(tmp_path, monkeypatch, capsys):
    from gmmfast import _datafile
    from gmmfast._cli import main

    monkeypatch.setattr(_datafile, "MAX_LINE_LENGTH", 1000)
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "flat.csv", "a,b\n" + "1,2," * 2000)
    write(tmp_path, "fine.csv", "a,b\n" + "1,2\n" * 2000)
    assert main(["fit", "flat.csv", "-q"]) == 2
    assert_user_error(2, capsys.readouterr().err, "flat.csv: line 2 is longer than 1000 "
                      "characters (a file without line breaks?)")
    assert main(["fit", "fine.csv", "-k", "1", "-c", "diag", "-q"]) == 0


def test_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    from gmmfast._cli import main
    from gmmfast._saved_mixture import SavedMixture

    def sample(self, n_samples, seed=None):
        raise MemoryError("Unable to allocate 7.28 TiB for an array with shape "
                          "(500000000000, 2) and data type float64")

    monkeypatch.setattr(SavedMixture, "sample", sample)
    monkeypatch.chdir(tmp_path)
    gmmfast.GaussianMixture(1).fit(old_faithful()).save(tmp_path / "m.npz")
    assert main(["sample", "m.npz", "-n", "1000"]) == 2
    assert_user_error(2, capsys.readouterr().err, "gmmfast sample: error: out of memory "
                      "(Unable to allocate 7.28 TiB for an array")


def test_a_long_grid_is_checked_in_linear_time():
    from gmmfast._selection import check_n_components_grid

    start = time.perf_counter()
    grid = check_n_components_grid(range(1, 40_001))
    assert grid == list(range(1, 40_001))
    assert time.perf_counter() - start < 1.0  # 9.5 s when each value searched the list
    assert check_n_components_grid([3, 1, 3, 2, 1]) == [3, 1, 2]


@pytest.mark.parametrize("columns", [5, "ab", ["a"], [1, 2]])
def test_column_names_stored_with_a_model_are_checked(tmp_path, monkeypatch, capsys, columns):
    from gmmfast._cli import main
    from gmmfast._io import save_model

    monkeypatch.chdir(tmp_path)
    save_model(gmmfast.GaussianMixture(1).fit(old_faithful()), "m.npz",
               extra={"columns": columns})
    write(tmp_path, "a.csv", "a,b\n1,2\n3,4\n")
    message = "m.npz: the column names stored with the model are not a list of 2 names"
    for args in (["predict", "m.npz", "a.csv"], ["sample", "m.npz", "-n", "2"]):
        assert main(args) == 2
        assert_user_error(2, capsys.readouterr().err, message)


def test_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": np.r_[np.zeros(20), np.ones(20) * 9] + np.arange(40) % 3,
                          "b": np.arange(40.0) % 5, "name": ["n"] * 40})
    has_engine = any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet"))
    if has_engine:
        frame.to_parquet(tmp_path / "d.parquet")
        result = run(tmp_path, "fit", "d.parquet", "--columns", "a,b", "-k", "1-2", "-q")
        assert result.returncode == 0, result.stderr
        assert "40 rows x 2 columns (a, b)" in result.stdout
        bad = run(tmp_path, "fit", "d.parquet", "-k", "1-2", "-q")
        assert bad.returncode == 2 and "column 'name' is not numeric" in bad.stderr
    else:
        (tmp_path / "d.parquet").write_bytes(b"PAR1")
        result = run(tmp_path, "fit", "d.parquet")
        assert result.returncode == 2
        assert "reading .parquet files needs pandas and pyarrow" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------
# in-process: the small parsers
# --------------------------------------------------------------------------------------


def test_parse_n_components():
    assert parse_n_components("auto") == list(range(1, 11))
    assert parse_n_components("3") == [3]
    assert parse_n_components("2,3,5") == [2, 3, 5]
    assert parse_n_components("1-4,8") == [1, 2, 3, 4, 8]
    assert parse_n_components(" 2 - 3 ") == [2, 3]
    assert parse_n_components("3,1-4,0003") == [3, 1, 2, 4]
    assert len(parse_n_components("1-10000")) == 10000


def test_parse_covariance_types():
    assert parse_covariance_types("auto") == list(COVARIANCE_MODELS)
    assert parse_covariance_types("all") == list(COVARIANCE_MODELS)
    assert parse_covariance_types("diag,full") == ["diag", "full"]


def test_headerless_and_whitespace_text_files(tmp_path):
    from gmmfast._datafile import read_table

    (tmp_path / "a.csv").write_text("1,2\n3,4\n5,6\n")
    table = read_table(tmp_path / "a.csv")
    assert table.names == ["x0", "x1"] and table.X.tolist() == [[1, 2], [3, 4], [5, 6]]
    (tmp_path / "b.txt").write_text("u v w\n1 2 3\n4 5 6\n")
    table = read_table(tmp_path / "b.txt", ["w", "0"])
    assert table.names == ["w", "u"] and table.X.tolist() == [[3, 1], [6, 4]]
    (tmp_path / "c.tsv").write_text("p\tq\n1.5\t2\n")
    assert read_table(tmp_path / "c.tsv").X.tolist() == [[1.5, 2.0]]
    (tmp_path / "d.csv").write_text('"a";"b"\n1;2\n')
    assert read_table(tmp_path / "d.csv").names == ["a", "b"]


# --------------------------------------------------------------------------------------
# --scale, progress, and the output writers
# --------------------------------------------------------------------------------------


def unscaled_reference(model, mean, sd):
    """The original-units parameters of a model fitted on (X − mean) / sd, by brute force:
    full covariances S Σ S, and the precisions as their inverses."""
    from gmmfast.plot import full_covariances

    covariances = full_covariances(model) * np.outer(sd, sd)
    return mean + model.means_ * sd, covariances, np.linalg.inv(covariances)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_scale_is_a_fit_on_standardised_data_mapped_back(tmp_path, monkeypatch, capsys,
                                                         covariance_type):
    from gmmfast._cli import main
    from gmmfast.plot import full_covariances

    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(80, 3), rng.randn(80, 3) + [3, 4, 0]]) * [1000, 1, 0.01] + 50
    np.save(tmp_path / "x.npy", X)
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "x.npy", "--scale", "-k", "1-3", "-c", covariance_type, "-q",
                 "--save", "m.npz", "--labels", "labels.csv"]) == 0
    out = capsys.readouterr().out
    mean, sd = X.mean(axis=0), X.std(axis=0)
    search = gmmfast.select_model((X - mean) / sd, [1, 2, 3], covariance_type, random_state=0)
    means, covariances, precisions = unscaled_reference(search.best_estimator_, mean, sd)

    model = gmmfast.load("m.npz")
    np.testing.assert_array_equal(model.weights_, search.best_estimator_.weights_)
    np.testing.assert_allclose(model.means_, means, rtol=1e-12)
    np.testing.assert_allclose(full_covariances(model), covariances, rtol=1e-12, atol=0)
    expected = {"full": precisions, "tied": precisions[0],
                "diag": np.diagonal(precisions, axis1=1, axis2=2)}[model.covariance_type]
    np.testing.assert_allclose(model.precisions_, expected, rtol=1e-9)
    # The same density, so the same labels, as the standardised model's.
    np.testing.assert_allclose(model.score_samples(X),
                               search.score_samples((X - mean) / sd) - np.log(sd).sum(),
                               rtol=1e-10)
    header, values = read_csv((tmp_path / "labels.csv").read_text())
    np.testing.assert_array_equal(values[:, 0], search.predict((X - mean) / sd))
    shift = 2 * len(X) * np.log(sd).sum()
    assert f"each is {shift:+.2f} (2 N sum(log sd))" in out
    assert f"covariance_type={covariance_type!r}" in out
    assert f"{model.means_[0, 0]:.4g}" in out  # the components in the original units


def test_scale_refuses_a_constant_column(tmp_path, monkeypatch, capsys):
    from gmmfast._cli import main

    monkeypatch.chdir(tmp_path)
    write(tmp_path, "c.csv", "a,b\n1,5\n2,5\n3,5\n")
    assert main(["fit", "c.csv", "--scale", "-q"]) == 2
    assert_user_error(2, capsys.readouterr().err, "--scale: column 'b' is constant (sd 0), "
                      "so it cannot be standardised; leave it out with --columns ^b")


def test_the_data_line_and_reading_progress_come_before_the_search(tmp_path, monkeypatch,
                                                                   capsys):
    from gmmfast import _cli, _datafile

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_cli._ReadProgress, "INTERVAL", 0.0)
    monkeypatch.setattr(_datafile, "FAST_READER_MIN_BYTES", 0)
    write(tmp_path, "d.csv", "a,b\n" + "".join(f"{i % 7},{i % 5}\n" for i in range(30000)))
    seen_before_search = []
    select_model = gmmfast.select_model

    def spy(*args, **kwargs):
        seen_before_search.append(capsys.readouterr())
        return select_model(*args, **kwargs)

    monkeypatch.setattr("gmmfast._selection.select_model", spy)
    assert _cli.main(["fit", "d.csv", "-k", "1", "-c", "diag", "--progress"]) == 0
    before = seen_before_search[0]
    assert before.out == "Data: d.csv: 30000 rows x 2 columns (a, b)\n"
    size = (tmp_path / "d.csv").stat().st_size
    assert before.err.splitlines()[-1] == (f"gmmfast: reading d.csv: 100 % ({size / 1000:.3g} kB "
                                           f"of {size / 1000:.3g} kB)")
    assert main_quiet_prints_nothing(_cli, capsys)


def main_quiet_prints_nothing(cli, capsys):
    assert cli.main(["fit", "d.csv", "-k", "1", "-c", "diag", "--quiet"]) == 0
    return capsys.readouterr().err == ""


@pytest.mark.parametrize("writer", ["pyarrow", "python"])
def test_both_writers_write_the_same_values(tmp_path, monkeypatch, capsys, writer):
    from gmmfast._cli import main

    if writer == "pyarrow":
        pytest.importorskip("pyarrow.csv")
    else:
        monkeypatch.setitem(sys.modules, "pyarrow.csv", None)
    monkeypatch.setattr("gmmfast._cli.OUTPUT_BLOCK_ROWS", 100)
    monkeypatch.chdir(tmp_path)
    X = old_faithful()
    model = gmmfast.GaussianMixture(3, random_state=0).fit(X)
    model.save(tmp_path / "m.npz")
    np.savetxt(tmp_path / "x.csv", X, delimiter=",")
    assert main(["predict", "m.npz", "x.csv"]) == 0
    header, values = read_csv(capsys.readouterr().out)
    assert header == ["label", "p_0", "p_1", "p_2"]
    np.testing.assert_array_equal(values[:, 0], model.predict(X))
    np.testing.assert_array_equal(values[:, 1:], model.predict_proba(X))  # exact: shortest repr
    assert main(["sample", "m.npz", "-n", "250", "--seed", "3", "-o", "s.csv"]) == 0
    header, values = read_csv((tmp_path / "s.csv").read_text())
    assert header == ["x0", "x1", "component"]
    samples, labels = model.set_params(random_state=3).sample(250)
    np.testing.assert_array_equal(values[:, :2], samples)
    np.testing.assert_array_equal(values[:, 2], labels)


# What predict and sample must not import: the estimators' scikit-learn (2 s of a 1.5 s
# budget), pandas (imported by scikit-learn and by some pyarrow conversions), SciPy's
# statistics and matplotlib.
HEAVY_MODULES = ("sklearn", "pandas", "scipy.stats", "matplotlib", "gmmfast._compat")


@pytest.mark.parametrize("kind", ["GaussianMixture", "BayesianGaussianMixture"])
def test_predict_and_sample_do_not_import_the_estimators(tmp_path, kind):
    model = getattr(gmmfast, kind)(n_components=3, random_state=0)
    # Above FAST_READER_MIN_BYTES, so that the fast reader (pyarrow's, here) reads it.
    X = np.random.RandomState(0).randn(36000, 4) + np.repeat(6 * np.eye(3, 4), 12000, axis=0)
    np.savetxt(tmp_path / "data.csv", X, delimiter=",", header="a,b,c,d", comments="")
    assert (tmp_path / "data.csv").stat().st_size > 2**20
    model.fit(X).save(tmp_path / "model.npz")
    code = f"""if True:
        import sys
        from gmmfast._cli import main
        assert main(["predict", "model.npz", "data.csv", "-o", "labels.csv"]) == 0
        assert main(["predict", "model.npz", "data.csv", "--missing", "omit",
                     "-o", "labels.csv"]) == 0
        assert main(["sample", "model.npz", "-n", "100000", "-o", "samples.csv"]) == 0
        print(" ".join(sorted(name for name in {HEAVY_MODULES!r} if name in sys.modules)))
        print("pyarrow" in sys.modules)
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    imported, used_pyarrow = result.stdout.splitlines()
    assert imported == ""
    assert used_pyarrow == str(importlib.util.find_spec("pyarrow") is not None)
    labels = np.loadtxt(tmp_path / "labels.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(labels[:, 1:], model.predict_proba(X))
