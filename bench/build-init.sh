#!/usr/bin/env bash
# Builds the small, static forkyard the init benchmarks run as a container's PID 1, and
# prints its path (target/x86_64-unknown-linux-musl/init/forkyard): the release build of
# scripts/build-static.sh, quietly.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_TERM_QUIET=true exec scripts/build-static.sh x86_64
