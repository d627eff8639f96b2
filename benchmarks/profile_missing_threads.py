"""How an EM iteration with missing entries splits over threads, in CPU time: what 2 threads
would give if each had a core of its own, measured on a machine whose cores are busy.

Workload b's shape (10⁶ × 8, K = 16, full) with 10 % of the entries NaN at random, as in
``bench_missing.py --part speed``; one iteration (E-step with its statistics, M-step) from
the true parameters, 1 and 2 threads alternating, medians of ``--repeats``. Every group's
pass is one compiled call (``em_pass_blocks``); per iteration:

* **serial**: this thread's CPU outside that call (the marginals, the completions, the
  sums, the M-step);
* **pass, busiest thread**: the largest CPU time of one thread of the process during the
  call (read from ``/proc/self/task/*/schedstat``), this thread's share including the
  call's checks of its arguments;
* **critical path**: serial + the busiest thread's: the iteration's elapsed time with a
  free core per thread;
* **pass elapsed**: the call's elapsed time, which exceeds the busiest thread's only when
  the threads wait (for each other or, on a busy machine, for a core).

The ratio of the critical paths between 1 and 2 threads is the speed-up the work's split
allows, which the elapsed time shows only on idle cores. The call is reached through a
private module attribute (``gmmfast._missing._em``): this is a profile, not a benchmark of
the API. Linux only (schedstat).

    python benchmarks/profile_missing_threads.py --repeats 11
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402
from bench_missing import D, K, REG_COVAR, true_theta, with_missing  # noqa: E402

from gmmfast import _missing  # noqa: E402
from gmmfast._engine import MixtureModel  # noqa: E402
from gmmfast._threads import single_threaded_blas  # noqa: E402

NAMES = ("wall", "process CPU", "serial", "pass, busiest thread", "critical path",
         "pass elapsed")


def thread_cpu_seconds():
    """{thread id: CPU seconds so far} of every thread of this process."""
    seconds = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/schedstat") as schedstat:
                seconds[task] = int(schedstat.read().split()[0]) * 1e-9
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    return seconds


class TimedPass:
    """``em_pass_blocks`` of a compiled module, timing each call: its elapsed time, and
    each thread's CPU during it."""

    def __init__(self, module):
        self._module = module
        self.elapsed = 0.0
        self.this_thread = 0.0
        self.busiest = 0.0

    def __getattr__(self, name):
        return getattr(self._module, name)

    def em_pass_blocks(self, *arguments, **keywords):
        # Reading the threads' times counts as the call's, not as serial work.
        own = time.thread_time()
        before, wall = thread_cpu_seconds(), time.perf_counter()
        result = self._module.em_pass_blocks(*arguments, **keywords)
        self.elapsed += time.perf_counter() - wall
        after = thread_cpu_seconds()
        self.busiest += max(after[task] - before.get(task, 0.0) for task in after)
        self.this_thread += time.thread_time() - own
        return result


def one_iteration(step, theta, timed):
    timed.elapsed = timed.this_thread = timed.busiest = 0.0
    wall, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
    step(theta)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    serial = time.thread_time() - own - timed.this_thread
    return wall, cpu, serial, timed.busiest, serial + timed.busiest, timed.elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    X, mixture = workloads.make_blobs(1_000_000, D, K, workloads.SEED, return_mixture=True)
    source = _missing.MissingValueSource(with_missing(X, 0.1, 2), None, K)
    theta = true_theta(mixture)
    model = MixtureModel("full", REG_COVAR, X.dtype)
    timed = _missing._em = TimedPass(_missing._em)
    load_before = os.getloadavg()[0]
    runs = {n_threads: [] for n_threads in (1, 2)}
    with single_threaded_blas():
        steps = {n_threads: model.em_step(source, n_threads) for n_threads in runs}
        for step in steps.values():  # warm up
            step(theta)
        for _ in range(args.repeats):
            for n_threads, step in steps.items():
                runs[n_threads].append(one_iteration(step, theta, timed))
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
