#!/usr/bin/env bash
# Runs forkyard's side-by-side benchmarks and prints Markdown for docs/benchmarks.md.
#   bench/run.sh                  every section
#   bench/run.sh roundtrip pool   some of: roundtrip pool reap idle ps
# Needs python3 (for multiprocessing.Pool) and procps (ps); builds forkyard in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p forkyard-cli
FORKYARD_BIN="$PWD/target/release/forkyard" cargo bench -q -p forkyard --bench compare -- "$@"
