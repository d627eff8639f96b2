"""BayesianGaussianMixture, gmmfast against scikit-learn, on WORKLOADS.md's shapes.

b's shape (full), d's (diag), and b's shape at N=200 000 with tied and spherical covariances
(the suite's t and s), plus b's rows in float32 for gmmfast. 20 iterations (``tol=0``), 1
thread, each library in its own process; the libraries alternate and the medians of
``--repeats`` runs are reported. Both start from ``init_params="random_from_data"`` with the
same seed, which draws the same rows in both, so their bounds after 20 iterations compare
(scikit-learn's tied start differs: it computes the tied covariance of its one-hot start
from all the rows).

Per iteration: ``(t(max_iter=20) − t(max_iter=1)) / 19``, which removes the fixed costs;
in elapsed time (the protocol's figure) and in the process's CPU time, which other
processes on the machine disturb less (one thread, so the two agree on an idle machine:
under load the elapsed time also counts the waits for a core).
Peak memory: the peak RSS of the two fits above the RSS just before them (after a warm-up
fit on the first 50 000 rows), against the bytes of X. The range of the 1-minute load
average before the runs of a case is reported too: on a shared machine the speed-ups move
by up to 1.5× from run to run with what else runs.

    python benchmarks/bench_bayesian.py                  # b, d, t, s; 3 repeats
    python benchmarks/bench_bayesian.py --quick          # small N, 1 repeat: a smoke test
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RAW_DIR = HERE / "results" / "raw"
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "MKL_NUM_THREADS")}
# (id, workload whose shape and rows are used, dtype, libraries)
CASES = [
    ("b", "b", "float64", ("gmmfast", "sklearn")),
    ("b32", "b", "float32", ("gmmfast",)),
    ("d", "d", "float64", ("gmmfast", "sklearn")),
    ("t", "t", "float64", ("gmmfast", "sklearn")),
    ("s", "s", "float64", ("gmmfast", "sklearn")),
]
MAX_ITER = 20
WARM_UP_ROWS = 50_000


# -- the child process: one library, one case -----------------------------------------------


def memory_mb():
    fields = dict(line.split(":", 1) for line in
                  Path("/proc/self/status").read_text().split("\n") if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def child(task):
    if task["lib"] == "gmmfast":
        from gmmfast import BayesianGaussianMixture
    else:
        from sklearn.mixture import BayesianGaussianMixture
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    X = np.load(task["data"]).astype(task["dtype"], copy=False)
    params = dict(n_components=task["k"], covariance_type=task["covariance_type"], tol=0,
                  init_params="random_from_data", random_state=0)
    BayesianGaussianMixture(**params, max_iter=2).fit(X[:WARM_UP_ROWS])
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here
    rss_before, _ = memory_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    BayesianGaussianMixture(**params, max_iter=1).fit(X)
    t1, c1 = time.perf_counter(), time.process_time()
    model = BayesianGaussianMixture(**params, max_iter=MAX_ITER).fit(X)
    t2, c2 = time.perf_counter(), time.process_time()
    _, peak = memory_mb()
    print("RESULT " + json.dumps({
        "s_per_iter": ((t2 - t1) - (t1 - t0)) / (MAX_ITER - 1),
        "cpu_s_per_iter": ((c2 - c1) - (c1 - c0)) / (MAX_ITER - 1),
        "lower_bound": float(np.ravel(model.lower_bound_)[0]),
        "peak_mb": peak - rss_before,
        "x_mb": X.nbytes / 2**20,
    }))


# -- the parent: data, alternation, medians --------------------------------------------------


def run_child(task):
    env = dict(os.environ, **ONE_THREAD)
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(task)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines()
                           if line.startswith("RESULT "))[len("RESULT "):])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N, 1 repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default=",".join(c[0] for c in CASES))
    ap.add_argument("--libs", default="gmmfast,sklearn")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    sys.path.insert(0, str(HERE))
    import workloads

    repeats = 1 if args.quick else args.repeats
    results = {}
    for case, wid, dtype, libs in CASES:
        if case not in args.cases.split(","):
            continue
        n, _, k, covariance_type, _, _ = workloads.WORKLOADS[wid]
        n = workloads.QUICK_N[wid] if args.quick else n
        data, _ = workloads.prepare(wid, n, RAW_DIR)
        task = dict(data=str(data), dtype=dtype, k=k, covariance_type=covariance_type)
        runs = {lib: [] for lib in libs if lib in args.libs.split(",")}
        for _ in range(repeats):
            for lib in runs:  # the libraries alternate
                load = os.getloadavg()[0]
                runs[lib].append(dict(run_child(dict(task, lib=lib)), load=load))
        results[case] = {lib: {key: statistics.median(r[key] for r in lib_runs)
                               for key in lib_runs[0]} for lib, lib_runs in runs.items()}
        loads = [r["load"] for lib_runs in runs.values() for r in lib_runs]
        results[case]["load"] = (min(loads), max(loads))
        print(case, json.dumps(results[case]), flush=True)
    report(results)
    return 0


def report(results):
    print("\n| case | gmmfast s/iter | sklearn s/iter | speed-up | CPU s/iter (gmmfast / "
          "sklearn) | CPU speed-up | gmmfast peak / X | bound (gmmfast / sklearn) | "
          "load average |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, libs in results.items():
        ours, theirs = libs["gmmfast"], libs.get("sklearn")
        low, high = libs["load"]
        speed_up = cpu_speed_up = ""
        if theirs:
            speed_up = f"{theirs['s_per_iter'] / ours['s_per_iter']:.0f}x"
            cpu_speed_up = f"{theirs['cpu_s_per_iter'] / ours['cpu_s_per_iter']:.0f}x"
        bound = (f"{ours['lower_bound']:.6g} / {theirs['lower_bound']:.6g}" if theirs
                 else f"{ours['lower_bound']:.6g}")
        theirs_cpu = f" / {theirs['cpu_s_per_iter']:.3f}" if theirs else ""
        print(f"| {case} | {ours['s_per_iter']:.4f} | "
              f"{theirs['s_per_iter'] if theirs else float('nan'):.3f} | {speed_up} | "
              f"{ours['cpu_s_per_iter']:.4f}{theirs_cpu} | {cpu_speed_up} | "
              f"{ours['peak_mb'] / ours['x_mb']:.3f} | {bound} | {low:.1f}–{high:.1f} |")
    if "b" in results and "b32" in results:
        ratio = results["b"]["gmmfast"]["s_per_iter"] / results["b32"]["gmmfast"]["s_per_iter"]
        print(f"\nfloat32 / float64 speed on b: {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
