"""gmmfast's fourteen covariance models against R's mclust: log-likelihood of every
(model, K) cell, and the time of the whole 14-model × K = 1..9 search.

mclust is a reference here, never a dependency: ``apt-get install r-cran-mclust`` (Debian)
or ``install.packages("mclust")`` in R. ``benchmarks/bench_mclust.R`` runs
``Mclust(X, G = 1:9)`` (its defaults: the 14 models for multivariate data, hierarchical
initialisation, EM to a relative tolerance of 1e-5) and prints its BIC table; the log
-likelihood of a cell is ``(BIC + p log n) / 2`` with mclust's parameter count p.

gmmfast runs ``select_model(X, n_components=range(1, 10), covariance_type="all",
random_state=0, tol=TOL, max_iter=1000)``: k-means initialisation, EM until the average
log-likelihood changes by less than ``tol`` (1e-5 by default: on these data sets about as
strict as mclust's relative 1e-5 on the total; on data whose mean log-likelihood is far
from −1, such as the blobs, ``--tol mclust`` matches mclust's rule). Both fit the same rows
(written to a CSV for R).

Data sets: iris (150 × 4, from scikit-learn), Old Faithful (272 × 2, the copy bundled with
gmmfast, equal to R's ``faithful``) and ``blobs`` (N × 8 rows of 6 Gaussian blobs with
random full covariances, ``benchmarks/bench_selection.make_data``) for speed. Times are
medians of ``--repeats`` runs, gmmfast and mclust alternating; mclust's is its own
``system.time`` of the ``Mclust`` call (R's start-up excluded), gmmfast's the wall time of
``select_model`` in this process.

    python benchmarks/bench_mclust.py                          # iris, faithful; 3 repeats
    python benchmarks/bench_mclust.py --datasets blobs --n 5000 --repeats 1
    python benchmarks/bench_mclust.py --out benchmarks/results/MCLUST.md

``--grid-cost`` instead times gmmfast alone: the 14-model × K = 1..9 search against
scikit-learn's 4 types × K = 1..10 (the search's former default grid) on the ``blobs`` rows
(``--n``, default 100 000 × 8), alternating, with its default tol; the target is a ratio of
at most 2.5. ``--cpu-time`` times the CPU the searches used instead of wall time (on a loaded
machine; with ``--n-threads 1`` for a single thread's).

    python benchmarks/bench_mclust.py --grid-cost --n 100000 --repeats 2
    python benchmarks/bench_mclust.py --grid-cost --init kmeans --cpu-time --n-threads 1 --repeats 5
"""

import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
R_SCRIPT = os.path.join(HERE, "bench_mclust.R")
GRID_K = range(1, 10)


def load(name, n):
    if name == "iris":
        from sklearn.datasets import load_iris

        return load_iris().data
    if name == "faithful":
        from gmmfast._datafile import read_table

        return read_table(None).X
    if name == "wine":
        from sklearn.datasets import load_wine

        X = load_wine().data  # standardised, as benchmarks/results/STARTS.md's
        return (X - X.mean(axis=0)) / X.std(axis=0)
    if name == "blobs":
        sys.path.insert(0, HERE)
        from bench_selection import make_data

        return make_data(n)
    raise SystemExit(f"unknown data set {name!r}: use iris, faithful, wine or blobs")


def run_gmmfast(X, tol, n_threads, init_params="kmeans"):
    """(seconds, {(model, K): log-likelihood}, best (model, K, BIC)) of the 14-model
    search."""
    from gmmfast import select_model

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = select_model(X, n_components=GRID_K, covariance_type="all",
                              init_params=init_params, random_state=0, tol=tol,
                              max_iter=1000, n_threads=n_threads)
    seconds = time.perf_counter() - start
    table = search.criterion_table_
    cells = {(str(m), int(k)): float(ll) for m, k, ll in
             zip(table["mclust_name"], table["n_components"], table["log_likelihood"])}
    best = (str(table["mclust_name"][table.best_index]),
            int(table["n_components"][table.best_index]),
            float(table["bic"][table.best_index]))
    return seconds, cells, best


