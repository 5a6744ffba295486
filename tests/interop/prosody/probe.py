#!/usr/bin/env python3
"""Raw-socket XEP-0114 probe against a Prosody started by start.sh.

Plays the *initiator* (external component) side with hand-written bytes and
prints every byte Prosody sends back, so the transcripts in TRANSCRIPTS.md can
be regenerated:

    eval "$(tests/interop/prosody/start.sh /tmp/pros)"   # or read /tmp/pros/env
    tests/interop/prosody/probe.py --port $COMPONENT_PORT --secret $SECRET [SCENARIO...]

--peer ejabberd switches the checks to ejabberd's behaviour (ejabberd/start.sh).

Scenarios (default: all but keepalive): ok, version, disco, ping, self-iq,
user-iq, remote-iq, nobody, upper-hex, xml-decl, wrong-secret, wrong-ns,
connect-ns, unknown-name, no-to, from-only, conflict, invalid-from,
too-large, keepalive (needs start.sh with PROSODY_READ_TIMEOUT small).

Standard library only. Exit 0 if every scenario ran and matched its expected
outcome, 1 otherwise. Bytes are printed with repr() so whitespace is visible.
"""
import argparse
import hashlib
import re
import socket
import sys
import time

HEADER = ("<stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='{name}'>")


class Raw:
    def __init__(self, host, port, log):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.log = log
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.log("C->S", data)
        self.sock.sendall(data)

    def read_until(self, pattern, timeout=10.0):
        """Read until regex `pattern` (bytes) matches the accumulated buffer,
        EOF, or timeout. Returns the bytes read by this call."""
        start = len(self.buf)
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.S)
        while not rx.search(self.buf, start) and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                self.eof = True
                break
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        got = self.buf[start:]
        self.log("S->C", got + (b"  [EOF]" if self.eof else b""))
        return got

    def read_quiet(self, quiet=0.5, timeout=3.0):
        """Read until `quiet` seconds pass with nothing new, EOF, or timeout."""
        start = len(self.buf)
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.sock.settimeout(min(quiet, max(0.01, deadline - time.monotonic())))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                self.eof = True
                break
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        got = self.buf[start:]
        self.log("S->C", got + (b"  [EOF]" if self.eof else b""))
        return got

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def handshake_hex(stream_id, secret, upper=False):
    h = hashlib.sha1((stream_id + secret).encode()).hexdigest()
    return h.upper() if upper else h


def stream_id_of(header_bytes):
    m = re.search(rb"<stream:stream\b[^>]*\bid=(['\"])(.*?)\1", header_bytes)
    return m.group(2).decode() if m else None


def open_and_auth(a, log, name=None, upper=False, header=None):
    c = Raw(a.host, a.port, log)
    c.send(header or HEADER.format(name=name or a.name))
    hdr = c.read_until(rb"<stream:stream[^>]*>")
    sid = stream_id_of(hdr)
    if sid is None:
        return c, hdr, None
    c.send("<handshake>%s</handshake>" % handshake_hex(sid, a.secret, upper))
    resp = c.read_until(rb"<handshake/>|</stream:stream>")
    return c, hdr, resp


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def scen_ok(a, log):
    c, hdr, resp = open_and_auth(a, log)
    expect(b"<handshake/>" in resp, "no <handshake/>")
    c.send("</stream:stream>")
    c.read_until(rb"</stream:stream>")
    c.close()


def _iq(a, log, iq, until=rb"</iq>|<iq[^>]*/>"):
    c, hdr, resp = open_and_auth(a, log)
    expect(b"<handshake/>" in resp, "no <handshake/>")
    c.send(iq)
    got = c.read_until(until)
    c.close()
    return got


def scen_version(a, log):
    got = _iq(a, log, "<iq type='get' id='v1' from='{c}' to='{d}'>"
              "<query xmlns='jabber:iq:version'/></iq>".format(c=a.name, d=a.domain))
    expect(b"type='result'" in got and b"<name>" in got, "no version result")


def scen_disco(a, log):
    got = _iq(a, log, "<iq type='get' id='d1' from='{c}' to='{d}'>"
              "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>".format(c=a.name, d=a.domain))
    expect(b"type='result'" in got and b"disco#info" in got, "no disco result")


def scen_ping(a, log):
    got = _iq(a, log, "<iq type='get' id='p1' from='{c}' to='{d}'>"
              "<ping xmlns='urn:xmpp:ping'/></iq>".format(c=a.name, d=a.domain))
    expect(b"type='result'" in got, "no ping result")


