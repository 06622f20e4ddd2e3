#!/usr/bin/env bash
# The release build for containers: forkyard linked statically against musl, not
# position-independent (see .cargo/config.toml), optimised for size ([profile.init] in
# Cargo.toml). The same program as the ordinary build, with every subcommand; it runs in any
# Linux image of its architecture, `scratch` included.
#
# usage: scripts/build-static.sh [x86_64|aarch64]     (default: this machine's architecture)
#
# Installs what is missing: the Rust target (rustup), and a C compiler for it (ring, the TLS
# of https probes, has C and assembly parts): musl-gcc (Debian's musl-tools) for this
# machine's architecture, Debian's gcc-ARCH-linux-gnu cross compiler for the other, which
# also links (Rust brings musl's own start files and libc.a for its musl targets).
# Progress goes to standard error; standard output is one line, the binary's path, e.g.
# target/x86_64-unknown-linux-musl/init/forkyard.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'build-static: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Installs a Debian package, or says what to do where that cannot be done here.
install_package() {
  local package=$1 why=$2
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $package ($why)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package"; } >&2 \
      || die "could not install $package ($why); install it by hand and run this again"
  else
    die "$why is missing: install the Debian package $package (or your system's equivalent) and run this again"
  fi
}

host=$(uname -m)
case "${1:-$host}" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) say "unsupported architecture '${1:-$host}'"; echo "usage: scripts/build-static.sh [x86_64|aarch64]" >&2; exit 2 ;;
esac
target="$arch-unknown-linux-musl"
target_env=$(echo "$target" | tr 'a-z-' 'A-Z_')

command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust (https://rustup.rs) first"
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  command -v rustup >/dev/null 2>&1 || die "the Rust target $target is missing, and rustup is not here to add it"
  say "adding the Rust target $target"
  rustup target add "$target" >&2 || die "rustup could not add $target"
fi

if [ "$arch" = "$host" ]; then
  command -v musl-gcc >/dev/null 2>&1 || install_package musl-tools "musl-gcc, the C compiler for $target"
  cc_var="CC_${target//-/_}"
  export "$cc_var=${!cc_var:-musl-gcc}"
else
  # A cross build: Debian ships gcc-aarch64-linux-gnu and gcc-x86-64-linux-gnu.
  cross="$arch-linux-gnu-gcc"
  command -v "$cross" >/dev/null 2>&1 \
    || install_package "gcc-${arch//_/-}-linux-gnu" "$cross, a C compiler and linker for $arch"
  export "CC_${target//-/_}=$cross"
  export "CARGO_TARGET_${target_env}_LINKER=$cross"
fi

say "building forkyard for $target (profile init)"
cargo build --locked --profile init --target "$target" -p forkyard-cli
bin="${CARGO_TARGET_DIR:-$PWD/target}/$target/init/forkyard"
[ -x "$bin" ] || die "the build finished but $bin is not there"
say "$(du -k "$bin" | cut -f1) kB on disk"
# The ordered link (x86_64, .cargo/config.toml) names functions by their mangled names, which
# change when the init path's code is moved or renamed. Names the link no longer finds are
# skipped silently, and the init path's code spreads out again (peak RSS about 0.75 MB
# instead of 0.5 MB): say so when more than a few are gone.
order=crates/forkyard-cli/init.order
if [ "$arch" = x86_64 ] && [ -f forkyard-init.map ] && [ -f "$order" ]; then
  wanted=$(sort -u "$order" | grep -c .)
  found=$(grep -oF -f "$order" forkyard-init.map | sort -u | wc -l)
  if [ $((wanted - found)) -gt $((wanted / 20)) ]; then
    say "warning: $((wanted - found)) of the $wanted names in $order are not in this build, so the init" \
      "path's code is not packed together (more resident memory as PID 1); run bench/init-order.sh," \
      "which rebuilds the list and relinks, then build again"
  fi
fi
echo "$bin"
