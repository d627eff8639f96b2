"""``gmmfast fit`` warns on stderr, in one line each, about what makes its scores
meaningless: a constant column, and components whose variance sits at the reg_covar floor
(a 3-row file, too many components for the rows). The criterion table flags the candidates.

Every run is ``python -m gmmfast`` in a subprocess started in a temporary directory.
"""

import json

import numpy as np
import pytest

from gmmfast import GaussianMixture
from gmmfast._cli import components_at_floor
from gmmfast._starts import FLOOR_FACTOR
from gmmfast._selection import CriterionTable

from test_cli import ok

THREE_ROWS = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0]])


def write_csv(path, X, names):
    np.savetxt(path, X, delimiter=",", header=",".join(names), comments="", fmt="%.17g")


def warnings_of(result):
    lines = result.stderr.splitlines()
    return [line for line in lines if line.startswith("gmmfast fit: warning: ")]


def with_constant_column(n_rows=300):
    X = np.random.RandomState(0).randn(n_rows, 3)
    X[:, 1] = 7.0
    return X


@pytest.fixture(scope="module")
def three_rows(tmp_path_factory):
    """``gmmfast fit`` of a 3-row file, K 1..3, from single k-means starts (whose search
    chooses a model at the floor), its summary as JSON in a file."""
    directory = tmp_path_factory.mktemp("three")
    write_csv(directory / "three.csv", THREE_ROWS, ["x", "y"])
    result = ok(directory, "fit", "three.csv", "-k", "1-3", "-c", "full,tied,diag,spherical",
                "--init", "kmeans", "--json", "summary.json")
    return result, json.loads((directory / "summary.json").read_text())


def test_the_default_starts_do_not_choose_a_model_at_the_floor(tmp_path):
    # Multi-start marks the candidates whose every start collapsed and chooses another.
    write_csv(tmp_path / "three.csv", THREE_ROWS, ["x", "y"])
    result = ok(tmp_path, "fit", "three.csv", "-k", "1-3", "--json", "summary.json")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert warnings_of(result) == []
    assert summary["model"]["components_at_reg_covar_floor"] == []
    assert not summary["candidates"][summary["best_index"]]["at_reg_covar_floor"]
    # The search's best BIC is a collapsed candidate; it is not the one chosen.
    assert min(row["bic"] for row in summary["candidates"]) < \
        summary["candidates"][summary["best_index"]]["bic"]


def test_a_three_row_file_warns_that_the_chosen_components_sit_on_points(three_rows):
    result, _ = three_rows
    [warning] = warnings_of(result)
    assert "components 0, 1, 2 of the chosen model have a variance at the reg_covar " \
           "floor (1e-06)" in warning
    # One component on three points in the plane is the only candidate with a spread: the
    # warning names it, and how to fit it.
    assert warning.endswith("the best candidate without one is VVV (full),1 (BIC 22.29): "
                            "-k 1 -c full")
    assert result.stderr.count("\n") == 1


def test_the_criterion_table_flags_the_candidates_at_the_floor(three_rows):
    result, summary = three_rows
    lines = result.stdout.splitlines()
    legend = next(line for line in lines if line.startswith("BIC (lower"))
    assert "~ a variance at the reg_covar floor" in legend
    grid = {int(line.split()[0]): line.split()[1:] for line in lines
            if line[:3].strip() in ("1", "2", "3") and len(line.split()) == 5}
    assert [cell[-1] for cell in grid[1]] == ["9", "9", "7", "7"]  # no mark at K = 1
    assert all(cell.endswith("~") for cell in grid[2])
    assert [cell[-1] for cell in grid[3]].count("*") == 1
    assert [cell[-1] for cell in grid[3]].count("~") == 3
    flags = [row["at_reg_covar_floor"] for row in summary["candidates"]]
    assert flags == [False] * 4 + [True] * 8
    assert summary["model"]["components_at_reg_covar_floor"] == [0, 1, 2]
    assert summary["warnings"] == [line[len("gmmfast fit: warning: "):]
                                   for line in warnings_of(result)]


def test_the_default_fit_has_no_warning_and_no_flag(tmp_path):
    result = ok(tmp_path, "fit")
    assert result.stderr == ""
    assert "~" not in result.stdout


