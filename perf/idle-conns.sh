#!/usr/bin/env bash
# Gateway memory per idle router connection: CONNECTIONS router connections complete their
# XEP-0114 handshake (perf/idle-routers.py) and stay idle; the gateway's RSS (from /proc) is read
# before they open, while they are open, and once they have closed. Prints KiB per connection
# while open and KiB per connection still kept after they closed.
#
#   perf/idle-conns.sh [SHARDS] [CONNECTIONS] [ROUNDS]     (defaults: 1 5000 1)
#
# With ROUNDS > 1 the same gateway sees the connections open and close that many times (memory
# kept after a close should not add up). Build first: cargo build --release; PALISADE=BIN picks
# another binary.
set -euo pipefail

shards=${1:-1}
connections=${2:-5000}
rounds=${3:-1}
here=$(cd "$(dirname "$0")" && pwd)
bin=${PALISADE:-$here/../target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
# shellcheck source=perf/lib.sh
. "$here/lib.sh"

echo "$(date -u); $(uptime)"
echo "machine: $(nproc) cores; gateway shards: $shards; binary $bin"
pair_limits_extra="max_connections = $((connections + 100))
max_unauthenticated = $((connections + 100))"
start_pair "$shards" "" 'event_timeout = "30s"'
sleep 1
before=$(rss_mib "$gw")
for round in $(seq "$rounds"); do
  rm -f "$work/idle.out"
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
  awk -v r="$round" -v n="$connections" -v b="$before" -v o="$open" -v c="$closed" 'BEGIN {
    printf "idle     round %d, %d router connections: RSS %.1f MiB before, %.1f MiB open (%.1f KiB each), %.1f MiB after they closed (%.1f KiB each kept)\n",
      r, n, b, o, (o - b) * 1024 / n, c, (c - b) * 1024 / n }'
done
stop_all
