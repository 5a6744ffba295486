#!/usr/bin/env bash
# Self-test of the interop harnesses themselves (NOT of Palisade): starts the
# peers that are installed, drives them with the harness scripts, stops them.
# Useful after changing a harness, and as a smoke test that CI installed the
# peers correctly.
#
# usage: tests/interop/selftest.sh [WORKDIR]      (default: a mktemp -d under /tmp)
# env:   INTEROP_VENV (default WORKDIR/venv), SELFTEST_EJABBERD=1 to include ejabberd
# exit:  0 all ran checks passed; 77 nothing could run (SKIP lines say why); 1 a check failed.
# Prints "N passed, N failed, N skipped" last.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${1:-$(mktemp -d /tmp/interop-selftest.XXXXXX)}
mkdir -p "$WORK"
VENV=${INTEROP_VENV:-$WORK/venv}
pass=0; fail=0; skip=0
ok()   { echo "PASS: $*"; pass=$((pass+1)); }
bad()  { echo "FAIL: $*"; fail=$((fail+1)); }
skp()  { echo "SKIP: $*"; skip=$((skip+1)); }
cleanup() {
    "$HERE/prosody/stop.sh" "$WORK/prosody" >/dev/null 2>&1
    [ "${SELFTEST_EJABBERD:-0}" = 1 ] && "$HERE/ejabberd/stop.sh" "$WORK/ejabberd" >/dev/null 2>&1
    [ -n "${FR_PID:-}" ] && kill "$FR_PID" 2>/dev/null
    [ -n "${COMP_PID:-}" ] && kill "$COMP_PID" 2>/dev/null
}
trap cleanup EXIT

# --- slixmpp venv -------------------------------------------------------------
HAVE_SLIX=0
out=$("$HERE/slixmpp/setup.sh" "$VENV" 2>&1); rc=$?
if [ $rc -eq 0 ]; then HAVE_SLIX=1; ok "slixmpp setup ($(echo "$out" | tail -1))"
elif [ $rc -eq 77 ]; then skp "slixmpp: $(echo "$out" | grep '^SKIP' | tail -1)"
else bad "slixmpp setup rc=$rc: $out"; fi
PY="$VENV/bin/python"

# --- slixmpp against the fake receiver (development aid) ----------------------
if [ $HAVE_SLIX = 1 ]; then
    python3 "$HERE/slixmpp/fake_receiver.py" --name palisade.test=s3cret --log "$WORK/fake_receiver.log" \
        > "$WORK/fake_receiver.out" 2>&1 &
    FR_PID=$!
    for _ in $(seq 300); do grep -q '^PORT=' "$WORK/fake_receiver.out" 2>/dev/null && break; sleep 0.1; done
    FP=$(sed -n 's/^PORT=//p' "$WORK/fake_receiver.out")
    echo "<message from='palisade.test' to='gw.test' id='e1'><body>echo me</body></message>" > "$WORK/echo.xml"
    if "$PY" "$HERE/slixmpp/component.py" --port "$FP" --name palisade.test --secret s3cret \
        --send-file "$WORK/echo.xml" --expect "id=.e1" --timeout 60 > "$WORK/c1.out" 2>&1
    then ok "slixmpp -> fake receiver: echo"; else bad "slixmpp -> fake receiver: echo ($(tail -3 "$WORK/c1.out"))"; fi
    "$PY" "$HERE/slixmpp/component.py" --port "$FP" --name palisade.test --secret wrong \
        --expect-handshake-failure --expect-error not-authorized --timeout 60 > "$WORK/c2.out" 2>&1
    [ $? -eq 0 ] && ok "slixmpp -> fake receiver: wrong secret refused" || bad "slixmpp wrong secret ($(tail -3 "$WORK/c2.out"))"
    "$PY" "$HERE/slixmpp/component.py" --port "$FP" --name palisade.test --secret wrong --timeout 60 > "$WORK/c3.out" 2>&1
    [ $? -eq 3 ] && ok "slixmpp -> fake receiver: exit 3 on refusal" || bad "slixmpp exit 3 ($(tail -3 "$WORK/c3.out"))"
    kill "$FR_PID" 2>/dev/null; wait "$FR_PID" 2>/dev/null; FR_PID=
