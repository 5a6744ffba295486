# Shared by perf/bench-gateway.sh and perf/profile.sh: start a simulator and a gateway on
# loopback, measure a process's CPU and memory from /proc, stop everything on exit.
# Source it; it expects $bin (the palisade binary) and $work (a scratch directory).

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'cleanup; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU seconds (user + system) of a process: fields 14 and 15 of /proc/PID/stat.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"; }
rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# A number from the load generator's --json report.
json() { sed -n "s/^ *\"$2\": \([0-9.]*\),*$/\1/p" "$1" | head -1; }

# start_pair SHARDS "SIM FLAGS" "TIMERS TOML" [PROFILE]: a simulator and a gateway wired to it,
# the simulator assigned PROFILE: `Wall` (the default: es_OUT messages only, one wait-mode
# step, what the benchmark measures) or `SystemDefaultComplianceProfile` (logins, logouts,
# messages and room events, for workload profiles). Sets $gw (gateway pid), $sim, $router_port,
# $admin_port. Optional globals add lines: $pair_listen_extra to [listen], $pair_top_extra as
# tables after it (before [timers]), $pair_limits_extra to [limits], $pair_server_extra to the
# [[server]].
start_pair() {
  local shards=$1 sim_flags=$2 timers=$3 profile=${4:-Wall} sim_port
  sim_port=$(free_port)
  router_port=$(free_port)
  admin_port=$(free_port)
  # shellcheck disable=SC2086
  "$bin" sim --listen "127.0.0.1:$sim_port" --secret bench --quiet $sim_flags >"$work/sim.out" 2>"$work/sim.err" &
  pids+=($!)
  sim=$!
  cat >"$work/gw.toml" <<TOML
[gateway]
name = "palisade.example.com"
domain = "example.com"
shards = $shards
admin = "127.0.0.1:$admin_port"
[listen]
routers = "127.0.0.1:$router_port"
${pair_listen_extra:-}
${pair_top_extra:-}
[timers]
$timers
[limits]
max_in_flight = 300000
queue_per_server = 300000
${pair_limits_extra:-}
[[router]]
name = "imp1.example.com"
secret = "bench"
[[profile]]
name = "Wall"
events = [ { event = "es_OUT", packet = "message", handling = "bounce" } ]
[[server]]
name = "cs1"
host = "127.0.0.1"
port = $sim_port
password = "bench"
profile = "$profile"
${pair_server_extra:-}
TOML
  "$bin" run --config "$work/gw.toml" 2>"$work/gw.log" &
  gw=$!
  pids+=($gw)
  local want=$shards
  for _ in $(seq 200); do
    [ "$(grep -c 'is ACTIVE' "$work/gw.log" 2>/dev/null || true)" -ge "$want" ] && return 0
    sleep 0.05
  done
  echo "the gateway did not connect to the simulator:" >&2
  cat "$work/gw.log" >&2
  return 1
}

# start_pair_patiently SHARDS "TIMERS TOML": start_pair up to three times, since on a busy
# machine the gateway can take longer than start_pair's 10 s to connect; exits on the third
# failure with what it said.
start_pair_patiently() {
  local try
  for try in 1 2 3; do
    start_pair "$1" "" "$2" 2>"$work/start.err" && return 0
    stop_all
  done
  cat "$work/start.err" >&2
  exit 1
}

# warm_up: 20,000 closed-loop events, so that buffers, tables and connections reach their
# steady state before anything is counted.
warm_up() {
  "$bin" load --connect "127.0.0.1:$router_port" --name imp1.example.com --secret bench --rate max \
    --in-flight 2000 --connections 2 --mix es_OUT=100 --events 20000 --drain 1s --quiet >/dev/null 2>&1 || true
}

stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