def run_mclust(csv_path):
    """(seconds, {(model, K): log-likelihood}, best (model, K, BIC in gmmfast's sign))."""
    result = subprocess.run(["Rscript", R_SCRIPT, csv_path], capture_output=True, text=True,
                            check=True)
    lines = result.stdout.splitlines()
    seconds = float(lines[0].split(",")[1])
    cells, best = {}, None
    for row in csv.DictReader(io.StringIO("\n".join(lines[1:]))):
        if row["bic"] == "NA":
            cells[row["model"], int(row["G"])] = float("nan")
            continue
        cells[row["model"], int(row["G"])] = float(row["log_likelihood"])
        bic = -float(row["bic"])
        if best is None or bic < best[2]:
            best = (row["model"], int(row["G"]), bic)
    return seconds, cells, best


def mclust_equivalent_tol(X, relative=1e-5):
    """gmmfast's tol (a change of the mean log-likelihood) that stops where mclust's rule
    |ΔL| / (1 + |L|) < ``relative`` on the total L would, with the mean log-likelihood
    of one Gaussian fitted to X standing in for the fit's (it changes little with K)."""
    n, d = X.shape
    _, log_det = np.linalg.slogdet(np.atleast_2d(np.cov(X, rowvar=False, bias=True)))
    mean_loglik = -0.5 * (d * (1 + np.log(2 * np.pi)) + log_det)
    return relative * (1 / n + abs(mean_loglik))


def compare(name, X, args):
    tol = mclust_equivalent_tol(X) if args.tol == "mclust" else float(args.tol)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"{name}.csv")
        np.savetxt(path, X, delimiter=",", fmt="%.17g")
        ours_times, theirs_times = [], []
        for _ in range(args.repeats):
            seconds, ours, our_best = run_gmmfast(X, tol, args.n_threads)
            ours_times.append(seconds)
            seconds, theirs, their_best = run_mclust(path)
            theirs_times.append(seconds)
    return {
        "name": name, "shape": X.shape, "tol": tol, "ours": ours, "theirs": theirs,
        "our_best": our_best, "their_best": their_best,
        "our_seconds": statistics.median(ours_times),
        "their_seconds": statistics.median(theirs_times),
        "our_times": ours_times, "their_times": theirs_times,
    }


