#!/usr/bin/env bash
# Stop the ejabberd started by start.sh DIR (RPC "stop", then SIGTERM/SIGKILL of
# the recorded beam PID). Idempotent. usage: stop.sh DIR [TIMEOUT (20)]
set -uo pipefail
if [ $# -lt 1 ]; then echo "usage: $0 DIR [TIMEOUT]" >&2; exit 2; fi
DIR=$(cd "$1" 2>/dev/null && pwd) || exit 0
TIMEOUT=${2:-20}
[ -s "$DIR/node" ] || exit 0
NODE=$(cat "$DIR/node")
EJCTL=$(command -v ejabberdctl || echo /usr/sbin/ejabberdctl)
PID=$(cat "$DIR/ejabberd.pid" 2>/dev/null || true)
if [ -z "$PID" ]; then
    # Still booting (no pidfile yet): find the beam.smp whose argv carries our
    # unique "-sname NODE" (start.sh picks a random node name per instance).
    for p in /proc/[0-9]*; do
        if tr '\0' '\n' < "$p/cmdline" 2>/dev/null | grep -qxF -- "$NODE"; then
            case $(tr '\0' ' ' < "$p/cmdline") in *beam.smp*) PID=${p#/proc/}; break;; esac
        fi
    done
fi
LAUNCHER=$(cat "$DIR/launcher.pid" 2>/dev/null || true)
alive() { { [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; } || { [ -n "$LAUNCHER" ] && kill -0 "$LAUNCHER" 2>/dev/null; }; }
alive || exit 0
"$EJCTL" --config-dir "$DIR" --config "$DIR/ejabberd.yml" --logs "$DIR/logs" --spool "$DIR/spool" \
    --node "$NODE" stop >/dev/null 2>&1 || true
deadline=$(( $(date +%s) + TIMEOUT ))
while alive; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "stop.sh: ejabberd still running after ${TIMEOUT}s; killing $PID" >&2
        [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
        [ -n "$LAUNCHER" ] && kill -TERM "$LAUNCHER" 2>/dev/null
        break
    fi
    sleep 0.2
done
exit 0
