#!/usr/bin/env bash
# Stop the Prosody started by start.sh DIR. Idempotent: exit 0 if nothing runs.
# Only signals the PID recorded in DIR (never a process name).
# usage: stop.sh DIR [TIMEOUT_SECONDS (default 10)]
set -uo pipefail
if [ $# -lt 1 ]; then echo "usage: $0 DIR [TIMEOUT]" >&2; exit 2; fi
DIR=$1
TIMEOUT=${2:-10}
PID=""
for f in "$DIR/launcher.pid" "$DIR/prosody.pid"; do
    if [ -s "$f" ]; then PID=$(cat "$f"); break; fi
done
if [ -z "$PID" ] || ! kill -0 "$PID" 2>/dev/null; then
    rm -f "$DIR/launcher.pid"
    exit 0
fi
kill -TERM "$PID" 2>/dev/null
deadline=$(( $(date +%s) + TIMEOUT ))
while kill -0 "$PID" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "stop.sh: prosody $PID ignored SIGTERM for ${TIMEOUT}s; sending SIGKILL" >&2
        kill -KILL "$PID" 2>/dev/null
        break
    fi
    sleep 0.1
done
rm -f "$DIR/launcher.pid"
exit 0
