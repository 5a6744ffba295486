#!/usr/bin/env bash
# Create (or reuse) a venv with the pinned prometheus-client of requirements.txt, whose text
# parser checks /metrics (tests/it/admin_metrics.rs).
# usage: setup.sh VENV_DIR      (idempotent; safe to run before every test run)
# env:   PYTHON (default python3)
# exit:  0 ready ("READY VENV_DIR prometheus-client X" on stdout), 77 "SKIP: ..." when
#        python3-venv/pip or PyPI is unavailable, 1 other failure.
set -euo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 VENV_DIR" >&2; exit 2; fi
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=$1
PY=${PYTHON:-python3}
REQ="$HERE/requirements.txt"
WANT=$(sed -n 's/^prometheus-client==//p' "$REQ")
STAMP="$VENV/.interop-requirements"

have() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "from importlib.metadata import version; import prometheus_client.parser, sys; sys.exit(version('prometheus-client') != '$WANT')" 2>/dev/null; }

if have && [ -f "$STAMP" ] && cmp -s "$STAMP" "$REQ"; then
    echo "READY $VENV prometheus-client $WANT"
    exit 0
fi

if ! command -v "$PY" >/dev/null 2>&1; then echo "SKIP: $PY not found"; exit 77; fi
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PY" -m venv "$VENV" >"${TMPDIR:-/tmp}/prom-venv.$$.log" 2>&1; then
        cat "${TMPDIR:-/tmp}/prom-venv.$$.log" >&2; rm -f "${TMPDIR:-/tmp}/prom-venv.$$.log"
        rm -rf "$VENV"
        echo "SKIP: '$PY -m venv' failed (Debian: apt-get install -y python3-venv)"
        exit 77
    fi
    rm -f "${TMPDIR:-/tmp}/prom-venv.$$.log"
fi
LOG="$VENV/pip-install.log"
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        --timeout 30 --retries 2 -r "$REQ" >"$LOG" 2>&1; then
    if grep -qiE "connection|resolve|network|timed out|Max retries|No matching distribution" "$LOG"; then
        tail -n 5 "$LOG" >&2
        echo "SKIP: pip cannot install prometheus-client==$WANT from PyPI (see $LOG)"
        exit 77
    fi
    tail -n 30 "$LOG" >&2
    echo "setup.sh: pip install failed (see $LOG)" >&2
    exit 1
fi
if ! have; then echo "setup.sh: prometheus-client $WANT not importable after install" >&2; exit 1; fi
cp "$REQ" "$STAMP"
echo "READY $VENV prometheus-client $WANT"
