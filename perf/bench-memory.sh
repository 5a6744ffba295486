#!/usr/bin/env bash
# Gateway memory: RSS (from /proc) per idle router connection and per waiting event.
#
#   perf/bench-memory.sh [SHARDS] [CONNECTIONS] [EVENTS]     (defaults: 1 5000 200000)
#
# `idle`: CONNECTIONS router connections complete their handshake and stay idle
# (perf/idle-routers.py); the gateway's RSS before, while they are open, and once they are
# closed. `stalled`: EVENTS events left waiting on a server that reads but never answers (as
# in perf/bench-gateway.sh). Build first: cargo build --release.
set -euo pipefail

shards=${1:-1}
connections=${2:-5000}
events=${3:-200000}
here=$(cd "$(dirname "$0")" && pwd)
bin=${PALISADE:-$here/../target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
# shellcheck source=perf/lib.sh
. "$here/lib.sh"

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); gateway shards: $shards"
pair_limits_extra="max_connections = $((connections + 100))
max_unauthenticated = $((connections + 100))"
start_pair "$shards" "" 'event_timeout = "30s"'
sleep 1
before=$(rss_mib "$gw")
exec 3> >(exec "$here/idle-routers.py" "127.0.0.1:$router_port" imp1.example.com bench "$connections" >"$work/idle.out")
idle_pid=$!
for _ in $(seq 1200); do grep -q ready "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/idle.out" || { echo "the idle routers did not connect" >&2; cat "$work/gw.log" >&2; exit 1; }
sleep 2
open=$(rss_mib "$gw")
exec 3>&-
for _ in $(seq 600); do grep -q closed "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
wait "$idle_pid" 2>/dev/null || true
sleep 3
closed=$(rss_mib "$gw")
awk -v n="$connections" -v b="$before" -v o="$open" -v c="$closed" 'BEGIN {
  printf "idle     %d router connections: RSS %.1f MiB before, %.1f MiB open (%.1f KiB each), %.1f MiB after they closed (%.1f KiB each kept)\n",
    n, b, o, (o - b) * 1024 / n, c, (c - b) * 1024 / n }'
stop_all

start_pair "$shards" "--latency 600s" 'event_timeout = "10m"
outage_window = "20m"'
idle_rss=$(rss_mib "$gw")
"$bin" load --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench --rate 40000 \
  --connections 2 --mix es_OUT=100 --events "$events" --drain 1s --quiet --json "$work/stall.json" >/dev/null 2>&1 || true
sleep 1
stalled=$(rss_mib "$gw")
awk -v n="$events" -v i="$idle_rss" -v s="$stalled" 'BEGIN {
  printf "stalled  %d events waiting: RSS %.1f MiB (idle %.1f MiB; %.0f bytes per waiting event)\n",
    n, s, i, (s - i) * 1048576 / n }'
stop_all
