#!/usr/bin/env bash
# Runs a workload profile (perf/profiles/*.toml) against the real gateway and simulator on
# loopback and records what matters for sizing and tuning, in perf/out/NAME-STAMP/:
#   load.json, latency.svg  the load generator's report and latency-percentile chart
#   perf-stat.txt           `perf stat` of the gateway process over the run (software events:
#                           task-clock, context switches, migrations, page faults; hardware
#                           counters too where the machine exposes them)
#   flamegraph.svg          where the gateway's CPU goes (perf record + inferno), when both
#                           `perf` and `inferno-flamegraph` (cargo install inferno) are present
#   gateway.log, status.json, metrics.txt, SUMMARY.txt
#
#   perf/profile.sh PROFILE.toml [SHARDS] [-- extra palisade load flags, e.g. --rate 20000 --duration 20s]
#
# Build first: cargo build --release.
set -euo pipefail

profile=${1:?usage: perf/profile.sh PROFILE.toml [SHARDS] [-- load flags]}
shift
shards=1
if [ $# -gt 0 ] && [ "$1" != "--" ]; then shards=$1; shift; fi
[ "${1:-}" = "--" ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PALISADE:-$root/target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 2; }
name=$(basename "$profile" .toml)
out=$root/perf/out/$name-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
work=$(mktemp -d)
# shellcheck source=perf/lib.sh
. "$root/perf/lib.sh"

start_pair "$shards" "" 'event_timeout = "30s"' SystemDefaultComplianceProfile
echo "profile $name, $shards shard(s); results in $out"

# The load runs in the background; perf watches the gateway for as long as it runs.
"$bin" load --profile "$profile" --connect "127.0.0.1:$router_port" --secret bench \
  --json "$out/load.json" --plot "$out/latency.svg" "$@" >"$out/load.txt" 2>"$out/load.err" &
load=$!
before=$(cpu "$gw")
have_perf=no
if command -v perf >/dev/null && perf stat -e task-clock -- true >/dev/null 2>&1; then have_perf=yes; fi
if [ $have_perf = yes ]; then
  perf stat -e task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions \
    -p "$gw" -o "$out/perf-stat.txt" &
  stat_pid=$!
  if command -v inferno-flamegraph >/dev/null; then
    perf record -F 499 -g -p "$gw" -o "$work/perf.data" >/dev/null 2>&1 &
    record_pid=$!
  fi
fi
status=0
wait "$load" || status=$?
after=$(cpu "$gw")
if [ $have_perf = yes ]; then
  kill -INT "$stat_pid" 2>/dev/null || true
  wait "$stat_pid" 2>/dev/null || true
  if [ -n "${record_pid:-}" ]; then
    kill -INT "$record_pid" 2>/dev/null || true
    wait "$record_pid" 2>/dev/null || true
    perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph \
      --title "palisade gateway: $name" >"$out/flamegraph.svg" || true
  fi
fi
palisade_get() { python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' "$1"; }
palisade_get "http://127.0.0.1:$admin_port/status" >"$out/status.json" || true
palisade_get "http://127.0.0.1:$admin_port/metrics" >"$out/metrics.txt" || true
cp "$work/gw.log" "$out/gateway.log"

answered=$(json "$out/load.json" answered)
{
  echo "profile:        $name ($profile), $shards shard(s), $(date -u +%FT%TZ)"
  echo "machine:        $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "load exit:      $status (0 = every event got exactly one verdict)"
  echo "answered:       $answered events, $(json "$out/load.json" answered_per_s) events/s"
  echo "latency:        p50 $(json "$out/load.json" p50) us, p99 $(json "$out/load.json" p99) us, p99.9 $(json "$out/load.json" p999) us"
  awk -v n="$answered" -v c="$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')" \
    'BEGIN { printf "gateway CPU:    %.2f s, %.2f us per event\n", c, (n > 0 ? c / n * 1e6 : 0) }'
  echo "gateway RSS:    $(rss_mib "$gw") MiB at the end"
  [ -f "$out/perf-stat.txt" ] && { echo; cat "$out/perf-stat.txt"; }
  [ -s "$out/flamegraph.svg" ] && echo "flamegraph:     $out/flamegraph.svg"
} | tee "$out/SUMMARY.txt"
exit "$status"
