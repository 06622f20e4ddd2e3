#!/usr/bin/env bash
# Runs forkyard's side-by-side benchmarks and prints Markdown for docs/benchmarks.md.
#   bench/run.sh                  every section
#   bench/run.sh library          the library's (compare.rs): roundtrip pool reap idle ps
#   bench/run.sh inits            the container inits (inits.rs): storm zombies idle true rss
#   bench/run.sh supervisors      forkyard up vs supervisord, runit, s6 and a C floor
#                                 (supervisors.rs): restart tree zombies rss flood
#                                 control (= control-status control-restart)
#                                 (flood = flood-memory flood-latency)
#   bench/run.sh library pool     one section
#   bench/run.sh supervisors restart flood   several
# FORKYARD_BENCH_ROUNDS=N caps the repetitions of the supervisors' measurements (a quick check
# of the bench itself, not for recording). Honours CARGO_TARGET_DIR.
# Needs root (PID namespaces, cgroups), python3 (multiprocessing.Pool), procps (ps) and gcc.
# Installs the peers from Debian's packages; builds forkyard in release mode and the static
# init.
set -euo pipefail
cd "$(dirname "$0")/.."
group="${1:-all}"
shift || true
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p forkyard-cli
# `cargo bench` writes its own build into target/release: keep the release binary aside.
mkdir -p "$target/bench-bin"
cp "$target/release/forkyard" "$target/bench-bin/forkyard"
export FORKYARD_BIN="$target/bench-bin/forkyard"
if [ "$group" = all ] || [ "$group" = library ]; then
  cargo bench -q -p forkyard --bench compare -- "$@"
fi
if [ "$group" = all ] || [ "$group" = inits ]; then
  missing=()
  for p in tini dumb-init catatonit; do command -v "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq tini dumb-init catatonit >/dev/null
  fi
  FORKYARD_STATIC_BIN="$(bench/build-init.sh)"
  export FORKYARD_STATIC_BIN
  cargo bench -q -p forkyard-cli --bench inits -- "$@"
fi
if [ "$group" = all ] || [ "$group" = supervisors ]; then
  missing=()
  for p in supervisord runsvdir s6-svscan; do command -v "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq supervisor runit s6 >/dev/null
  fi
  cargo bench -q -p forkyard-cli --bench supervisors -- "$@"
fi
