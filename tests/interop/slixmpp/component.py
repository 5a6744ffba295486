#!/usr/bin/env python3
"""slixmpp ComponentXMPP as an independent XEP-0114 *initiator*.

Dials a XEP-0114 receiver (the gateway's router or compliance port, or
fake_receiver.py while developing), proves the secret, sends the raw XML of
--send-file once the stream is active, then waits for an incoming stanza whose
serialized XML matches --expect.

Run it with the venv made by setup.sh:

    VENV/bin/python component.py --host 127.0.0.1 --port P --name NAME --secret S \
        --send-file event.xml --expect "<verdict[^>]*action=.pass" --timeout 10

    VENV/bin/python component.py --port P --name NAME --secret WRONG \
        --expect-handshake-failure [--expect-error not-authorized]

Exit codes
  0  success: a stanza matched --expect (printed on stdout as "MATCHED <xml>");
     or, without --expect, the stream became active and --send-file was sent;
     or, with --expect-handshake-failure, the receiver refused the handshake
     with a stream error (and the condition named by --expect-error, if given).
  1  failure: timeout, no stanza matched (the ones seen are listed), the
     receiver closed an active stream, connection refused, bad arguments of
     the run, or (with --expect-handshake-failure) the handshake was accepted
     or the stream closed without a stream error.
  3  the handshake was refused (stream error, or the stream/TCP closed before
     <handshake/>); the stream error is printed as "STREAM-ERROR <condition> <text>".
  77 slixmpp is not importable ("SKIP: ..."): run setup.sh first.

Output: machine-readable lines on stdout (ACTIVE, SENT, RECEIVED, MATCHED,
STREAM-ERROR, RESULT); diagnostics on stderr. --verbose adds slixmpp's debug
log (every byte sent and received) on stderr.

Stanza payloads in --send-file are sent verbatim with send_raw (slixmpp does
not touch them), so they may carry their own namespaces. Each top-level
element must be well-formed; the file may hold several.

--reply-file FILE: a template (Python str.format with {id}, {from}, {to},
{type}) sent verbatim as the answer to every incoming iq of type get/set, e.g.
"<iq type='result' id='{id}' from='{to}' to='{from}'/>". Lets this component
play a compliance server that answers events.
"""
import argparse
import asyncio
import logging
import re
import sys

try:
    import slixmpp
    from slixmpp import ComponentXMPP
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher.base import MatcherBase
except ImportError as e:  # pragma: no cover - depends on the venv
    print("SKIP: slixmpp not importable (%s); run tests/interop/slixmpp/setup.sh VENV "
          "and use VENV/bin/python" % e)
    sys.exit(77)

STREAM_NS = "http://etherx.jabber.org/streams"


class MatchAll(MatcherBase):
    def __init__(self):
        super().__init__(None)

    def match(self, xml):
        return True


