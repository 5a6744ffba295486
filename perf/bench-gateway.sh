#!/usr/bin/env bash
# Gateway benchmark: the real `palisade run` over loopback, fed by `palisade load` and judged by
# `palisade sim`, all on this machine. Wait-mode es_OUT events of ~400 bytes through one chain
# step. Reports, per scenario: events/s, latency percentiles (open loop: measured from the
# intended send time, coordinated-omission corrected), and the gateway's own CPU per event
# (user + sys of the gateway process, from /proc, divided by events answered); and, because the
# three processes share the machine's cores, the simulator's and the load generator's CPU per
# event, how busy the three kept the cores and how busy the machine was (from /proc/stat): a
# latency tail measured on full cores is the machine's, not the gateway's.
#
#   perf/bench-gateway.sh [SHARDS] [OPEN_RATE] [DURATION]     (defaults: 1 50000 10s)
#
# Scenarios: `max` (closed loop, 2 connections x 2000 in flight), `open` (OPEN_RATE events/s),
# and `stalled` (200,000 events left waiting on a server that reads but never answers: the
# gateway's RSS while they wait, and per waiting event: on a busy machine the server may not read
# fast enough for all of them to wait). Build first: cargo build --release. ONLY=stalled runs the
# stalled scenario alone; STALL_RATE sets its rate (default 40000 events/s).
set -euo pipefail

shards=${1:-1}
open_rate=${2:-50000}
duration=${3:-10s}
bin=${PALISADE:-$(cd "$(dirname "$0")/.." && pwd)/target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
# shellcheck source=perf/lib.sh
. "$(dirname "$0")/lib.sh"

# Busy and total jiffies of the whole machine, from /proc/stat's first line.
machine_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

report() { # $1 name, $2 json, $3 gateway cpu seconds, $4 simulator cpu s, $5 load generator cpu s, $6 wall s, $7 machine busy %
  local n eps
  n=$(json "$2" answered)
  eps=$(json "$2" answered_per_s)
  awk -v name="$1" -v n="$n" -v eps="$eps" -v c="$3" \
      -v p50="$(json "$2" p50)" -v p99="$(json "$2" p99)" -v p999="$(json "$2" p999)" 'BEGIN {
    printf "%-8s %9d events  %9.0f events/s  p50 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  gateway CPU %.2f us/event\n",
      name, n, eps, p50 / 1000, p99 / 1000, p999 / 1000, (n > 0 ? c / n * 1e6 : 0) }'
  # The three processes share this machine's cores: how busy they kept them says whether a
  # latency figure is the gateway's or the machine's (a tail grows once the cores are full).
  awk -v n="$n" -v g="$3" -v s="$4" -v l="$5" -v w="$6" -v m="$7" -v cores="$(nproc)" 'BEGIN {
    if (n > 0 && w > 0)
      printf "         simulator CPU %.2f us/event, load generator %.2f us/event; the three kept %.0f %% of %d cores busy, the machine %.0f %%\n",
        s / n * 1e6, l / n * 1e6, (g + s + l) / (w * cores) * 100, cores, m }'
}

# run_load NAME JSON ARGS...: the load generator for one scenario, then its report with every
# process's CPU over the run (the generator's own from bash's `time`, it is our child).
run_load() {
  local name=$1 out=$2 g0 s0 t0 t1 lcpu m0 m1
  shift 2
  m0=$(machine_jiffies)
  g0=$(cpu "$gw")
  s0=$(cpu "$sim")
  t0=$(date +%s.%N)
  lcpu=$( { TIMEFORMAT='%U %S'; time "$bin" load "$@" --json "$out" >/dev/null 2>&1; } 2>&1 | awk '{ print $1 + $2 }')
  t1=$(date +%s.%N)
  m1=$(machine_jiffies)
  report "$name" "$out" "$(awk -v a="$(cpu "$gw")" -v b="$g0" 'BEGIN { print a - b }')" \
    "$(awk -v a="$(cpu "$sim")" -v b="$s0" 'BEGIN { print a - b }')" "$lcpu" \
    "$(awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }')" \
    "$(echo "$m0 $m1" | awk '{ print ($4 > $2 ? ($3 - $1) / ($4 - $2) * 100 : 0) }')"
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); gateway shards: $shards"

if [ "${ONLY:-}" != stalled ]; then
start_pair "$shards" "" 'event_timeout = "30s"'
run_load max "$work/max.json" --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench \
  --rate max --in-flight 2000 --connections 2 --mix es_OUT=100 --duration "$duration" --quiet
run_load open "$work/open.json" --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench \
  --rate "$open_rate" --connections 2 --mix es_OUT=100 --duration "$duration" --quiet
stop_all
fi

# A server that reads everything and answers nothing for 10 minutes; events wait for it.
start_pair "$shards" "--latency 600s" 'event_timeout = "10m"
outage_window = "20m"'
idle_rss=$(rss_mib "$gw")
"$bin" load --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench --rate "${STALL_RATE:-40000}" \
  --connections 2 --mix es_OUT=100 --events 200000 --drain 1s --quiet --json "$work/stall.json" >/dev/null 2>&1 || true
sleep 1
waiting=$(curl -s "http://127.0.0.1:$admin_port/metrics" | awk '/^palisade_events_in_flight / { print $2 }')
rss=$(rss_mib "$gw")
awk -v w="${waiting:-0}" -v r="$rss" -v i="$idle_rss" 'BEGIN {
  printf "stalled  200000 events sent, %d waiting: gateway RSS %.1f MiB (idle %.1f MiB; %.0f bytes per waiting event)\n",
    w, r, i, (w > 0 ? (r - i) * 1048576 / w : 0) }'
stop_all
