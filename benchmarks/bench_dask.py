"""GaussianMixture on a dask array (2-worker LocalCluster) against the in-memory fit.

Workload e of the suite at N = 10⁷: 10⁷ × 8 float32 rows, K = 16, full covariances, EM
from the suite's common k-means start (``workloads.prepare``: data and start are generated
once and cached in ``benchmarks/results/raw/``, which git ignores).

    python benchmarks/bench_dask.py                           # 10^7 rows, 3 runs of each
    python benchmarks/bench_dask.py --n 200000 --repeats 1    # a quick check that it runs

* **Dask**: a ``LocalCluster`` of 2 worker processes × 1 thread on loopback; X is a dask
  array whose blocks (``--block-rows``) each worker reads from the cached ``.npy`` itself,
  so no data passes through the client. The fit persists X on the workers, then iterates.
* **In memory**: the same rows loaded in this process, ``GaussianMixture(n_threads=2)``
  (``--memory-threads``, default: the number of cores): the same two cores as the cluster.
  The thread count is explicit because starting a ``LocalCluster`` sets
  ``OMP_NUM_THREADS=1`` in this process's environment too (distributed's nanny applies its
  ``pre-spawn-environ`` to ``os.environ``), which would make the default one thread.

Seconds per iteration: the median of the per-iteration times that ``verbose=2`` prints
(E-step over all blocks + client reduction + M-step), over the iterations of a
``--max-iter`` fit (tol=0), median over ``--repeats`` runs. Bytes moved per iteration:
the workers' ``transfer_outgoing_bytes_total`` (distributed's counter of the bytes every
worker sent from its ``get_data`` handler: block statistics gathered for the client and the
parameter key fetched by the worker that did not compute it), summed over the workers and
read between consecutive iterations of a second, untimed fit (median over its
iterations); plus the pickled parameters the client submits with each iteration's graph.
"""

import argparse
import contextlib
import io
import os
import pickle
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402

WORKLOAD = "e"  # 8 features, 16 components, full, float32
RAW_DIR = Path(__file__).resolve().parent / "results" / "raw"
ITERATION_LINE = re.compile(r"time lapse ([0-9.]+)s\t ll change")


def load_rows(path, start, stop):
    """Rows [start, stop) of a cached .npy, read where this runs (a worker)."""
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def dask_rows(path, block_rows):
    """The cached array as a dask array whose blocks are read by the workers."""
    import dask
    import dask.array as da

    n, d = np.load(path, mmap_mode="r").shape
    dtype = np.load(path, mmap_mode="r").dtype
    blocks = [
        da.from_delayed(dask.delayed(load_rows)(str(path), start, min(start + block_rows, n)),
                        shape=(min(start + block_rows, n) - start, d), dtype=dtype)
        for start in range(0, n, block_rows)
    ]
    return da.concatenate(blocks)


def model_from_start(start_path, max_iter, n_threads):
    from gmmfast import GaussianMixture

    start = np.load(start_path)
    return GaussianMixture(
        len(start["weights"]), covariance_type="full", tol=0.0, max_iter=max_iter,
        weights_init=start["weights"], means_init=start["means"],
        precisions_init=start["precisions"], verbose=2, verbose_interval=1,
        n_threads=n_threads,
    )


class IterationProbe(io.StringIO):
    """stdout for a verbose fit: samples ``probe()`` at every "Iteration n" line.

    The estimator prints that line between two iterations, so consecutive samples bracket
    exactly one iteration (its E-step over all blocks, the reduction and the M-step).
    """

    def __init__(self, probe):
        super().__init__()
        self.probe = probe
        self.samples = []

    def write(self, text):
        if "Iteration" in text:
            self.samples.append(self.probe())
        return super().write(text)


