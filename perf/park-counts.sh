#!/usr/bin/env bash
# Per event answered, for one fixed-count open-loop run: io_uring requests by opcode (perf stat
# with a filter per opcode, so no sample is lost), the gateway's syscalls by name, context
# switches and CPU. Load-independent counts (except CPU), for comparing two binaries.
#   PALISADE=BIN perf/park-counts.sh SHARDS RATE EVENTS
set -euo pipefail
shards=${1:-1}; rate=${2:-5000}; events=${3:-15000}
bin=${PALISADE:-$(cd "$(dirname "$0")/.." && pwd)/target/release/palisade}
work=$(mktemp -d)
# shellcheck source=perf/lib.sh
. "$(dirname "$0")/lib.sh"
echo "date $(date -u +%FT%TZ); $(uptime); bin $bin"
export PALISADE_EXECUTOR_STATS=1  # the gateway logs glommio's task counts when it stops
start_pair_patiently "$shards" 'event_timeout = "30s"'
warm_up
ev=(-e task-clock -e context-switches)
for op in POLL_ADD:6 TIMEOUT:11 ASYNC_CANCEL:14 READ:22 WRITE:23; do
  ev+=(-e io_uring:io_uring_submit_req --filter "opcode == ${op#*:}")
done
for s in io_uring_enter membarrier recvfrom sendto write read epoll_wait futex; do
  ev+=(-e "syscalls:sys_enter_$s")
done
ev+=(-e raw_syscalls:sys_enter -e io_uring:io_uring_submit_req -e sched:sched_wakeup)
if [ -n "${RECORD:-}" ]; then
  perf record -q -F 2000 -g -p "$gw" -o "$RECORD" >/dev/null 2>&1 &
else
  perf stat -x, "${ev[@]}" -p "$gw" -o "$work/stat.csv" &
fi
sp=$!
sleep 0.3
"$bin" load --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench --rate "$rate" \
  --connections 2 --mix es_OUT=100 --events "$events" --drain 1s --quiet --json "$work/r.json" >/dev/null
kill -INT "$sp"; wait "$sp" 2>/dev/null || true
n=$(json "$work/r.json" answered)
[ -n "${RECORD:-}" ] && { echo "recorded $n events into $RECORD"; exit 0; }
echo "shards $shards rate $rate: $n events, p50 $(json "$work/r.json" p50) us p99 $(json "$work/r.json" p99) us; per event:"
names=(task-clock-us ctxsw uring:POLL_ADD uring:TIMEOUT uring:ASYNC_CANCEL uring:READ uring:WRITE
  io_uring_enter membarrier recvfrom sendto write read epoll_wait futex all-syscalls all-uring sched_wakeup)
grep -v '^#' "$work/stat.csv" | grep -v '^$' | awk -F, -v n="$n" -v names="${names[*]}" '
  BEGIN { split(names, nm, " ") } { i++; v = $1; if (i == 1) v = v * 1000; printf "  %-22s %9.3f\n", nm[i], v / n }'
# glommio's counts, logged by each shard as it stops (warm-up and start included).
kill -TERM "$gw"
( sleep 15; kill -KILL "$gw" 2>/dev/null ) & dog=$!
wait "$gw" 2>/dev/null || true
kill "$dog" 2>/dev/null || true
grep 'executor stats' "$work/gw.log" | awk -v n="$n" '{ t += $(NF-5); r += $(NF-2) }
  END { if (NR) printf "  %-22s %9.3f\n  %-22s %9.3f\n  (glommio counts over the warm-up'"'"'s 20000 events too: per event of all %d)\n", "tasks-run", t / (n + 20000), "scheduler-runs", r / (n + 20000), n + 20000 }'
