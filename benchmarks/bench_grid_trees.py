"""The 14-model search of one tree against the 4-type search of another (an older
checkout, built in place): issue 19's budget, "the 14-model × K = 1..9 search costs ≤ 2.5×
the 4-model × K = 1..10 search" of the day it was filed, measured against that day's tree.

The 100 000 × 8 blobs of ``bench_mclust.py --grid-cost`` are saved once; each search runs in
its own process (the tree on PYTHONPATH), one warm-up run then ``--repeats`` timed runs
(median), every candidate from one k-means start, the processes alternating ``--rounds``
times. Prints each process's median wall and CPU seconds and the ratios.

    python benchmarks/bench_grid_trees.py /work/wt-old19 .
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GRIDS = {"14 models x K=1..9": ("all", 1, 10),
         "4 types x K=1..10": ("full,tied,diag,spherical", 1, 11)}


def child(path, grid, repeats):
    from gmmfast import select_model

    X = np.load(path)
    types, low, high = GRIDS[grid]
    types = types if types == "all" else types.split(",")

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            select_model(X, n_components=range(low, high), covariance_type=types,
                         random_state=0, init_params="kmeans")

    run()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(statistics.median(wall), statistics.median(cpu))


def timed(tree, path, grid, repeats):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    out = subprocess.run([sys.executable, __file__, "--child", path, grid, str(repeats)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return [float(value) for value in out.split()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_tree", nargs="?", help="checkout whose 4-type search is the budget")
    parser.add_argument("new_tree", nargs="?", help="checkout whose 14-model search is measured")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, grid, repeats = args.child
        return child(path, grid, int(repeats))
    sys.path.insert(0, HERE)
    from bench_mclust import load

    runs = {"old 4 types": [], "new 14 models": [], "new 4 types": []}
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "blobs.npy")
        np.save(path, load("blobs", 100_000))
        for _ in range(args.rounds):
            runs["old 4 types"].append(timed(args.old_tree, path, "4 types x K=1..10",
                                             args.repeats))
            runs["new 14 models"].append(timed(args.new_tree, path, "14 models x K=1..9",
                                               args.repeats))
            runs["new 4 types"].append(timed(args.new_tree, path, "4 types x K=1..10",
                                             args.repeats))
    for name, values in runs.items():
        print(f"- {name}: wall {', '.join(f'{w:.3f}' for w, _ in values)} s; "
              f"CPU {', '.join(f'{c:.3f}' for _, c in values)} s")
    med = {name: statistics.median(w for w, _ in values) for name, values in runs.items()}
    print(f"- new 14 models / old 4 types: {med['new 14 models'] / med['old 4 types']:.2f} "
          f"(target <= 2.5); new 14 / new 4 (same tree): "
          f"{med['new 14 models'] / med['new 4 types']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
