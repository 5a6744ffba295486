#!/usr/bin/env bash
# The load generator alone: `palisade load --rate max` against `palisade sim --router-echo`
# (a stand-in gateway that answers every event at once), both on this machine.
# Prints the load generator's report and the CPU each process used, per event.
#
#   perf/load-alone.sh [CONNECTIONS] [IN_FLIGHT] [DURATION]      (defaults: 2 2000 10s)
#
# Build first: cargo build --release. Set PALISADE=/path/to/palisade to use another binary.
set -euo pipefail

connections=${1:-2}
in_flight=${2:-2000}
duration=${3:-10s}
bin=${PALISADE:-$(dirname "$0")/../target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: run cargo build --release or set PALISADE" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# CPU seconds (user + system) of a process, from /proc/PID/stat (fields 14 and 15).
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"; }

"$bin" sim --router-echo --listen 127.0.0.1:0 --secret bench --quiet >"$work/sim.out" 2>"$work/sim.err" &
sim=$!
for _ in $(seq 50); do [ -s "$work/sim.out" ] && break; sleep 0.1; done
addr=$(awk '/^listening on /{print $3; exit}' "$work/sim.out")
[ -n "$addr" ] || { echo "the simulator did not start" >&2; cat "$work/sim.err" >&2; kill "$sim"; exit 2; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
sim_before=$(cpu "$sim")
TIMEFORMAT='%U %S'
set +e
{ time "$bin" load --connect "$addr" --secret bench --rate max --in-flight "$in_flight" \
    --connections "$connections" --duration "$duration" --quiet --json "$work/load.json" \
    2>"$work/load.err"; } 2>"$work/load.time"
status=$?
set -e
cat "$work/load.err" >&2
load_cpu=$(awk '{ print $1 + $2 }' "$work/load.time")
sim_cpu=$(awk -v a="$(cpu "$sim")" -v b="$sim_before" 'BEGIN { print a - b }')
kill -TERM "$sim"
wait "$sim" || true

answered=$(sed -n 's/^  "answered": \([0-9]*\),$/\1/p' "$work/load.json")
awk -v n="$answered" -v l="$load_cpu" -v s="$sim_cpu" 'BEGIN {
    if (n == 0) { print "no events answered"; exit }
    printf "CPU: load %.2f s (%.2f us/event), sim --router-echo %.2f s (%.2f us/event)\n", l, l / n * 1e6, s, s / n * 1e6
    printf "load generator capacity: %.0f events/s per core of its own CPU\n", n / l
}'
exit "$status"
