#!/usr/bin/env bash
# What TLS costs the gateway: perf/bench-gateway.sh's closed-loop (`max`) and open-loop
# scenarios, plain and with TLS on both legs (the load generator dials the gateway's
# routers_tls; the gateway dials the simulator with tls = true), side by side in one run.
# Reports events/s, p50/p99 and the gateway's own CPU per event (user + sys from /proc).
#
#   perf/bench-tls.sh [SHARDS] [OPEN_RATE] [DURATION]     (defaults: 1 50000 10s)
#
# Needs openssl (for a throwaway CA) and python3 (free ports). Build first: cargo build --release.
set -euo pipefail

shards=${1:-1}
open_rate=${2:-50000}
duration=${3:-10s}
bin=${PALISADE:-$(cd "$(dirname "$0")/.." && pwd)/target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
# shellcheck source=perf/lib.sh
. "$(dirname "$0")/lib.sh"

# A throwaway CA, and one certificate for "localhost" that both the gateway and the
# simulator present.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/key.pem" -out "$work/csr.pem" 2>/dev/null
openssl x509 -req -in "$work/csr.pem" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile <(printf "subjectAltName=DNS:localhost") -out "$work/cert.pem" 2>/dev/null

report() { # $1 name, $2 json, $3 cpu seconds
  local n eps
  n=$(json "$2" answered)
  eps=$(json "$2" answered_per_s)
  awk -v name="$1" -v n="$n" -v eps="$eps" -v c="$3" \
      -v p50="$(json "$2" p50)" -v p99="$(json "$2" p99)" 'BEGIN {
    printf "%-10s %9d events  %9.0f events/s  p50 %7.2f ms  p99 %7.2f ms  gateway CPU %.2f us/event\n",
      name, n, eps, p50 / 1000, p99 / 1000, (n > 0 ? c / n * 1e6 : 0) }'
}

# start MODE (plain or tls): a simulator and a gateway wired to it (lib.sh's start_pair, with
# the TLS lines in tls mode); sets $gw and $load_port.
start() {
  local mode=$1 tls_port sim_tls=""
  pair_listen_extra="" pair_top_extra="" pair_server_extra=""
  if [ "$mode" = tls ]; then
    tls_port=$(free_port)
    sim_tls="--tls-cert $work/cert.pem --tls-key $work/key.pem"
    pair_listen_extra="routers_tls = \"127.0.0.1:$tls_port\""
    pair_top_extra="[tls]
cert = \"$work/cert.pem\"
key = \"$work/key.pem\""
    pair_server_extra="tls = true
ca = \"$work/ca.pem\"
tls_name = \"localhost\""
  fi
  start_pair "$shards" "$sim_tls" 'event_timeout = "30s"'
  load_port=$router_port
  [ "$mode" = tls ] && load_port=$tls_port
  return 0
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); gateway shards: $shards"
for mode in plain tls; do
  tls_flags=()
  [ "$mode" = tls ] && tls_flags=(--tls-ca "$work/ca.pem" --tls-name localhost)
  start "$mode"
  before=$(cpu "$gw")
  "$bin" load --connect "127.0.0.1:$load_port" --name imp1.example.com --secret bench --rate max \
    --in-flight 2000 --connections 2 --mix es_OUT=100 --duration "$duration" --quiet \
    "${tls_flags[@]}" --json "$work/max.json" >/dev/null
  report "max/$mode" "$work/max.json" "$(awk -v a="$(cpu "$gw")" -v b="$before" 'BEGIN { print a - b }')"
  before=$(cpu "$gw")
  "$bin" load --connect "127.0.0.1:$load_port" --name imp1.example.com --secret bench --rate "$open_rate" \
    --connections 2 --mix es_OUT=100 --duration "$duration" --quiet \
    "${tls_flags[@]}" --json "$work/open.json" >/dev/null
  report "open/$mode" "$work/open.json" "$(awk -v a="$(cpu "$gw")" -v b="$before" 'BEGIN { print a - b }')"
  stop_all
done
