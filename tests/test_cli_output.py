"""What ``gmmfast fit`` prints and writes: lines within 100 columns, the best-models line,
the ``--json`` summary, and the README's example output.

Every run is ``python -m gmmfast`` in a subprocess started in a temporary directory.
"""

import json
import math
import pathlib
import re

import numpy as np
import pytest

import gmmfast
from gmmfast._cli import MAX_WIDTH, plain_json
from gmmfast._selection import CriterionTable

from test_cli import ok, old_faithful, run

MCLUST_MODELS = "EII,VII,EEI,VEI,EVI,VVI,EEE,VEE,EVE,VVE,EEV,VEV,EVV,VVV"
# The README of the checkout (or of the copy CI makes) these tests came from: the installed
# package has none beside it.
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def write_csv(path, X, names):
    np.savetxt(path, X, delimiter=",", header=",".join(names), comments="", fmt="%.17g")


def too_wide(text):
    return [line for line in text.splitlines() if len(line) > MAX_WIDTH]


@pytest.fixture(scope="module")
def faithful_csv(tmp_path_factory):
    directory = tmp_path_factory.mktemp("output")
    write_csv(directory / "faithful.csv", old_faithful(), ["eruptions", "waiting"])
    return directory


@pytest.fixture(scope="module")
def mclust_search(faithful_csv):
    """mclust's 14 models, K 1..4, with the summary as JSON on stdout."""
    result = ok(faithful_csv, "fit", "faithful.csv", "-k", "1-4", "-c", MCLUST_MODELS,
                "--json", "-")
    search = gmmfast.select_model(old_faithful(), [1, 2, 3, 4], MCLUST_MODELS.split(","),
                                  random_state=0)
    return result, search


def test_the_14_model_search_prints_within_100_columns(mclust_search):
    result, _ = mclust_search
    summary = result.stderr  # with --json -, the printed summary goes to stderr
    assert too_wide(summary) == []
    # Every model's column is there, each with the K column in its block.
    headings = [line for line in summary.splitlines() if line.startswith("  K ")]
    assert len(headings) >= 2
    assert [name for line in headings for name in line.split()[1:]] == \
        MCLUST_MODELS.split(",")
    assert "spherical" in summary and "full" in summary
    assert "Search: n_components 1..4 x covariance_type EII," in summary


def test_a_wide_grid_is_cut_into_blocks_with_the_same_cells():
    types = MCLUST_MODELS.split(",")
    rows = [dict(n_components=k, covariance_type=t, bic=1000.0 + 10 * k + i, aic=0.0,
                 log_likelihood=0.0, n_parameters=1, n_iter=1, converged=True,
                 fit_seconds=0.0, status="ok", message="")
            for k in (1, 2) for i, t in enumerate(types)]
    table = CriterionTable({name: np.array([r[name] for r in rows]) for name in rows[0]},
                           "bic", 0)
    wide = table.format(max_width=10_000)
    blocks = table.format(max_width=60).split("\n\n")
    assert len(wide.splitlines()) == 4 and len(blocks) > 2
    assert all(len(line) <= 60 for block in blocks for line in block.splitlines())
    # The same numbers, in the same order, once the blocks are put side by side again.
    for k in (1, 2):
        row = [v for block in blocks for line in block.splitlines()
               if line.split()[0] == str(k) for v in line.split()[1:]]
        assert row == next(line.split()[1:] for line in wide.splitlines()
                           if line.split()[0] == str(k))


def test_six_columns_print_within_100_columns(tmp_path):
    rng = np.random.RandomState(1)
    X = np.vstack([rng.randn(80, 6) + 4 * c for c in range(2)])
    write_csv(tmp_path / "six.csv", X, [f"feature_{j}" for j in range(6)])
    out = ok(tmp_path, "fit", "six.csv", "-k", "1-3").stdout
    assert too_wide(out) == []
    assert "  component 1: weight" in out  # one component at a time: the table is wider


def test_four_columns_print_one_component_at_a_time(tmp_path):
    # Four columns made a 109-character component table.
    rng = np.random.RandomState(2)
    write_csv(tmp_path / "four.csv", rng.randn(100, 4), ["a", "b", "c", "d"])
    out = ok(tmp_path, "fit", "four.csv", "-k", "1").stdout
    assert too_wide(out) == []
    assert "  component 0: weight 1.0000" in out


def test_the_best_models_line_gives_the_top_three_and_their_differences(mclust_search):
    result, search = mclust_search
    table = search.criterion_table_
    bic = table["bic"]
    order = np.argsort(bic, kind="stable")[:3]
    line = next(line for line in result.stderr.splitlines() if line.startswith("Best by"))
    parts = line[len("Best by BIC: "):].split(" | ")
    assert len(parts) == 3
    for j, (part, i) in enumerate(zip(parts, order)):
        label, value = part.rsplit(" ", 1)
        name = table["covariance_type"][i]
        assert label.split(",")[0].split(" ")[0] == name
        assert label.endswith(f",{table['n_components'][i]}")
        expected = bic[i] if j == 0 else bic[i] - bic[order[0]]
        assert float(value) == pytest.approx(expected, abs=0.006)
        assert (j == 0) != value.startswith("+")
    assert parts[0].startswith(f"{search.covariance_type_},{search.n_components_} ") or \
        parts[0].startswith(f"{search.covariance_type_} (")


