"""Quality and cost of init_params="multistart": every (model, K) cell against R's mclust
and the best of 9 scikit-learn fits, and the default search's cost against "kmeans".

Quality (``--quality``, the default): on each data set, for mclust's 14 models × K = 1..9,

- gmmfast: ``select_model(X, range(1, 10), "all", init_params=INIT, random_state=0,
  tol=TOL, max_iter=1000)`` (INIT: ``--init``, default multistart);
- mclust: ``Mclust(X, G = 1:9)`` through ``benchmarks/bench_mclust.R`` (its defaults:
  hierarchical initialisation, relative tolerance 1e-5); R's mclust is a reference here,
  never a dependency (``apt-get install r-cran-mclust``);
- best of 9: scikit-learn's ``GaussianMixture`` (full, tied, diag, spherical) with
  ``init_params`` in kmeans, k-means++, random_from_data × ``random_state`` 0, 1, 2 and the
  same tol and max_iter; for mclust's ten other models, which scikit-learn lacks,
  gmmfast's ``GaussianMixture`` with the same nine starts.

A cell passes when gmmfast's log-likelihood is at least the larger of the two references
less 0.01. A reference fit whose component collapsed (a variance held up by reg_covar
alone: ``gmmfast._starts.Collapse``) is a spurious optimum that multistart refuses on
purpose; such cells are counted apart.

Cost (``--cost``): ``GaussianMixtureIC(n_components=range(1, 11), random_state=0)`` (the
default search: 14 models) on ``benchmarks/bench_selection.make_data(N)`` rows (100 000 × 8),
``init_params`` multistart and kmeans alternating, medians of ``--repeats`` (wall and CPU
seconds).

    python benchmarks/bench_starts.py --datasets iris,faithful,wine --cache refs.json
    python benchmarks/bench_starts.py --cost --repeats 3
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

GRID_K = range(1, 10)
SKLEARN_TYPES = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}
INITS = ("kmeans", "k-means++", "random_from_data")
SEEDS = (0, 1, 2)
MARGIN = 0.01


def load(name):
    if name == "wine":
        from sklearn.datasets import load_wine

        X = load_wine().data
        return (X - X.mean(axis=0)) / X.std(axis=0)
    from bench_mclust import load as load_mclust_data

    return load_mclust_data(name, 2000)


def best_of_nine(X, model, k, tol):
    """(log-likelihood of the best of the nine fits, whether that fit collapsed)."""
    from gmmfast import GaussianMixture as Ours
    from gmmfast._starts import Collapse, rounding_variances

    if model in SKLEARN_TYPES:
        from sklearn.mixture import GaussianMixture as Theirs

        make = lambda init, seed: Theirs(k, covariance_type=SKLEARN_TYPES[model],  # noqa
                                         init_params=init, random_state=seed, tol=tol,
                                         max_iter=1000)
        layout = SKLEARN_TYPES[model]
    else:
        from gmmfast._covariance_models import sklearn_layout

        make = lambda init, seed: Ours(k, covariance_type=model, init_params=init,  # noqa
                                       random_state=seed, tol=tol, max_iter=1000)
        layout = sklearn_layout(model)
    collapse = Collapse(layout, 1e-6, X.var(axis=0), rounding_variances(X))
    best, collapsed = -np.inf, False
    for init in INITS:
        for seed in SEEDS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = make(init, seed).fit(X)
            except ValueError:
                continue
            loglik = float(fit.score(X) * X.shape[0])
            if loglik > best:
                best = loglik
                collapsed = not collapse((fit.weights_, fit.means_, fit.covariances_))
    return best, collapsed


def references(name, X, args):
    """mclust's cells and best model, and the best of 9 per cell; read from ``--cache``
    (a JSON file) when it holds them for these data and tol (the nine fits take minutes
    per data set), else computed and written there."""
    from bench_mclust import run_mclust
    from gmmfast._covariance_models import COVARIANCE_MODELS

    key = f"{name} {X.shape} tol={args.tol}"
    cache = {}
    if args.cache and os.path.exists(args.cache):
        with open(args.cache) as handle:
            cache = json.load(handle)
    if key not in cache:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, f"{name}.csv")
            np.savetxt(path, X, delimiter=",", fmt="%.17g")
            mclust_seconds, mclust, mclust_best = run_mclust(path)
        nine = {f"{m} {k}": best_of_nine(X, m, k, args.tol)
                for m in COVARIANCE_MODELS for k in GRID_K}
        cache[key] = {"mclust": {f"{m} {k}": v for (m, k), v in mclust.items()},
                      "mclust_best": mclust_best, "mclust_seconds": mclust_seconds,
                      "nine": nine}
        if args.cache:
            with open(args.cache, "w") as handle:
                json.dump(cache, handle)
    entry = cache[key]
    mclust = {(m, int(k)): v for m, k, v in
              ((*key.split(), v) for key, v in entry["mclust"].items())}
    nine = {(m, int(k)): tuple(v) for m, k, v in
            ((*key.split(), v) for key, v in entry["nine"].items())}
    return mclust, tuple(entry["mclust_best"]), entry["mclust_seconds"], nine


def finite(value):
    return value is not None and bool(np.isfinite(value))


def mclust_shortfalls(mine, mclust):
    """[((model, K), gmmfast − mclust)] for the cells both fitted where gmmfast's
    log-likelihood is below mclust's by more than MARGIN, worst first."""
    gaps = [(cell, mine[cell] - value) for cell, value in mclust.items()
            if finite(value) and finite(mine.get(cell))]
    return sorted(((cell, gap) for cell, gap in gaps if gap < -MARGIN), key=lambda c: c[1])


