"""Online EM (``GaussianMixture.partial_fit``): the answer of one pass, its speed, its memory.

    python benchmarks/bench_online.py                     # all three parts (~3 min, 1 thread)
    python benchmarks/bench_online.py --part memory --rows 1000000,10000000

Data: workload b's mixture (D = 8, K = 16, full covariances; ``workloads.make_blobs``'s
generator), drawn batch by batch, so no part ever holds the whole stream.

**Accuracy.** One pass over ``--n`` rows (default 2·10⁶) in ``--batch-rows`` batches
(default 10⁴) with the default learning schedule, against batch EM (``fit``, k-means start,
to convergence) on the same rows, and against batch EM started from the true parameters
(the optimum batch EM can reach): the average log-likelihood of 10⁵ held-out rows.

**Speed.** Rows per second of ``partial_fit`` over that pass (the drawing of the batches not
counted) against one batch-EM iteration's rows per second on 10⁶ rows (``fit`` with 11
iterations minus ``fit`` with 1, from the same start, over 10), medians of ``--repeats``.

**Memory.** In a fresh process per stream length: the peak resident memory (VmHWM) above
the memory after the first batch, for a stream of each length in ``--rows``: it should not
grow with the number of rows.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402

from gmmfast import GaussianMixture  # noqa: E402

D, K = 8, 16
HELD_OUT = 100_000


def mixture():
    """b's mixture: (weights, means, Cholesky factors of the covariances)."""
    _, (weights, means, covariances) = workloads.make_blobs(K * 10, D, K, return_mixture=True)
    return weights, means, np.linalg.cholesky(covariances)


def draw(rng, n, weights, means, factors):
    labels = rng.choice(len(weights), size=n, p=weights)
    noise = rng.standard_normal((n, means.shape[1]))
    return means[labels] + np.einsum("nij,nj->ni", factors[labels], noise)


def stream(n_rows, batch_rows, seed, weights, means, factors):
    rng = np.random.default_rng(seed)
    for start in range(0, n_rows, batch_rows):
        yield draw(rng, min(batch_rows, n_rows - start), weights, means, factors)


def online_pass(n_rows, batch_rows, truth, threads):
    """(model, seconds inside partial_fit) for one pass."""
    model = GaussianMixture(K, random_state=0, n_threads=threads)
    seconds = 0.0
    for batch in stream(n_rows, batch_rows, 1, *truth):
        t0 = time.perf_counter()
        model.partial_fit(batch)
        seconds += time.perf_counter() - t0
    return model, seconds


def accuracy_and_speed(args, truth):
    held_out = draw(np.random.default_rng(2), HELD_OUT, *truth)
    X = np.concatenate(list(stream(args.n, args.batch_rows, 1, *truth)))
    t0 = time.perf_counter()
    batch = GaussianMixture(K, random_state=0, n_threads=args.threads).fit(X)
    batch_s = time.perf_counter() - t0
    weights, means, factors = truth
    from_truth = GaussianMixture(
        K, n_threads=args.threads, weights_init=weights, means_init=means,
        precisions_init=np.linalg.inv(factors @ np.swapaxes(factors, 1, 2))).fit(X)
    online_rates, em_rates, online = [], [], None
    sub = np.ascontiguousarray(X[:1_000_000])
    start = dict(weights_init=batch.weights_, means_init=batch.means_,
                 precisions_init=batch.precisions_)
    for _ in range(args.repeats):
        online, seconds = online_pass(args.n, args.batch_rows, truth, args.threads)
        online_rates.append(args.n / seconds)
        times = {}
        for iters in (1, 11):
            model = GaussianMixture(K, max_iter=iters, tol=0.0, n_threads=args.threads,
                                    **start)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(sub)
            times[iters] = time.perf_counter() - t0
        em_rates.append(len(sub) / ((times[11] - times[1]) / 10))
    online_score = online.score(held_out)
    print(f"accuracy: {args.n} rows in batches of {args.batch_rows}, {args.threads} thread(s)")
    print(f"  held-out average log-likelihood of one online pass: {online_score:.5f}")
    for name, model in (("batch EM from k-means", batch), ("batch EM from the truth", from_truth)):
        score = model.score(held_out)
        print(f"  {name}: {score:.5f} ({model.n_iter_} iterations); online minus it, "
              f"relative: {(online_score - score) / abs(score):+.3%}")
    print(f"  (batch EM from k-means took {batch_s:.1f} s)")
    online_rate, em_rate = statistics.median(online_rates), statistics.median(em_rates)
    print(f"speed (medians of {args.repeats}): partial_fit {online_rate / 1e6:.2f} M rows/s, "
          f"one batch-EM iteration {em_rate / 1e6:.2f} M rows/s: ratio {online_rate / em_rate:.2f}")


def peak_memory_child(n_rows, batch_rows):
    """Run in a fresh process: stream n_rows, print the peak RSS growth after batch 1."""
    truth = mixture()
    model = GaussianMixture(K, random_state=0)
    batches = stream(n_rows, batch_rows, 1, *truth)
    model.partial_fit(next(batches))
    Path("/proc/self/clear_refs").write_text("5")
    base = _status("VmRSS")
    for batch in batches:
        model.partial_fit(batch)
    print(json.dumps({"rows": n_rows, "peak_growth_mib": (_status("VmHWM") - base) / 1024,
                      "batches": int(model.n_iter_)}))


def _status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def memory(args):
    print(f"memory: peak RSS growth after the first batch ({args.batch_rows}-row batches)")
    for n_rows in (int(r) for r in args.rows.split(",")):
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(n_rows),
                              "--batch-rows", str(args.batch_rows)], capture_output=True,
                             text=True, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {n_rows:>10} rows ({result['batches']} batches): "
              f"+{result['peak_growth_mib']:.1f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "accuracy", "memory"), default="all",
                        help="accuracy includes the speed comparison")
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return peak_memory_child(args.memory_child, args.batch_rows)
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    truth = mixture()
    if args.part in ("all", "accuracy"):
        accuracy_and_speed(args, truth)
    if args.part in ("all", "memory"):
        memory(args)


if __name__ == "__main__":
    main()
