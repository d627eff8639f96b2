"""One pass over M parameter sets (``InMemorySource.statistics_of_sets``) against M passes.

    python benchmarks/bench_multiset.py                    # both cases (~1 min, 1 thread)
    python benchmarks/bench_multiset.py --case b --repeats 9

Cases, each in a child process with ``OMP_NUM_THREADS=1``:

- **b**: workload b's data (``workloads.prepare``: 10⁶ × 8, float64) and its k-means start
  (K = 16, full), M = 8 parameter sets: the start and seven others whose means are moved by
  a fraction of each component's spread, weights redrawn (the sets of a multi-start EM,
  close enough that each row keeps a few components with non-zero responsibility, as after
  a few iterations). Time of one ``statistics_of_sets`` call against eight ``statistics``
  calls, alternating, medians.
- **small**: the bundled Old Faithful data (272 × 2), K = 3, full, M = 16 random starts
  (means on rows, the data's covariance): per-call overhead dominates; each timing is
  ``--small-loops`` calls, per call reported.

Both print the medians and their ratio (the issue's target for b: ≤ 0.4).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

RAW_DIR = Path(__file__).resolve().parent / "results" / "raw"
FAITHFUL = Path(__file__).resolve().parent.parent / "gmmfast" / "data" / "old_faithful.csv"


def parameter_sets(weights, means, covariances, n_sets, seed):
    """n_sets full mixtures: the given one and others with moved means and new weights."""
    from gmmfast._engine import mixture_kernel_parameters
    from gmmfast._mstep import precision_cholesky

    rng = np.random.default_rng(seed)
    spread = np.sqrt(np.einsum("kii->ki", covariances))
    chol = precision_cholesky(covariances, "full")
    sets = [mixture_kernel_parameters((weights, means, covariances, chol), "full")]
    for _ in range(n_sets - 1):
        moved = means + rng.normal(scale=0.5, size=means.shape) * spread
        redrawn = rng.dirichlet(np.full(len(weights), 10.0))
        sets.append(mixture_kernel_parameters((redrawn, moved, covariances, chol), "full"))
    return sets


def time_alternating(one_pass, separate_passes, repeats, loops):
    """Median seconds per call of each, timed in turn ``repeats`` times."""
    times = {"one pass": [], "separate passes": []}
    for _ in range(repeats):
        for name, call in (("separate passes", separate_passes), ("one pass", one_pass)):
            t0 = time.perf_counter()
            for _ in range(loops):
                call()
            times[name].append((time.perf_counter() - t0) / loops)
    return {name: statistics.median(values) for name, values in times.items()}


def check_same(source, sets):
    """The numbers of the one pass are those of the separate passes (bit for bit)."""
    for (loglik, stats), params in zip(source.statistics_of_sets(sets, 1), sets):
        expected_loglik, expected = source.statistics(params, 1)
        assert loglik == expected_loglik
        assert all(np.array_equal(a, b) for a, b in zip(stats, expected))


def child(case, repeats, small_loops, n_sets):
    """Run in a process with OMP_NUM_THREADS=1: time the case, print one JSON line."""
    from gmmfast._engine import InMemorySource
    from gmmfast._kernels import variant

    if case == "b":
        import workloads

        data, start = workloads.prepare("b", workloads.WORKLOADS["b"][0], RAW_DIR,
                                        log=lambda line: None)
        X = np.load(data)
        start = np.load(start)
        sets = parameter_sets(start["weights"], start["means"], start["covariances"],
                              n_sets, seed=1)
        loops = 1
    else:
        X = np.loadtxt(FAITHFUL, delimiter=",", skiprows=1)
        rng = np.random.default_rng(2)
        k = 3
        covariances = np.broadcast_to(np.cov(X.T), (k, 2, 2)).copy()
        sets = []
        for seed in range(n_sets):
            means = X[rng.choice(len(X), k, replace=False)]
            sets += parameter_sets(np.full(k, 1 / k), means, covariances, 1, seed)
        loops = small_loops
    source = InMemorySource(np.ascontiguousarray(X))
    check_same(source, sets)
    medians = time_alternating(lambda: source.statistics_of_sets(sets, 1),
                               lambda: [source.statistics(params, 1) for params in sets],
                               repeats, loops)
    print(json.dumps({"case": case, "shape": list(X.shape), "k": len(sets[0].log_norm),
                      "sets": len(sets), "repeats": repeats, "loops": loops,
                      "variant": variant, **medians}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("all", "b", "small"), default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--small-loops", type=int, default=200)
    parser.add_argument("--child", choices=("b", "small"), help=argparse.SUPPRESS)
    parser.add_argument("--sets", type=int, default=None,
                        help="parameter sets (default: 8 for b, 16 for small)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.repeats, args.small_loops,
              args.sets or (8 if args.child == "b" else 16))
        return
    for case in (("b", "small") if args.case == "all" else (args.case,)):
        command = [sys.executable, __file__, "--child", case, "--repeats", str(args.repeats),
                   "--small-loops", str(args.small_loops)]
        if args.sets:
            command += ["--sets", str(args.sets)]
        out = subprocess.run(command, capture_output=True, text=True, check=True,
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
        result = json.loads(out.stdout.strip().splitlines()[-1])
        one, separate = result["one pass"], result["separate passes"]
        n, d = result["shape"]
        print(f"{case}: {n} x {d}, K = {result['k']}, M = {result['sets']} sets, 1 thread, "
              f"{result['variant']} kernels, medians of {result['repeats']} "
              f"(each {result['loops']} call(s)): one pass {one * 1e3:.3f} ms, "
              f"{result['sets']} passes {separate * 1e3:.3f} ms, ratio {one / separate:.3f}")


if __name__ == "__main__":
    main()
