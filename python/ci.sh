#!/usr/bin/env bash
# The Python bindings from a clean clone: build and install the package into a fresh virtual
# environment (`pip install ./python`, as a user would), run the tests against Rust and Python
# peers, and the benchmark in its short mode. Run from anywhere: `python/ci.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n=== %s ===\n' "$*"; }

# CPython >= 3.11 (the first Stable ABI with the buffer protocol).
PY=
for p in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
  if [ -n "$p" ] && command -v "$p" >/dev/null &&
     "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY=$p; break
  fi
done
[ -n "$PY" ] || { echo "no python >= 3.11 found"; exit 1; }

VENV=/tmp/shmchan-venv-$$
trap 'rm -rf "$VENV"' EXIT

section "python: install ($($PY --version))"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check ./python pytest numpy
"$VENV/bin/python" -c 'import shmchan; print("shmchan from", shmchan.__file__)'

section "python: the Rust peer of the tests"
cargo build -q --release -p shmchan-pypeer
export SHMCHAN_PEER="${CARGO_TARGET_DIR:-$PWD/target}/release/shmchan-pypeer"

section "python: tests"
# Run from outside the source tree, so that `import shmchan` is the installed package.
(cd /tmp && "$VENV/bin/python" -m pytest "$OLDPWD/python/tests" -q -p no:cacheprovider \
   -o faulthandler_timeout=120)

section "python: benchmark (short)"
(cd /tmp && "$VENV/bin/python" "$OLDPWD/python/bench/bench.py" --short)

section "python: leftovers"
left=$(ls /dev/shm | grep -E '^(pyt|bench)-' || true)
if [ -n "$left" ]; then
  echo "the Python tests or benchmark left entries in /dev/shm:"; echo "$left"; exit 1
fi
echo "nothing left behind"