def test_the_best_models_line_names_both_names_and_skips_failed_candidates(tmp_path):
    X = old_faithful()[:3]
    write_csv(tmp_path / "three.csv", X, ["eruptions", "waiting"])
    out = ok(tmp_path, "fit", "three.csv", "-k", "1-5", "-c", "full,VEV").stdout
    line = next(line for line in out.splitlines() if line.startswith("Best by"))
    assert re.fullmatch(r"Best by BIC: (VVV \(full\)|VEV),\d \S+( \| (VVV \(full\)|VEV),\d "
                        r"\+\d+\.\d\d){0,2}", line), line
    assert ",4 " not in line and ",5 " not in line  # skipped: more components than rows


def test_json_summary_round_trips_the_search(mclust_search):
    result, search = mclust_search
    summary = json.loads(result.stdout)
    assert summary["kind"] == "search"
    table = search.criterion_table_
    assert len(summary["candidates"]) == len(table)
    for i, row in enumerate(summary["candidates"]):
        for name in ("n_components", "covariance_type", "n_parameters", "converged",
                     "status", "n_iter"):
            assert row[name] == table[name][i]
        for name in ("log_likelihood", "bic", "aic"):
            assert row[name] == pytest.approx(table[name][i], rel=1e-12)
        assert row["icl"] is None  # not computed unless --criterion icl
        assert row["mclust_name"] == row["covariance_type"]
    assert summary["candidates"][-1]["sklearn_name"] == "full"
    assert summary["candidates"][0]["sklearn_name"] is None  # EII
    assert summary["candidates"][1]["sklearn_name"] == "spherical"  # VII
    assert summary["best_index"] == search.best_index_
    model = summary["model"]
    best = search.best_estimator_
    assert (model["n_components"], model["covariance_type"]) == \
        (best.n_components, best.covariance_type)
    np.testing.assert_allclose(model["weights"], best.weights_, rtol=1e-12)
    np.testing.assert_allclose(model["means"], best.means_, rtol=1e-12)
    np.testing.assert_allclose(model["covariances"], best.covariances_, rtol=1e-12)
    assert summary["data"]["n_rows"] == 272 and summary["data"]["columns"] == \
        ["eruptions", "waiting"]
    assert summary["data"]["scaling"] is None
    assert summary["search"]["n_components"] == [1, 2, 3, 4]
    assert summary["timings"]["search_seconds"] > 0


def test_json_to_a_file_with_scale_has_the_model_in_original_units(faithful_csv):
    result = ok(faithful_csv, "fit", "faithful.csv", "-k", "1-3", "-c", "full,VII",
                "--scale", "--json", "summary.json", "--save", "model.npz")
    assert "Summary written to summary.json" in result.stdout
    summary = json.loads((faithful_csv / "summary.json").read_text())
    saved = gmmfast.load(faithful_csv / "model.npz")
    model = summary["model"]
    assert model["covariance_type"] == saved.covariance_type
    np.testing.assert_allclose(model["means"], saved.means_, rtol=1e-12)
    np.testing.assert_allclose(model["covariances"], saved.covariances_, rtol=1e-12)
    X = old_faithful()
    np.testing.assert_allclose(summary["data"]["scaling"]["sd"], X.std(axis=0), rtol=1e-12)


def test_json_has_null_for_the_scores_of_skipped_candidates(tmp_path):
    write_csv(tmp_path / "three.csv", old_faithful()[:3], ["eruptions", "waiting"])
    ok(tmp_path, "fit", "three.csv", "-k", "1-5", "-c", "full", "--json", "s.json")
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    skipped = [row for row in json.loads(text)["candidates"] if row["status"] == "skipped"]
    assert len(skipped) == 2 and all(row["bic"] is None for row in skipped)


def test_plain_json_turns_numpy_values_and_nan_into_json_values():
    value = plain_json({"a": np.array([1.5, np.nan]), "b": np.int64(3), "c": np.bool_(True),
                        "d": (np.float32(np.inf), "x")})
    assert value == {"a": [1.5, None], "b": 3, "c": True, "d": [None, "x"]}
    assert json.loads(json.dumps(value, allow_nan=False)) == value


def test_json_options_are_checked_before_the_search(tmp_path):
    result = run(tmp_path, "fit", "--json", "missing/summary.json")
    assert result.returncode == 2 and "--json missing/summary.json" in result.stderr
    result = run(tmp_path, "fit", "--online", "-k", "2", "data.csv", "--json", "-")
    assert result.returncode == 2 and "--json is not available with --online" in \
        result.stderr
    assert result.stdout == ""


