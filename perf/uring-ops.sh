#!/usr/bin/env bash
# Which io_uring operations the gateway submits per event: `perf record` of the
# io_uring:io_uring_submit_req tracepoint over a fixed-count run, grouped by opcode.
#   perf/uring-ops.sh SHARDS RATE EVENTS       (RATE: max or events/s; build first)
set -euo pipefail
shards=${1:-1}; rate=${2:-2000}; events=${3:-10000}
bin=${PALISADE:-$(cd "$(dirname "$0")/.." && pwd)/target/release/palisade}
work=$(mktemp -d)
# shellcheck source=perf/lib.sh
. "$(dirname "$0")/lib.sh"
echo "date $(date -u +%FT%TZ); $(uptime)"
start_pair_patiently "$shards" 'event_timeout = "30s"'
flight=(); [ "$rate" = max ] && flight=(--in-flight 2000)
perf record -q -e io_uring:io_uring_submit_req -p "$gw" -o "$work/u.data" >/dev/null 2>&1 &
rp=$!
sleep 0.5
"$bin" load --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench --rate "$rate" \
  "${flight[@]}" --connections 2 --mix es_OUT=100 --events "$events" --drain 1s --quiet --json "$work/r.json" >/dev/null
kill -INT "$rp"; wait "$rp" 2>/dev/null || true
n=$(json "$work/r.json" answered)
echo "shards $shards rate $rate: $n events; io_uring requests per event by opcode:"
perf script -i "$work/u.data" 2>/dev/null | grep -o 'opcode [A-Z_0-9]*' | sort | uniq -c | sort -nr |
  awk -v n="$n" '{ printf "  %-22s %8.3f\n", $3, $1 / n }'
