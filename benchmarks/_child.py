"""One benchmark process: run the tasks given as JSON, print one ``RESULT {json}`` line each.

Started by ``run.py`` (never by hand) with ``OMP_NUM_THREADS`` & co. already set, possibly
under another interpreter (daal4py's virtual environment), so it needs only NumPy, the
library it times and, if present, threadpoolctl. Task kinds:

fit     ``fit(max_iter=1)`` then ``fit(max_iter=20)`` (``tol=0``) from the common start:
        seconds per iteration ``(t20 - t1) / 19``, the final average log-likelihood and the
        peak RSS of the two fits above the RSS just before them (after a warm-up fit on the
        first 50 000 rows, so lazy imports and thread pools are not counted).
extras  initialisation cost and prediction throughput: ``fit(max_iter=0)`` with
        ``init_params="random_from_data"`` (the fixed cost), ``"kmeans"`` and ``"k-means++"``
        (init cost = the difference), then ``predict_proba(X)`` and ``score_samples(X)`` of
        the model one EM iteration from the common start; each the median of CALLS calls
        (prediction: the first call, then the median of PREDICT_CALLS further calls).
gemm    this machine's NumPy DGEMM / SGEMM rate (2048×2048 products, best of 5).
"""

import json
import os
import statistics
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

WARM_UP_ROWS = 50_000


