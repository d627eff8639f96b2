"""Workload b only, gmmfast against scikit-learn: a shortcut into the suite (``run.py``).

Kept for its command line; it runs ``run.py --workloads b --libs gmmfast,sklearn
--no-extras`` (plus the options below) and writes its summary to
``benchmarks/results/raw/latest/`` (a partial run never overwrites ``results/RESULTS.md``).

    python benchmarks/bench_fit.py            # 1 and 2 threads, 3 repeats
    python benchmarks/bench_fit.py --quick    # N=20_000, 1 repeat, 1 thread: a smoke test
    python benchmarks/bench_fit.py --threads 1 --repeats 5
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N=20_000, 1 repeat, 1 thread")
    ap.add_argument("--repeats", type=int, default=None, help="runs per library (default 3)")
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (1,2)")
    ap.add_argument("--keep-openblas-env", action="store_true",
                    help="pass OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE on to the children")
    args, rest = ap.parse_known_args(argv)
    forwarded = ["--workloads", "b", "--libs", "gmmfast,sklearn", "--no-extras"]
    forwarded += ["--quick"] if args.quick else []
    forwarded += ["--repeats", str(args.repeats)] if args.repeats else []
    forwarded += ["--threads", args.threads] if args.threads else []
    forwarded += ["--keep-openblas-env"] if args.keep_openblas_env else []
    return run.main(forwarded + rest)


if __name__ == "__main__":
    sys.exit(main())
