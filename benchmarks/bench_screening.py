"""The multistart search's screenings alone: every (K, model) screening of the default
search on 100 000 × 8 (``bench_selection.make_data``), from pools of starts drawn once,
on one thread.

Prints the CPU seconds of each run of all the screenings (their median and minimum: the
minimum is the steadier on a loaded machine), a digest of every screening's survivors and
bounds (equal digests: the same screenings, bit for bit), and with ``--calls`` the Python
function calls of one run (cProfile; a count that load does not change). Compare two
trees by running it with each on ``PYTHONPATH``, alternately:

    PYTHONPATH=/path/to/old python benchmarks/bench_screening.py --repeats 5 --calls
    PYTHONPATH=. python benchmarks/bench_screening.py --repeats 5 --calls
"""

import argparse
import cProfile
import hashlib
import os
import pstats
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_selection import make_data  # noqa: E402
from gmmfast._covariance_models import COVARIANCE_MODELS  # noqa: E402
from gmmfast._engine import InMemorySource, MixtureModel  # noqa: E402
from gmmfast._starts import Screen, draw_starts, screened_winner  # noqa: E402
from gmmfast._threads import single_threaded_blas  # noqa: E402

# The search's defaults.
REG_COVAR = 1e-6
TOL = 1e-3


def screenings(n_samples, n_components):
    """A function running every screening of the search, returning their digest."""
    source = InMemorySource(make_data(n_samples))
    source.mean_and_variance(1)
    screen = Screen(source)
    pools = {k: draw_starts(screen, k, np.random.RandomState(0), 1) for k in n_components}

    def run():
        digest = hashlib.sha256()
        for k, pool in pools.items():
            for name in COVARIANCE_MODELS:
                model = MixtureModel(name, REG_COVAR, np.float64)
                screening = screened_winner(model, screen, pool, 1, TOL)
                digest.update(repr([(start.name, bound) for start, _, bound
                                    in screening.survivors]).encode())
                digest.update(repr(screening.kmeans_bound).encode())
        return digest.hexdigest()[:16]

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", action="store_true",
                        help="also count the Python function calls of one run")
    args = parser.parse_args()
    with single_threaded_blas():  # as the search runs them
        run = screenings(args.n, range(2, 11))
        digest = run()
        seconds = []
        for _ in range(args.repeats):
            start = time.process_time()
            run()
            seconds.append(time.process_time() - start)
        print(f"digest {digest}; CPU s per run: {' '.join(f'{s:.3f}' for s in seconds)}; "
              f"median {statistics.median(seconds):.3f}, min {min(seconds):.3f} "
              f"(load average {os.getloadavg()[0]:.1f})")
        if args.calls:
            profile = cProfile.Profile()
            profile.runcall(run)
            print(f"Python function calls of one run: {pstats.Stats(profile).total_calls}")


if __name__ == "__main__":
    main()
