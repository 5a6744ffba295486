"""A minimal raw XMPP c2s client (plain TCP, SASL PLAIN, no TLS) for the demo and the benchmark
beside mod_palisade. Standard library only. Not a general-purpose client: it splits the stream
into top-level stanzas with a small tag-depth scanner and matches them as text."""

import base64
import re
import socket
import time

_TAG = re.compile(r"<[^>]*>")


class Client:
    def __init__(self, port, user, password, domain="localhost", resource="demo", host="127.0.0.1"):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.domain = domain
        self.buf = ""
        self.jid = "%s@%s" % (user, domain)
        self.n = 0
        self._open()
        self._read_until("</stream:features>")
        token = base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()
        self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % token)
        got = self._read_until("success", "failure")
        if "<success" not in got:
            raise RuntimeError("%s: authentication failed: %s" % (self.jid, got))
        self.buf = ""
        self._open()
        self._read_until("</stream:features>")
        self.buf = ""
        self.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>%s</resource></bind></iq>" % resource)
        bound = self.expect(lambda s: "id='bind1'" in s, 30)
        if bound is None or "type='result'" not in bound:
            self.bind_error = bound
            return
        self.bind_error = None
        self.full = "%s/%s" % (self.jid, resource)
        self.send("<presence/>")
        self.expect(lambda s: s.startswith("<presence") and ("from='%s'" % self.full) in s, 30)

    def _open(self):
        self.send("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>" % self.domain)

    def send(self, xml):
        self.sock.sendall(xml.encode())

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not data:
            raise RuntimeError("%s: connection closed" % self.jid)
        self.buf += data.decode("utf-8", "replace")
        return True

    def _read_until(self, *needles, timeout=10):
        deadline = time.monotonic() + timeout
        while not any(n in self.buf for n in needles) and self._fill(deadline):
            pass
        return self.buf

    def _next_stanza(self):
        depth, start = 0, None
        for m in _TAG.finditer(self.buf):
            tag = m.group(0)
            if tag.startswith("<?") or tag.startswith("<stream:stream"):
                continue
            if start is None:
                start = m.start()
            if tag.startswith("</"):
                depth -= 1
                if depth <= 0:
                    return self._take(start, m.end())
            elif tag.endswith("/>"):
                if depth == 0:
                    return self._take(start, m.end())
            else:
                depth += 1
        return None

    def _take(self, start, end):
        stanza = self.buf[start:end]
        self.buf = self.buf[end:]
        return stanza

    def expect(self, want, timeout=10):
        """The next stanza satisfying want(stanza), or None after timeout (others are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            s = self._next_stanza()
            while s is not None:
                if want(s):
                    return s
                s = self._next_stanza()
            if not self._fill(deadline) and time.monotonic() >= deadline:
                return None

    def next_id(self):
        self.n += 1
        return "m%d" % self.n

    def chat(self, to, body):
        mid = self.next_id()
        self.send("<message type='chat' to='%s' id='%s'><body>%s</body></message>" % (to, mid, body))
        return mid

    def close(self):
        try:
            self.send("</stream:stream>")
            self.sock.close()
        except OSError:
            pass
