"""The gmmfast benchmark suite: the standard workloads against scikit-learn (and oneDAL).

    python benchmarks/run.py                   # everything: workloads a-f (+ t, s), 1 and 2
                                               # threads, 3 repeats -> benchmarks/results/
    python benchmarks/run.py --quick           # small N, 1 repeat, 1 thread: does it work?
    python benchmarks/run.py --workloads b,d --threads 1 --repeats 5

Workloads, protocol and anchors: ../shared/WORKLOADS.md; what is measured and how:
benchmarks/README.md. The parent process generates (and caches) the data and the common
k-means start, then runs every measurement in a child process (``_child.py``) per library,
alternating the libraries, and writes RESULTS.md, benchmark.png and the raw JSON.
Exit status 1 when a library's final log-likelihood disagrees with scikit-learn's.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _report  # noqa: E402
from workloads import DEFAULT_WORKLOADS, MAX_ITER, QUICK_N, WORKLOADS, prepare  # noqa: E402

CHILD = HERE / "_child.py"
RESULTS = HERE / "results"
QUICK_RESULTS = RESULTS / "raw" / "quick"
PARTIAL_RESULTS = RESULTS / "raw" / "latest"
LIBS = ("gmmfast", "sklearn", "daal4py")
DAAL_COVARIANCES = ("full", "diag")  # oneDAL's em_gmm has no tied or spherical
DAAL_VENV_PYTHON = HERE / ".venv-daal" / "bin" / "python"


def log(*args):
    print(*args, flush=True)


def parse_workloads(text):
    ids = [w.strip() for w in text.replace(",", " ").split()] if text != "all" else []
    if len(ids) == 1 and len(ids[0]) > 1 and ids[0] not in WORKLOADS:
        ids = list(ids[0])  # "bd" == "b,d"
    ids = ids or list(DEFAULT_WORKLOADS)
    unknown = [w for w in ids if w not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    return ids


def find_daal_python(requested):
    """The interpreter that can import daal4py, or None (with the reason printed)."""
    candidates = [requested] if requested else [
        os.environ.get("GMMFAST_BENCH_DAAL_PYTHON"), sys.executable, str(DAAL_VENV_PYTHON)]
    for python in candidates:
        if not python or not (python == sys.executable or Path(python).exists()):
            continue
        try:
            ok = subprocess.run([python, "-c", "import daal4py, numpy"], capture_output=True,
                                timeout=120).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return python
    log("daal4py not importable (looked in: this interpreter, $GMMFAST_BENCH_DAAL_PYTHON, "
        f"{DAAL_VENV_PYTHON.relative_to(HERE.parent)}): oneDAL skipped, see benchmarks/README.md")
    return None


def child_env(threads, keep_openblas_env):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    if not keep_openblas_env:  # they force an older, slower OpenBLAS kernel (see README)
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    return env


def run_child(tasks, python, keep_openblas_env):
    """Run the tasks (all with the same thread count) in one fresh process."""
    env = child_env(tasks[0]["threads"], keep_openblas_env)
    cmd = [python, str(CHILD), json.dumps(tasks)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=HERE)
    results = [json.loads(line[len("RESULT "):]) for line in out.stdout.splitlines()
               if line.startswith("RESULT ")]
    if out.returncode != 0 or len(results) != len(tasks):
        what = ", ".join(f"{t['kind']} {t['lib']} {t.get('workload', '')}" for t in tasks)
        sys.exit(f"child ({what}) failed with exit code {out.returncode}:\n"
                 f"{out.stdout[-4000:]}{out.stderr[-4000:]}")
    return results


def describe(res):
    if res["kind"] == "fit":
        return (f"{res['s_per_iter']:.4f} s/iter ({res['n_iter']} iter), fit {res['fit_s']:.2f} s, "
                f"lower_bound {res['lower_bound']:.10f}, peak +{res['peak_mb']:.0f} MiB")
    if res["kind"] == "extras":
        return (f"init kmeans {res['init_kmeans_s']:.3f} s, k-means++ "
                f"{res['init_k-means++_s']:.3f} s; predict_proba "
                f"{res['predict_proba_rows_per_s']:.3g} rows/s, score_samples "
                f"{res['score_samples_rows_per_s']:.3g} rows/s")
    return f"DGEMM {res['dgemm_gflops']:.1f} GFLOP/s, SGEMM {res['sgemm_gflops']:.1f} GFLOP/s"


def plan(args, ids, libs, daal_python):
    """The measurements as a list of child processes, each a list of tasks, in run order."""
    pythons = {"gmmfast": sys.executable, "sklearn": sys.executable, "daal4py": daal_python}
    task_lists = []
    if not args.quick:
        task_lists.append([{"kind": "gemm", "lib": "numpy", "threads": 1}])
    per_lib = {lib: [] for lib in libs}  # --quick: one process per library
    for wid in ids:
        n = QUICK_N[wid] if args.quick else WORKLOADS[wid][0]
        data, start = prepare(wid, n, args.raw_dir, log=log)
        _, d, k, cov, _, _ = WORKLOADS[wid]
        base = {"workload": wid, "n": n, "data": str(data), "start": str(start), "k": k,
                "cov": cov, "max_iter": MAX_ITER}
        fit_libs = [lib for lib in libs if lib != "daal4py" or cov in DAAL_COVARIANCES]
        for threads in args.thread_counts:
            for _ in range(args.repeats):
                for lib in fit_libs:  # alternate A B C A B C ...
                    task = dict(base, kind="fit", lib=lib, threads=threads)
                    (per_lib[lib].append(task) if args.quick else task_lists.append([task]))
        if args.extras:
            for _ in range(args.repeats):
                for lib in ("gmmfast", "sklearn"):  # oneDAL: no prediction, other init
                    if lib in libs:
                        task = dict(base, kind="extras", lib=lib, threads=args.thread_counts[0])
                        (per_lib[lib].append(task) if args.quick else task_lists.append([task]))
    if args.quick:
        task_lists += [per_lib[lib] for lib in libs if per_lib[lib]]
    return [(tasks, pythons.get(tasks[0]["lib"], sys.executable)) for tasks in task_lists]


def machine_info(thread_counts):
    info = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "python": platform.python_version(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "threads": thread_counts}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                                  if line.startswith("model name")), "?")
        flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                      if line.startswith("flags")), [])
        info["simd"] = " ".join(f for f in ("avx2", "fma", "avx512f") if f in flags)
        meminfo = Path("/proc/meminfo").read_text().splitlines()[0]
        info["memory_gb"] = round(int(meminfo.split()[1]) / 2**20, 1)
    except OSError:
        info["cpu_model"] = platform.processor() or "?"
    try:
        info["nproc"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["nproc"] = os.cpu_count()
    versions = {}
    for mod in ("numpy", "scipy", "sklearn", "gmmfast", "threadpoolctl", "matplotlib"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional module is just "absent"
            versions[mod] = None
    info["versions"] = versions
    try:
        info["git"] = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE,
                                     capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        from gmmfast._config import config

        info["gmmfast_config"] = config()
    except Exception:  # noqa: BLE001
        pass
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small N for every workload, 1 repeat, 1 thread, one process per "
                         "library; results in benchmarks/results/raw/quick/")
    ap.add_argument("--workloads", default="all",
                    help=f"comma-separated ids (default all: {','.join(DEFAULT_WORKLOADS)})")
    ap.add_argument("--threads", default=None, help="comma-separated thread counts "
                                                    "(default 1,2; --quick: 1)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="runs per library and setting; the median is reported (default 3; "
                         "--quick: 1)")
    ap.add_argument("--libs", default=",".join(LIBS),
                    help="comma-separated subset of gmmfast,sklearn,daal4py")
    ap.add_argument("--daal-python", default=None,
                    help="interpreter with daal4py installed (default: this one, "
                         "$GMMFAST_BENCH_DAAL_PYTHON or benchmarks/.venv-daal)")
    ap.add_argument("--no-extras", dest="extras", action="store_false",
                    help="skip the initialisation and prediction measurements")
    ap.add_argument("--no-chart", dest="chart", action="store_false", help="skip the PNG")
    ap.add_argument("--out", default=None,
                    help="folder for RESULTS.md and benchmark.png (default: benchmarks/results "
                         "for a complete run, benchmarks/results/raw/quick for --quick, "
                         "benchmarks/results/raw/latest for any other partial run)")
    ap.add_argument("--keep-openblas-env", action="store_true",
                    help="pass OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE on to the children")
    ap.add_argument("--report-only", metavar="RAW_JSON",
                    help="rewrite RESULTS.md and the chart from a saved raw JSON file")
    ap.add_argument("--note", action="append", default=[],
                    help="a line for RESULTS.md's machine section (repeatable; with "
                         "--report-only it is also saved into the raw JSON)")
    args = ap.parse_args(argv)

    if args.report_only:
        saved = json.loads(Path(args.report_only).read_text())
        if args.note:
            saved["info"]["notes"] = saved["info"].get("notes", []) + args.note
            Path(args.report_only).write_text(json.dumps(saved, indent=1))
        out_dir = Path(args.out) if args.out else (
            QUICK_RESULTS if saved["info"].get("quick") else PARTIAL_RESULTS)
        return _report.write(saved, out_dir, chart=args.chart, log=log)

    t_start = time.perf_counter()
    ids = parse_workloads(args.workloads)
    args.thread_counts = [int(t) for t in (args.threads or ("1" if args.quick else "1,2"))
                          .split(",")]
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.raw_dir = RESULTS / "raw"
    libs = [lib.strip() for lib in args.libs.split(",") if lib.strip()]
    complete = (not args.quick and ids == list(DEFAULT_WORKLOADS) and args.repeats >= 3
                and args.thread_counts == [1, 2] and args.extras and libs == list(LIBS))
    # Only a complete run replaces benchmarks/results/RESULTS.md (unless --out says so).
    out_dir = Path(args.out) if args.out else (
        QUICK_RESULTS if args.quick else RESULTS if complete else PARTIAL_RESULTS)
    if "sklearn" not in libs:
        sys.exit("scikit-learn is the reference: --libs must include sklearn")
    daal_python = find_daal_python(args.daal_python) if "daal4py" in libs else None
    if daal_python is None and "daal4py" in libs:
        libs.remove("daal4py")

    info = machine_info(args.thread_counts)
    info.update(quick=args.quick, repeats=args.repeats, workloads=ids, libs=libs,
                max_iter=MAX_ITER, daal_python=daal_python, notes=args.note,
                load_before=os.getloadavg() if hasattr(os, "getloadavg") else None)
    log(f"gmmfast benchmark suite: workloads {','.join(ids)}, threads "
        f"{args.thread_counts}, repeats {args.repeats}, libraries {', '.join(libs)}"
        f"{' (--quick)' if args.quick else ''}")
    if info["load_before"]:
        log("load average before the runs: %.2f %.2f %.2f" % info["load_before"]
            + ("  (busy machine: expect noisy numbers)"
               if info["load_before"][0] > 1.5 else ""))
    log(f"{info.get('cpu_model')}, {info['nproc']} cores, python {info['python']}")

    log("preparing data (cached in benchmarks/results/raw/)")
    processes = plan(args, ids, libs, daal_python)
    results = []
    log(f"running {sum(len(t) for t, _ in processes)} measurements in {len(processes)} "
        "processes")
    for tasks, python in processes:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        for res in run_child(tasks, python, args.keep_openblas_env):
            res["load1_before"] = load  # other work on the machine skews the timings
            results.append(res)
            log(f"  {res.get('workload', '-')} {res['kind']:6s} {res['lib']:8s} "
                f"threads={res['threads']}: {describe(res)}")
    info["load_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    info["elapsed_s"] = time.perf_counter() - t_start
    saved = {"info": info, "results": results}
    raw_file = args.raw_dir / f"suite{'_quick' if args.quick else ''}_" \
                              f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    raw_file.write_text(json.dumps(saved, indent=1))
    log(f"raw results: {raw_file}")
    status = _report.write(saved, out_dir, chart=args.chart, log=log)
    log(f"total {time.perf_counter() - t_start:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
