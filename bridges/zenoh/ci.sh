#!/usr/bin/env bash
# CI of the Zenoh bridge (bridges/zenoh, its own cargo workspace and target directory):
# release build, fmt and clippy, the tests (real processes over 127.0.0.1 TCP), a short
# benchmark, and a check that nothing was left behind. Works from any directory; needs
# crates.io the first time (about 5 minutes of cold build on 2 cores).
set -euo pipefail
cd "$(dirname "$0")"
t0=$(date +%s)
step() { echo "== bridges/zenoh: $* ($(( $(date +%s) - t0 )) s)"; }

# Anything of ours left in /dev/shm: test channels (brt-), benchmark channels (brb-), state
# files of bridges (shmchan-bridge-PID.json).
leftovers() { ls /dev/shm | grep -E '^(brt|brb)-|^shmchan-bridge-[0-9]+\.json$' || true; }
before=$(leftovers)

step "cargo build --release"
cargo build --release --locked --all-targets

step "cargo fmt --check, cargo clippy"
cargo fmt --check
cargo clippy --release --locked --all-targets -- -D warnings

step "tests"
# One test at a time: each runs four to six busy processes, and CI has 2 cores.
cargo test --release --locked -- --test-threads=1

step "benchmark (short)"
cargo bench --locked --bench bridge -- --quick

after=$(leftovers)
if [ "$after" != "$before" ]; then
    echo "bridges/zenoh: left behind in /dev/shm:" >&2
    comm -13 <(echo "$before") <(echo "$after") >&2
    exit 1
fi
if pgrep -x shmchan-bridge >/dev/null; then
    echo "bridges/zenoh: a shmchan-bridge process is still running:" >&2
    pgrep -a -x shmchan-bridge >&2
    exit 1
fi
step "done"
