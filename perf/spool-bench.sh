#!/usr/bin/env bash
# The spool's costs, on loopback with the release binary:
#   1. no outage, spool off vs on (nothing is spooled): gateway CPU per event and latency at a
#      fixed rate, alternated off/on/off/on so that drift of the machine hits both;
#   2. every event spooled (its server unreachable, a fire-and-forget step): latency at a fixed
#      rate against the same events without a spool (notifications dropped), i.e. what waiting
#      for the group commit's fdatasync adds;
#   3. replay: N records spooled, the gateway restarted (start-up read time), the server back:
#      records replayed per second.
# Usage: perf/spool-bench.sh [RATE] [DURATION] [REPLAY_RECORDS]
set -euo pipefail

rate=${1:-5000}
duration=${2:-15s}
records=${3:-200000}
bin=${PALISADE:-$(cd "$(dirname "$0")/.." && pwd)/target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
. "$(dirname "$0")/lib.sh"

sim_port=$(free_port)
router_port=$(free_port)
admin_port=$(free_port)

# gateway_config PROFILE SPOOL(on|off): Wall (one wait-mode es_OUT step) or Archive (the
# same step fire-and-forget, handling pass).
gateway_config() {
  local spool=""
  [ "$2" = on ] && spool="[spool]
dir = \"$work/spool\"
max_bytes = 4294967296"
  cat >"$work/gw.toml" <<TOML
[gateway]
name = "palisade.example.com"
domain = "example.com"
shards = 1
admin = "127.0.0.1:$admin_port"
[listen]
routers = "127.0.0.1:$router_port"
[timers]
event_timeout = "30s"
outage_window = "1h"
reconnect_min = "20ms"
reconnect_max = "200ms"
[limits]
max_in_flight = 300000
queue_per_server = 300000
$spool
[[router]]
name = "imp1.example.com"
secret = "bench"
[[profile]]
name = "Wall"
events = [ { event = "es_OUT", packet = "message", handling = "bounce" } ]
[[profile]]
name = "Archive"
events = [ { event = "es_OUT", packet = "message", handling = "pass", fire_and_forget = true } ]
[[server]]
name = "cs1"
host = "127.0.0.1"
port = $sim_port
password = "bench"
profile = "$1"
TOML
}

start_sim() {
  "$bin" sim --listen "127.0.0.1:$sim_port" --secret bench --quiet >"$work/sim.out" 2>"$work/sim.err" &
  sim=$!
  pids+=("$sim")
}

# start_gateway [WAIT_FOR]: runs the gateway, waits for the log line WAIT_FOR (default: the
# router listener).
start_gateway() {
  : >"$work/gw.log"
  "$bin" run --config "$work/gw.toml" 2>"$work/gw.log" &
  gw=$!
  pids+=("$gw")
  local want=${1:-Listening for routers}
  for _ in $(seq 400); do
    grep -q "$want" "$work/gw.log" && return 0
    sleep 0.05
  done
  echo "the gateway did not log '$want':" >&2
  cat "$work/gw.log" >&2
  return 1
}

stop_gateway() { kill "$gw"; wait "$gw" 2>/dev/null || true; }

load() { # $1 json out, then extra flags
  local out=$1
  shift
  "$bin" load --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench \
    --connections 2 --mix es_OUT=100 --quiet --json "$out" "$@" >/dev/null
}

report() { # $1 name, $2 json, $3 cpu seconds
  awk -v name="$1" -v n="$(json "$2" answered)" -v c="$3" \
      -v p50="$(json "$2" p50)" -v p99="$(json "$2" p99)" -v p999="$(json "$2" p999)" 'BEGIN {
    printf "%-22s %8d events  p50 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  gateway CPU %.2f us/event\n",
      name, n, p50 / 1000, p99 / 1000, p999 / 1000, (n > 0 ? c / n * 1e6 : 0) }'
}

metric() { "$bin" status --help >/dev/null 2>&1; python3 - "$admin_port" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in body.splitlines():
    if line.startswith(sys.argv[2] + " "):
        print(line.split()[1]); break
else:
    print("nan")
PY
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); rate $rate/s for $duration"

phases=${PHASES:-123}
if [[ $phases == *1* ]]; then
echo "== 1. no outage: spool off vs on (one wait-mode step, the simulator answers)"
start_sim
for round in 1 2; do
  for spool in off on; do
    rm -rf "$work/spool"
    gateway_config Wall "$spool"
    start_gateway "is ACTIVE"
    before=$(cpu "$gw")
    load "$work/l.json" --rate "$rate" --duration "$duration"
    report "spool $spool (round $round)" "$work/l.json" "$(awk -v a="$(cpu "$gw")" -v b="$before" 'BEGIN { print a - b }')"
    stop_gateway
  done
done
stop_all
fi

if [[ $phases == *2* ]]; then
echo "== 2. every event spooled (server unreachable, fire-and-forget) vs no spool (dropped)"
for spool in off on; do
  rm -rf "$work/spool"
  gateway_config Archive "$spool"
  start_gateway
  before=$(cpu "$gw")
  load "$work/l.json" --rate "$rate" --duration "$duration"
  report "unreachable, spool $spool" "$work/l.json" "$(awk -v a="$(cpu "$gw")" -v b="$before" 'BEGIN { print a - b }')"
  stop_gateway
done
fi

[[ $phases == *3* ]] || exit 0
echo "== 3. replay of $records records"
rm -rf "$work/spool"
gateway_config Archive on
start_gateway
echo "gateway RSS at start, empty spool: $(rss_mib "$gw") MiB"
t0=$(date +%s.%N)
load "$work/l.json" --rate max --in-flight 2000 --events "$records" --drain 5s
t1=$(date +%s.%N)
echo "spooled $(json "$work/l.json" answered) records in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; spool on disk: $(du -sh "$work/spool" | cut -f1)"
stop_gateway
start_gateway
grep -o "spool: .*" "$work/gw.log" | head -2
echo "gateway RSS after reading the spool: $(rss_mib "$gw") MiB"
start_sim
for _ in $(seq 400); do grep -q "is ACTIVE" "$work/gw.log" && break; sleep 0.01; done
t0=$(date +%s.%N)
before=$(cpu "$gw")
sim_before=$(cpu "$sim")
while :; do
  left=$(metric palisade_spool_records)
  [ "$left" = 0 ] && break
  sleep 0.05
done
t1=$(date +%s.%N)
c=$(awk -v a="$(cpu "$gw")" -v b="$before" 'BEGIN { print a - b }')
sc=$(awk -v a="$(cpu "$sim")" -v b="$sim_before" 'BEGIN { print a - b }')
awk -v n="$records" -v a="$t0" -v b="$t1" -v c="$c" -v sc="$sc" 'BEGIN {
  printf "replayed %d records in %.2f s: %.0f records/s, gateway CPU %.2f us/record (%.0f %% of a core), simulator CPU %.2f us/record (%.0f %%)\n",
    n, b - a, n / (b - a), c / n * 1e6, c / (b - a) * 100, sc / n * 1e6, sc / (b - a) * 100 }'
stop_all
