#!/usr/bin/env bash
# The command line end to end on 500 000 x 8 rows, two source trees (each with its compiled
# modules in place) alternating, ROUNDS rounds: wall and CPU seconds of `gmmfast predict`,
# `gmmfast sample -n 500000`, `gmmfast fit` (its JSON's search_seconds, and the time
# read_table takes in-process) and `import gmmfast`.
#
#   benchmarks/bench_cli.sh BEFORE_TREE AFTER_TREE [WORK_DIR] [ROUNDS]
#
# Bytecode is cached (in WORK_DIR/pyc-*), as for an installed package.
set -u
BEFORE=$(realpath "$1") AFTER=$(realpath "$2")
WORK=${3:-/tmp/gmmfast-bench-cli} ROUNDS=${4:-5}
PY=${PYTHON:-python}
mkdir -p "$WORK" && cd "$WORK" || exit 1
unset PYTHONDONTWRITEBYTECODE

in_tree() {  # tree command...: the command with the tree's gmmfast and bytecode cache
    local tree=$1; shift
    env PYTHONPATH="$tree" PYTHONPYCACHEPREFIX="$WORK/pyc-$(basename "$tree")" "$@"
}

if [ ! -f data.csv ]; then  # 4 clusters in 8 dimensions, 38 MB
    $PY -c "
import numpy as np
rng = np.random.default_rng(0)
means = rng.normal(0, 5, (4, 8))
X = means[rng.integers(0, 4, 500_000)] + rng.normal(size=(500_000, 8))
np.savetxt('data.csv', X, delimiter=',', header=','.join(f'x{i}' for i in range(8)),
           comments='', fmt='%.6f')"
    in_tree "$BEFORE" $PY -m gmmfast fit data.csv -k 4 -c full --init kmeans --quiet \
        --save model.npz > /dev/null
fi

timed() {  # label tree command...
    local label=$1 tree=$2; shift 2
    in_tree "$tree" /usr/bin/time -f "%e %U %S" -o time.txt "$@" > /dev/null 2> err.txt \
        || { echo "$label failed:"; cat err.txt; }
    awk -v l="$label" -v t="$(basename "$tree")" \
        '{printf "%s %s wall %s cpu %.2f\n", l, t, $1, $2 + $3}' time.txt
}

for tree in "$BEFORE" "$AFTER"; do  # warm-up: bytecode and the page cache
    timed warmup "$tree" $PY -m gmmfast predict model.npz data.csv -o labels.csv
done
for round in $(seq "$ROUNDS"); do
    for tree in "$BEFORE" "$AFTER"; do
        timed predict "$tree" $PY -m gmmfast predict model.npz data.csv -o labels.csv
        timed sample "$tree" $PY -m gmmfast sample model.npz -n 500000 -o samples.csv
        timed fit "$tree" $PY -m gmmfast fit data.csv -k 4 -c full --init kmeans --quiet \
            --json fit.json
        echo "fit_search $(basename "$tree") $($PY -c "import json
print(round(json.load(open('fit.json'))['timings']['search_seconds'], 3))")"
        in_tree "$tree" $PY -c "import time
from gmmfast._datafile import read_table
start = time.perf_counter(); read_table('data.csv')
print('read $(basename "$tree")', round(time.perf_counter() - start, 3))"
        timed import "$tree" $PY -c "import gmmfast"
    done
    echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
