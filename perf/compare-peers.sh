#!/usr/bin/env bash
# Palisade and ejabberd side by side, in one run: the CPU each server spends on the same
# event/answer exchange, and their ratio.
#
# The exchange. One "exchange" is four stanzas through the server under test:
#   Palisade: a router (`palisade load`) sends a ~560-byte wait-mode es_OUT event (a chat
#     message inside <event/>), the gateway sends the request to a compliance server
#     (`palisade sim`, one wait step), the server answers, the gateway sends the verdict back.
#   ejabberd (Debian's package, started by tests/interop/ejabberd/start.sh on loopback):
#     component A sends the same event bytes as an iq set to component B through ejabberd's
#     XEP-0114 component ports (perf/peer_exchange.py drives both), ejabberd routes it to B,
#     B answers with an iq result, ejabberd routes the result back to A.
# Both servers receive two stanzas and send two per exchange, on plain TCP over loopback, one
# connection per side, with the same pacing: an open loop at RATE exchanges/s and a closed loop
# with WINDOW exchanges in flight. ejabberd only routes (it parses, checks the addresses and
# re-serializes each stanza); Palisade also reads the event, keys it, keeps it waiting with a
# timer and builds the request and the verdict, so the comparison favours ejabberd in the
# work done. Both run their defaults (Palisade: SHARDS shards; ejabberd: the Erlang VM's
# schedulers, one per core, which spin a little before sleeping: that is part of its cost).
# CPU = user + system of the server's process from /proc/PID/stat (all threads) over the run;
# the drivers' CPU is not counted. Idle CPU over the same time is measured and shown apart.
#
#   perf/compare-peers.sh [EVENTS] [RATE] [WINDOW] [SHARDS]   (defaults: 30000 2000 200 2)
#
# Build first: cargo build --release. Needs ejabberd (apt-get install ejabberd) and root (the
# ejabberd control script drops to the ejabberd user).
set -euo pipefail
events=${1:-30000}
rate=${2:-2000}
window=${3:-200}
shards=${4:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PALISADE:-$root/target/release/palisade}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release" >&2; exit 2; }
work=$(mktemp -d /tmp/compare-peers.XXXXXX)
chmod 755 "$work"
# shellcheck source=perf/lib.sh
. "$root/perf/lib.sh"
ejdir=$work/ejabberd
trap 'cleanup; "$root/tests/interop/ejabberd/stop.sh" "$ejdir" 10 >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

echo "date $(date -u +%FT%TZ); $(uptime)"
echo "$events exchanges per scenario; open loop $rate/s, closed loop $window in flight; Palisade $shards shard(s)"
start_pair_patiently "$shards" 'event_timeout = "30s"'
secret=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
EJABBERD_COMPONENT=a.localhost EJABBERD_COMPONENT2=b.localhost EJABBERD_LOGLEVEL=warning \
  EJABBERD_SECRET=$secret "$root/tests/interop/ejabberd/start.sh" "$ejdir" >"$work/ej.env"
# shellcheck disable=SC1091
. "$work/ej.env"
ej=$PID
echo "ejabberd $(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null || echo '?'), beam pid $ej; gateway pid $gw"

pal_run() { # $1 rate flags...
  "$bin" load --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench \
    --connections 1 --mix es_OUT=100 --events "$events" --drain 2s --quiet --json "$work/pal.json" "$@" >/dev/null
  json "$work/pal.json" answered
}
ej_run() {
  python3 "$root/perf/peer_exchange.py" "$COMPONENT_PORT" "$COMPONENT2_PORT" "$secret" a.localhost b.localhost \
    "$events" "$@" >"$work/ej.json"
  sed -n 's/.*"answered": \([0-9]*\).*/\1/p' "$work/ej.json"
}
# measure PID CMD...: prints "answered cpu_seconds wall_seconds"
measure() {
  local p=$1 c0 c1 t0 t1 n
  shift
  c0=$(cpu "$p"); t0=$(date +%s.%N)
  n=$("$@")
  c1=$(cpu "$p"); t1=$(date +%s.%N)
  echo "$n $(awk -v a="$c1" -v b="$c0" 'BEGIN { print a - b }') $(awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }')"
}
idle() { # PID SECONDS: CPU seconds per second while idle
  local c0 c1
  c0=$(cpu "$1"); sleep "$2"; c1=$(cpu "$1")
  awk -v a="$c1" -v b="$c0" -v s="$2" 'BEGIN { print (a - b) / s }'
}
# Warm-up, both.
pal_run --rate max --in-flight "$window" >/dev/null
ej_run --window "$window" >/dev/null
pal_idle=$(idle "$gw" 3)
ej_idle=$(idle "$ej" 3)

printf '\n%-22s %-9s %9s %10s %13s %13s %16s\n' scenario server exchanges "per s" "CPU us/exch" "us/message" "idle-corrected"
for scenario in "open $rate/s" "closed $window"; do
  case $scenario in
    open*) pflags=(--rate "$rate"); eflags=(--rate "$rate") ;;
    closed*) pflags=(--rate max --in-flight "$window"); eflags=(--window "$window") ;;
  esac
  read -r pn pc pw < <(measure "$gw" pal_run "${pflags[@]}")
  read -r en ec ew < <(measure "$ej" ej_run "${eflags[@]}")
  for row in "Palisade $pn $pc $pw $pal_idle" "ejabberd $en $ec $ew $ej_idle"; do
    # shellcheck disable=SC2086
    set -- $row
    awk -v s="$scenario" -v who="$1" -v n="$2" -v c="$3" -v w="$4" -v i="$5" 'BEGIN {
      printf "%-22s %-9s %9d %10.0f %13.2f %13.2f %16.2f\n", s, who, n, n / w, c / n * 1e6, c / n * 1e6 / 4, (c - i * w) / n * 1e6 }'
  done
  awk -v s="$scenario" -v pn="$pn" -v pc="$pc" -v en="$en" -v ec="$ec" 'BEGIN {
    printf "%-22s ratio ejabberd / Palisade, CPU per exchange: %.1f\n", s, (ec / en) / (pc / pn) }'
done
echo
echo "idle CPU: Palisade $pal_idle s/s, ejabberd $ej_idle s/s (idle-corrected = CPU minus idle rate x wall time)"
echo "date $(date -u +%FT%TZ); $(uptime)"
