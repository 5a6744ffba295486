#!/usr/bin/env python3
"""The ejabberd half of perf/compare-peers.sh: two XEP-0114 components on ejabberd's component
port, A and B. A sends N iq-set stanzas to B, each carrying the same ~400-byte chat event the
Palisade load generator sends (so ejabberd receives, routes and delivers the same bytes); B
answers each with an iq result that ejabberd routes back to A. One exchange = 4 stanzas through
the server (A->server, server->B, B->server, server->A), the same 4 legs as one Palisade event
(router->gateway, gateway->compliance server, answer back, verdict out).

  peer_exchange.py A_PORT B_PORT SECRET A_HOST B_HOST N [--rate R | --window W]

(ejabberd registers every host of a component listener for each connection to it, so A and B
use two listeners.)

--rate R: open loop, R exchanges/s paced in 1 ms ticks; --window W: closed loop, W in flight.
Prints a JSON line: answered, errors, seconds, per_s. The CPU measured is the server's, not
this driver's.
"""
import asyncio
import hashlib
import json
import re
import sys
import time

EVENT = (
    "<iq type='set' id='R{i}' from='{a}' to='{b}'>"
    "<event xmlns='urn:palisade:compliance:0' name='es_OUT'>"
    "<message xmlns='jabber:client' from='user{u}@example.com/desk' to='user{v}@example.com' type='chat' id='m{i}'>"
    "<body>Quarterly numbers look fine; let us talk about the desk move on Tuesday.</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message></event></iq>"
)
ID = re.compile(rb"<iq\b[^>]*?\bid=['\"]([^'\"]+)['\"]")
RESULT = re.compile(rb"<iq\b[^>]*?\btype=['\"]result['\"]")
ERROR = re.compile(rb"<iq\b[^>]*?\btype=['\"]error['\"]")


async def component(port, secret, host):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(
        f"<stream:stream xmlns='jabber:component:accept' "
        f"xmlns:stream='http://etherx.jabber.org/streams' to='{host}'>".encode()
    )
    await w.drain()
    buf = b""
    while b">" not in buf or not re.search(rb"<stream:stream\b[^>]*>", buf):
        buf += await r.read(4096)
    sid = re.search(rb"\bid=['\"]([^'\"]+)['\"]", re.search(rb"<stream:stream\b[^>]*>", buf).group(0)).group(1)
    w.write(b"<handshake>" + hashlib.sha1(sid + secret.encode()).hexdigest().encode() + b"</handshake>")
    await w.drain()
    while b"<handshake/>" not in buf and b"<handshake></handshake>" not in buf:
        chunk = await r.read(4096)
        if not chunk:
            raise SystemExit(f"{host}: handshake refused: {buf[-300:]!r}")
        buf += chunk
    return r, w


async def echo(r, w, a, b):
    """B: answer every iq set with a result, as fast as they come."""
    buf = b""
    while True:
        chunk = await r.read(65536)
        if not chunk:
            return
        buf += chunk
        out = []
        while True:
            end = buf.find(b"</iq>")
            if end < 0:
                break
            stanza, buf = buf[: end + 5], buf[end + 5 :]
            m = ID.search(stanza)
            if m:
                out.append(b"<iq type='result' id='" + m.group(1) + f"' from='{b}' to='{a}'/>".encode())
        if out:
            w.write(b"".join(out))


async def main():
    pa, pb, secret, a, b, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
    rate = window = 0
    if "--rate" in sys.argv:
        rate = float(sys.argv[sys.argv.index("--rate") + 1])
    if "--window" in sys.argv:
        window = int(sys.argv[sys.argv.index("--window") + 1])
    if not rate and not window:
        window = 200
    ra, wa = await component(pa, secret, a)
    rb, wb = await component(pb, secret, b)
    echo_task = asyncio.create_task(echo(rb, wb, a, b))
    state = {"answered": 0, "errors": 0}
    room = asyncio.Event()
    done = asyncio.Event()

    async def reader():
        buf = b""
        while state["answered"] + state["errors"] < n:
            chunk = await ra.read(65536)
            if not chunk:
                break
            buf += chunk
            # Count complete stanzas only: cut after the last '>'.
            cut = buf.rfind(b">") + 1
            part, buf = buf[:cut], buf[cut:]
            state["answered"] += len(RESULT.findall(part))
            state["errors"] += len(ERROR.findall(part))
            room.set()
        done.set()

    rt = asyncio.create_task(reader())
    start = time.monotonic()
    sent = 0
    if rate:
        tick = 0.001
        while sent < n:
            due = min(n, int((time.monotonic() - start) * rate) + 1)
            if due > sent:
                wa.write("".join(EVENT.format(i=i, a=a, b=b, u=i % 997, v=(i * 7 + 1) % 997) for i in range(sent, due)).encode())
                sent = due
            await asyncio.sleep(tick)
    else:
        while sent < n:
            free = window - (sent - state["answered"] - state["errors"])
            if free <= 0:
                room.clear()
                await room.wait()
                continue
            k = min(free, n - sent)
            wa.write("".join(EVENT.format(i=i, a=a, b=b, u=i % 997, v=(i * 7 + 1) % 997) for i in range(sent, sent + k)).encode())
            sent += k
            await wa.drain()
    try:
        await asyncio.wait_for(done.wait(), timeout=30)
    except asyncio.TimeoutError:
        pass
    secs = time.monotonic() - start
    echo_task.cancel()
    rt.cancel()
    print(json.dumps({"answered": state["answered"], "errors": state["errors"], "seconds": round(secs, 3),
                      "per_s": round(state["answered"] / secs, 1)}))


asyncio.run(main())
