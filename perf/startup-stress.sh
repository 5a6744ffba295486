#!/usr/bin/env bash
# Starts the gateway K times and counts the starts that never listen: a start-up stall finder.
#
#   perf/startup-stress.sh K [SHARDS] [WAIT_S]
#
# Each start writes a minimal configuration (no servers, the router and admin ports on free
# loopback ports), runs `palisade run`, waits up to WAIT_S seconds (default 5, or 60 under
# valgrind) for the router port to listen, then sends SIGTERM and waits up to STOP_S seconds
# (default 10, or 60 under valgrind) for the process to end. A start that never listened is a
# *stall*: before anything else touches it, the script keeps the log and, per thread, its
# name, /proc wchan, syscall and kernel stack (attaching a debugger ended such a stall, so
# /proc goes first); it then sends SIGTERM. A process that does not end on SIGTERM within
# STOP_S is a *hang*: its /proc state is kept again, then `gdb ... thread apply all bt`, then
# SIGKILL. Everything kept goes to $OUT (default /tmp/startup-stress.<pid>).
#
# Environment: PALISADE (the binary, default target/release/palisade); VALGRIND=none or
# VALGRIND=callgrind runs each start under `valgrind --tool=...` (valgrind serialises the
# threads, which makes the start-up race likelier); PARALLEL=P runs P loops side by side
# (default 1), each doing K starts.
set -u
k=${1:?usage: perf/startup-stress.sh K [SHARDS] [WAIT_S]}
shards=${2:-1}
bin=${PALISADE:-target/release/palisade}
vg=${VALGRIND:-}
if [ -n "$vg" ]; then wait_s=${3:-60}; stop_s=${STOP_S:-60}; else wait_s=${3:-5}; stop_s=${STOP_S:-10}; fi
parallel=${PARALLEL:-1}
out=${OUT:-/tmp/startup-stress.$$}
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() { [ -n "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]; }
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# The process's threads as the kernel sees them (no ptrace).
snapshot() {
  local pid=$1 t
  for t in /proc/"$pid"/task/*; do
    echo "== task ${t##*/} $(cat "$t/comm" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)"
    echo "syscall: $(cat "$t/syscall" 2>/dev/null)"
    cat "$t/stack" 2>/dev/null
  done
}
# The gateway's own pid: under valgrind the child of `valgrind` is the same process (exec).
one_loop() {
  local loop=$1 i dir router admin pid started stalls=0 hangs=0 starts=0
  for i in $(seq "$k"); do
    dir=$out/l$loop-s$i
    mkdir -p "$dir"
    router=$(free_port)
    admin=$(free_port)
    cat >"$dir/gw.toml" <<TOML
[gateway]
name = "palisade.example.com"
domain = "example.com"
shards = $shards
admin = "127.0.0.1:$admin"
[listen]
routers = "127.0.0.1:$router"
[[router]]
name = "imp1.example.com"
secret = "stress"
TOML
    if [ -n "$vg" ]; then
      local extra=()
      [ "$vg" = callgrind ] && extra=(--callgrind-out-file="$dir/callgrind.out")
      valgrind --tool="$vg" -q "${extra[@]}" "$bin" run --config "$dir/gw.toml" 2>"$dir/gw.log" &
    else
      "$bin" run --config "$dir/gw.toml" 2>"$dir/gw.log" &
    fi
    pid=$!
    starts=$((starts + 1))
    started=no
    for _ in $(seq $((wait_s * 20))); do
      if listening "$router"; then started=yes; break; fi
      alive "$pid" || break
      sleep 0.05
    done
    if [ "$started" = no ] && alive "$pid"; then
      stalls=$((stalls + 1))
      snapshot "$pid" >"$dir/stall.proc"
      echo "$(date -u +%T) loop $loop start $i: STALL (pid $pid), kept in $dir" >&2
    elif [ "$started" = no ]; then
      echo "$(date -u +%T) loop $loop start $i: exited before listening, kept in $dir" >&2
    fi
    kill -TERM "$pid" 2>/dev/null
    local ended=no
    for _ in $(seq $((stop_s * 20))); do
      alive "$pid" || { ended=yes; break; }
      sleep 0.05
    done
    if [ "$ended" = no ]; then
      hangs=$((hangs + 1))
      snapshot "$pid" >"$dir/hang.proc"
      timeout 60 gdb -p "$pid" -batch -ex 'thread apply all bt' >"$dir/hang.gdb" 2>&1
      echo "$(date -u +%T) loop $loop start $i: DID NOT END ON SIGTERM within ${stop_s}s (pid $pid), kept in $dir" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    # Keep only what tells a story.
    [ "$started" = yes ] && [ "$ended" = yes ] && rm -rf "$dir"
  done
  echo "$loop $starts $stalls $hangs" >"$out/loop$loop.count"
}

echo "startup-stress: $k start(s) x $parallel loop(s), $shards shard(s), ${vg:+valgrind --tool=$vg, }wait ${wait_s}s, stop ${stop_s}s, $bin"
echo "begin: $(date -u)  $(uptime)"
for l in $(seq "$parallel"); do one_loop "$l" & done
wait
total=$(cat "$out"/loop*.count | awk '{ s += $2; st += $3; h += $4 } END { print s, st, h }')
read -r starts stalls hangs <<<"$total"
echo "end: $(date -u)  $(uptime)"
echo "starts=$starts stalled=$stalls did_not_end_on_sigterm=$hangs (kept in $out)"
