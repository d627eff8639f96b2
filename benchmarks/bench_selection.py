"""Time a model-selection grid: gmmfast.GaussianMixtureIC against scikit-learn's 40 fits.

The grid is n_components = 1..10 × covariance_type in {full, tied, diag, spherical} on
N=100_000 × D=8 float64 rows from 6 Gaussian blobs with random full covariances (seed 0).
Both libraries use their defaults (tol=1e-3, max_iter=100, n_init=1, init_params="kmeans")
and random_state=0, and keep the candidate with the lowest BIC:

- ``gmmfast``: ``GaussianMixtureIC(n_components=range(1, 11), random_state=0).fit(X)``
  (one k-means per K shared by the four types, candidates in parallel);
- ``gmmfast-loop``: 40 independent ``gmmfast.GaussianMixture(...).fit(X)`` and ``bic(X)``
  (what the search saves over a hand-written loop);
- ``sklearn``: the same hand-written loop with ``sklearn.mixture.GaussianMixture``.

Every run is a child process (``--lib``), the libraries alternating, with
``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` set to ``--threads`` (default:
every core). Times include everything the user waits for (validation, initialisation, EM,
the BIC of every candidate), not the data generation. The table reports the median over
``--repeats`` and the ratio scikit-learn / gmmfast.

    python benchmarks/bench_selection.py                # 3 repeats (~several minutes)
    python benchmarks/bench_selection.py --repeats 1    # one run of each
    python benchmarks/bench_selection.py --quick        # N=20_000, 1 repeat: does it work?
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

N, D, TRUE_K, SEED = 100_000, 8, 6, 0
GRID_K = range(1, 11)
TYPES = ("full", "tied", "diag", "spherical")
LIBS = ("gmmfast", "sklearn", "gmmfast-loop")


def make_data(n, d=D, k=TRUE_K, seed=SEED):
    """k Gaussian blobs with random full covariances, centres at least 6 apart, shuffled."""
    rng = np.random.default_rng(seed)
    while True:
        centers = rng.uniform(-10, 10, size=(k, d))
        gaps = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
        if gaps[np.triu_indices(k, 1)].min() >= 6.0:
            break
    A = rng.standard_normal((k, d, d))
    covariances = A @ A.transpose(0, 2, 1) / d + 0.2 * np.eye(d)
    counts = rng.multinomial(n, rng.dirichlet(np.full(k, 5.0)))
    X = np.vstack([rng.multivariate_normal(c, cov, size=m)
                   for c, cov, m in zip(centers, covariances, counts)])
    rng.shuffle(X)
    return X


def child(lib, n):
    X = make_data(n)
    warnings.simplefilter("ignore")  # ConvergenceWarning of some candidates
    start = time.perf_counter()
    if lib == "gmmfast":
        from gmmfast import GaussianMixtureIC

        search = GaussianMixtureIC(n_components=GRID_K, random_state=0).fit(X)
        table = search.criterion_table_
        best = (search.n_components_, search.covariance_type_,
                float(table["bic"][search.best_index_]))
        unconverged = int((~table["converged"]).sum())
    else:
        if lib == "sklearn":
            from sklearn.mixture import GaussianMixture
        else:
            from gmmfast import GaussianMixture
        best, unconverged = None, 0
        for k in GRID_K:
            for covariance_type in TYPES:
                gm = GaussianMixture(k, covariance_type=covariance_type, random_state=0)
                bic = gm.fit(X).bic(X)
                unconverged += not gm.converged_
                if best is None or bic < best[2]:
                    best = (k, covariance_type, float(bic))
    seconds = time.perf_counter() - start
    print(json.dumps({"lib": lib, "seconds": seconds, "n_components": best[0],
                      "covariance_type": best[1], "bic": best[2],
                      "unconverged": unconverged}))


def run_child(lib, n, threads):
    env = dict(os.environ)
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    # Run outside the repository, so the installed gmmfast is imported.
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--lib", lib, "--n",
                          str(n)], capture_output=True, text=True, env=env, check=True,
                         cwd=os.path.expanduser("~"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", choices=LIBS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=N, help=f"rows (default {N})")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every library (default: all cores)")
    parser.add_argument("--libs", default=",".join(LIBS),
                        help=f"comma-separated subset of {', '.join(LIBS)}")
    parser.add_argument("--quick", action="store_true", help="N=20_000, 1 repeat")
    parser.add_argument("--json", metavar="PATH", help="also write the raw runs here")
    args = parser.parse_args()
    if args.lib:
        child(args.lib, args.n)
        return 0
    if args.quick:
        args.n, args.repeats = 20_000, 1
    libs = [lib.strip() for lib in args.libs.split(",")]

    print(f"grid: n_components 1..10 x {len(TYPES)} covariance types = 40 candidates, "
          f"N={args.n} x D={D}, threads={args.threads or 'default'}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    runs = {lib: [] for lib in libs}
    for repeat in range(args.repeats):
        for lib in libs:
            result = run_child(lib, args.n, args.threads)
            runs[lib].append(result)
            print(f"  run {repeat + 1}: {lib:<13} {result['seconds']:8.2f} s   chosen "
                  f"K={result['n_components']} {result['covariance_type']:<9} "
                  f"BIC {result['bic']:.1f}  ({result['unconverged']} not converged)",
                  flush=True)
    medians = {lib: statistics.median(r["seconds"] for r in runs[lib]) for lib in libs}
    print()
    print(f"{'library':<14}{'median s':>10}{'sklearn / this':>16}")
    for lib in libs:
        ratio = (f"{medians['sklearn'] / medians[lib]:.2f}x" if "sklearn" in medians
                 else "-")
        print(f"{lib:<14}{medians[lib]:>10.2f}{ratio:>16}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "threads": args.threads, "machine": platform.platform(),
                       "runs": runs, "medians": medians}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