def test_json_of_a_bayesian_fit_has_every_component_and_which_are_in_use(tmp_path):
    from gmmfast._bayesian_mixture import components_in_use

    result = ok(tmp_path, "fit", "--bayesian", "-k", "6", "--json", "-", "--save", "m.npz")
    summary = json.loads(result.stdout)
    assert "2 of 6 components in use" in result.stderr
    saved = gmmfast.load(tmp_path / "m.npz")
    assert summary["kind"] == "bayesian"
    assert summary["fit"] == {"estimator": "BayesianGaussianMixture", "n_components": 6,
                              "covariance_type": "full",
                              "weight_concentration_prior_type": "dirichlet_process",
                              "seed": 0, "n_init": 1, "max_iter": 100, "tol": 1e-3}
    model = summary["model"]
    assert model["in_use"] == components_in_use(saved).tolist()
    assert model["n_components_in_use"] == 2
    assert (model["converged"], model["n_iter"]) == (saved.converged_, saved.n_iter_)
    assert model["lower_bound"] == pytest.approx(saved.lower_bound_, rel=1e-12)
    for name in ("weights", "means", "covariances", "mean_precision", "degrees_of_freedom",
                 "weight_concentration"):
        np.testing.assert_allclose(model[name], getattr(saved, f"{name}_"), rtol=1e-12)
    for name, value in model["priors"].items():
        np.testing.assert_allclose(value, getattr(saved, f"{name}_prior_"), rtol=1e-12)
    assert summary["data"]["n_rows"] == 272 and summary["data"]["scaling"] is None
    assert summary["warnings"] == [] and summary["timings"]["fit_seconds"] > 0


def test_json_of_a_bayesian_fit_to_a_file_keeps_its_warnings(tmp_path):
    X = np.random.RandomState(0).randn(200, 2)
    X[:, 0] = 1.5
    write_csv(tmp_path / "c.csv", X, ["a", "b"])
    result = ok(tmp_path, "fit", "c.csv", "--bayesian", "-k", "3", "--json", "s.json")
    assert "Summary written to s.json" in result.stdout
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["data"]["constant_columns"] == ["a"]
    [warning] = summary["warnings"]
    assert warning.startswith("column 'a' is constant") and warning in result.stderr


def readme_example():
    """The README's first example: (the command, its printed lines)."""
    if not README.exists():
        pytest.skip("no README.md beside the tests folder")
    text = README.read_text(encoding="utf-8")
    start = text.index("```text\n$ gmmfast fit\n") + len("```text\n")
    lines = text[start:text.index("```", start)].splitlines()
    return lines[0][2:].split(), lines[1:]


def without_time(lines):
    return [line for line in lines if not line.startswith("Time:")]


def test_the_readme_example_output_is_what_fit_prints(tmp_path):
    command, expected = readme_example()
    assert command == ["gmmfast", "fit"]
    printed = ok(tmp_path, "fit").stdout.splitlines()
    assert without_time(printed) == without_time(expected)
    assert any(line.startswith("Time:") for line in printed)
    assert not math.isnan(float(expected[-1].split()[1]))


def test_gmmfast_alone_is_gmmfast_fit(capsys):
    from gmmfast._cli import main

    _, expected = readme_example()
    assert main([]) == 0
    assert without_time(capsys.readouterr().out.splitlines()) == without_time(expected)


@pytest.mark.parametrize("start, gain, line", [
    ("kmeans", 0.0, "  start: the plain k-means start (no other start did better)"),
    ("k-means++ 2", 0.004, "  start: k-means++ 2, as good as the plain k-means start (to 0.01 "
                           "in log-likelihood)"),
    ("hierarchical (standardised)", 123.454,
     "  start: hierarchical (standardised), which beat the plain k-means start by 123.45 in "
     "log-likelihood"),
    ("model-based hierarchical", -85.444,
     "  start: model-based hierarchical; the plain k-means start ended 85.44 higher in "
     "log-likelihood,\n    but on a collapsed component (a variance held up by reg_covar "
     "alone, or below the rounding)"),
])
def test_the_start_line_says_how_the_chosen_start_compares(start, gain, line):
    from gmmfast._cli import MAX_WIDTH, format_start

    criteria = {"start": np.array(["kmeans", start]), "gain_over_kmeans": np.array([0, gain])}
    assert format_start(criteria, 1) == line.split("\n")
    assert all(len(part) <= MAX_WIDTH for part in line.split("\n"))
    assert format_start({**criteria, "gain_over_kmeans": np.array([0, np.nan])}, 1) == []


@pytest.mark.parametrize("start, gain, screened", [
    ("kmeans", 0.0, False),  # the plain k-means start climbs from its own θ
    ("k-means++", np.nan, False),  # a single-start search: no screening
    ("hierarchical", 12.5, True),
    ("model-based hierarchical", -85.4, True),  # kept over a collapsed k-means fit
    # Refitted from a neighbouring K's fit: EM ran from that start, no screening.
    ("split: component 2 of 4", 8.3, False),
    ("merge: components 1 and 3 of 6", 4.1, False),
])
def test_iterations_are_counted_after_the_screening_for_screened_starts(start, gain,
                                                                       screened):
    from gmmfast._cli import went_on_from_screening

    criteria = {"start": np.array(["kmeans", start]), "gain_over_kmeans": np.array([0, gain])}
    assert went_on_from_screening(criteria, 1) is screened