def test_a_constant_column_is_named_with_the_way_to_leave_it_out(tmp_path):
    write_csv(tmp_path / "c.csv", with_constant_column(), ["a", "b", "c"])
    result = ok(tmp_path, "fit", "c.csv", "-k", "1-2", "--json", "-")
    [warning] = warnings_of(result)
    assert "column 'b' is constant (every value is 7): " in warning
    assert warning.endswith("leave it out with --columns '^b'")
    summary = json.loads(result.stdout)
    assert summary["data"]["constant_columns"] == ["b"]
    # The constant column is the warning's subject, not a flag on every candidate.
    assert not any(row["at_reg_covar_floor"] for row in summary["candidates"])
    # Following the advice silences it.
    result = ok(tmp_path, "fit", "c.csv", "-k", "1-2", "--columns", "^b")
    assert warnings_of(result) == []


def test_the_advice_keeps_the_columns_already_chosen(tmp_path):
    X = np.column_stack([with_constant_column(), np.zeros(300)])
    write_csv(tmp_path / "c.csv", X, ["a", "b", "c", "d"])
    result = ok(tmp_path, "fit", "c.csv", "-k", "1", "--columns", "1-3")
    [warning] = warnings_of(result)
    assert "columns 'b', 'd' are constant: " in warning
    assert warning.endswith("leave them out with --columns '1-3,^b,^d'")
    assert warnings_of(ok(tmp_path, "fit", "c.csv", "-k", "1", "--columns",
                          "1-3,^b,^d")) == []


def test_a_constant_column_with_missing_values_is_constant(tmp_path):
    X = with_constant_column()
    X[::7, 1] = np.nan
    write_csv(tmp_path / "c.csv", X, ["a", "b", "c"])
    result = ok(tmp_path, "fit", "c.csv", "-k", "1-2", "--missing", "omit")
    assert "column 'b' is constant" in warnings_of(result)[0]


@pytest.mark.parametrize("mode", [["--bayesian", "-k", "3"],
                                  ["--online", "-k", "2", "--batch-rows", "70"]])
def test_the_bayesian_and_online_fits_warn_of_a_constant_column(tmp_path, mode):
    write_csv(tmp_path / "c.csv", with_constant_column(), ["a", "b", "c"])
    result = ok(tmp_path, "fit", "c.csv", *mode)
    assert ["column 'b' is constant" in line for line in warnings_of(result)] == [True]


def test_an_online_fit_warns_of_a_component_on_a_point(tmp_path):
    X = np.random.RandomState(0).randn(200, 2)
    X[:100] = [5.0, 5.0]  # half the rows on one point
    write_csv(tmp_path / "p.csv", X, ["x", "y"])
    # k-means starts one component on the point, where one EM step leaves it.
    result = ok(tmp_path, "fit", "p.csv", "--online", "-k", "2", "--init", "kmeans")
    [warning] = warnings_of(result)
    assert "of the model has a variance at the reg_covar floor" in warning
    assert warning.endswith("fit fewer components (-k) or more rows")


@pytest.mark.parametrize("covariance_type", ["full", "VVV", "tied", "diag", "spherical",
                                             "VEV"])
def test_components_at_floor_finds_the_narrowest_direction(covariance_type):
    rng = np.random.RandomState(0)
    # One component lies on a line: no spread across it, which only a covariance of its
    # own (orientation, shape and volume) can follow.
    line = rng.randn(100, 1) * [[1.0, 1.0]]
    X = np.vstack([rng.randn(100, 2) + 10, line])
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    on_line = int(np.argmin(np.abs(model.means_).sum(axis=1)))
    expected = [on_line] if covariance_type in ("full", "VVV") else []
    assert components_at_floor(model, [0, 1]).tolist() == expected
    # In one column alone, the line has a spread.
    assert components_at_floor(model, [0]).tolist() == []
    assert components_at_floor(model, []).tolist() == []


