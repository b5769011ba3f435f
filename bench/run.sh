#!/usr/bin/env bash
# Measure packyard side by side with nginx and the peer servers, in one run of the
# shared harness (../shared/bench). Writes bench/latest-run.md; copy the figures
# that matter into bench/RESULTS.md with the date and machine.
#
#   bash bench/run.sh            # full run, about 11 minutes
#   bash bench/run.sh --smoke    # quick check that everything starts, no figures
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=../shared/bench
[ -d "$HARNESS" ] || { echo "the shared harness is not at $HARNESS" >&2; exit 2; }
[ -x .venv/bin/packyard ] || { echo "install packyard first: bash scripts/test.sh (or pip install -e .)" >&2; exit 2; }
BIN=$(pwd)/.venv/bin

# Two ways to serve the same 201 projects:
# - packyard-local: every file imported into the in-house store (`packyard import`);
# - packyard-proxy: nothing local, every page and file proxied from the run's nginx.
export BENCH_EXTRA_SERVERS="packyard-local=sh -c '$BIN/packyard init --data-dir {state}/data >/dev/null && $BIN/packyard import --data-dir {state}/data {dir} >/dev/null && exec $BIN/packyard serve --data-dir {state}/data --host {host} --port {port} --upstream none'
packyard-proxy=$BIN/packyard serve --data-dir {state}/data --host {host} --port {port} --upstream {upstream}"

if [ "${1:-}" = "--smoke" ]; then
    shift
    exec python3 "$HARNESS/bench.py" --duration 2 --page-repeats 1 --repeats 1 --client-repeats 1 \
        --small-duration 1 --out bench/smoke-run.md "$@"
fi
exec python3 "$HARNESS/bench.py" --out bench/latest-run.md "$@"