class Harness(ComponentXMPP):
    def __init__(self, a, done):
        super().__init__(a.name, a.secret, a.host, a.port)
        self.a = a
        self.done = done
        self.active = False
        self.seen = []
        self.stream_error = None
        self.rx = re.compile(a.expect, re.S) if a.expect else None
        self.reply_tmpl = None
        if a.reply_file:
            with open(a.reply_file, encoding="utf-8") as f:
                self.reply_tmpl = f.read().strip()
        self.payload = None
        if a.send_file:
            with open(a.send_file, encoding="utf-8") as f:
                self.payload = f.read().strip()
        self.whitespace_keepalive = a.keepalive_interval > 0
        if a.keepalive_interval > 0:
            self.whitespace_keepalive_interval = a.keepalive_interval
        # One connection attempt only: never back off and retry.
        self.add_event_handler("connection_failed", self.on_connection_failed)
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("stream_error", self.on_stream_error)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.register_handler(Callback("interop-all", MatchAll(), self.on_stanza))

    def finish(self, code, msg=None, stream=sys.stderr):
        if self.done.done():
            return
        if msg:
            print(msg, file=stream, flush=True)
        self.done.set_result(code)

    def on_connection_failed(self, err):
        self.cancel_connection_attempt()
        self.finish(1, "component: cannot connect to %s:%s: %s" % (self.a.host, self.a.port, err))

    def on_session_start(self, _):
        self.active = True
        print("ACTIVE %s" % self.a.name, flush=True)
        a = self.a
        if a.expect_handshake_failure:
            self.finish(1, "component: handshake was ACCEPTED but --expect-handshake-failure was given")
            return
        if self.payload:
            self.send_raw(self.payload)
            print("SENT %s" % self.payload.replace("\n", " "), flush=True)
        if self.rx is None:
            # Nothing to wait for: give the transport a moment to flush, then succeed.
            self.loop.call_later(0.2, self.finish, 0)

    def on_stream_error(self, err):
        cond = err["condition"] or "undefined-condition"
        text = err["text"] or ""
        self.stream_error = cond
        print("STREAM-ERROR %s %s" % (cond, text), flush=True)
        if not self.active:
            self.handshake_refused("stream error %s" % cond)
        else:
            self.finish(1, "component: receiver sent a stream error on the active stream: %s %s" % (cond, text))

    def handshake_refused(self, why):
        a = self.a
        if a.expect_handshake_failure:
            if self.stream_error is None:
                self.finish(1, "component: the receiver closed the stream before <handshake/> "
                               "WITHOUT a stream error (PROTOCOL 1.4 requires one)")
            elif a.expect_error and self.stream_error != a.expect_error:
                self.finish(1, "component: handshake refused with %s, expected %s"
                            % (self.stream_error, a.expect_error))
            else:
                self.finish(0, "component: handshake refused as expected (%s)" % why)
        else:
            self.finish(3, "component: handshake refused: %s" % why)

    def on_disconnected(self, reason):
        if self.done.done():
            return
        if not self.active:
            self.handshake_refused("stream closed before <handshake/> (%s)" % (reason,))
        else:
            self.finish(1, "component: receiver closed the active stream (%s); %d stanza(s) seen, none matched"
                        % (reason, len(self.seen)))

    def on_stanza(self, stanza):
        tag = stanza.xml.tag
        if tag.endswith("}handshake") or tag == "{%s}error" % STREAM_NS:
            return
        xml = str(stanza)
        self.seen.append(xml)
        print("RECEIVED %s" % xml, flush=True)
        if self.reply_tmpl and stanza.xml.tag.endswith("}iq") and stanza.xml.get("type") in ("get", "set"):
            reply = self.reply_tmpl.format(id=stanza.xml.get("id", ""), to=stanza.xml.get("to", ""),
                                           type=stanza.xml.get("type", ""),
                                           **{"from": stanza.xml.get("from", "")})
            self.send_raw(reply)
            print("SENT %s" % reply.replace("\n", " "), flush=True)
        if self.rx is not None and self.rx.search(xml):
            print("MATCHED %s" % xml, flush=True)
            self.finish(0)


async def run(a):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    xmpp = Harness(a, done)
    xmpp.connect(a.host, a.port)
    try:
        code = await asyncio.wait_for(done, a.timeout)
    except asyncio.TimeoutError:
        if a.expect_handshake_failure and not xmpp.active:
            msg = "no answer to the handshake"
        elif not xmpp.active:
            msg = "the stream never became active"
        elif xmpp.rx is not None:
            msg = "no stanza matched %r; %d stanza(s) seen" % (a.expect, len(xmpp.seen))
        else:
            msg = "?"
        print("component: timeout after %ss: %s" % (a.timeout, msg), file=sys.stderr)
        for s in xmpp.seen:
            print("  seen: %s" % s, file=sys.stderr)
        code = 1
    # Close politely: </stream:stream>, wait briefly for the peer's.
    xmpp.cancel_connection_attempt()
    if xmpp.is_connected():
        try:
            await asyncio.wait_for(xmpp.disconnect(wait=a.close_wait), a.close_wait + 1)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001
            xmpp.abort()
    print("RESULT %d" % code, flush=True)
    return code


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", required=True, help="the component NAME sent as 'to' in the header")
    ap.add_argument("--secret", required=True)
    ap.add_argument("--send-file", help="raw XML stanza(s) to send once active")
    ap.add_argument("--expect", help="regex an incoming stanza's serialized XML must match")
    ap.add_argument("--reply-file", help="template answered to every iq get/set (see above)")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--expect-handshake-failure", action="store_true")
    ap.add_argument("--expect-error", help="with --expect-handshake-failure: required stream error condition")
    ap.add_argument("--keepalive-interval", type=float, default=300,
                    help="slixmpp whitespace keepalive period in s (slixmpp default 300; 0 = off)")
    ap.add_argument("--close-wait", type=float, default=1.0, help="seconds to wait for the peer's </stream:stream>")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.CRITICAL,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    print("SLIXMPP %s" % slixmpp.__version__, file=sys.stderr)
    return asyncio.run(run(a))


if __name__ == "__main__":
    sys.exit(main())
