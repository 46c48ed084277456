#!/usr/bin/env bash
# Regenerates the load figures of BENCHMARKS.md ("Load"): a release `serve`
# on loopback, `callguard loadgen` on the same machine, four scenarios.
#
#   scripts/bench_load.sh [OUT_DIR]        (default: target/bench-load)
#
# 1. idle   20,000 call streams open, one event per call every ~10 s:
#           server RSS per call (issue #6: at most 16 KiB).
# 2. paced  20,000 calls x 5 events/s (100,000 events/s), a stream per
#           call, 50 s: calls start over the first 10 s and end over the
#           last 10 s, so 30 s at full load. Events/s acked, ingest ->
#           Subscribe p50/p99/p99.9 at full load (target p99 < 20 ms),
#           server CPU.
# 3. saturation  2,000 calls x 100 events/s offered (200,000 events/s, more
#           than this machine sustains) against serve, then against the
#           in-process tonic echo service (--echo-baseline): the ratio of
#           the two sustained rates (target >= 0.6).
# 4. paced-shared  the paced traffic of 2 with 20 calls sharing each
#           ingest stream (1,000 streams over 4 connections, the framework
#           reference of issue #6), as a media gateway multiplexing its
#           calls would (DESIGN: several calls may share one stream); three
#           runs (the machine is noisy at full load), then the echo
#           baseline on the same traffic.
# 5. paced-shared-10  the same with 10 calls per stream (2,000 streams).
#
# Each scenario starts a fresh serve (own data dir, ephemeral ports chosen
# here) and stops it. The raw loadgen reports go to OUT_DIR/*.txt, every
# latency sample to OUT_DIR/*.latency.csv; the
# summary is printed at the end. Nothing else may load the machine while
# it runs, or the figures say more about the neighbours than about us.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-load}
mkdir -p "$out"

cargo build --release --quiet
bin=target/release/callguard
# The load generator sends every call for one tenant; the default limit of
# 10,000 active calls per tenant would refuse half of 20,000.
config="$out/serve.toml"
printf '[limits]\nmax_active_calls_per_tenant = 20000\n' >"$config"

# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh

run_scenario() { # name, loadgen args...
  local name=$1
  shift
  start_serve "$name"
  echo "== $name: loadgen $*" | tee "$out/$name.txt"
  echo "server RSS before the run: $(awk '/VmRSS/ {print $2, $3}' "/proc/$serve_pid/status")" | tee -a "$out/$name.txt"
  "$bin" loadgen --server "127.0.0.1:$serve_grpc" --server-pid "$serve_pid" --latency-log "$out/$name.latency.csv" "$@" | tee -a "$out/$name.txt"
  stop_serve
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit: $(git rev-parse --short HEAD)"
} | tee "$out/machine.txt"

run_scenario idle --calls 20000 --connections 20 --rate 0.1 --duration 30 --ramp-up 10
run_scenario paced --calls 20000 --connections 20 --rate 5 --duration 50 --ramp-up 10
run_scenario saturation --calls 2000 --connections 4 --rate 100 --duration 15 --echo-baseline
if [ -z "${SKIP_SHARED:-}" ]; then
  shared="--calls 20000 --calls-per-stream 20 --connections 4 --rate 5 --duration 50 --ramp-up 10"
  run_scenario paced-shared-1 $shared
  run_scenario paced-shared-2 $shared
  run_scenario paced-shared-3 $shared --echo-baseline
  run_scenario paced-shared-10 --calls 20000 --calls-per-stream 10 --connections 4 --rate 5 --duration 50 --ramp-up 10
fi

echo
echo "== summary ($out)"
cat "$out/machine.txt"
grep -hE "^== |RSS before|throughput|latency|full load|server |events/s callguard" "$out"/*.txt