def scen_self_iq(a, log):
    # Addressed to the component itself: Prosody routes it back to us unchanged.
    got = _iq(a, log, "<iq type='get' id='s1' from='{c}' to='{c}'>"
              "<ping xmlns='urn:xmpp:ping'/></iq>".format(c=a.name),
              until=rb"</iq>")
    expect(b"id='s1'" in got, "self-addressed iq not routed back")


def scen_user_iq(a, log):
    # Bare JID of an existing user who is offline: Prosody answers for the account.
    got = _iq(a, log, "<iq type='get' id='u1' from='{c}' to='alice@{d}'>"
              "<query xmlns='jabber:iq:version'/></iq>".format(c=a.name, d=a.domain))
    expect(b"id='u1'" in got, "no answer")


def scen_remote_iq(a, log):
    got = _iq(a, log, "<iq type='get' id='r1' from='{c}' to='example.net'>"
              "<ping xmlns='urn:xmpp:ping'/></iq>".format(c=a.name))
    expect(b"type='error'" in got, "no error for a remote domain with s2s disabled")


def scen_nobody(a, log):
    got = _iq(a, log, "<message id='m1' from='{c}' to='nobody@{d}'><body>x</body></message>"
              .format(c=a.name, d=a.domain), until=rb"</message>|<message[^>]*/>")
    log("NOTE", b"(message to an unknown user)")


def scen_upper_hex(a, log):
    c, hdr, resp = open_and_auth(a, log, upper=True)
    if a.peer == "ejabberd":  # ejabberd compares the hex case-sensitively
        expect(b"not-authorized" in resp, "ejabberd accepted upper-case hex")
    else:
        expect(b"<handshake/>" in resp, "upper-case hex refused")
    c.close()


def scen_xml_decl(a, log):
    c, hdr, resp = open_and_auth(a, log, header="<?xml version='1.0'?>" + HEADER.format(name=a.name))
    expect(b"<handshake/>" in resp, "XML declaration refused")
    c.close()


def _refused(c, cond, timeout=30.0):
    got = c.read_until(rb"</stream:stream>", timeout=timeout)
    c.close()
    expect(cond.encode() in c.buf, "expected %s" % cond)
    return got


def scen_wrong_secret(a, log):
    c = Raw(a.host, a.port, log)
    c.send(HEADER.format(name=a.name))
    hdr = c.read_until(rb"<stream:stream[^>]*>")
    c.send("<handshake>%s</handshake>" % handshake_hex(stream_id_of(hdr), a.secret + "x"))
    _refused(c, "not-authorized")


def _ns_then_handshake(a, log, ns):
    c = Raw(a.host, a.port, log)
    c.send("<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>" % (ns, a.name))
    hdr = c.read_until(rb"<stream:stream[^>]*>|</stream:stream>")
    sid = stream_id_of(hdr)
    expect(sid, "Prosody no longer answers a header whose content namespace is %s" % ns)
    c.send("<handshake>%s</handshake>" % handshake_hex(sid, a.secret))
    c.read_until(rb"</handshake>|<handshake/>|</stream:stream>")
    c.close()
    return c.buf


def scen_wrong_ns(a, log):
    # Prosody does not check the default namespace of the header at all; the
    # <handshake/> is then a jabber:client stanza without 'to' and bounces.
    if a.peer == "ejabberd":  # opens its stream, then invalid-namespace
        c = Raw(a.host, a.port, log)
        c.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>" % a.name)
        _refused(c, "invalid-namespace")
        return
    buf = _ns_then_handshake(a, log, "jabber:client")
    # Prosody's attribute order varies from run to run: match loosely.
    expect(re.search(rb"<handshake[^>]*type='error'", buf) and b"bad-request" in buf, "expected handshake bounce")


def scen_connect_ns(a, log):
    # jabber:component:connect: header answered (as accept), handshake refused.
    buf = _ns_then_handshake(a, log, "jabber:component:connect")
    want = b"invalid-xml" if a.peer == "ejabberd" else b"unsupported-stanza-type"
    expect(want in buf, "expected %s" % want.decode())


def scen_wrong_stream_ns(a, log):
    c = Raw(a.host, a.port, log)
    c.send("<stream:stream xmlns='jabber:component:accept' xmlns:stream='urn:example:wrong' to='%s'>" % a.name)
    _refused(c, "invalid-namespace")


