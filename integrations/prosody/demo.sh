#!/usr/bin/env bash
# An ethical wall in a real Prosody, on loopback, with throwaway everything:
#   a private Prosody with mod_palisade (VirtualHost localhost, MUC conference.localhost,
#   users alice, bob, carol), the Palisade gateway dialing its component port, the bundled
#   simulator as the compliance server with a wall between trading (alice) and research (bob),
#   and scripted clients. Prints what the users saw and what the archive recorded.
#
# usage: integrations/prosody/demo.sh [WORKDIR]     (default: a fresh directory under /tmp)
# env:   PALISADE=path/to/palisade (default: the newer of target/release and target/debug)
# exit:  0 the wall held and allowed traffic flowed; 1 it did not; 77 something is missing.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
missing=()
command -v prosody >/dev/null 2>&1 || missing+=("Prosody (Debian: apt-get install prosody)")
command -v python3 >/dev/null 2>&1 || missing+=("python3 (the scripted clients)")
PALISADE=${PALISADE:-}
if [ -z "$PALISADE" ]; then
    for p in "$ROOT/target/release/palisade" "$ROOT/target/debug/palisade"; do
        if [ -x "$p" ] && { [ -z "$PALISADE" ] || [ "$p" -nt "$PALISADE" ]; }; then PALISADE=$p; fi
    done
fi
[ -n "$PALISADE" ] && [ -x "$PALISADE" ] || missing+=("the palisade binary (cargo build --release)")
if [ ${#missing[@]} -gt 0 ]; then
    echo "demo.sh: cannot run the Prosody demo; missing:"
    for m in "${missing[@]}"; do echo "  - $m"; done
    echo "Without Prosody, 'palisade demo' shows the same wall with a simulated router."
    exit 77
fi

WORK=${1:-$(mktemp -d /tmp/palisade-prosody-demo.XXXXXX)}
mkdir -p "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    "$ROOT/tests/interop/prosody/stop.sh" "$WORK/prosody" >/dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== Prosody with mod_palisade ($WORK/prosody)"
MODULE_LINES='    modules_enabled = { "palisade" }'
PROSODY_PLUGIN_PATHS="\"$HERE\"" \
PROSODY_VHOST_LINES="$MODULE_LINES" \
PROSODY_MUC="conference.localhost" \
PROSODY_MUC_LINES="$MODULE_LINES
    muc_room_locking = false" \
PROSODY_EXTRA_USERS="bob:bob-pw carol:carol-pw" \
PROSODY_LOG_LEVEL=${DEMO_PROSODY_LOG_LEVEL:-info} \
    "$ROOT/tests/interop/prosody/start.sh" "$WORK/prosody" > "$WORK/prosody.env"
# shellcheck disable=SC1091
. "$WORK/prosody.env"

echo "== the compliance server: palisade sim with a wall between trading and research"
cat > "$WORK/wall.toml" <<'TOML'
[groups]
trading  = ["alice@localhost", "trading-*@conference.localhost"]
research = ["bob@localhost", "research-*@conference.localhost"]

[[wall]]
name = "trading/research"
between = ["trading", "research"]
TOML
CS_PORT=$(free_port)
"$PALISADE" sim --listen "127.0.0.1:$CS_PORT" --secret demo-cs-password \
    --rules "$WORK/wall.toml" --archive "$WORK/archive.jsonl" --quiet > "$WORK/sim.out" 2>&1 &
PIDS+=($!)

echo "== the gateway, dialing Prosody's component port $COMPONENT_PORT"
cat > "$WORK/palisade.toml" <<TOML
[gateway]
name = "$COMPONENT"
domain = "localhost"
shards = 1
[listen]
routers = "127.0.0.1:$(free_port)"
[[router]]
name = "localhost"
secret = "$SECRET"
connect = "127.0.0.1:$COMPONENT_PORT"
[[profile]]
name = "EthicalWall"
events = [
  { event = "e_SESSION", fire_and_forget = true, handling = "pass" },
  { event = "es_END", fire_and_forget = true, handling = "pass" },
  { event = "es_OUT", packet = "message", handling = "bounce" },
  { event = "onBeforeJoin", handling = "bounce" },
  { event = "onBeforeSend", handling = "bounce" },
  { event = "onBeforeInvite", handling = "bounce" },
]
[[server]]
name = "cs1"
host = "127.0.0.1"
port = $CS_PORT
password = "demo-cs-password"
profile = "EthicalWall"
TOML
"$PALISADE" run --config "$WORK/palisade.toml" > "$WORK/palisade.out" 2> "$WORK/palisade.log" &
PIDS+=($!)

deadline=$(( $(date +%s) + 20 ))
until [ "$(grep -c 'pair(s) to send' "$LOG" 2>/dev/null)" -ge 2 ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "demo.sh: the module never heard from the gateway; logs in $WORK" >&2
        tail -n 20 "$LOG" "$WORK/palisade.log" >&2
        exit 1
    fi
    sleep 0.1
done
grep 'pair(s) to send' "$LOG" | sed 's/^/  prosody: /'

echo "== scripted users"
status=0
python3 "$HERE/demo_clients.py" --port "$C2S_PORT" || status=1
sleep 0.3 # the archive is flushed within 100 ms

echo "== what the compliance archive recorded ($WORK/archive.jsonl)"
python3 - "$WORK/archive.jsonl" <<'PY'
import collections, json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
counts = collections.Counter((r.get("event"), r.get("answer"), r.get("rule") or "") for r in rows)
for (event, answer, rule), n in sorted(counts.items()):
    print("  %-14s %-8s %3d  %s" % (event, answer, n, rule))
for r in rows:
    if r.get("rule"):
        body = re.search(r"<body>(.*?)</body>", r.get("stanza", ""))
        print("  blocked: %s %s key=%s%s" % (r.get("event"), r.get("answer"), r.get("key"),
              (" body=%r" % body.group(1)) if body else ""))
PY
if [ $status -eq 0 ]; then echo "RESULT: the wall held; allowed messages arrived"; else echo "RESULT: FAILED (logs in $WORK)"; fi
exit $status
