"""Where an iteration of ``BayesianGaussianMixture`` goes: the compiled pass against the
Python M-step and bound, for gmmfast and scikit-learn, and gmmfast's ``GaussianMixture``
iteration on the same shape for comparison.

One process, 1 thread, the parts alternating, min and median of ``--repeats`` (the min is
the cost with the least interference from other processes). The parts are reached through
private hooks of both libraries (gmmfast's model and source, scikit-learn's ``_e_step``,
``_m_step`` and ``_compute_lower_bound``): this is a profile, not a benchmark of the API.
Parameters are those after 5 iterations from ``init_params="random_from_data"``.
``--clock cpu`` times the parts in this thread's CPU time instead of elapsed time: on a
shared machine the elapsed time of a part also counts the waits for a core.

    python benchmarks/profile_bayesian.py                     # t and s, 9 repeats
    python benchmarks/profile_bayesian.py --workloads b,d --repeats 3
    python benchmarks/profile_bayesian.py --clock cpu         # under load
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

# One thread for every kernel and BLAS, set before NumPy loads them.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
WARM_ITERATIONS = 5


def gmmfast_parts(X, k, covariance_type):
    """name → callable: gmmfast's Bayesian iteration, its parts, and GaussianMixture's."""
    from gmmfast import BayesianGaussianMixture, GaussianMixture
    from gmmfast._engine import InMemorySource, score_arrays

    params = dict(n_components=k, covariance_type=covariance_type, tol=0,
                  init_params="random_from_data", random_state=0, max_iter=WARM_ITERATIONS,
                  n_threads=1)
    bayes = BayesianGaussianMixture(**params).fit(X)
    model = bayes._model(X.dtype)
    theta = bayes._current_parameters()
    source = InMemorySource(X)
    # As an iteration passes them: with the model's floor on the responsibilities.
    kernel_params = model.kernel_parameters(theta)._replace(
        log_resp_floor=model.log_resp_floor(source.total_weight))
    loglik, stats = source.statistics(kernel_params, 1)
    next_theta = model.m_step(stats)
    step = model.em_step(source, 1)

    def python_side():
        model.kernel_parameters(theta)
        model.m_step(stats)
        model.sum_resp_log_resp(loglik, stats, kernel_params)
        model.parameters_term(next_theta)

    em = GaussianMixture(**params).fit(X)
    eps = float(np.finfo(X.dtype).eps)
    em_step = source.fused_em_step(covariance_type, em.reg_covar, eps, 1)
    em_params = (em.weights_, em.means_, em.covariances_, em.precisions_cholesky_)
    return {
        "gmmfast Bayesian iteration": lambda: step(theta),
        "  compiled pass (densities, responsibilities, statistics)":
            lambda: source.statistics(kernel_params, 1),
        "    of which densities + log-sum-exp (score)":
            lambda: score_arrays(X, kernel_params, n_threads=1),
        "  Python: kernel parameters, M-step, bound": python_side,
        "gmmfast GaussianMixture iteration": lambda: em_step(params=em_params),
    }


def sklearn_parts(X, k, covariance_type):
    """name → callable: scikit-learn's Bayesian E-step, M-step and bound."""
    from sklearn.mixture import BayesianGaussianMixture

    model = BayesianGaussianMixture(n_components=k, covariance_type=covariance_type, tol=0,
                                    init_params="random_from_data", random_state=0,
                                    max_iter=WARM_ITERATIONS).fit(X)
    log_resp = model._e_step(X)[1]
    return {
        "sklearn Bayesian E-step": lambda: model._e_step(X),
        "sklearn Bayesian M-step": lambda: model._m_step(X, log_resp),
        "sklearn Bayesian bound": lambda: model._compute_lower_bound(log_resp, 0.0),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="t,s")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="elapsed time, or this thread's CPU time")
    args = ap.parse_args(argv)
    from sklearn.exceptions import ConvergenceWarning

    # The parameters come from 5 iterations, which do not converge (gmmfast warns with
    # scikit-learn's class).
    warnings.simplefilter("ignore", ConvergenceWarning)
    sys.path.insert(0, str(HERE))
    import workloads

    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    for wid in args.workloads.split(","):
        n, _, k, covariance_type, _, _ = workloads.WORKLOADS[wid]
        data, _ = workloads.prepare(wid, n, HERE / "results" / "raw")
        X = np.load(data)
        parts = {**gmmfast_parts(X, k, covariance_type),
                 **sklearn_parts(X, k, covariance_type)}
        seconds = {name: [] for name in parts}
        for _ in range(args.repeats):
            for name, run in parts.items():  # the parts alternate
                t0 = clock()
                run()
                seconds[name].append(clock() - t0)
        print(f"\n{wid}: {n} x {X.shape[1]}, K={k}, {covariance_type} "
              f"(load average {os.getloadavg()[0]:.1f}, {args.clock} clock)")
        for name, values in seconds.items():
            print(f"  {name:60s} min {min(values) * 1e3:8.2f} ms   "
                  f"median {np.median(values) * 1e3:8.2f} ms")
        sklearn_total = sum(min(seconds[name]) for name in parts if name.startswith("sklearn"))
        ours = min(seconds["gmmfast Bayesian iteration"])
        print(f"  sklearn E + M + bound / gmmfast iteration (mins): {sklearn_total / ours:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
