"""Time GaussianMixture.fit: gmmfast against scikit-learn on the headline workload.

Workload (b) of /work/shared/WORKLOADS.md: N=1_000_000 x D=8 float64, K=16 well-separated
blobs, ``covariance_type="full"``, ``max_iter=20, tol=0``, every library started from the
same ``weights_init``/``means_init``/``precisions_init`` (one k-means on a 100k subsample).

The parent process generates (and caches) the data and the start, then runs every fit in
its own child process, the libraries alternating, with 1 and 2 threads (OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and threadpoolctl). Each child times
``fit(max_iter=1)`` then ``fit(max_iter=20)``; seconds per iteration are
``(t20 - t1) / 19``, which removes the fixed per-fit cost (validation, the final E-step).

    python benchmarks/bench_fit.py            # full run, 3 repeats (~10 minutes on 2 cores)
    python benchmarks/bench_fit.py --quick    # N=20_000, 1 repeat: a smoke test
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
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RAW = HERE / "results" / "raw"
D, K, MAX_ITER, SEED = 8, 16, 20, 0
LIBS = ("gmmfast", "sklearn")


def make_blobs(n, d, k, seed):
    """Workload data per WORKLOADS.md: K well-separated Gaussian blobs, rows shuffled."""
    rng = np.random.default_rng(seed)
    half_width, failures = 15.0, 0
    while True:
        means = rng.uniform(-half_width, half_width, size=(k, d))
        dist = np.linalg.norm(means[:, None, :] - means[None, :, :], axis=-1)
        if k == 1 or dist[np.triu_indices(k, 1)].min() >= 12.0:
            break
        failures += 1
        if failures % 1000 == 0:
            half_width *= 1.1
    A = rng.standard_normal((k, d, d))
    covariances = A @ A.transpose(0, 2, 1) / d + 0.1 * np.eye(d)
    weights = rng.dirichlet(np.full(k, 10.0))
    counts = rng.multinomial(n, weights)
    X = np.empty((n, d))
    start = 0
    for j in range(k):
        L = np.linalg.cholesky(covariances[j])
        X[start:start + counts[j]] = means[j] + rng.standard_normal((counts[j], d)) @ L.T
        start += counts[j]
    rng.shuffle(X)
    return X


def make_start(X, k, seed):
    """weights/means/precisions from one sklearn KMeans on a (<=100k) subsample of X."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed + 1)
    sub = X[np.sort(rng.choice(len(X), size=min(100_000, len(X)), replace=False))]
    labels = KMeans(k, n_init=1, random_state=seed).fit(sub).labels_
    weights = np.bincount(labels, minlength=k) / len(sub)
    means = np.stack([sub[labels == j].mean(axis=0) for j in range(k)])
    precisions = np.empty((k, X.shape[1], X.shape[1]))
    for j in range(k):
        diff = sub[labels == j] - means[j]
        cov = diff.T @ diff / len(diff) + 1e-6 * np.eye(X.shape[1])
        prec = np.linalg.inv(cov)
        precisions[j] = (prec + prec.T) / 2
    return weights, means, precisions


