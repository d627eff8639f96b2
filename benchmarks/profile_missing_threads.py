"""How an EM iteration with missing entries splits over threads, in CPU time: what 2 threads
would give if each had a core of its own, measured on a machine whose cores are busy.

Workload b's shape (10⁶ × 8, K = 16, full) with 10 % of the entries NaN at random, as in
``bench_missing.py --part speed``; one iteration (E-step with its statistics, M-step) from
the true parameters, 1 and 2 threads alternating, medians of ``--repeats``. Per iteration:

* **serial**: this thread's CPU outside the groups' work (the M-step, the sums);
* **per thread**: each thread's CPU in the groups' work (``BatchesInProgress.statistics``:
  a group's compiled pass and, for the thread that gets there, its batch's marginals
  or completion);
* **critical path**: serial + the busiest thread's share: the iteration's elapsed time
  with a free core per thread (the NumPy work of one thread holds the GIL while the other
  runs a compiled pass; it is ~5 % of the work here, so their collisions are small).

Its ratio between 1 and 2 threads is the speed-up that the scheduling allows, which the
elapsed time shows only on idle cores. The groups' work is reached through a private hook
(``gmmfast._missing.BatchesInProgress``): this is a profile, not a benchmark of the API.

    python benchmarks/profile_missing_threads.py --repeats 11
"""

import argparse
import collections
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402
from bench_missing import D, K, REG_COVAR, true_theta, with_missing  # noqa: E402

from gmmfast import _missing  # noqa: E402
from gmmfast._engine import MixtureModel  # noqa: E402
from gmmfast._threads import single_threaded_blas  # noqa: E402

NAMES = ("wall", "process CPU", "serial", "busiest thread", "critical path")


def timed_groups(per_thread):
    """``BatchesInProgress.statistics`` adding each call's CPU time to its thread's."""
    original = _missing.BatchesInProgress.statistics

    def statistics_timed(self, group, threads, position):
        start = time.thread_time()
        result = original(self, group, threads, position)
        per_thread[threading.get_ident()] += time.thread_time() - start
        return result

    return statistics_timed


def one_iteration(step, theta, per_thread):
    per_thread.clear()
    main = threading.get_ident()
    wall, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
    step(theta)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    serial = time.thread_time() - own - per_thread.get(main, 0.0)
    busiest = max(per_thread.values(), default=0.0)
    return wall, cpu, serial, busiest, serial + busiest


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    X, mixture = workloads.make_blobs(1_000_000, D, K, workloads.SEED, return_mixture=True)
    source = _missing.MissingValueSource(with_missing(X, 0.1, 2), None, K)
    theta = true_theta(mixture)
    model = MixtureModel("full", REG_COVAR, X.dtype)
    per_thread = collections.defaultdict(float)
    _missing.BatchesInProgress.statistics = timed_groups(per_thread)
    load_before = os.getloadavg()[0]
    runs = {n_threads: [] for n_threads in (1, 2)}
    with single_threaded_blas():
        steps = {n_threads: model.em_step(source, n_threads) for n_threads in runs}
        for step in steps.values():  # warm up
            step(theta)
        for _ in range(args.repeats):
            for n_threads, step in steps.items():
                runs[n_threads].append(one_iteration(step, theta, per_thread))
    print(f"| threads | {' | '.join(NAMES)} (s) |")
    print("|---|" + "---|" * len(NAMES))
    medians = {}
    for n_threads, times in runs.items():
        medians[n_threads] = [statistics.median(t[i] for t in times) for i in range(len(NAMES))]
        print(f"| {n_threads} | " + " | ".join(f"{m:.4f}" for m in medians[n_threads]) + " |")
    print(f"\nSpeed-up of 2 threads over 1: {medians[1][4] / medians[2][4]:.2f}× on the "
          f"critical path, {medians[1][0] / medians[2][0]:.2f}× elapsed (load average "
          f"before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}).")


if __name__ == "__main__":
    main()
