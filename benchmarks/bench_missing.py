"""EM with missing entries: how close to the truth, and what an iteration costs.

    python benchmarks/bench_missing.py                    # every part (~3 min on 2 cores)
    python benchmarks/bench_missing.py --part accuracy --n 100000
    python benchmarks/bench_missing.py --part speed --repeats 9
    python benchmarks/bench_missing.py --part impute --repeats 7
    python benchmarks/bench_missing.py --part threads --repeats 9

**Accuracy.** Rows drawn from a known mixture (the workloads' generator, D = 8, K = 16,
full covariances, ``--n`` rows), 20 % of the entries set to NaN completely at random.
Three fits of the same model, each from the true parameters (so that every method reaches
the optimum its own estimator defines, not a k-means accident), to convergence (tol 1e-8
on the average log-likelihood, at most 500 iterations):

* **omit**: exact EM over the observed entries (``gmmfast._missing.MissingValueSource``);
* **drop**: EM on the complete rows only;
* **impute**: EM on the rows with each NaN replaced by its column's mean.

Reported per method: the RMS distance of the fitted means to the true ones and the mean
relative Frobenius error ‖Σ̂ − Σ‖ / ‖Σ‖ of the covariances (components matched to the true
ones by the Hungarian method on the means), and the same for a complete-data fit as the
floor. The omit fit is also run from a k-means start drawn by the engine's initialisation
(which copes with the missing entries), to show that the start is not what wins.

**Speed.** Workload b's shape (10⁶ × 8, K = 16, full covariances) with 10 % of the entries
NaN completely at random (seeded; 43 % of the rows complete, 255 patterns): seconds per EM
iteration (the E-step with its statistics and the M-step, from the same parameters) with
missing entries against the complete data's fused iteration, 1 and 2 threads (BLAS
limited to one), the four alternating, medians of ``--repeats``, with the process's CPU
seconds. Also the one-off cost of grouping the rows by pattern and of a k-means
initialisation.

**Threads.** The speed part's two iterations again, each thread count in processes of its
own started with ``OMP_NUM_THREADS`` set (the workloads' protocol), 1 and 2 threads
alternating, ``--repeats`` processes each: the median over processes of each process's
median of ``CHILD_ITERATIONS`` iterations. Timing both thread counts in one process, as
the speed part does, has given lower 2-thread speed-ups on this project's shared 2-core
machine (the complete data's fused iteration included).

**Imputation.** The same 10⁶ rows with 10 % missing: ``GaussianMixtureImputer.transform``
(the conditional means) against ``predict_proba`` of its mixture on the same rows (under
``nan_policy="omit"``, marginal densities), 1 and 2 threads, alternating, medians. The
mixture is fitted on 50 000 of the rows from the true parameters (3 EM iterations): what is
timed does not depend on how good it is.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402

from gmmfast._engine import (  # noqa: E402
    InMemorySource,
    MixtureModel,
    initial_statistics,
    run_em,
)
from gmmfast import GaussianMixture, GaussianMixtureImputer  # noqa: E402
from gmmfast._missing import MissingValueSource  # noqa: E402
from gmmfast._mstep import precision_cholesky  # noqa: E402
from gmmfast._threads import single_threaded_blas  # noqa: E402

D, K = 8, 16
REG_COVAR = 1e-6


def with_missing(X, fraction, seed):
    """A copy of X with ``fraction`` of its entries NaN, completely at random."""
    rng = np.random.default_rng(seed)
    X = X.copy()
    X[rng.uniform(size=X.shape) < fraction] = np.nan
    return X


def true_theta(mixture):
    weights, means, covariances = mixture
    return weights, means, covariances, precision_cholesky(covariances, "full")


def fit(source, theta, max_iter=500, tol=1e-8):
    model = MixtureModel("full", REG_COVAR, source.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with single_threaded_blas():
            return run_em(model, source, lambda init: (theta, -np.inf), n_init=1,
                          max_iter=max_iter, tol=tol, n_threads=0)


def kmeans_start(source, seed=0):
    model = MixtureModel("full", REG_COVAR, source.dtype)
    stats = initial_statistics(source, K, "kmeans", ("full",), np.random.RandomState(seed), 0)
    return model.initial_parameters(stats["full"], source.total_weight)


def errors(theta, mixture):
    """(RMS distance of the means, mean relative Frobenius error of the covariances),
    components matched to the truth on their means."""
    _, means, covariances = mixture
    fitted_means, fitted_covariances = theta[1], theta[2]
    cost = np.linalg.norm(means[:, None] - fitted_means[None], axis=-1)
    true_index, fitted_index = linear_sum_assignment(cost)
    mean_error = np.sqrt(np.mean(cost[true_index, fitted_index] ** 2))
    covariance_error = np.mean([
        np.linalg.norm(fitted_covariances[j] - covariances[i]) / np.linalg.norm(covariances[i])
        for i, j in zip(true_index, fitted_index)])
    return mean_error, covariance_error


def accuracy(n, fraction, seed):
    X, mixture = workloads.make_blobs(n, D, K, seed, return_mixture=True)
    incomplete = with_missing(X, fraction, seed + 1)
    missing = np.isnan(incomplete)
    complete_rows = np.ascontiguousarray(incomplete[~missing.any(axis=1)])
    imputed = np.where(missing, np.nanmean(incomplete, axis=0), incomplete)
    theta = true_theta(mixture)
    omit = MissingValueSource(incomplete, None, K)
    runs = {
        "complete data (floor)": fit(InMemorySource(X), theta),
        "omit (exact EM)": fit(omit, theta),
        "omit, k-means start": fit(omit, kmeans_start(omit)),
        "drop incomplete rows": fit(InMemorySource(complete_rows), theta),
        "mean-impute": fit(InMemorySource(np.ascontiguousarray(imputed)), theta),
    }
    print(f"\n## Accuracy: N = {n}, D = {D}, K = {K}, full, {fraction:.0%} of entries "
          f"missing at random ({len(complete_rows)} complete rows)\n")
    print("| method | RMS error of the means | mean rel. error of Σ | iterations |")
    print("|---|---|---|---|")
    for name, result in runs.items():
        mean_error, covariance_error = errors(result.parameters, mixture)
        print(f"| {name} | {mean_error:.4f} | {covariance_error:.4f} | {result.n_iter} |")


def iteration_seconds(step, theta):
    """(wall, CPU of the whole process) seconds of one call of ``step``."""
    wall, cpu = time.perf_counter(), time.process_time()
    step(theta)
    return time.perf_counter() - wall, time.process_time() - cpu


def speed(fraction, seed, repeats):
    X, mixture = workloads.make_blobs(1_000_000, D, K, workloads.SEED, return_mixture=True)
    incomplete = with_missing(X, fraction, seed)
    start = time.perf_counter()
    omit = MissingValueSource(incomplete, None, K)
    grouping = time.perf_counter() - start
    complete = InMemorySource(X)
    theta = true_theta(mixture)
    model = MixtureModel("full", REG_COVAR, X.dtype)
    n_complete = sum(len(g.rows) for g in omit.groups if not g.missing.size)
    print(f"\n## Speed: workload b's shape, {fraction:.0%} of entries missing at random "
          f"({n_complete / len(X):.0%} of rows complete, {len(omit.groups)} patterns)\n")
    print(f"Grouping the rows by pattern (once per fit): {grouping:.3f} s\n")
    load_before = os.getloadavg()[0]
    runs = [(n_threads, name) for n_threads in (1, 2) for name in ("complete", "missing")]
    times = {run: [] for run in runs}
    with single_threaded_blas():
        steps = {(n_threads, name): model.em_step(source, n_threads)
                 for n_threads, name in runs
                 for source in [complete if name == "complete" else omit]}
        for step in steps.values():  # warm up: page faults, caches
            step(theta)
        # 1 and 2 threads, complete and missing, alternating: the load changes over time.
        for _ in range(repeats):
            for run in runs:
                times[run].append(iteration_seconds(steps[run], theta))
    wall = {run: statistics.median(t[0] for t in times[run]) for run in runs}
    cpu = {run: statistics.median(t[1] for t in times[run]) for run in runs}
    print("| threads | complete data s/iter (CPU s) | with missing entries s/iter (CPU s) "
          "| ratio |")
    print("|---|---|---|---|")
    for n_threads in (1, 2):
        complete_run, missing_run = (n_threads, "complete"), (n_threads, "missing")
        print(f"| {n_threads} | {wall[complete_run]:.4f} ({cpu[complete_run]:.4f}) | "
              f"{wall[missing_run]:.4f} ({cpu[missing_run]:.4f}) | "
              f"{wall[missing_run] / wall[complete_run]:.2f} |")
    print(f"\nSpeed-up of 2 threads over 1: "
          f"{wall[1, 'missing'] / wall[2, 'missing']:.2f}× with missing entries, "
          f"{wall[1, 'complete'] / wall[2, 'complete']:.2f}× on the complete data "
          f"(load average before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}). "
          f"CPU s are the process's, all threads: 2 threads' CPU over 1 thread's is the "
          f"parallel overhead.")
    init_seconds = {}
    with single_threaded_blas():
        for name, source in (("complete", complete), ("missing", omit)):
            start = time.perf_counter()
            initial_statistics(source, K, "kmeans", ("full",), np.random.RandomState(0), 1)
            init_seconds[name] = time.perf_counter() - start
    print(f"\nk-means initialisation, 1 thread: {init_seconds['missing']:.2f} s with missing "
          f"entries, {init_seconds['complete']:.2f} s on the complete data.")


CHILD_ITERATIONS = 9


def speed_sources(fraction, seed):
    """b's rows complete and with ``fraction`` of their entries missing, as sources, and
    the true parameters."""
    X, mixture = workloads.make_blobs(1_000_000, D, K, workloads.SEED, return_mixture=True)
    omit = MissingValueSource(with_missing(X, fraction, seed), None, K)
    return InMemorySource(X), omit, true_theta(mixture), X.dtype


def thread_child(fraction, seed, n_threads):
    """Print the medians of an iteration on the complete and the incomplete rows."""
    complete, omit, theta, dtype = speed_sources(fraction, seed)
    model = MixtureModel("full", REG_COVAR, dtype)
    medians = []
    with single_threaded_blas():
        for source in (complete, omit):
            step = model.em_step(source, n_threads)
            step(theta)  # warm up: page faults, caches
            medians.append(statistics.median(
                iteration_seconds(step, theta)[0] for _ in range(CHILD_ITERATIONS)))
    print("MEDIANS", *medians)


def thread_scaling(fraction, seed, repeats):
    runs = {1: [], 2: []}
    load_before = os.getloadavg()[0]
    for _ in range(repeats):
        for n_threads in runs:
            env = dict(os.environ, OMP_NUM_THREADS=str(n_threads),
                       OPENBLAS_NUM_THREADS=str(n_threads))
            out = subprocess.run(
                [sys.executable, __file__, "--part", "thread-child",
                 "--threads", str(n_threads)],
                env=env, capture_output=True, text=True, check=True).stdout
            line = next(line for line in out.splitlines() if line.startswith("MEDIANS"))
            runs[n_threads].append([float(v) for v in line.split()[1:]])
    print(f"\n## Threads: b's shape, {fraction:.0%} missing, each thread count in its own "
          f"processes ({repeats} each, alternating)\n")
    print("| threads | complete data s/iter | with missing entries s/iter |")
    print("|---|---|---|")
    medians = {t: [statistics.median(r[i] for r in runs[t]) for i in (0, 1)] for t in runs}
    for n_threads, (complete, missing) in medians.items():
        print(f"| {n_threads} | {complete:.4f} | {missing:.4f} |")
    print(f"\nSpeed-up of 2 threads over 1: {medians[1][1] / medians[2][1]:.2f}× with "
          f"missing entries, {medians[1][0] / medians[2][0]:.2f}× on the complete data "
          f"(load average before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}).")


def imputation(fraction, seed, repeats):
    X, mixture = workloads.make_blobs(1_000_000, D, K, workloads.SEED, return_mixture=True)
    incomplete = with_missing(X, fraction, seed)
    weights, means, covariances = mixture
    start = GaussianMixture(K, max_iter=3, weights_init=weights, means_init=means,
                            precisions_init=np.linalg.inv(covariances))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer = GaussianMixtureImputer(start).fit(incomplete[:50_000])
    mixture_model = imputer.estimator_
    print(f"\n## Imputation: workload b's shape, {fraction:.0%} of entries missing at random\n")
    print("| threads | predict_proba s | transform s | ratio |")
    print("|---|---|---|---|")
    for n_threads in (1, 2):
        mixture_model.set_params(n_threads=n_threads)
        imputer.set_params(n_threads=n_threads)
        calls = {"predict_proba": lambda: mixture_model.predict_proba(incomplete),
                 "transform": lambda: imputer.transform(incomplete)}
        times = {name: [] for name in calls}
        for call in calls.values():  # warm up
            call()
        for _ in range(repeats):
            for name, call in calls.items():
                begin = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - begin)
        medians = {name: statistics.median(t) for name, t in times.items()}
        print(f"| {n_threads} | {medians['predict_proba']:.3f} | {medians['transform']:.3f} "
              f"| {medians['transform'] / medians['predict_proba']:.2f} |")
    print(f"\n(load average: {os.getloadavg()[0]:.1f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="all", choices=(
        "accuracy", "speed", "threads", "impute", "all", "thread-child"))
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=200_000, help="rows for the accuracy part")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.part in ("accuracy", "all"):
        accuracy(args.n, 0.2, seed=1)
    if args.part in ("speed", "all"):
        speed(0.1, seed=2, repeats=args.repeats)
    if args.part in ("threads", "all"):
        thread_scaling(0.1, seed=2, repeats=args.repeats)
    if args.part == "thread-child":
        thread_child(0.1, seed=2, n_threads=args.threads)
    if args.part in ("impute", "all"):
        imputation(0.1, seed=2, repeats=args.repeats)


if __name__ == "__main__":
    main()
