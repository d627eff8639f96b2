"""Where the time of the model search goes, per covariance model: EM iterations, the
compiled pass (E-step and statistics) per iteration, the M-step per iteration and the
rest of an iteration (kernel parameters, the engine's Python), plus each candidate's
start and final scoring; and per model the M-step's calls (those of the screening's
parameter sets included), time per call and the constrained M-step's inner iterations
per call.

The search runs on one thread (candidates one after the other, each timed on its own)
with timers wrapped around the engine's functions; the totals are CPU-bound wall times.
The last line is a candidate's fixed costs: its start θ, its screening (multistart), its
final score (the pass at the fitted parameters and the rest) and its fitted estimator.

    python benchmarks/profile_grid.py --data blobs --n 100000 --init kmeans
    python benchmarks/profile_grid.py --data faithful --init multistart
    python benchmarks/profile_grid.py --data wine --init multistart
    python benchmarks/profile_grid.py --data blobs --types full,tied,diag,spherical --k 1-10
"""

import argparse
import collections
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


class Timers:
    """Seconds and calls per (model, phase), the model being the candidate running."""

    def __init__(self):
        self.model = None
        self.seconds = collections.defaultdict(float)
        self.calls = collections.defaultdict(int)

    def add(self, phase, seconds):
        self.seconds[self.model, phase] += seconds
        self.calls[self.model, phase] += 1

    def wrap(self, phase, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(phase, time.perf_counter() - start)
        return timed


class _TimedKernels:
    """The kernel module with ``em_pass`` timed (the fused step binds it when built)."""

    def __init__(self, module, timers):
        self._module = module
        self.em_pass = timers.wrap("pass", module.em_pass)

    def __getattr__(self, name):
        return getattr(self._module, name)


def instrument(timers):
    from gmmfast import _engine, _gaussian_mixture, _selection, _starts

    _engine._em = _TimedKernels(_engine._em, timers)
    model_class = _engine.MixtureModel
    model_class.m_step = timers.wrap("m_step", model_class.m_step)
    # The screening's M-steps of all its sets at once (per set, through m_step, for the
    # models without a batched M-step: then counted in both).
    if hasattr(model_class, "m_step_of_sets"):
        model_class.m_step_of_sets = timers.wrap("set_m_steps", model_class.m_step_of_sets)
    estimate_covariances = _engine.estimate_covariances

    def counted_estimate(*args, **kwargs):
        estimate = estimate_covariances(*args, **kwargs)
        timers.seconds[timers.model, "inner"] += estimate.n_iter
        timers.calls[timers.model, "estimate"] += 1
        return estimate

    _engine.estimate_covariances = counted_estimate
    estimate_sets = getattr(_engine, "estimate_covariances_of_sets", None)

    def counted_sets(*args, **kwargs):
        estimates = estimate_sets(*args, **kwargs)
        fitted = [estimate for estimate in estimates if estimate is not None]
        timers.seconds[timers.model, "inner"] += sum(e.n_iter for e in fitted)
        timers.calls[timers.model, "estimate"] += len(fitted)
        return estimates

    if estimate_sets is not None:
        _engine.estimate_covariances_of_sets = counted_sets
    model_class.kernel_parameters = timers.wrap("kernel_parameters",
                                                model_class.kernel_parameters)
    em_step = model_class.em_step

    def timed_em_step(self, source, n_threads):
        return timers.wrap("iteration", em_step(self, source, n_threads))

    model_class.em_step = timed_em_step
    # A candidate's costs outside its EM iterations (the screening's initial θ of its
    # pool count as start θ too).
    model_class.initial_parameters = timers.wrap("start_theta", model_class.initial_parameters)
    _starts.screened_winner = timers.wrap("screening", _starts.screened_winner)
    _gaussian_mixture.score_arrays = timers.wrap("score_pass", _gaussian_mixture.score_arrays)
    _selection.fitted_gaussian_mixture = timers.wrap("fitted_model",
                                                     _selection.fitted_gaussian_mixture)
    search = _selection._GridSearch
    search._scores = timers.wrap("final_score", search._scores)
    fit_candidate = search._fit_candidate

    def timed_candidate(self, n_components, covariance_type, starts):
        timers.model = covariance_type
        start = time.perf_counter()
        row = fit_candidate(self, n_components, covariance_type, starts)
        timers.add("candidate", time.perf_counter() - start)
        timers.seconds[covariance_type, "n_iter"] += row["n_iter"]
        timers.model = None
        return row

    search._fit_candidate = timed_candidate
    search._initial_stats = timers.wrap("starts", search._initial_stats)


def load(name, n):
    sys.path.insert(0, HERE)
    from bench_mclust import load as load_data

    return load_data(name, n)


def k_range(text):
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def report(timers, types, total):
    phases = ("candidate", "iteration", "pass", "m_step", "kernel_parameters")
    print(f"total {total:.2f} s; starts (k-means or screens, all K) "
          f"{timers.seconds[None, 'starts']:.2f} s")
    print(f"{'model':>9} {'iters':>6} {'cand s':>7} {'iter s':>7} {'pass ms':>8} "
          f"{'mstep ms':>9} {'kparam ms':>9} {'rest ms':>8} {'outside EM s':>12} "
          f"{'msteps':>7} {'ms/mstep':>8} {'inner/call':>10}")
    sums = collections.defaultdict(float)
    for model in types:
        s = {phase: timers.seconds[model, phase] for phase in phases}
        n_iter = timers.seconds[model, "n_iter"]
        steps = max(timers.calls[model, "iteration"], 1)
        rest = s["iteration"] - s["pass"] - s["m_step"] - s["kernel_parameters"]
        # The pass of the fused path (aliases without a prior) includes its M-step.
        outside = s["candidate"] - s["iteration"]
        # Inner iterations of the constrained M-steps per call (0 for closed forms).
        inner_per_call = (timers.seconds[model, "inner"]
                          / max(timers.calls[model, "estimate"], 1))
        print(f"{model:>9} {int(n_iter):>6} {s['candidate']:>7.3f} {s['iteration']:>7.3f} "
              f"{1e3 * s['pass'] / steps:>8.3f} {1e3 * s['m_step'] / steps:>9.3f} "
              f"{1e3 * s['kernel_parameters'] / steps:>9.3f} {1e3 * rest / steps:>8.3f} "
              f"{outside:>12.3f} {timers.calls[model, 'm_step']:>7} "
              f"{1e3 * s['m_step'] / max(timers.calls[model, 'm_step'], 1):>8.3f} "
              f"{inner_per_call:>10.2f}")
        for phase in phases:
            sums[phase] += s[phase]
    sums["set_m_steps"] = sum(timers.seconds[model, "set_m_steps"] for model in types)
    print("sums: " + ", ".join(f"{phase} {value:.2f} s" for phase, value in sums.items()))
    n_candidates = sum(timers.calls[model, "candidate"] for model in types)
    fixed = ("start_theta", "screening", "final_score", "score_pass", "fitted_model")
    print("per candidate, outside EM's iterations (ms): " + ", ".join(
        f"{phase} {1e3 * sum(timers.seconds[m, phase] for m in types) / n_candidates:.2f}"
        for phase in fixed) + " (final_score includes score_pass; screening its passes"
        " and M-steps)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="blobs")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--types", default="all")
    parser.add_argument("--k", default="1-9")
    parser.add_argument("--init", default="kmeans")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=int, default=100)
    args = parser.parse_args()
    from gmmfast import select_model
    from gmmfast._selection import check_covariance_types

    X = load(args.data, args.n)
    timers = Timers()
    instrument(timers)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        select_model(X, n_components=k_range(args.k), covariance_type=args.types,
                     random_state=0, init_params=args.init, n_threads=1, tol=args.tol,
                     max_iter=args.max_iter)
    total = time.perf_counter() - start
    print(f"{args.data} {X.shape[0]} x {X.shape[1]}, K {args.k}, init {args.init}, "
          f"tol {args.tol}, one thread; load average {os.getloadavg()[0]:.1f}")
    report(timers, check_covariance_types(args.types), total)


if __name__ == "__main__":
    main()