def memory_mb():
    """(current RSS, peak RSS) in MiB from /proc (Linux), or (nan, nan)."""
    try:
        status = Path("/proc/self/status").read_text().split("\n")
    except OSError:
        return float("nan"), float("nan")
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reset_peak():
    """Reset the peak-RSS mark (VmHWM) to the current RSS, so it measures what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def thread_pools():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "prefix", "version", "num_threads", "architecture")
    return [{k: p.get(k) for k in keys} for p in threadpool_info()]


def estimator_class(lib):
    if lib == "gmmfast":
        import gmmfast
        from gmmfast import GaussianMixture

        return GaussianMixture, gmmfast.__version__, gmmfast.__file__
    import sklearn
    from sklearn.mixture import GaussianMixture

    return GaussianMixture, sklearn.__version__, sklearn.__file__


def load(task):
    X = np.load(task["data"])
    start = np.load(task["start"])
    return X, {k: start[k] for k in start.files}


def common_kwargs(task, start):
    """The common start; init_params="random_from_data" is the cheapest placeholder (the
    three given inits override it; scikit-learn still computes it, once per fit)."""
    return dict(n_components=task["k"], covariance_type=task["cov"], tol=0.0, random_state=0,
                init_params="random_from_data", weights_init=start["weights"],
                means_init=start["means"], precisions_init=start["precisions"])


def run_fit(task):
    X, start = load(task)
    max_iter = task["max_iter"]
    if task["lib"] == "daal4py":
        return run_fit_daal(task, X, start)
    GaussianMixture, version, where = estimator_class(task["lib"])
    kwargs = common_kwargs(task, start)
    # warm-up on a slice: lazy imports, thread pools and caches are not the fit's memory
    GaussianMixture(max_iter=1, **kwargs).fit(X[:WARM_UP_ROWS])
    reset_peak()
    rss_before, _ = memory_mb()
    times, lower_bound, n_iter = {}, None, None
    for iters in (1, max_iter):
        gm = GaussianMixture(max_iter=iters, **kwargs)
        t0 = time.perf_counter()
        gm.fit(X)
        times[iters] = time.perf_counter() - t0
        lower_bound, n_iter = float(gm.lower_bound_), int(gm.n_iter_)
    _, peak = memory_mb()
    return {"version": version, "file": where, "n_iter": n_iter, "fit1_s": times[1],
            "fit_s": times[max_iter], "s_per_iter": (times[max_iter] - times[1]) / (max_iter - 1),
            "lower_bound": lower_bound, "peak_mb": peak - rss_before, "x_mb": X.nbytes / 2**20}


def run_fit_daal(task, X, start):
    """oneDAL's EM (full or diagonal). It stops when the log-likelihood stops changing even
    with accuracyThreshold=0 (its smallest allowed value), so seconds per iteration use the
    iteration counts it reports: (t_n - t_1) / (n - 1), medians of 5 when n < 11."""
    import daal4py as d4p

    d4p.daalinit(task["threads"])
    fptype = "float" if X.dtype == np.float32 else "double"
    dt = X.dtype
    weights = np.ascontiguousarray(start["weights"].reshape(1, -1), dtype=dt)
    means = np.ascontiguousarray(start["means"], dtype=dt)
    if task["cov"] == "full":
        covs, storage = [np.ascontiguousarray(c, dtype=dt) for c in start["covariances"]], "full"
    elif task["cov"] == "diag":
        covs = [np.ascontiguousarray(c.reshape(1, -1), dtype=dt) for c in start["covariances"]]
        storage = "diagonal"
    else:
        raise ValueError(f"oneDAL has no {task['cov']} covariance")

    def timed_fit(iters, data=X):
        alg = d4p.em_gmm(nComponents=task["k"], maxIterations=iters, accuracyThreshold=0.0,
                         covarianceStorage=storage, fptype=fptype)
        t0 = time.perf_counter()
        res = alg.compute(data, weights, means, covs)
        elapsed = time.perf_counter() - t0
        lower_bound = float(np.asarray(res.goalFunction).ravel()[0]) / data.shape[0]
        return elapsed, int(np.asarray(res.nIterations).ravel()[0]), lower_bound

    timed_fit(1, X[:WARM_UP_ROWS])  # warm-up, as for the others
    reset_peak()
    rss_before, _ = memory_mb()
    t1, n1, _ = timed_fit(1)
    t, n, lower_bound = timed_fit(task["max_iter"])
    _, peak = memory_mb()
    if n - n1 < 10:  # stopped early: a difference of a few iterations needs more samples
        t1 = statistics.median([t1] + [timed_fit(1)[0] for _ in range(4)])
        t = statistics.median([t] + [timed_fit(task["max_iter"])[0] for _ in range(4)])
    per_iter = (t - t1) / (n - n1) if n > n1 else float("nan")
    return {"version": metadata.version("daal4py"), "file": d4p.__file__, "n_iter": n,
            "fit1_s": t1, "fit_s": t, "s_per_iter": per_iter, "lower_bound": lower_bound,
            "peak_mb": peak - rss_before, "x_mb": X.nbytes / 2**20}


# Calls per extras measurement, the median reported: a single call of a few milliseconds is
# at the mercy of the machine's noise.
CALLS = 3
# Prediction throughput is the steady state: the median of PREDICT_CALLS calls after a first
# one, which is timed and reported apart. The first calls of a size in a process write their
# output into freshly mapped memory (glibc maps a large block anew, then raises its threshold
# and grows the heap), whose page faults were ~40 % of gmmfast's predict_proba on workload a;
# with three calls, two were such calls.
PREDICT_CALLS = 5


def median_seconds(call, calls=CALLS):
    """The median wall time of ``calls`` calls of ``call()``."""
    times = [_timed(call) for _ in range(calls)]
    return sorted(times)[calls // 2]


def run_extras(task):
    """Initialisation cost and prediction throughput (see the module docstring).

    The fixed cost of ``fit(max_iter=0)`` (validation, the final E-step) is measured with
    ``init_params="random_from_data"`` (K rows picked at random: next to nothing); the
    initialisation cost of "kmeans" and "k-means++" is their ``fit(max_iter=0)`` minus that.
    (scikit-learn cannot do ``fit(max_iter=0)`` from a given ``precisions_init``.)
    """
    X, start = load(task)
    GaussianMixture, version, where = estimator_class(task["lib"])
    out = {"version": version, "file": where}
    for method in ("random_from_data", "kmeans", "k-means++"):
        gm = GaussianMixture(n_components=task["k"], covariance_type=task["cov"], max_iter=0,
                             init_params=method, random_state=0)
        out[f"fit0_{method}_s"] = median_seconds(lambda: gm.fit(X))
    for method in ("kmeans", "k-means++"):
        out[f"init_{method}_s"] = out[f"fit0_{method}_s"] - out["fit0_random_from_data_s"]
    kwargs = common_kwargs(task, start)
    model = GaussianMixture(max_iter=1, **kwargs).fit(X)  # the start, one EM step on
    for method in ("predict_proba", "score_samples"):
        predict = getattr(model, method)
        out[f"{method}_first_s"] = _timed(lambda: predict(X))
        out[f"{method}_s"] = elapsed = median_seconds(lambda: predict(X), PREDICT_CALLS)
        out[f"{method}_rows_per_s"] = X.shape[0] / elapsed
    return out


def run_gemm(task):
    n = task.get("n", 2048)
    out = {"version": np.__version__}
    rng = np.random.default_rng(0)
    for name, dtype in (("dgemm", np.float64), ("sgemm", np.float32)):
        A, B = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
        A @ B
        best = min(_timed(lambda: A @ B) for _ in range(5))
        out[f"{name}_gflops"] = 2.0 * n**3 / best / 1e9
    return out


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    tasks = json.loads(sys.argv[1])
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    threads = tasks[0]["threads"]
    limits = threadpool_limits(threads) if threadpool_limits else None
    for task in tasks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tol=0 never converges: ConvergenceWarning
            result = {"fit": run_fit, "extras": run_extras, "gemm": run_gemm}[task["kind"]](task)
        result.update({k: task[k] for k in ("kind", "lib", "workload", "threads", "n")
                       if k in task})
        result["pools"] = thread_pools()
        result["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
        print("RESULT " + json.dumps(result), flush=True)
    if limits is not None:
        limits.restore_original_limits()


if __name__ == "__main__":
    main()
