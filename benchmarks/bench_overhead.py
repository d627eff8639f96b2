"""The Python side of an EM iteration, against the compiled pass (issue 6: under 1 %).

Fits a workload (default a: 10^5 × 2, K = 4, full) from the suite's common start with
``tol=0`` for ``--iterations`` iterations on one thread and splits each iteration into

- *outside the pass*: everything the EM loop does besides calling ``em_pass`` (kernel form
  of the parameters, accumulators, M-step, lower bound, convergence test), timed as the
  EM loop's time minus the time spent inside ``em_pass``;
- *pass wrapper*: ``em_pass``'s own argument handling, timed as a call on 8 rows made
  right after a full pass (so from the same cold caches as in a fit; it includes the
  8 rows' compute, which makes it an upper bound);
- *pass*: the rest of ``em_pass``.

    python benchmarks/bench_overhead.py                  # workload a, 300 iterations x 7
    python benchmarks/bench_overhead.py --workload s
    python benchmarks/bench_overhead.py --small-data     # Old Faithful, threads 1 vs default

Medians over the repeats; the overhead is (outside + wrapper) / iteration. With
``--small-data``, fits on the 272 × 2 Old Faithful data through the non-fused pass
(variational Bayes, an mclust model) and the fused one, with the default thread count and
with one, alternating: passes that small run on one thread whatever the default, so the two
columns should agree (starting a 2-thread team per pass made them 3 to 50× apart).
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


class _TimedKernels:
    """The kernel module with ``em_pass`` timed (nanoseconds summed over the calls)."""

    def __init__(self, kernels):
        self._kernels = kernels
        self.pass_ns = 0
        self.calls = 0

    def em_pass(self, *args):
        start = time.perf_counter_ns()
        result = self._kernels.em_pass(*args)
        self.pass_ns += time.perf_counter_ns() - start
        self.calls += 1
        return result

    def __getattr__(self, name):
        return getattr(self._kernels, name)


def outside_the_pass(X, start, covariance_type, iterations, repeats):
    """Median µs per iteration spent in the EM loop outside em_pass, and in em_pass."""
    import gmmfast._engine as engine
    from gmmfast import GaussianMixture

    timed = _TimedKernels(engine._em)
    model = GaussianMixture(len(start["weights"]), covariance_type=covariance_type,
                            n_threads=1, tol=0.0, max_iter=iterations,
                            weights_init=start["weights"], means_init=start["means"],
                            precisions_init=start["precisions"])
    climb = engine._climb
    loop_ns = []

    def timed_climb(*args):
        t0 = time.perf_counter_ns()
        result = climb(*args)
        loop_ns.append(time.perf_counter_ns() - t0)
        return result

    engine._em, engine._climb = timed, timed_climb
    outside, inside = [], []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)  # warm-up
            for _ in range(repeats):
                timed.pass_ns = timed.calls = 0
                loop_ns.clear()
                model.fit(X)
                outside.append((loop_ns[0] - timed.pass_ns) / timed.calls / 1e3)
                inside.append(timed.pass_ns / timed.calls / 1e3)
    finally:
        engine._em, engine._climb = timed._kernels, climb
    return float(np.median(outside)), float(np.median(inside))


def pass_wrapper(X, start, covariance_type, repeats):
    """Median µs of em_pass on 8 rows right after a full pass (argument handling, cold)."""
    from gmmfast._kernels import em
    from gmmfast._mstep import precision_cholesky_from_precisions
    from gmmfast._mstep_core import empty_stats, kernel_parameters
    from gmmfast._threads import single_threaded_blas

    chol = precision_cholesky_from_precisions(start["precisions"], covariance_type)
    params = kernel_parameters(start["weights"], start["means"], chol, covariance_type,
                               X.shape[1])
    few = np.ascontiguousarray(X[:8])
    times = []
    with single_threaded_blas():  # as in a fit
        for _ in range(repeats):
            em.em_pass(X, None, *params, *empty_stats(covariance_type, *params[0].shape), 1)
            stats = empty_stats(covariance_type, *params[0].shape)
            t0 = time.perf_counter_ns()
            em.em_pass(few, None, *params, *stats, 1)
            times.append((time.perf_counter_ns() - t0) / 1e3)
    return float(np.median(times))


def small_data_fits(repeats):
    """{name: (median ms with the default threads, median ms with n_threads=1)}."""
    from gmmfast import BayesianGaussianMixture, GaussianMixture
    from gmmfast._datafile import read_table

    X = read_table(None).X
    estimators = {
        "BayesianGaussianMixture(10)": lambda **kw: BayesianGaussianMixture(
            n_components=10, random_state=0, **kw),
        "GaussianMixture(3, 'VEV')": lambda **kw: GaussianMixture(
            3, covariance_type="VEV", random_state=0, **kw),
        "GaussianMixture(10) fused": lambda **kw: GaussianMixture(10, random_state=0, **kw),
    }
    times = {(name, threads): [] for name in estimators for threads in ("default", "1")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            for name, make in estimators.items():
                for threads, kw in (("default", {}), ("1", {"n_threads": 1})):
                    model = make(**kw)
                    t0 = time.perf_counter()
                    model.fit(X)
                    times[name, threads].append((time.perf_counter() - t0) * 1e3)
    return {name: (float(np.median(times[name, "default"])), float(np.median(times[name, "1"])))
            for name in estimators}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="a", choices=sorted(workloads.WORKLOADS))
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--small-data", action="store_true",
                    help="fits on Old Faithful with the default threads and with one")
    args = ap.parse_args(argv)
    if args.small_data:
        print(f"Old Faithful (272 x 2), medians of {args.repeats} fits, ms")
        for name, (default, one) in small_data_fits(args.repeats).items():
            print(f"  {name:30s} default threads {default:8.2f}   n_threads=1 {one:8.2f}")
        return
    n, _, _, covariance_type, dtype, _ = workloads.WORKLOADS[args.workload]
    data, start_file = workloads.prepare(args.workload, n, RAW_DIR)
    X, start = np.load(data), dict(np.load(start_file))
    outside, inside = outside_the_pass(X, start, covariance_type, args.iterations,
                                       args.repeats)
    wrapper = pass_wrapper(X, start, covariance_type, 100)
    iteration = outside + inside
    print(f"workload {args.workload} ({n} x {X.shape[1]}, {covariance_type}, {dtype}), "
          f"one thread, medians of {args.repeats} fits of {args.iterations} iterations")
    print(f"  iteration            {iteration:9.1f} us")
    print(f"  outside the pass     {outside:9.1f} us")
    print(f"  pass wrapper (<=)    {wrapper:9.1f} us")
    print(f"  Python overhead      {outside + wrapper:9.1f} us = "
          f"{100 * (outside + wrapper) / iteration:.2f} % of the iteration (target < 1 %)")


if __name__ == "__main__":
    main()