def scen_unknown_name(a, log):
    if a.peer == "ejabberd":  # answers the header, refuses the handshake
        c, hdr, resp = open_and_auth(a, log, name="nosuch." + a.domain)
        c.close()
        expect(b"not-authorized" in resp, "expected not-authorized")
        return
    c = Raw(a.host, a.port, log)
    c.send(HEADER.format(name="nosuch." + a.domain))
    _refused(c, "host-unknown")


def scen_no_to(a, log):
    c = Raw(a.host, a.port, log)
    c.send("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>")
    _refused(c, "improper-addressing")


def scen_from_only(a, log):
    c = Raw(a.host, a.port, log)
    c.send("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='%s'>" % a.name)
    _refused(c, "improper-addressing")


def scen_conflict(a, log):
    c1, _, r1 = open_and_auth(a, log)
    expect(b"<handshake/>" in r1, "first handshake failed")
    c2 = Raw(a.host, a.port, log)
    c2.send(HEADER.format(name=a.name))
    hdr = c2.read_until(rb"<stream:stream[^>]*>")
    c2.send("<handshake>%s</handshake>" % handshake_hex(stream_id_of(hdr), a.secret))
    if a.peer == "ejabberd":  # several connections per component are allowed
        expect(b"<handshake/>" in c2.read_until(rb"<handshake/>|</stream:stream>"), "second stream refused")
        c2.close()
    else:
        _refused(c2, "conflict")
    c1.close()


def scen_invalid_from(a, log):
    c, hdr, resp = open_and_auth(a, log)
    c.send("<message from='someone.else' to='%s'><body>x</body></message>" % a.domain)
    _refused(c, "invalid-from")


def scen_too_large(a, log):
    c, hdr, resp = open_and_auth(a, log)
    big = "<message from='%s' to='%s'><body>%s</body></message>" % (a.name, a.domain, "x" * (600 * 1024))
    log("C->S", ("[%d bytes: <message ...><body>xxx...</body></message>]" % len(big)).encode())
    c.sock.sendall(big.encode())
    c.sock.settimeout(30)
    if a.peer == "ejabberd":  # ejabberd_service has no size limit by default: routed (and bounced)
        got = c.read_until(rb"</message>|</stream:stream>", timeout=30)
        c.close()
        expect(b"<stream:error>" not in got, "ejabberd refused a 600 KiB stanza")
        return
    _refused(c, "not-well-formed")


def scen_keepalive(a, log):
    c, hdr, resp = open_and_auth(a, log)
    t0 = time.monotonic()
    got = c.read_until(rb"\s", timeout=a.keepalive_wait)
    log("NOTE", ("first bytes after %.1fs of silence" % (time.monotonic() - t0)).encode())
    expect(got.strip() == b"" and got != b"", "no whitespace keepalive")
    c.close()


SCENARIOS = {
    "ok": scen_ok, "version": scen_version, "disco": scen_disco, "ping": scen_ping,
    "self-iq": scen_self_iq, "user-iq": scen_user_iq, "remote-iq": scen_remote_iq,
    "nobody": scen_nobody, "upper-hex": scen_upper_hex, "xml-decl": scen_xml_decl,
    "wrong-secret": scen_wrong_secret, "wrong-ns": scen_wrong_ns,
    "connect-ns": scen_connect_ns, "wrong-stream-ns": scen_wrong_stream_ns,
    "unknown-name": scen_unknown_name, "no-to": scen_no_to, "from-only": scen_from_only,
    "conflict": scen_conflict, "invalid-from": scen_invalid_from,
    "too-large": scen_too_large, "keepalive": scen_keepalive,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--name", default="palisade.localhost")
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--keepalive-wait", type=float, default=10.0)
    ap.add_argument("--peer", choices=("prosody", "ejabberd"), default="prosody",
                    help="whose behaviour the checks expect (default prosody)")
    ap.add_argument("scenarios", nargs="*")
    a = ap.parse_args()
    names = a.scenarios or [n for n in SCENARIOS if n != "keepalive"]
    failed = 0
    for n in names:
        print("=== %s" % n)
        t0 = time.monotonic()

        def log(d, data, t0=t0):
            if len(data) > 1200:  # e.g. a bounced oversized stanza
                data = data[:600] + (b"...[%d bytes]..." % (len(data) - 1200)) + data[-600:]
            print("  %6.3f %s %r" % (time.monotonic() - t0, d, data))
        try:
            SCENARIOS[n](a, log)
            print("  -> ok")
        except Exception as e:  # noqa: BLE001
            failed += 1
            print("  -> FAILED: %s" % e)
        time.sleep(0.2)  # let Prosody tear the session down before the next one
    print("%d passed, %d failed" % (len(names) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