def quality(name, X, args):
    from gmmfast._covariance_models import COVARIANCE_MODELS

    mclust, mclust_best, mclust_seconds, nine_cells = references(name, X, args)
    from bench_mclust import run_gmmfast

    seconds, mine, my_best = run_gmmfast(X, args.tol, args.n_threads, args.init)
    lines = [f"### {name} ({X.shape[0]} × {X.shape[1]})", "",
             "log L(gmmfast) − max(log L(mclust), best of 9) per cell; `c`: the best of 9 "
             "collapsed (a spurious optimum that multistart refuses):", "",
             "| K | " + " | ".join(COVARIANCE_MODELS) + " |",
             "|---:|" + "---:|" * len(COVARIANCE_MODELS)]
    counts = {"pass": 0, "fail": 0, "collapsed": 0}
    failures = []
    for k in GRID_K:
        row = []
        for model in COVARIANCE_MODELS:
            nine, collapsed = nine_cells[model, k]
            reference = np.nanmax([mclust.get((model, k), np.nan), nine])
            difference = mine.get((model, k), np.nan) - reference
            if collapsed and difference < -MARGIN:
                nine_clean = mclust.get((model, k), np.nan)
                difference = mine.get((model, k), np.nan) - nine_clean
                counts["collapsed"] += 1
                row.append(f"{difference:+.2f}c" if np.isfinite(difference) else "c")
                continue
            if not np.isfinite(difference):
                row.append("n/a")
                continue
            passed = difference >= -MARGIN
            counts["pass" if passed else "fail"] += 1
            if not passed:
                failures.append(difference)
            row.append(f"{difference:+.2f}")
        lines.append(f"| {k} | " + " | ".join(row) + " |")
    below_mclust = mclust_shortfalls(mine, mclust)
    fitted_by_mclust = sum(finite(v) and finite(mine.get(cell)) for cell, v in mclust.items())
    lines += [
        "",
        f"- init_params={args.init!r}, tol={args.tol}: {counts['pass']} cells at least both "
        f"references (within {MARGIN}), {counts['fail']} below "
        f"(worst {min(failures, default=0):+.2f}); {counts['collapsed']} cells whose best "
        f"of 9 collapsed (compared with mclust alone).",
        f"- Against mclust alone (issue 19's criterion): "
        f"{fitted_by_mclust - len(below_mclust)} of {fitted_by_mclust} cells at least "
        f"mclust's (within {MARGIN}); below: "
        + (", ".join(f"{m},{k} {d:+.2f}" for (m, k), d in below_mclust) or "none") + ".",
        f"- Best by BIC: gmmfast {my_best[0]},{my_best[1]} (BIC {my_best[2]:.2f}); mclust "
        f"{mclust_best[0]},{mclust_best[1]} (BIC {mclust_best[2]:.2f}).",
        f"- Time of the 14 × 9 search: gmmfast {seconds:.2f} s, mclust "
        f"{mclust_seconds:.2f} s.",
        "",
    ]
    return "\n".join(lines)


def cost(args):
    from bench_selection import make_data
    from gmmfast import GaussianMixtureIC

    X = make_data(args.n)
    times = {"multistart": [], "kmeans": []}
    cpu = {init: [] for init in times}
    for _ in range(args.repeats):
        for init in times:
            start, start_cpu = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                GaussianMixtureIC(n_components=range(1, 11), init_params=init,
                                  random_state=0, n_threads=args.n_threads).fit(X)
            times[init].append(time.perf_counter() - start)
            cpu[init].append(time.process_time() - start_cpu)
            print(f"  {init}: {times[init][-1]:.2f} s ({cpu[init][-1]:.2f} s of CPU)",
                  file=sys.stderr, flush=True)
    medians = {init: statistics.median(values) for init, values in times.items()}
    cpu_medians = {init: statistics.median(values) for init, values in cpu.items()}
    return "\n".join([
        f"### Cost of the default search (14 models × K = 1..10) on {X.shape[0]} × "
        f"{X.shape[1]}", "",
        *(f"- {init}: median {medians[init]:.2f} s, {cpu_medians[init]:.2f} s of CPU (runs "
          f"{', '.join(f'{t:.2f}' for t in values)})" for init, values in times.items()),
        f"- ratio multistart / kmeans: {medians['multistart'] / medians['kmeans']:.2f}, "
        f"of CPU {cpu_medians['multistart'] / cpu_medians['kmeans']:.2f} (load average "
        f"{os.getloadavg()[0]:.1f}: under load the CPU ratio is the steadier)", ""])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="iris,faithful,wine")
    parser.add_argument("--init", default="multistart")
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="also append the report to this file")
    parser.add_argument("--cache", default=None,
                        help="JSON file keeping the references (mclust, best of 9) between "
                             "runs")
    args = parser.parse_args()
    if args.cost:
        sections = [cost(args)]
    else:
        if shutil.which("Rscript") is None:
            raise SystemExit("Rscript not found: install R and mclust (apt-get install "
                             "r-cran-mclust)")
        sections = [quality(name, load(name), args) for name in args.datasets.split(",")]
    text = "\n".join(sections)
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
