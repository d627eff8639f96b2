#!/usr/bin/env bash
# Lint what only GitHub runs, so a typo fails here and not on the first tag:
#   - .github/workflows/*.yml against GitHub's workflow schema (check-jsonschema ships it,
#     no network needed)
#   - [tool.cibuildwheel] in pyproject.toml against the schema of the cibuildwheel release
#     wheels.yml pins, and cibuildwheel's own parsing of it: every platform must select
#     exactly CPython 3.10-3.13 on the architectures wheels.yml builds
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

CIBW_VERSION=$(sed -n 's/^ *CIBUILDWHEEL_VERSION: *"\([^"]*\)".*/\1/p' .github/workflows/wheels.yml)
[ -n "$CIBW_VERSION" ] || { echo "CIBUILDWHEEL_VERSION not found in wheels.yml"; exit 1; }

"$PYTHON" -m venv "$WORK/venv"
LINT="$WORK/venv/bin"
"$LINT/python" -m pip install -q check-jsonschema "cibuildwheel==$CIBW_VERSION"

echo "check-jsonschema $("$LINT/check-jsonschema" --version | awk '{print $NF}'):" \
    "GitHub workflow schema"
"$LINT/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml

echo "cibuildwheel $CIBW_VERSION: [tool.cibuildwheel] against its schema"
"$LINT/python" - "$WORK/cibuildwheel.json" <<'EOF'
import json, sys, tomllib
with open("pyproject.toml", "rb") as f:
    json.dump(tomllib.load(f)["tool"]["cibuildwheel"], open(sys.argv[1], "w"))
EOF
SCHEMA=$("$LINT/python" -c "import cibuildwheel, pathlib; print(pathlib.Path(cibuildwheel.__file__).parent / 'resources' / 'cibuildwheel.schema.json')")
"$LINT/check-jsonschema" --schemafile "$SCHEMA" "$WORK/cibuildwheel.json"

echo "cibuildwheel $CIBW_VERSION: the wheels each platform builds"
status=0
check_identifiers() {
    local platform=$1 archs=$2 expected=$3 got
    got=$("$LINT/cibuildwheel" --print-build-identifiers --platform "$platform" \
          --archs "$archs" 2>&1) || { echo "$got"; status=1; return; }
    echo "  $platform ($archs): $(echo "$got" | tr '\n' ' ')"
    if [ "$(echo "$got" | sort | tr '\n' ' ')" != "$expected" ]; then
        echo "  expected: $expected"
        status=1
    fi
}
ids() {  # the expected identifiers for the given platform tags, sorted
    for tag in "$@"; do
        for py in cp310 cp311 cp312 cp313; do echo "$py-$tag"; done
    done | sort | tr '\n' ' '
}
check_identifiers linux x86_64,aarch64 "$(ids manylinux_x86_64 manylinux_aarch64)"
check_identifiers macos x86_64,arm64 "$(ids macosx_x86_64 macosx_arm64)"
check_identifiers windows AMD64 "$(ids win_amd64)"
[ "$status" -eq 0 ] && echo "workflows and cibuildwheel configuration: OK"
exit "$status"
