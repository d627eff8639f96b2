"""A whole ``fit`` with 1 and 2 threads: does the fit scale, not only its iterations?

Times ``GaussianMixture(...).fit(X)`` end to end (validation, the iterations, storing the
model) on a workload from the suite's common start, ``max_iter`` iterations with ``tol=0``,
alternating 1 and 2 threads in the same process, and reports the medians and their ratio.

    python benchmarks/bench_threads.py                    # workload b, 10 iterations, 5 x 2
    python benchmarks/bench_threads.py --workload e --repeats 7
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402

RAW_DIR = Path(__file__).resolve().parent / "results" / "raw"


def fit_seconds(X, start, covariance_type, n_threads, max_iter):
    from gmmfast import GaussianMixture

    model = GaussianMixture(len(start["weights"]), covariance_type=covariance_type,
                            n_threads=n_threads, tol=0.0, max_iter=max_iter,
                            weights_init=start["weights"], means_init=start["means"],
                            precisions_init=start["precisions"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model.fit(X)
        return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="b", choices=sorted(workloads.WORKLOADS))
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    n, _, _, covariance_type, dtype, _ = workloads.WORKLOADS[args.workload]
    data, start_file = workloads.prepare(args.workload, n, RAW_DIR)
    X, start = np.load(data), dict(np.load(start_file))
    fit_seconds(X, start, covariance_type, 2, 1)  # warm-up: pages of X, OpenMP team
    times = {1: [], 2: []}
    for _ in range(args.repeats):
        for threads in (1, 2):
            times[threads].append(fit_seconds(X, start, covariance_type, threads,
                                              args.iterations))
    one, two = (float(np.median(times[t])) for t in (1, 2))
    print(f"workload {args.workload} ({n} x {X.shape[1]}, {covariance_type}, {dtype}), "
          f"whole fit of {args.iterations} iterations, medians of {args.repeats}")
    print(f"  1 thread   {one:8.3f} s")
    print(f"  2 threads  {two:8.3f} s")
    print(f"  speed-up   {one / two:8.2f}x (target >= 1.8x)")


if __name__ == "__main__":
    main()
