"""The demo's scripted users (see demo.sh): alice (trading), bob (research), carol (neither).
Prints what each of them saw, and exits 0 when the wall held and allowed traffic flowed."""

import argparse
import sys

from xmpp_client import Client


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--muc", default="conference.localhost")
    args = ap.parse_args()

    alice = Client(args.port, "alice", "alice-pw", resource="desk")
    bob = Client(args.port, "bob", "bob-pw", resource="desk")
    carol = Client(args.port, "carol", "carol-pw", resource="desk")
    ok = True

    def check(what, good, detail=""):
        nonlocal ok
        ok = ok and good
        print("  [%s] %s%s" % ("ok" if good else "FAILED", what, (": " + detail) if detail else ""))

    def delivered(client, body):
        return client.expect(lambda s: s.startswith("<message") and ("<body>%s</body>" % body) in s, 5)

    def refused(client, mid):
        return client.expect(lambda s: ("id='%s'" % mid) in s and "type='error'" in s, 5)

    def condition(err):
        for c in ("forbidden", "not-acceptable", "service-unavailable", "remote-server-timeout"):
            if err and ("<%s" % c) in err:
                return c
        return "?"

    print("one-to-one messages:")
    mid = alice.chat("bob@localhost", "hello bob, it is alice")
    err = refused(alice, mid)
    check("alice (trading) -> bob (research) is refused", err is not None, condition(err))
    check("bob never receives it", delivered(bob, "hello bob, it is alice") is None)
    mid = bob.chat("alice@localhost", "hello alice, it is bob")
    err = refused(bob, mid)
    check("bob (research) -> alice (trading) is refused", err is not None, condition(err))
    alice.chat("carol@localhost", "hello carol")
    check("alice -> carol arrives", delivered(carol, "hello carol") is not None)
    bob.chat("carol@localhost", "hi carol, bob here")
    check("bob -> carol arrives", delivered(carol, "hi carol, bob here") is not None)
    carol.chat("alice@localhost", "carol to alice")
    check("carol -> alice arrives", delivered(alice, "carol to alice") is not None)

    print("rooms:")
    research = "research-desk@%s" % args.muc
    trading = "trading-desk@%s" % args.muc

    def join(client, room, nick):
        client.send("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % (room, nick))
        return client.expect(lambda s: s.startswith("<presence") and ("from='%s/%s'" % (room, nick)) in s, 5)

    got = join(bob, research, "bob")
    check("bob joins %s" % research, got is not None and "type='error'" not in got)
    got = join(alice, research, "alice")
    check("alice cannot join %s" % research, got is not None and "type='error'" in got, condition(got))
    got = join(alice, trading, "alice")
    check("alice joins %s" % trading, got is not None and "type='error'" not in got)
    got = join(carol, trading, "carol")
    check("carol joins %s" % trading, got is not None and "type='error'" not in got)
    alice.send("<message type='groupchat' to='%s' id='g1'><body>morning desk</body></message>" % trading)
    check("alice's room message reaches carol", delivered(carol, "morning desk") is not None)
    got = join(bob, trading, "bob")
    check("bob cannot join %s" % trading, got is not None and "type='error'" in got, condition(got))

    for c in (alice, bob, carol):
        c.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
