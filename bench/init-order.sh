#!/usr/bin/env bash
# Rebuilds crates/forkyard-cli/init.order: the functions and data that the init path of the
# static build touches (forkyard init and each compatibility mode: start, forward, reap,
# grace, exit), in the order it first touches them. The static link (.cargo/config.toml)
# places them together, so that the kernel's 64 kB fault-around maps a few windows of code
# rather than one window per scattered function (see docs/benchmarks.md, peak RSS).
#
# How: build the static binary (its link map names every input section and its address),
# run each workload under valgrind's lackey (every instruction and data address), map the
# addresses to sections and then to their first symbol. Needs valgrind and python3. Run it
# after changing the init path, then run bench/build-init.sh again (this script touches
# main.rs so that the next build relinks).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
bin="$(bench/build-init.sh)"
map="$PWD/forkyard-init.map"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for name in tini dumb-init catatonit; do ln -s "$bin" "$work/$name"; done
trace() { valgrind -q --tool=lackey --trace-mem=yes --log-file="$work/trace.%p" "$@" </dev/null >/dev/null 2>&1 || true; }
trace "$bin" init -- true
trace "$bin" init -- sh -c '(true &); (true &); sleep 0.2'
trace "$bin" init --grace 2s -- sh -c 'sleep 5 & exit 3'
trace "$bin" init -- /does/not/exist
sh -c "valgrind -q --tool=lackey --trace-mem=yes --log-file=$work/trace.sig.%p \"$bin\" init -- sleep 3 & sleep 2; kill -USR1 \$!; sleep 0.3; kill -TERM \$!; wait" >/dev/null 2>&1 || true
trace "$work/tini" -s -- sh -c '(true &); sleep 0.2'
trace "$work/dumb-init" sh -c '(true &); sleep 0.2'
trace "$work/dumb-init" -c true
trace "$work/catatonit" -- sh -c '(true &); sleep 0.2'
python3 - "$map" "$work" crates/forkyard-cli/init.order <<'PY'
import bisect, glob, os, sys
mapfile, work, out = sys.argv[1:4]
sections = []  # (start, end, [symbols])
for line in open(mapfile):
    f = line.split()
    if len(f) < 5 or not all(c in "0123456789abcdef" for c in f[0]):
        continue
    try:
        vma, size = int(f[0], 16), int(f[2], 16)
    except ValueError:
        continue
    rest = " ".join(f[4:])
    if ":(" in rest:
        # Rust and C compiled with function and data sections: `.text.SYMBOL` names the
        # (mangled) symbol; a plain `.text` (musl's one-function objects) does not.
        name = rest[rest.rindex(":(") + 2 : -1]
        own = []
        for prefix in (".text.unlikely.", ".text.", ".rodata.", ".data.rel.ro.", ".data.", ".bss.", ".tbss.", ".tdata."):
            if name.startswith(prefix) and len(name) > len(prefix):
                own = [name[len(prefix):]]
                break
        sections.append([vma, vma + size, own])
    elif not rest.startswith(".") and sections and sections[-1][0] <= vma < max(sections[-1][1], sections[-1][0] + 1):
        # A symbol of the last input section (demangled in the map: usable for C names only).
        if not sections[-1][2] and "::" not in rest and " " not in rest:
            sections[-1][2].append(rest)
sections.sort()
starts = [s[0] for s in sections]
seen, order = set(), []
for path in sorted(glob.glob(os.path.join(work, "trace.*"))):
    for line in open(path, errors="replace"):
        if len(line) < 4 or line[0:2] not in ("I ", " L", " S", " M"):
            continue
        try:
            addr = int(line[3:].split(",")[0], 16)
        except ValueError:
            continue
        i = bisect.bisect_right(starts, addr) - 1
        if i < 0 or i in seen or not (sections[i][0] <= addr < sections[i][1]) or not sections[i][2]:
            continue
        seen.add(i)
        order.append(sections[i][2][0])
with open(out, "w") as o:
    o.write("\n".join(order) + "\n")
print(f"{len(order)} symbols written to {out}", file=sys.stderr)
PY
touch crates/forkyard-cli/src/main.rs
