#!/usr/bin/env bash
# Two builds of `serve` under the same load, alternately (A B A B ...), in
# one run: the before/after comparison of BENCHMARKS.md's "Load" sections
# (issue #17, item 4: "same-run comparison against the build from before").
#
#   OLD=/path/to/old/callguard NEW=/path/to/new/callguard LEXICONS=DIR \
#     scripts/bench_load_ab.sh [OUT_DIR] -- LOADGEN_ARGS...
#
#   ROUNDS=3 (A B pairs)   LOADGEN=/path/to/callguard (default: $NEW; one
#   load generator for both, so the client side is the same)
#
# Each run: a fresh `serve` of that build (own data dir, free ports on
# 127.0.0.1, the per-tenant call limit raised to 20,000, `lexicons = DIR`
# so both builds run the same word lists; no engine cache, which the old
# build may not have), then one `loadgen` run with LOADGEN_ARGS. The
# load average is logged before each run. The summary lists, per run,
# throughput, the ingest -> Subscribe p99 at full load, the round trip at
# full load, and the server's CPU and CPU per acked event.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-load-ab}
shift || true
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
rounds=${ROUNDS:-3}
loadgen=${LOADGEN:-$NEW}
config="$out/serve.toml"
printf 'lexicons = "%s"\n[limits]\nmax_active_calls_per_tenant = 20000\n' "$LEXICONS" >"$config"

# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "old: $OLD ($("$OLD" --version))"
  echo "new: $NEW ($("$NEW" --version))"
  echo "lexicons: $LEXICONS; loadgen: $loadgen; args: $*"
} | tee "$out/machine.txt"

for round in $(seq "$rounds"); do
  for side in old new; do
    if [ "$side" = old ]; then bin=$OLD; else bin=$NEW; fi
    name=$side-$round
    CALLGUARD_CACHE_DIR= start_serve "$name"
    {
      echo "== $name: $(date -u +%H:%M:%SZ), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
      "$loadgen" loadgen --server "127.0.0.1:$serve_grpc" --server-pid "$serve_pid" "$@"
      echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    } | tee "$out/$name.txt"
    stop_serve
  done
done

echo
echo "== summary ($out)"
cat "$out/machine.txt"
python3 - "$out" "$rounds" <<'EOF'
import re, sys, statistics
out, rounds = sys.argv[1], int(sys.argv[2])
def read(name):
    t = open(f"{out}/{name}.txt").read()
    num = lambda pat: float(re.search(pat, t).group(1))
    acked = num(r"events\s+sent \d+, acked (\d+)")
    cpu = num(r"CPU ([\d.]+) s")
    return {
        "load": re.search(r"load average before: ([\d.]+)", t).group(1),
        "ev/s": num(r"throughput\s+([\d.]+) events/s acked"),
        "p99": num(r"full load\s+p50 [\d.]+ ms, p99 ([\d.]+) ms"),
        "rt p99": num(r"rt at full\s+.*?p99 ([\d.]+) ms"),
        "cpu s": cpu,
        "us/ev": cpu / acked * 1e6,
    }
rows = {s: [read(f"{s}-{r}") for r in range(1, rounds + 1)] for s in ("old", "new")}
keys = ["ev/s", "p99", "rt p99", "cpu s", "us/ev"]
print("run      load  " + "  ".join(f"{k:>9}" for k in keys))
for r in range(rounds):
    for s in ("old", "new"):
        row = rows[s][r]
        print(f"{s}-{r+1:<4} {row['load']:>5}  " + "  ".join(f"{row[k]:9.2f}" for k in keys))
print("median new/old: " + ", ".join(
    f"{k} {statistics.median(x[k] for x in rows['new']) / statistics.median(x[k] for x in rows['old']):.3f}"
    for k in keys))
EOF
