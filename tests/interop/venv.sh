#!/usr/bin/env bash
# Create (or reuse) a venv holding the pinned Python packages of a requirements file, for the
# test tools that drive real peers (slixmpp) or check output with real parsers
# (prometheus-client).
# usage: venv.sh REQUIREMENTS VENV_DIR PACKAGE MODULE
#        PACKAGE is the distribution pinned as PACKAGE==X in REQUIREMENTS, MODULE what must
#        import; idempotent, safe to run before every test run.
# env:   PYTHON (default python3)
# exit:  0 ready ("READY VENV_DIR PACKAGE X" on stdout), 77 "SKIP: ..." when python3-venv/pip
#        or PyPI is unavailable, 1 other failure, 2 usage.
set -euo pipefail
if [ $# -ne 4 ]; then echo "usage: $0 REQUIREMENTS VENV_DIR PACKAGE MODULE" >&2; exit 2; fi
REQ=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
VENV=$2
PKG=$3
MODULE=$4
PY=${PYTHON:-python3}
WANT=$(sed -n "s/^$PKG==//p" "$REQ")
if [ -z "$WANT" ]; then echo "venv.sh: $REQ pins no $PKG==VERSION" >&2; exit 2; fi
STAMP="$VENV/.interop-requirements"

have() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "
import sys, importlib, importlib.metadata as m
importlib.import_module('$MODULE')
sys.exit(m.version('$PKG') != '$WANT')" 2>/dev/null
}

if have && [ -f "$STAMP" ] && cmp -s "$STAMP" "$REQ"; then
    echo "READY $VENV $PKG $WANT"
    exit 0
fi

if ! command -v "$PY" >/dev/null 2>&1; then echo "SKIP: $PY not found"; exit 77; fi
if [ ! -x "$VENV/bin/python" ]; then
    VLOG=$(mktemp "${TMPDIR:-/tmp}/venv.XXXXXX.log")
    if ! "$PY" -m venv "$VENV" >"$VLOG" 2>&1; then
        cat "$VLOG" >&2; rm -f "$VLOG"
        rm -rf "$VENV"
        echo "SKIP: '$PY -m venv' failed (Debian: apt-get install -y python3-venv)"
        exit 77
    fi
    rm -f "$VLOG"
fi
LOG="$VENV/pip-install.log"
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        --timeout 30 --retries 2 -r "$REQ" >"$LOG" 2>&1; then
    if grep -qiE "connection|resolve|network|timed out|Max retries|No matching distribution" "$LOG"; then
        tail -n 5 "$LOG" >&2
        echo "SKIP: pip cannot install $PKG==$WANT from PyPI (see $LOG)"
        exit 77
    fi
    tail -n 30 "$LOG" >&2
    echo "venv.sh: pip install failed (see $LOG)" >&2
    exit 1
fi
if ! have; then echo "venv.sh: $PKG $WANT not importable as $MODULE after install" >&2; exit 1; fi
cp "$REQ" "$STAMP"
echo "READY $VENV $PKG $WANT"
