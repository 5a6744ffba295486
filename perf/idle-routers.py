#!/usr/bin/env python3
"""Opens N router connections to a gateway, completes each XEP-0114 handshake, and holds them
idle until stdin closes (or a line is read); then closes them all. Used by perf/idle-conns.sh.

    perf/idle-routers.py HOST:PORT NAME SECRET N
Prints "ready N" once all N are authenticated, "closed" once they are closed."""
import hashlib
import re
import socket
import sys


def handshake(addr, name, secret):
    s = socket.create_connection(addr)
    s.sendall(
        (
            "<stream:stream xmlns='jabber:component:accept' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>" % name
        ).encode()
    )
    got = b""
    while True:
        m = re.search(rb"""id=['"]([^'"]+)['"]""", got)
        if m and b">" in got[m.end():]:
            break
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("the gateway closed during the header: %r" % got)
        got += chunk
    digest = hashlib.sha1(m.group(1) + secret.encode()).hexdigest()
    s.sendall(("<handshake>%s</handshake>" % digest).encode())
    got = b""
    while b"<handshake/>" not in got and b"<handshake></handshake>" not in got:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("the handshake was refused: %r" % got)
        got += chunk
    return s


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    name, secret, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    conns = [handshake((host, int(port)), name, secret) for _ in range(n)]
    print("ready %d" % len(conns), flush=True)
    sys.stdin.readline()
    for c in conns:
        c.close()
    print("closed", flush=True)


main()
