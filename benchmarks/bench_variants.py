"""Every kernel variant of this build on the suite's workloads: one EM pass and one scoring.

The wheel carries the kernels compiled three times on x86-64 (SSE2 baseline, AVX2, AVX-512;
``gmmfast._kernels``) and runs the widest the CPU supports, so the suite, run on an AVX-512
machine, times only one of them. This runs them all on the same data, one thread, from the
suite's common start: milliseconds of ``em_pass`` and of ``score`` with responsibilities
(predict_proba's kernel, output preallocated), and each variant against the widest.

    python benchmarks/bench_variants.py                   # workloads a, b, d, e, s, t
    python benchmarks/bench_variants.py --workloads a,s --repeats 9

A narrower variant should cost at most about the ratio of the vector widths; far more than
that means the compiler did not keep its vectors in registers (the AVX2 build once scored s
7x slower than the AVX-512 one, and slower than the baseline).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # noqa: E402

RAW_DIR = Path(__file__).resolve().parent / "results" / "raw"


def median_ms(call, repeats):
    call()  # warm-up: first touch of the outputs, lazy imports
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def time_variant(em, X, params, covariance_type, repeats):
    """(ms per em_pass, ms per score with responsibilities) with kernel module ``em``."""
    from gmmfast._mstep_core import empty_stats
    from gmmfast._threads import single_threaded_blas

    means = params[0]
    log_prob_norm = np.empty(X.shape[0], X.dtype)
    resp = np.empty((X.shape[0], means.shape[0]), X.dtype)
    with single_threaded_blas():
        em_pass = median_ms(
            lambda: em.em_pass(X, None, *params, *empty_stats(covariance_type, *means.shape),
                               1), repeats)
        score = median_ms(lambda: em.score(X, *params, log_prob_norm, None, resp, 1),
                          repeats)
    return em_pass, score


def main(argv=None):
    from gmmfast import _kernels
    from gmmfast._mstep import precision_cholesky_from_precisions
    from gmmfast._mstep_core import kernel_parameters

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="a,b,d,e,s,t")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    variants = _kernels.available_variants()  # widest first
    print(f"one thread, medians of {args.repeats}; ms (× the widest variant, "
          f"{variants[0]})\n")
    print("| workload | " + " | ".join(f"{v} em_pass | {v} score" for v in variants) + " |")
    print("|---|" + "---|---|" * len(variants))
    for wid in args.workloads.split(","):
        n, _, _, covariance_type, _, _ = workloads.WORKLOADS[wid]
        data, start_file = workloads.prepare(wid, n, RAW_DIR)
        X, start = np.load(data), np.load(start_file)
        chol = precision_cholesky_from_precisions(start["precisions"], covariance_type)
        params = kernel_parameters(start["weights"], start["means"], chol, covariance_type,
                                   X.shape[1])
        cells, widest = [], None
        for name in variants:
            em, _ = _kernels.variant_modules(name)
            times = time_variant(em, X, params, covariance_type, args.repeats)
            widest = widest or times
            cells += [f"{t:.3g} ({t / w:.1f}×)" for t, w in zip(times, widest)]
        print(f"| {wid} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