def timed_fit(X, start_path, max_iter, probe=None, n_threads=None):
    """(model, seconds of the whole fit, seconds of every iteration, probe samples)."""
    model = model_from_start(start_path, max_iter, n_threads)
    printed = io.StringIO() if probe is None else IterationProbe(probe)
    with contextlib.redirect_stdout(printed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 runs every iteration
        t0 = time.perf_counter()
        model.fit(X)
        seconds = time.perf_counter() - t0
    lapses = [float(s) for s in ITERATION_LINE.findall(printed.getvalue())]
    assert len(lapses) == max_iter, printed.getvalue()
    return model, seconds, lapses, getattr(printed, "samples", None)


def worker_bytes_sent(client):
    """Σ over the workers of distributed's transfer_outgoing_bytes_total counter."""
    sent = client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
    return sum(sent.values())


def parameter_bytes(model):
    """What one iteration's graph carries from the client: the pickled parameters (the
    E-step needs weights, means and Cholesky factors, not the covariances)."""
    params = (model.weights_, model.means_, None, model.precisions_cholesky_)
    return len(pickle.dumps(tuple(None if p is None else np.asarray(p, dtype=np.float64)
                                  for p in params)))


def run_dask(client, X, start_path, max_iter):
    """One timed fit; then one fit that reads the byte counters between iterations (the
    round trip to read them would be counted in the next iteration's time)."""
    model, seconds, lapses, _ = timed_fit(X, start_path, max_iter)
    *_, sent = timed_fit(X, start_path, max_iter, probe=lambda: worker_bytes_sent(client))
    return {"model": model, "fit_seconds": seconds, "lapses": lapses,
            "bytes_per_iteration": list(np.diff(sent))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="rows (default 10^7)")
    ap.add_argument("--block-rows", type=int, default=1_000_000, help="rows per dask block")
    ap.add_argument("--max-iter", type=int, default=10, help="EM iterations per fit")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each (medians)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (1 thread each)")
    ap.add_argument("--memory-threads", type=int, default=os.cpu_count(),
                    help="threads of the in-memory fit (default: the number of cores)")
    args = ap.parse_args(argv)

    from distributed import Client, LocalCluster

    print(f"load average before: {os.getloadavg()}")
    data_path, start_path = workloads.prepare(WORKLOAD, args.n, RAW_DIR)
    n_rows, n_features = np.load(data_path, mmap_mode="r").shape
    n_blocks = -(-n_rows // args.block_rows)
    print(f"data: {data_path.name} ({n_rows} x {n_features} float32), "
          f"{n_blocks} blocks of <= {args.block_rows} rows")

    results = {"dask": [], "memory": []}
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        X_dask = dask_rows(data_path, args.block_rows)
        timed_fit(X_dask, start_path, 1)  # warm-up: the workers import gmmfast, read X once
        for repeat in range(args.repeats):
            load = os.getloadavg()[0]
            on_dask = {**run_dask(client, X_dask, start_path, args.max_iter), "load": load}
            # The in-memory fit runs while the (idle) cluster is up: same machine state.
            X = np.load(data_path)
            load = os.getloadavg()[0]
            model, seconds, lapses, _ = timed_fit(X, start_path, args.max_iter,
                                                  n_threads=args.memory_threads)
            in_memory = {"model": model, "fit_seconds": seconds, "lapses": lapses,
                         "load": load}
            del X
            results["dask"].append(on_dask)
            results["memory"].append(in_memory)
            print(f"run {repeat + 1}: " + ", ".join(
                f"{name} {statistics.median(run['lapses']):.3f} s/iter "
                f"(load {run['load']:.2f})"
                for name, run in (("dask", on_dask), ("in memory", in_memory))))
    report(results, args, n_rows, n_blocks)


def report(results, args, n_rows, n_blocks):
    def per_iteration(runs):
        return statistics.median(statistics.median(r["lapses"]) for r in runs)

    dask_runs, memory_runs = results["dask"], results["memory"]
    dask_s, memory_s = per_iteration(dask_runs), per_iteration(memory_runs)
    moved_each = [b for r in dask_runs for b in r["bytes_per_iteration"]]
    moved = statistics.median(moved_each)
    block_bytes = args.block_rows * 8 * 4
    params = parameter_bytes(dask_runs[0]["model"])
    lb_dask = float(dask_runs[0]["model"].lower_bound_)
    lb_memory = float(memory_runs[0]["model"].lower_bound_)
    loads = [r["load"] for r in dask_runs + memory_runs]
    print()
    print(f"{n_rows} x 8 float32, K=16, full; {args.max_iter} iterations per fit, "
          f"{args.repeats} runs; load average {min(loads):.2f}-{max(loads):.2f}")
    print()
    print("| fit | s / iteration | whole fit (s) | bytes moved / iteration |")
    print("|---|---:|---:|---:|")
    print(f"| dask, {args.workers} workers × 1 thread, {n_blocks} blocks | {dask_s:.3f} | "
          f"{statistics.median(r['fit_seconds'] for r in dask_runs):.2f} | "
          f"{moved / 1e3:.1f} kB from workers + {params / 1e3:.1f} kB parameters |")
    print(f"| in memory, {args.memory_threads} threads | {memory_s:.3f} | "
          f"{statistics.median(r['fit_seconds'] for r in memory_runs):.2f} | 0 |")
    print()
    print(f"bytes sent by the workers per iteration: median {moved / 1e3:.1f} kB, "
          f"min {min(moved_each) / 1e3:.1f} kB, max {max(moved_each) / 1e3:.1f} kB; "
          f"{sum(b >= block_bytes for b in moved_each)} of {len(moved_each)} iterations "
          f"moved a block ({block_bytes / 1e6:.0f} MB) between workers (work stealing)")
    print(f"overhead per iteration: {dask_s - memory_s:+.3f} s "
          f"({dask_s / memory_s:.2f}x); X itself is {n_rows * 8 * 4 / 1e6:.0f} MB")
    print(f"lower bound after {args.max_iter} iterations: dask {lb_dask:.9g}, "
          f"in memory {lb_memory:.9g} (relative difference "
          f"{abs(lb_dask - lb_memory) / abs(lb_memory):.1e})")


if __name__ == "__main__":
    main()
