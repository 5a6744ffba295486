#!/usr/bin/env bash
# Syscalls per event: the gateway under an open-loop load, traced with `strace -c -f`
# (counts do not depend on how busy the machine is; the tracing slows the gateway, so the
# rate is kept moderate). Prints strace's table and the total divided by events answered.
#
#   perf/bench-syscalls.sh [SHARDS] [RATE] [DURATION]     (defaults: 1 50000 5s)
set -euo pipefail

shards=${1:-1}
rate=${2:-50000}
duration=${3:-5s}
here=$(cd "$(dirname "$0")" && pwd)
bin=${PALISADE:-$here/../target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
# shellcheck source=perf/lib.sh
. "$here/lib.sh"

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); gateway shards: $shards"
start_pair "$shards" "" 'event_timeout = "30s"'
# Every thread of the gateway (the shards' threads exist already: -f alone would miss them).
tids=$(cd "/proc/$gw/task" && printf '%s,' *)
strace -c -f -q -p "${tids%,}" -o "$work/strace.txt" 2>/dev/null &
tracer=$!
sleep 1
"$bin" load --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench --rate "$rate" \
  --connections 2 --mix es_OUT=100 --duration "$duration" --quiet --json "$work/open.json" >/dev/null
kill -INT "$tracer"
wait "$tracer" 2>/dev/null || true
n=$(json "$work/open.json" answered)
cat "$work/strace.txt"
awk -v n="$n" '/^100.00/ || / total$/ { calls = $4 } END {
  printf "%d events answered, %d syscalls: %.2f syscalls per event\n", n, calls, (n > 0 ? calls / n : 0) }' "$work/strace.txt"
stop_all