fi

# --- a real server: Prosody, and optionally ejabberd --------------------------
check_server() { # NAME START_DIR PEER
    local name=$1 dir=$2 peer=$3 out rc
    out=$("$HERE/$name/start.sh" "$dir" 2>&1); rc=$?
    if [ $rc -eq 77 ]; then skp "$name: $(echo "$out" | grep '^SKIP' | tail -1)"; return; fi
    if [ $rc -ne 0 ]; then bad "$name start rc=$rc: $out"; return; fi
    ok "$name started"
    # shellcheck disable=SC1091
    . "$dir/env"
    if python3 "$HERE/prosody/probe.py" --peer "$peer" --port "$COMPONENT_PORT" --secret "$SECRET" \
        --name "$COMPONENT" --domain "$DOMAIN" > "$dir/probe.out" 2>&1
    then ok "$name: raw probe ($(tail -1 "$dir/probe.out"))"; else bad "$name: raw probe ($(grep -B3 FAILED "$dir/probe.out" | tail -8))"; fi
    if [ $HAVE_SLIX = 1 ]; then
        echo "<iq type='get' id='v1' from='$COMPONENT' to='$DOMAIN'><query xmlns='jabber:iq:version'/></iq>" > "$dir/v1.xml"
        if "$PY" "$HERE/slixmpp/component.py" --port "$COMPONENT_PORT" --name "$COMPONENT" --secret "$SECRET" \
            --send-file "$dir/v1.xml" --expect "id=.v1" --timeout 60 > "$dir/s1.out" 2>&1
        then ok "$name: slixmpp component, version iq answered"; else bad "$name: slixmpp version ($(tail -3 "$dir/s1.out"))"; fi
        "$PY" "$HERE/slixmpp/component.py" --port "$COMPONENT_PORT" --name "$COMPONENT" --secret "x$SECRET" \
            --expect-handshake-failure --expect-error not-authorized --timeout 60 > "$dir/s2.out" 2>&1
        [ $? -eq 0 ] && ok "$name: slixmpp wrong secret -> not-authorized" || bad "$name: slixmpp wrong secret ($(tail -3 "$dir/s2.out"))"
        # client -> component: the component (slixmpp) must receive alice's message
        "$PY" "$HERE/slixmpp/component.py" --port "$COMPONENT_PORT" --name "$COMPONENT" --secret "$SECRET" \
            --expect "<body>hello from c2s</body>" --timeout 90 > "$dir/s3.out" 2>&1 &
        COMP_PID=$!
        for _ in $(seq 600); do grep -q '^ACTIVE' "$dir/s3.out" 2>/dev/null && break; sleep 0.1; done
        if python3 "$HERE/prosody/client_send.py" --port "$C2S_PORT" --jid "$JID" --password "$PASSWORD" \
            --to "$COMPONENT" --body "hello from c2s" --timeout 60 > "$dir/cs.out" 2>&1 && wait "$COMP_PID"
        then ok "$name: c2s client -> component delivered"; else bad "$name: c2s -> component ($(cat "$dir/cs.out"; tail -3 "$dir/s3.out"))"; fi
        kill "$COMP_PID" 2>/dev/null; COMP_PID=
    else
        if python3 "$HERE/prosody/client_send.py" --port "$C2S_PORT" --jid "$JID" --password "$PASSWORD" \
            --to "$COMPONENT" --body "hello" > "$dir/cs.out" 2>&1
        then ok "$name: c2s client login+send"; else bad "$name: c2s client ($(cat "$dir/cs.out"))"; fi
    fi
    "$HERE/$name/stop.sh" "$dir" && ok "$name stopped" || bad "$name stop"
}
check_server prosody "$WORK/prosody" prosody
if [ "${SELFTEST_EJABBERD:-0}" = 1 ]; then check_server ejabberd "$WORK/ejabberd" ejabberd; fi

echo "workdir: $WORK"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -gt 0 ] && exit 1
[ $pass -eq 0 ] && exit 77
exit 0
