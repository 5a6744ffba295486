#!/usr/bin/env python3
"""DEVELOPMENT AID ONLY - NOT THE THING UNDER TEST.

A tiny XEP-0114 *receiver* (the side that accepts the TCP connection), written
only to check that component.py / slixmpp work before the Palisade gateway
exists. Tests of Palisade must point component.py at the gateway, not at this.
Standard library only; runs with any python3.

Behaviour (docs/protocol.md 1, receiver side, simplified):
  - reads the initiator's header; accepts jabber:component:accept and
    jabber:component:connect; NAME from 'to', else 'from';
  - unknown NAME -> host-unknown; other namespace -> invalid-namespace
    (a header error first opens our stream, then sends the error);
  - answers <stream:stream xmlns=NS xmlns:stream=... from='NAME' id='<32 hex>'>;
  - checks <handshake> = hex SHA-1(id + secret), case-insensitively, in
    constant time; wrong -> not-authorized; right -> <handshake/>;
  - then echoes every stanza back with 'to' and 'from' swapped (a stanza
    without both -> improper-addressing is NOT enforced; it is echoed as is);
  - answers </stream:stream> with </stream:stream> and closes.

usage: fake_receiver.py [--port 0] [--name palisade.test=SECRET ...] [--once] [--log FILE]
Prints "PORT=N" on stdout once listening. --log FILE records every byte
received and sent (repr) per connection, which is how NOTES.md was made.
"""
import argparse
import asyncio
import hashlib
import hmac
import re
import secrets
import sys
import time
import xml.etree.ElementTree as ET

STREAMS = "http://etherx.jabber.org/streams"
ACCEPTED_NS = ("jabber:component:accept", "jabber:component:connect")
ERR_NS = "urn:ietf:params:xml:ns:xmpp-streams"


def esc(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
             .replace("'", "&apos;").replace('"', "&quot;"))


class Conn:
    def __init__(self, srv, reader, writer, n):
        self.srv, self.reader, self.writer, self.n = srv, reader, writer, n
        self.t0 = time.monotonic()
        self.parser = ET.XMLPullParser(events=("start", "end", "start-ns"))
        self.depth = 0
        self.opened = False  # our header sent
        self.name = None
        self.ns = None
        self.sid = None
        self.active = False
        self.closing = False

    def log(self, d, data):
        if self.srv.logf:
            self.srv.logf.write("[%d %7.3f] %s %r\n" % (self.n, time.monotonic() - self.t0, d, data))
            self.srv.logf.flush()

    def send(self, s):
        b = s.encode()
        self.log("R->I", b)
        self.writer.write(b)

    def open_stream(self, name):
        ns = self.ns if self.ns in ACCEPTED_NS else "jabber:component:accept"
        self.sid = secrets.token_hex(16)
        self.send("<stream:stream xmlns='%s' xmlns:stream='%s' from='%s' id='%s'>"
                  % (ns, STREAMS, esc(name or ""), self.sid))
        self.opened = True

    def stream_error(self, cond, text=None):
        if not self.opened:
            self.open_stream(self.name)
        t = "<text xmlns='%s'>%s</text>" % (ERR_NS, esc(text)) if text else ""
        self.send("<stream:error><%s xmlns='%s'/>%s</stream:error></stream:stream>" % (cond, ERR_NS, t))
        self.closing = True

    def on_header(self, el, nsmap):
        self.ns = nsmap.get("", None)
        if el.tag != "{%s}stream" % STREAMS:
            return self.stream_error("invalid-namespace", "stream element must be in %s" % STREAMS)
        self.name = el.get("to") or el.get("from")
        if self.ns not in ACCEPTED_NS:
            return self.stream_error("invalid-namespace", "unsupported default namespace %r" % self.ns)
        if not self.name or self.name not in self.srv.names:
            return self.stream_error("host-unknown", "%s is not a configured component" % self.name)
        self.open_stream(self.name)

    def on_stanza(self, el):
        local = el.tag.split("}")[-1]
        if not self.active:
            if local != "handshake":
                return self.stream_error("not-authorized", "handshake first")
            want = hashlib.sha1((self.sid + self.srv.names[self.name]).encode()).hexdigest()
            got = (el.text or "").strip().lower()
            if not hmac.compare_digest(want.encode(), got.encode()):
                return self.stream_error("not-authorized", "wrong handshake")
            self.active = True
            self.send("<handshake/>")
            return
        frm, to = el.get("from"), el.get("to")
        if frm is not None or to is not None:
            el.attrib.pop("from", None)
            el.attrib.pop("to", None)
            if to is not None:
                el.set("from", to)
            if frm is not None:
                el.set("to", frm)
        ET.register_namespace("", self.ns)
        self.send(ET.tostring(el, encoding="unicode"))

    async def run(self):
        nsmap = {}
        try:
            while not self.closing:
                data = await self.reader.read(65536)
                if not data:
                    self.log("EOF", b"")
                    break
                self.log("I->R", data)
                try:
                    self.parser.feed(data)
                    for ev, obj in self.parser.read_events():
                        if ev == "start-ns":
                            if self.depth == 0:
                                nsmap[obj[0]] = obj[1]
                        elif ev == "start":
                            if self.depth == 0:
                                self.on_header(obj, nsmap)
                            self.depth += 1
                        else:
                            self.depth -= 1
                            if self.depth == 0:
                                self.send("</stream:stream>")
                                self.closing = True
                            elif self.depth == 1:
                                self.on_stanza(obj)
                        if self.closing:
                            break
                except ET.ParseError as e:
                    self.stream_error("not-well-formed", str(e))
                await self.writer.drain()
        except ConnectionError:
            pass
        finally:
            self.writer.close()
            self.srv.finished(self)


class Server:
    def __init__(self, a):
        self.names = dict(n.split("=", 1) for n in a.name)
        self.once = a.once
        self.logf = open(a.log, "a", encoding="utf-8") if a.log else None
        self.count = 0
        self.stop = None

    async def handle(self, reader, writer):
        self.count += 1
        await Conn(self, reader, writer, self.count).run()

    def finished(self, conn):
        if self.once and self.stop and not self.stop.done():
            self.stop.set_result(None)

    async def main(self, host, port):
        self.stop = asyncio.get_running_loop().create_future()
        srv = await asyncio.start_server(self.handle, host, port)
        print("PORT=%d" % srv.sockets[0].getsockname()[1], flush=True)
        async with srv:
            await self.stop


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", action="append", default=[], help="NAME=SECRET (repeatable)")
    ap.add_argument("--once", action="store_true", help="exit after the first connection ends")
    ap.add_argument("--log")
    a = ap.parse_args()
    if not a.name:
        a.name = ["palisade.test=s3cret"]
    try:
        asyncio.run(Server(a).main(a.host, a.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
