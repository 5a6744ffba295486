#!/usr/bin/env python3
"""Minimal c2s client (standard library only) that logs in to the Prosody of
start.sh and sends one stanza to a component, so the component receives a
stanza that Prosody originated/routed.

    client_send.py --port $C2S_PORT --jid alice@localhost --password alice-pw \
                   --to palisade.localhost --body hello

Plain TCP, SASL PLAIN (start.sh sets c2s_require_encryption = false and
allow_unencrypted_plain_auth = true), resource bind, then
  <message type='chat' id=ID to=TO><body>BODY</body></message>
(or the raw XML of --stanza-file instead). It then round-trips an XEP-0199
ping to the server, which guarantees Prosody has routed the message before we
close (Prosody handles one session's stanzas in order).

--await-reply: after the ping, also wait for the reply to the sent stanza's id
(a component answers after its own round trip, which the ping does not cover).

--expect REGEX [--timeout S]: after sending, also wait for an incoming stanza
(serialized as received, top-level element) matching REGEX, print it, and exit
0; exit 1 on timeout. Useful when the component answers the client.

Exit codes: 0 sent (and matched, with --expect); 1 failure (message on stderr),
including the server bouncing the stanza with type='error' (e.g. the component
is not connected: Prosody answers remote-server-timeout);
2 usage.  --verbose prints every byte in both directions to stderr.
"""
import argparse
import base64
import re
import socket
import sys
import time
import uuid
import xml.etree.ElementTree as ET

STREAMS = "http://etherx.jabber.org/streams"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"


class Fail(Exception):
    pass


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
             .replace("'", "&apos;").replace('"', "&quot;"))


