#!/usr/bin/env bash
# Load-independent counters of the gateway for one fixed-count run, for the roofline in
# perf/RESULTS.md: per event answered, the gateway's CPU (task-clock), context switches
# (perf's count and /proc/PID/task/*/status voluntary + nonvoluntary deltas), syscalls
# (raw_syscalls:sys_enter), io_uring requests submitted and completed, poll arms and io-wq
# punts, and wake-ups the gateway caused (sched:sched_wakeup). A second pass of the same
# count under `strace -c -f` gives the syscalls by name (strace slows the gateway, so its
# batching is not the first pass's: read its mix, not its total).
#
#   perf/roofline.sh SHARDS RATE EVENTS        RATE: max (closed loop, 2 x 2000 in flight) or
#                                              events/s (open loop); 2 connections either way
#   STRACE=0 skips the strace pass.  Extra environment (PALISADE_SPIN_BEFORE_PARK_US, ...) is
#   passed to the gateway.  Build first: cargo build --release.
set -euo pipefail
shards=${1:-1}
rate=${2:-max}
events=${3:-200000}
bin=${PALISADE:-$(cd "$(dirname "$0")/.." && pwd)/target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
# shellcheck source=perf/lib.sh
. "$(dirname "$0")/lib.sh"

# Voluntary and nonvoluntary context switches of every thread of a process.
ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt/ { v += $2 } /^nonvoluntary_ctxt/ { n += $2 } END { print v + 0, n + 0 }'; }
load() { # $1 json out
  local flight=()
  [ "$rate" = max ] && flight=(--in-flight 2000)
  "$bin" load --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench --rate "$rate" \
    "${flight[@]}" --connections 2 --mix es_OUT=100 --events "$events" --drain 2s --quiet --json "$1" >/dev/null 2>"$work/load.err" || { echo "load exit $? (not every event got one verdict):" >&2; tail -3 "$work/load.err" >&2; }
}

echo "date $(date -u +%FT%TZ); $(uptime)"
echo "shards $shards, rate $rate, $events events, gateway env: $(env | grep '^PALISADE_' | tr '\n' ' ')"
start_pair_patiently "$shards" 'event_timeout = "30s"'
warm_up

tp=task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter,io_uring:io_uring_submit_req,io_uring:io_uring_complete,io_uring:io_uring_poll_arm,io_uring:io_uring_queue_async_work,io_uring:io_uring_task_work_run,sched:sched_wakeup
read -r v0 n0 < <(ctxsw "$gw")
c0=$(cpu "$gw")
perf stat -x, -e "$tp" -p "$gw" -o "$work/stat.csv" &
sp=$!
sleep 0.3
load "$work/run.json"
kill -INT "$sp"; wait "$sp" 2>/dev/null || true
c1=$(cpu "$gw")
read -r v1 n1 < <(ctxsw "$gw")
n=$(json "$work/run.json" answered)
eps=$(json "$work/run.json" answered_per_s)
echo "answered $n events at $eps events/s; p50 $(json "$work/run.json" p50) us p99 $(json "$work/run.json" p99) us"
awk -v n="$n" -v c="$(awk -v a="$c1" -v b="$c0" 'BEGIN{print a-b}')" -v dv=$((v1 - v0)) -v dn=$((n1 - n0)) 'BEGIN {
  printf "  %-34s %10.3f\n", "/proc CPU us/event", c / n * 1e6
  printf "  %-34s %10.3f\n", "/proc voluntary ctxsw/event", dv / n
  printf "  %-34s %10.3f\n", "/proc nonvoluntary ctxsw/event", dn / n }'
awk -F, -v n="$n" '$3 != "" && $1 !~ /^#/ && NF > 2 {
  name = $3; v = $1; if (name == "task-clock") { printf "  %-34s %10.3f\n", "task-clock us/event", v * 1e3 / n }
  else printf "  %-34s %10.3f\n", name "/event", v / n }' "$work/stat.csv"

if [ "${STRACE:-1}" != 0 ]; then
  strace -c -f -q -p "$gw" -o "$work/strace.txt" &
  st=$!
  sleep 0.5
  load "$work/strace.json"
  kill -INT "$st"; wait "$st" 2>/dev/null || true
  ns=$(json "$work/strace.json" answered)
  echo "strace -c -f pass: $ns events at $(json "$work/strace.json" answered_per_s) events/s (slowed by strace); calls per event:"
  awk -v n="$ns" '$1 ~ /^[0-9.]+$/ && NF >= 5 { name = $NF; calls = $4; if ($5 ~ /^[0-9]+$/ && NF == 6) calls = $4;
    printf "    %-20s %8.3f\n", name, calls / n }' "$work/strace.txt" | sort -k2 -nr | head -12
fi
stop_all
