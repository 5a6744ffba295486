#!/usr/bin/env python3
"""A TLS peer written with Python's ssl (OpenSSL), not with Palisade's code: a router that
sends one event over direct TLS and prints its verdict, or a compliance server that answers
every request PASS over direct TLS. Standard library only.

  tls_peer.py router PORT CA TLS_NAME NAME SECRET GATEWAY
  tls_peer.py server PORT CERT KEY NAME PASSWORD
"""
import hashlib, re, socket, ssl, sys

ATTR = re.compile(r"""(\w+)=['"]([^'"]*)['"]""")


def attrs(tag):
    return dict(ATTR.findall(tag))


def read_until(conn, buf, pattern):
    while True:
        m = re.search(pattern, buf)
        if m:
            return m, buf
        data = conn.recv(65536)
        if not data:
            sys.exit("closed before " + pattern)
        buf += data.decode()


def router(port, ca, tls_name, name, secret, gateway):
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", int(port)))
    conn = ctx.wrap_socket(raw, server_hostname=tls_name)
    conn.sendall(("<stream:stream xmlns='jabber:component:accept' "
                  "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>" % name).encode())
    m, buf = read_until(conn, "", r"<stream:stream[^>]*>")
    sid = attrs(m.group(0))["id"]
    digest = hashlib.sha1((sid + secret).encode()).hexdigest()
    conn.sendall(("<handshake>%s</handshake>" % digest).encode())
    m, buf = read_until(conn, buf, r"<handshake\s*/>")
    conn.sendall(("<iq type='set' id='py1' from='%s' to='%s'>"
                  "<event xmlns='urn:palisade:compliance:0' name='es_OUT'>"
                  "<message xmlns='jabber:client' from='alice@example.com/py' "
                  "to='bob@example.com' type='chat'><body>from python</body></message>"
                  "</event></iq>" % (name, gateway)).encode())
    m, buf = read_until(conn, buf, r"<verdict[^>]*action=['\"](\w+)['\"]")
    print("verdict", m.group(1), flush=True)
    conn.sendall(b"</stream:stream>")
    conn.close()


def server(port, cert, key, name, password):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", int(port)))
    print("listening", flush=True)
    while True:
        raw, _ = listener.accept()
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
            serve(conn, name, password)
        except (OSError, ssl.SSLError) as e:
            print("connection ended:", e, flush=True)


def serve(conn, name, password):
    m, buf = read_until(conn, "", r"<stream:stream[^>]*>")
    sid = "py0123456789abcdef0123456789abcdef"
    conn.sendall(("<stream:stream xmlns='jabber:component:accept' "
                  "xmlns:stream='http://etherx.jabber.org/streams' from='%s' id='%s'>"
                  % (name, sid)).encode())
    buf = buf[m.end():]
    m, buf = read_until(conn, buf, r"<handshake>([0-9a-fA-F]+)</handshake>")
    if m.group(1).lower() != hashlib.sha1((sid + password).encode()).hexdigest():
        sys.exit("wrong handshake")
    conn.sendall(b"<handshake/>")
    print("active", flush=True)
    buf = buf[m.end():]
    while True:
        m, buf = read_until(conn, buf, r"<iq\b[^>]*>")
        a = attrs(m.group(0))
        buf = buf[m.end():]
        if a.get("type") in ("set", "get"):
            conn.sendall(("<iq type='result' id='%s' from='%s' to='%s'/>"
                          % (a.get("id", ""), a.get("to", name), a.get("from", ""))).encode())
            if a.get("type") == "set":
                print("request", a.get("id"), flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"router": router, "server": server}[mode](*args)