def prepare(n):
    """Return the paths of the cached data (.npy) and start (.npz), creating them if needed."""
    RAW.mkdir(parents=True, exist_ok=True)
    data = RAW / f"workload_b_n{n}_seed{SEED}.npy"
    start = RAW / f"workload_b_n{n}_seed{SEED}_start.npz"
    if not data.exists():
        t0 = time.perf_counter()
        np.save(data, make_blobs(n, D, K, SEED))
        print(f"generated {data.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    if not start.exists():
        w, m, p = make_start(np.load(data), K, SEED)
        np.savez(start, weights=w, means=m, precisions=p)
    return data, start


def _memory_mb():
    """(current RSS, peak RSS) in MB from /proc (Linux), or (nan, nan)."""
    try:
        status = Path("/proc/self/status").read_text().split("\n")
    except OSError:
        return float("nan"), float("nan")
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def child(lib, threads, data, start):
    """Run in a fresh process: time fit(max_iter=1) and fit(max_iter=20), print one JSON line."""
    from threadpoolctl import threadpool_info, threadpool_limits

    if lib == "gmmfast":
        import gmmfast
        from gmmfast import GaussianMixture

        where = gmmfast.__file__
    else:
        import sklearn
        from sklearn.mixture import GaussianMixture

        where = sklearn.__file__
    X = np.load(data)
    init = np.load(start)
    kwargs = dict(n_components=K, covariance_type="full", tol=0.0, random_state=0,
                  weights_init=init["weights"], means_init=init["means"],
                  precisions_init=init["precisions"])
    try:  # reset the peak-RSS mark so it measures the fits only
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    rss_before, _ = _memory_mb()
    times, lower_bound = {}, None
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 never converges: ConvergenceWarning
        for max_iter in (1, MAX_ITER):
            gm = GaussianMixture(max_iter=max_iter, **kwargs)
            t0 = time.perf_counter()
            gm.fit(X)
            times[max_iter] = time.perf_counter() - t0
            lower_bound = float(gm.lower_bound_)
        pools = [{k: p.get(k) for k in ("internal_api", "num_threads", "architecture")}
                 for p in threadpool_info()]
    _, peak = _memory_mb()
    print("RESULT " + json.dumps({
        "lib": lib, "threads": threads, "file": where, "n_iter": gm.n_iter_,
        "fit1_s": times[1], "fit_s": times[MAX_ITER],
        "s_per_iter": (times[MAX_ITER] - times[1]) / (MAX_ITER - 1),
        "lower_bound": lower_bound, "peak_mb": peak - rss_before, "pools": pools,
    }), flush=True)


def run_child(lib, threads, data, start, keep_openblas_env):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    if not keep_openblas_env:  # they force an older, slower OpenBLAS kernel (see README)
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    cmd = [sys.executable, __file__, "--lib", lib, "--threads", str(threads),
           "--data", str(data), "--start", str(start)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"child {lib} threads={threads} failed:\n{out.stdout}{out.stderr}")
    line = next(s for s in out.stdout.splitlines() if s.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N=20_000 and 1 repeat")
    ap.add_argument("--repeats", type=int, default=None, help="runs per library (default 3)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--keep-openblas-env", action="store_true",
                    help="pass OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE on to the children")
    ap.add_argument("--lib", choices=LIBS, help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--start", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lib:
        child(args.lib, int(args.threads), args.data, args.start)
        return 0

    n = 20_000 if args.quick else 1_000_000
    repeats = args.repeats or (1 if args.quick else 3)
    thread_counts = [int(t) for t in args.threads.split(",")]
    data, start = prepare(n)
    print(f"workload b: N={n} D={D} K={K} full, max_iter={MAX_ITER} tol=0, "
          f"repeats={repeats}, python {platform.python_version()}, {os.cpu_count()} CPUs",
          flush=True)
    if hasattr(os, "getloadavg"):  # other work on the machine skews the 2-thread runs most
        print("load average before the runs: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    runs = {(lib, t): [] for lib in LIBS for t in thread_counts}
    for t in thread_counts:
        for r in range(repeats):
            for lib in LIBS:  # alternate A B A B ...
                res = run_child(lib, t, data, start, args.keep_openblas_env)
                runs[lib, t].append(res)
                print(f"  {lib:8s} threads={t} run {r + 1}: {res['s_per_iter']:.4f} s/iter, "
                      f"fit {res['fit_s']:.2f} s, lower_bound_ {res['lower_bound']:.10f}",
                      flush=True)
    first = {lib: runs[lib, thread_counts[0]][0] for lib in LIBS}
    for lib in LIBS:
        print(f"{lib}: {first[lib]['file']}; thread pools {first[lib]['pools']}")

    print("\n| threads | gmmfast s/iter | sklearn s/iter | speed-up | gmmfast lower_bound_ "
          "| sklearn lower_bound_ | abs diff | peak MB gmmfast / sklearn |")
    print("|---|---|---|---|---|---|---|---|")
    ok = True
    for t in thread_counts:
        med = {lib: statistics.median(r["s_per_iter"] for r in runs[lib, t]) for lib in LIBS}
        lb = {lib: runs[lib, t][-1]["lower_bound"] for lib in LIBS}
        peak = {lib: statistics.median(r["peak_mb"] for r in runs[lib, t]) for lib in LIBS}
        diff = abs(lb["gmmfast"] - lb["sklearn"])
        ok &= diff <= 1e-6 * max(1.0, abs(lb["sklearn"]))
        print(f"| {t} | {med['gmmfast']:.4f} | {med['sklearn']:.4f} "
              f"| {med['sklearn'] / med['gmmfast']:.1f}x | {lb['gmmfast']:.10f} "
              f"| {lb['sklearn']:.10f} | {diff:.1e} | {peak['gmmfast']:.0f} / {peak['sklearn']:.0f} |")
    RAW.joinpath(f"bench_fit_n{n}_{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps([r for v in runs.values() for r in v], indent=1))
    if not ok:
        print("\nMISMATCH: the final lower_bound_ values differ by more than 1e-6")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