class Stream:
    """One TCP connection; a new XML parser per stream (re)start. Yields the
    top-level children of <stream:stream> as (Element, raw_bytes)."""

    def __init__(self, host, port, verbose):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.verbose = verbose
        self.pending = []
        self.raw = b""
        self.closed = False

    def send(self, data):
        if self.verbose:
            print("C->S %r" % data, file=sys.stderr)
        self.sock.sendall(data.encode())

    def restart(self, domain):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.pending = []
        self.raw = b""
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  "xmlns:stream='%s' to='%s' version='1.0'>" % (STREAMS, xml_escape(domain)))

    def next(self, deadline):
        while not self.pending:
            if self.closed:
                raise Fail("server closed the stream")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError from None
            if not chunk:
                raise Fail("server closed the TCP connection")
            if self.verbose:
                print("S->C %r" % chunk, file=sys.stderr)
            self.raw += chunk
            self.parser.feed(chunk)
            for ev, el in self.parser.read_events():
                if ev == "start":
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.pending.append(el)
                    elif self.depth == 0:
                        self.closed = True
        el = self.pending.pop(0)
        if el.tag == "{%s}error" % STREAMS:
            cond = [c.tag.split("}")[-1] for c in el if not c.tag.endswith("}text")]
            raise Fail("stream error: %s" % ",".join(cond))
        return el

    def wait_for(self, pred, what, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                el = self.next(deadline)
            except TimeoutError:
                raise Fail("timed out waiting for %s" % what) from None
            if pred(el):
                return el


ET.register_namespace("", "jabber:client")


def serialize(el):
    """Re-serialized top-level element (ElementTree: double quotes, xmlns='jabber:client'
    on the root); match --expect regexes against content, not quoting."""
    return ET.tostring(el, encoding="unicode")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--jid", required=True, help="user@domain (bare)")
    ap.add_argument("--password", required=True)
    ap.add_argument("--resource", default="interop")
    ap.add_argument("--to", required=True)
    ap.add_argument("--body", default="hello")
    ap.add_argument("--type", default="chat", help="message type (default chat)")
    ap.add_argument("--id", default=None, help="message id (default random)")
    ap.add_argument("--stanza-file", help="send this raw XML instead of the message")
    ap.add_argument("--expect", help="regex an incoming stanza must match")
    ap.add_argument("--await-reply", action="store_true",
                    help="after the ping, wait for the reply to the sent stanza's id (a result, or an "
                         "error, which is a bounce): a component's answer can come after the server's ping")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    if "@" not in a.jid:
        ap.error("--jid must be user@domain")
    user, domain = a.jid.split("@", 1)
    domain = domain.split("/", 1)[0]
    try:
        s = Stream(a.host, a.port, a.verbose)
        s.restart(domain)
        feats = s.wait_for(lambda e: e.tag == "{%s}features" % STREAMS, "stream features", a.timeout)
        mechs = [m.text for m in feats.iter("{%s}mechanism" % SASL)]
        if "PLAIN" not in mechs:
            raise Fail("server does not offer SASL PLAIN without TLS (offers %r); "
                       "is c2s_require_encryption = false / allow_unencrypted_plain_auth = true set?" % mechs)
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + a.password.encode()).decode()
        s.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (SASL, token))
        r = s.wait_for(lambda e: e.tag in ("{%s}success" % SASL, "{%s}failure" % SASL), "SASL result", a.timeout)
        if r.tag.endswith("failure"):
            raise Fail("SASL PLAIN failed: %s" % [c.tag.split("}")[-1] for c in r])
        s.restart(domain)
        s.wait_for(lambda e: e.tag == "{%s}features" % STREAMS, "post-auth features", a.timeout)
        s.send("<iq type='set' id='bind1'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
               % (BIND, xml_escape(a.resource)))
        r = s.wait_for(lambda e: e.get("id") == "bind1", "bind result", a.timeout)
        if r.get("type") != "result":
            raise Fail("resource bind failed: %s" % serialize(r))
        full = r.find("{%s}bind/{%s}jid" % (BIND, BIND))
        full = full.text if full is not None else a.jid
        mid = None
        if a.stanza_file:
            with open(a.stanza_file, encoding="utf-8") as f:
                out = f.read().strip()
            m = re.search(r"""\bid=(['"])(.*?)\1""", out)
            mid = m.group(2) if m else None
        else:
            mid = a.id or "c2s-" + uuid.uuid4().hex[:12]
            out = "<message type='%s' id='%s' to='%s'><body>%s</body></message>" % (
                xml_escape(a.type), xml_escape(mid), xml_escape(a.to), xml_escape(a.body))
        s.send(out)
        s.send("<iq type='get' id='sync1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % xml_escape(domain))
        got = None
        bounced = None
        rx = re.compile(a.expect, re.S) if a.expect else None
        replied = False

        def pred(e):
            nonlocal got, bounced, replied
            if mid is not None and e.get("id") == mid:
                replied = True
                if e.get("type") == "error":
                    bounced = serialize(e)
                    return False
            if rx is not None and got is None and rx.search(serialize(e)):
                got = serialize(e)
            return e.get("id") == "sync1"
        s.wait_for(pred, "ping round-trip", a.timeout)
        if a.await_reply and mid is not None and not replied:
            # The ping only proves the server routed the stanza: the component it went to
            # answers when it answers.
            s.wait_for(lambda e: pred(e) or replied, "the reply to %r" % mid, a.timeout)
        if bounced is not None:
            # e.g. Prosody's "Component not connected" (remote-server-timeout)
            raise Fail("the server bounced the stanza: %s" % bounced)
        print("SENT from=%s %s" % (full, out))
        if rx is not None and got is None:
            got = serialize(s.wait_for(lambda e: rx.search(serialize(e)) is not None,
                                       "a stanza matching %r" % a.expect, a.timeout))
        if got is not None:
            print("RECEIVED %s" % got)
        s.send("</stream:stream>")
        try:
            s.wait_for(lambda e: False, "close", 2.0)
        except Fail:
            pass
        s.sock.close()
        return 0
    except (Fail, OSError) as e:
        print("client_send: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