def test_the_floor_is_a_multiple_of_reg_covar():
    model = GaussianMixture(2, covariance_type="diag", reg_covar=1e-4)
    model.means_ = np.zeros((2, 2))
    model.covariances_ = np.array([[1.0, FLOOR_FACTOR * 1e-4], [1.0, 1.01 * FLOOR_FACTOR * 1e-4]])
    assert components_at_floor(model, [0, 1]).tolist() == [0]


def test_marks_replace_the_convergence_mark_but_not_the_chosen_one():
    table = CriterionTable({"n_components": np.array([1, 2, 3]),
                            "covariance_type": np.array(["full"] * 3),
                            "bic": np.array([3.0, 1.0, 2.0]),
                            "converged": np.array([True, True, False]),
                            "status": np.array(["ok"] * 3)}, "bic", 1)
    assert table.format().split()[-6:] == ["1", "3.00", "2", "1.00*", "3", "2.00!"]
    marked = table.format(marks={1: "~", 2: "~"})
    assert marked.split()[-6:] == ["1", "3.00", "2", "1.00*", "3", "2.00~"]


def with_label_column(n_rows=240):
    """Three separated clusters in two measured columns, and their label as a third."""
    rng = np.random.RandomState(0)
    labels = np.arange(n_rows) % 3
    X = rng.randn(n_rows, 2) + 6.0 * labels[:, None]
    return np.column_stack([X, labels])


def test_a_label_column_that_components_collapse_onto_is_named(tmp_path):
    write_csv(tmp_path / "l.csv", with_label_column(), ["a", "b", "label"])
    # VVV alone: with other models in the grid, the search's second phase restarts VVV's
    # collapsed fit with 4 components from theirs, which do not collapse.
    result = ok(tmp_path, "fit", "l.csv", "-k", "1-4", "-c", "VVV",
                "--json", "summary.json")
    [line] = warnings_of(result)
    warning = line[len("gmmfast fit: warning: "):]
    summary = json.loads((tmp_path / "summary.json").read_text())
    collapsed = sum(row["at_reg_covar_floor"] for row in summary["candidates"])
    assert collapsed > 0
    assert warning.startswith("components collapsed onto single values of 'label' "
                              f"(3 distinct values, {collapsed} candidates): ")
    assert warning.endswith("leave it out with --columns '^label'")
    assert summary["warnings"] == [warning]
    # Following the advice silences it, and the clusters are found without the label.
    result = ok(tmp_path, "fit", "l.csv", "-k", "1-4", "-c", "VVV,EEE,VII",
                "--columns", "^label", "--json", "-")
    assert warnings_of(result) == []
    assert json.loads(result.stdout)["model"]["n_components"] == 3


def test_a_measured_column_of_many_values_is_not_called_a_label(tmp_path):
    # Components collapse onto points of a 3-row file, but no value repeats: nothing
    # tells a label from a measurement there, and only the floor is reported.
    write_csv(tmp_path / "three.csv", THREE_ROWS, ["x", "y"])
    result = ok(tmp_path, "fit", "three.csv", "-k", "1-3", "-c", "full",
                "--init", "kmeans")
    assert not any("single values" in line for line in warnings_of(result))


def test_the_best_models_line_lists_what_the_search_chose_from(tmp_path):
    write_csv(tmp_path / "l.csv", with_label_column(), ["a", "b", "label"])
    # VVV alone, so that its fit with 4 components collapses (see above).
    result = ok(tmp_path, "fit", "l.csv", "-k", "1-4", "-c", "VVV",
                "--json", "summary.json")
    summary = json.loads((tmp_path / "summary.json").read_text())
    chosen = summary["candidates"][summary["best_index"]]
    lines = result.stdout.splitlines()
    best = next(line for line in lines if line.startswith("Best by BIC: "))
    first = best[len("Best by BIC: "):].split(" | ")[0]
    assert first.startswith(chosen["mclust_name"])
    assert first.endswith(f",{chosen['n_components']} {chosen['bic']:.2f}")
    # Collapsed candidates score lower and are left out, which a line says.
    assert min(row["bic"] for row in summary["candidates"]) < chosen["bic"]
    not_chosen = next(line for line in lines if line.startswith("Not chosen: "))
    assert not_chosen.startswith("Not chosen: ")
    assert "collapsed a component" in " ".join(lines)
