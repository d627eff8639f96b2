"""Two builds of gmmfast against each other: does a change slow any workload?

    python benchmarks/bench_builds.py OLD_TREE NEW_TREE               # a b d e t s, threads 1,2
    python benchmarks/bench_builds.py ../old . --workloads b,d --threads 1 --repeats 5

Each TREE is a source tree with its extension modules built in place
(``python setup.py build_ext --inplace``), e.g. a ``git worktree`` of the commit to compare
against. Every measurement is one ``_child.py`` process with ``PYTHONPATH`` set to a tree;
the two trees alternate (old, new, old, new, ...) so that the machine's drift falls on both.
The report gives, per workload and thread count, the medians of seconds per EM iteration
and of the whole 20-iteration fit, and (with the extras) of initialisation and prediction,
as new / old ratios: above 1.03 is a regression beyond the project's noise allowance.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import CHILD, PARTIAL_RESULTS, child_env, parse_workloads  # noqa: E402
from workloads import MAX_ITER, WORKLOADS, prepare  # noqa: E402

FIT_KEYS = ("s_per_iter", "fit_s")
EXTRA_KEYS = ("init_kmeans_s", "init_k-means++_s", "predict_proba_s", "score_samples_s")


def run_in_tree(tree, task):
    env = dict(child_env(task["threads"], keep_openblas_env=False), PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, str(CHILD), json.dumps([task])], env=env,
                         capture_output=True, text=True, cwd=HERE)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or len(lines) != 1:
        sys.exit(f"{tree}: child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result = json.loads(lines[0][len("RESULT "):])
    if Path(result["file"]).resolve().parents[1] != tree:
        sys.exit(f"{tree}: the child imported gmmfast from {result['file']}; build the tree "
                 "in place and run from outside any other gmmfast checkout")
    return result


def measure(trees, tasks, repeats):
    """{(label, tree index): [results]} with the trees alternating on every task."""
    results = {}
    for label, task in tasks:
        for _ in range(repeats):
            for i, tree in enumerate(trees):
                res = run_in_tree(tree, task)
                results.setdefault((label, i), []).append(res)
                print(f"  {label:<22} {'new' if i else 'old'} "
                      + " ".join(f"{k}={res[k]:.4g}" for k in FIT_KEYS + EXTRA_KEYS
                                 if k in res), flush=True)
    return results


def table(results, keys):
    rows = ["| measurement | quantity | old (median) | new (median) | new / old |",
            "|---|---|---|---|---|"]
    labels = dict.fromkeys(label for label, _ in results)
    for label in labels:
        for key in keys:
            old, new = ([r[key] for r in results[(label, i)] if key in r] for i in (0, 1))
            if old and new:
                o, n = statistics.median(old), statistics.median(new)
                rows.append(f"| {label} | {key} | {o:.4g} | {n:.4g} | {n / o:.3f} |")
    return "\n".join(rows)


def plan(ids, thread_counts, extras, raw_dir):
    tasks = []
    for wid in ids:
        n, d, k, cov, _, _ = WORKLOADS[wid]
        data, start = prepare(wid, n, raw_dir)
        base = {"workload": wid, "n": n, "data": str(data), "start": str(start), "k": k,
                "cov": cov, "max_iter": MAX_ITER, "lib": "gmmfast"}
        tasks += [(f"{wid} fit, {t} thread(s)", dict(base, kind="fit", threads=t))
                  for t in thread_counts]
        if extras:
            tasks.append((f"{wid} extras, 1 thread", dict(base, kind="extras", threads=1)))
    return tasks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the tree to compare against")
    parser.add_argument("new", type=Path, help="the changed tree")
    parser.add_argument("--workloads", default="abdets")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-extras", dest="extras", action="store_false")
    parser.add_argument("--raw-dir", type=Path, default=PARTIAL_RESULTS.parent)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in (args.old, args.new)]
    thread_counts = [int(t) for t in args.threads.split(",")]
    tasks = plan(parse_workloads(args.workloads), thread_counts, args.extras, args.raw_dir)
    started = time.strftime("%Y-%m-%d %H:%M")
    results = measure(trees, tasks, args.repeats)
    print(f"\nold: {trees[0]}\nnew: {trees[1]}\nstarted {started}, {args.repeats} repeats, "
          f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print(table(results, FIT_KEYS + EXTRA_KEYS))


if __name__ == "__main__":
    main()
