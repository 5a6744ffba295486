#!/usr/bin/env bash
# Create (or reuse) a venv with the pinned slixmpp of requirements.txt (the real XMPP peer of
# the interop tests).
# usage: setup.sh VENV_DIR      (idempotent; exit codes as ../venv.sh: 0 ready, 77 skip)
HERE=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 1 ]; then echo "usage: $0 VENV_DIR" >&2; exit 2; fi
exec "$HERE/../venv.sh" "$HERE/requirements.txt" "$1" slixmpp slixmpp
