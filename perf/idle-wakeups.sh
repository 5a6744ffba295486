#!/bin/bash
# Idle wake-ups of a gateway: context switches over 10 s (every thread, from /proc) and the
# syscalls of the next 10 s (strace -c -f). Nothing connects to it.
# usage: perf/idle-wakeups.sh BINARY LABEL SHARDS ROUTERPORT
BIN=$1; LABEL=$2; SHARDS=$3; RP=$4
cat > ${TMPDIR:-/tmp}/$LABEL.toml <<EOT
[gateway]
name = "palisade.example.com"
domain = "example.com"
shards = $SHARDS
admin = "127.0.0.1:$((RP+1))"

[listen]
routers = "127.0.0.1:$RP"
compliance = "127.0.0.1:$((RP+2))"

[[router]]
name = "imp1.example.com"
secret = "router-secret"
EOT
$BIN run --config ${TMPDIR:-/tmp}/$LABEL.toml 2>${TMPDIR:-/tmp}/$LABEL.log &
PID=$!
sleep 4
ctx() { cat /proc/$PID/task/*/status | awk '/^voluntary_ctxt_switches/{v+=$2} /^nonvoluntary_ctxt_switches/{n+=$2} END{print v, n}'; }
A=$(ctx); sleep 10; B=$(ctx)
echo "$LABEL threads=$(ls /proc/$PID/task | wc -l) ctxt(vol nonvol) before=[$A] after10s=[$B]"
timeout -s INT 10 strace -c -f -p $PID -o ${TMPDIR:-/tmp}/$LABEL.strace >/dev/null 2>&1
kill -TERM $PID; wait $PID; echo "$LABEL exit=$?"
head -20 ${TMPDIR:-/tmp}/$LABEL.strace
