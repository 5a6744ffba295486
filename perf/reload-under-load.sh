#!/usr/bin/env bash
# What a live configuration reload costs traffic: the same open-loop run twice, once quiet and
# once with SIGHUP every RELOAD_EVERY (the file alternates between two event timeouts, so every
# reload changes something and goes through the whole path: read, check, broadcast, apply on
# every shard). Reports events/s, latency percentiles, events lost (sent minus answered) and
# the reloads the gateway logged.
#
#   perf/reload-under-load.sh [SHARDS] [RATE] [DURATION] [RELOAD_EVERY]   (1 20000 10s 0.5)
#
# Build first: cargo build --release.
set -euo pipefail

shards=${1:-1}
rate=${2:-20000}
duration=${3:-10s}
every=${4:-0.5}
bin=${PALISADE:-$(cd "$(dirname "$0")/.." && pwd)/target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
# shellcheck source=perf/lib.sh
. "$(dirname "$0")/lib.sh"

run() { # $1 name, $2 reload (yes/no)
  start_pair "$shards" "" 'event_timeout = "30s"'
  local hup=""
  if [ "$2" = yes ]; then
    (
      n=0
      while kill -0 "$gw" 2>/dev/null; do
        sleep "$every"
        n=$((n + 1))
        sed -i "s/^event_timeout = .*/event_timeout = \"$((30 + n % 2))s\"/" "$work/gw.toml"
        kill -HUP "$gw" 2>/dev/null || true
      done
    ) &
    hup=$!
  fi
  "$bin" load --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench \
    --rate "$rate" --connections 2 --mix es_OUT=100 --duration "$duration" --quiet \
    --json "$work/$1.json" >/dev/null
  [ -n "$hup" ] && kill "$hup" 2>/dev/null
  local reloads
  reloads=$(grep -c "Configuration reloaded" "$work/gw.log" || true)
  awk -v name="$1" -v sent="$(json "$work/$1.json" sent)" -v n="$(json "$work/$1.json" answered)" \
      -v eps="$(json "$work/$1.json" answered_per_s)" -v p50="$(json "$work/$1.json" p50)" \
      -v p99="$(json "$work/$1.json" p99)" -v p999="$(json "$work/$1.json" p999)" \
      -v max="$(json "$work/$1.json" max)" -v r="$reloads" 'BEGIN {
    printf "%-8s %8.0f events/s  p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  max %7.2f ms  lost %d  reloads %d\n",
      name, eps, p50 / 1000, p99 / 1000, p999 / 1000, max / 1000, sent - n, r }'
  stop_all
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); shards $shards, $rate events/s, reload every ${every}s"
run quiet no
run reloads yes