def report(result, models):
    """Markdown: the grid of log L(gmmfast) − log L(mclust), then a summary."""
    ours, theirs = result["ours"], result["theirs"]
    lines = [f"### {result['name']} ({result['shape'][0]} × {result['shape'][1]})", "",
             "log L(gmmfast) − log L(mclust) per cell (positive: gmmfast found a better fit;"
             " `n/a`: mclust gave no value):", "",
             "| K | " + " | ".join(models) + " |", "|---:|" + "---:|" * len(models)]
    differences = []
    for k in GRID_K:
        cells = []
        for m in models:
            difference = ours.get((m, k), np.nan) - theirs.get((m, k), np.nan)
            if np.isnan(theirs.get((m, k), np.nan)):
                cells.append("n/a")
                continue
            differences.append(difference)
            cells.append(f"{difference:+.2f}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    differences = np.array(differences)
    worse = differences < -0.01
    lines += [
        "",
        f"- {len(differences)} cells both fitted: gmmfast at least as good (within 0.01) in "
        f"{int((~worse).sum())}, better by more than 0.01 in "
        f"{int((differences > 0.01).sum())}, worse by more than 0.01 in {int(worse.sum())} "
        f"(median of those {np.median(differences[worse]) if worse.any() else 0:+.2f}, "
        f"worst {differences.min():+.2f}).",
        f"- Best by BIC: gmmfast {result['our_best'][0]},{result['our_best'][1]} "
        f"(BIC {result['our_best'][2]:.2f}); mclust {result['their_best'][0]},"
        f"{result['their_best'][1]} (BIC {result['their_best'][2]:.2f} in gmmfast's sign).",
        f"- Time of the 14 × 9 search (median of {len(result['our_times'])}; gmmfast's tol "
        f"{result['tol']:.3g}): gmmfast "
        f"{result['our_seconds']:.3f} s, mclust {result['their_seconds']:.3f} s, ratio "
        f"{result['their_seconds'] / result['our_seconds']:.1f}× (runs: gmmfast "
        f"{', '.join(f'{t:.3f}' for t in result['our_times'])}; mclust "
        f"{', '.join(f'{t:.3f}' for t in result['their_times'])}).",
        "",
    ]
    return "\n".join(lines)


def grid_cost(X, repeats, n_threads, init_params, clock=time.perf_counter):
    """Median seconds of the 14 × 9 and the 4 × 10 searches, run alternately, every
    candidate started by ``init_params``; ``clock`` measures them (wall time, or
    ``time.process_time``: the CPU they used, which other processes on a loaded machine
    disturb less)."""
    from gmmfast import select_model

    grids = {"14 models x K=1..9": ("all", range(1, 10)),
             "4 types x K=1..10": (["full", "tied", "diag", "spherical"], range(1, 11))}
    times = {name: [] for name in grids}
    for _ in range(repeats):
        for name, (types, ks) in grids.items():
            start = clock()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                select_model(X, n_components=ks, covariance_type=types, random_state=0,
                             init_params=init_params, n_threads=n_threads)
            times[name].append(clock() - start)
    kind = "CPU" if clock is time.process_time else "wall"
    lines = [f"### Search cost on blobs ({X.shape[0]} × {X.shape[1]}), "
             f"init_params={init_params!r}, {kind} time", ""]
    for name, values in times.items():
        lines.append(f"- {name}: median {statistics.median(values):.2f} s (runs "
                     f"{', '.join(f'{t:.2f}' for t in values)})")
    ratio = statistics.median(times["14 models x K=1..9"]) / statistics.median(
        times["4 types x K=1..10"])
    lines += [f"- ratio {ratio:.2f} (target <= 2.5)", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="iris,faithful")
    parser.add_argument("--n", type=int, default=None,
                        help="rows of the blobs data set (5000; 100 000 with --grid-cost)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tol", default="1e-5",
                        help="gmmfast's tol, or 'mclust': the tol that stops where mclust's "
                             "relative 1e-5 on the total log-likelihood does")
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="also write the report to this file")
    parser.add_argument("--init", default="multistart",
                        help="init_params of every candidate with --grid-cost (default "
                             "multistart, the search's; kmeans is a single k-means start)")
    parser.add_argument("--grid-cost", action="store_true",
                        help="time gmmfast's 14 x 9 search against its 4 x 10 one")
    parser.add_argument("--cpu-time", action="store_true",
                        help="with --grid-cost: CPU time (time.process_time) instead of wall")
    args = parser.parse_args()
    if args.grid_cost:
        text = grid_cost(load("blobs", args.n or 100_000), args.repeats, args.n_threads,
                         args.init, time.process_time if args.cpu_time else time.perf_counter)
        print(text)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(text)
        return
    if shutil.which("Rscript") is None:
        raise SystemExit("Rscript not found: install R and mclust (apt-get install "
                         "r-cran-mclust)")
    from gmmfast._covariance_models import COVARIANCE_MODELS

    sections = [f"gmmfast tol={args.tol}, max_iter=1000, random_state=0, n_threads="
                f"{args.n_threads or 'default'}; load average before: "
                f"{os.getloadavg()[0]:.1f}", ""]
    for name in args.datasets.split(","):
        result = compare(name, load(name, args.n or 5000), args)
        text = report(result, COVARIANCE_MODELS)
        print(text, flush=True)
        sections.append(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(sections))


if __name__ == "__main__":
    main()
