#!/usr/bin/env bash
# Builds the small, static forkyard for use as a container's PID 1:
#   target/x86_64-unknown-linux-musl/init/forkyard
# (musl, statically linked, not position-independent, optimised for size). It is the same
# program as the ordinary build, with every subcommand; only the build differs.
set -euo pipefail
cd "$(dirname "$0")/.."
# musl-gcc links the C parts a dependency may build for the musl target (Debian: musl-tools).
command -v musl-gcc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq musl-tools >/dev/null; } >&2
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
cargo build -q --profile init --target x86_64-unknown-linux-musl -p forkyard-cli
echo "${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-musl/init/forkyard"
