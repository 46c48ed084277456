#!/usr/bin/env bash
# A stream per call, callguard against the tonic echo service on the same
# traffic (BENCHMARKS.md, "Load": issue #16, item 4).
#
#   scripts/bench_streams.sh [OUT_DIR]            (default: target/bench-streams)
#   CALLS="5000 10000 20000" ROUNDS=2 DURATION=40 RAMP_UP=10 RATE=5 scripts/bench_streams.sh
#   CALLGUARD=/path/to/other/callguard scripts/bench_streams.sh   (no build)
#
# For each number of calls, ROUNDS times: a fresh release `serve` (own data
# dir, free ports; the per-tenant call limit raised to 20,000, as the load
# generator sends for one tenant), then one `loadgen --echo-baseline` run: the calls on a stream each
# (1,000 streams per connection), RATE fragments/s per call, against serve,
# then the same traffic (same seed, streams, connections, pace) against the
# in-process echo service. Each prints the round trip (event sent -> its ack
# on the same stream) at full load and the ratio
# "round trip p99 at full load callguard / echo". The machine's load
# average is logged before each run: on a shared machine the figures say as
# much about the neighbours as about us.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-streams}
mkdir -p "$out"
calls_list=${CALLS:-5000 10000 20000}
duration=${DURATION:-40}
ramp_up=${RAMP_UP:-10}
rate=${RATE:-5}
rounds=${ROUNDS:-2}
config="$out/serve.toml"
printf '[limits]\nmax_active_calls_per_tenant = 20000\n' >"$config"

if [ -n "${CALLGUARD:-}" ]; then
  bin=$CALLGUARD
else
  cargo build --release --quiet
  bin=target/release/callguard
fi

# shellcheck source=scripts/serve_lib.sh
source scripts/serve_lib.sh

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "binary: $bin ($(git rev-parse --short HEAD) checked out)"
} | tee "$out/machine.txt"

for round in $(seq "$rounds"); do
for calls in $calls_list; do
  name=calls-$calls-$round
  start_serve "$name"
  {
    echo "== $name: $(date -u +%H:%M:%SZ), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "server RSS before the run: $(awk '/VmRSS/ {print $2, $3}' "/proc/$serve_pid/status")"
    "$bin" loadgen --server "127.0.0.1:$serve_grpc" --server-pid "$serve_pid" --calls "$calls" \
      --rate "$rate" --duration "$duration" --ramp-up "$ramp_up" --echo-baseline
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee "$out/$name.txt"
  stop_serve
done
done

echo
echo "== summary ($out)"
cat "$out/machine.txt"
grep -hE "^== |RSS before|^callguard:|^echo baseline:|rt at full|server |loadgen |  events|/ echo|load average after" "$out"/calls-*.txt
