"""What mod_palisade costs Prosody (see bench.sh): PAIRS sender/receiver pairs of raw c2s
clients; each sender sends its share of N chat messages to its receiver as fast as Prosody
takes them; the run ends when every receiver has counted its share. Prints one JSON line with
the message rate and the CPU time each watched process (PIDs) spent during the run."""

import argparse
import json
import os
import threading
import time

from xmpp_client import Client


def cpu_times(pid):
    """(user, system) CPU seconds of process `pid`."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line (12 and 13 after the name).
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--pid", action="append", default=[], help="NAME=PID to measure")
    ap.add_argument("--label", default="")
    args = ap.parse_args()

    per = args.messages // args.pairs
    pairs = []
    for i in range(args.pairs):
        sender = Client(args.port, "s%d" % i, "pw", resource="bench")
        receiver = Client(args.port, "r%d" % i, "pw", resource="bench")
        pairs.append((sender, receiver))
    pids = dict(p.split("=", 1) for p in args.pid)

    def receive(client, done):
        seen = client.buf.count("</message>")
        client.buf = ""
        client.sock.settimeout(float(os.environ.get("BENCH_RECV_TIMEOUT", "120")))
        while seen < per:
            try:
                data = client.sock.recv(1 << 20)
            except OSError:
                break
            if not data:
                break
            seen += data.count(b"</message>")
        finished.append(time.monotonic())
        # Anything more is a message delivered twice (or from elsewhere): count it too.
        client.sock.settimeout(0.5)
        while True:
            try:
                data = client.sock.recv(1 << 20)
            except OSError:
                break
            if not data:
                break
            seen += data.count(b"</message>")
        done.append(seen)

    results = []
    finished = []  # when each receiver had its share
    threads = [threading.Thread(target=receive, args=(r, results)) for _, r in pairs]
    batches = []
    for i, (s, r) in enumerate(pairs):
        batches.append("".join(
            "<message type='chat' to='%s' id='b%d'><body>benchmark message %d of pair %d, "
            "about the size of a short chat line</body></message>" % (r.jid, n, n, i)
            for n in range(per)).encode())
    senders = [threading.Thread(target=s.sock.sendall, args=(b,)) for (s, _), b in zip(pairs, batches)]

    before = {name: cpu_times(int(pid)) for name, pid in pids.items()}
    after = {}

    def measure_when_done():
        # CPU times are read once every receiver has its share, before the lingering read.
        while len(finished) < len(pairs) and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        after.update({name: cpu_times(int(pid)) for name, pid in pids.items()})
    meter = threading.Thread(target=measure_when_done)
    start = time.monotonic()
    for t in threads + senders + [meter]:
        t.start()
    for t in threads + senders + [meter]:
        t.join()
    elapsed = max(finished + [start]) - start

    delivered = sum(results)  # more than messages: some were delivered twice
    counted = min(delivered, per * args.pairs)
    out = {
        "label": args.label,
        "pairs": args.pairs,
        "messages": per * args.pairs,
        "delivered": delivered,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(counted / elapsed, 1),
    }
    per_msg = lambda seconds: round(seconds * 1e6 / max(counted, 1), 1)
    for name in pids:
        user = after[name][0] - before[name][0]
        system = after[name][1] - before[name][1]
        out["%s_cpu_us_per_msg" % name] = per_msg(user + system)
        out["%s_sys_us_per_msg" % name] = per_msg(system)
    print(json.dumps(out))
    for s, r in pairs:
        s.close()
        r.close()


if __name__ == "__main__":
    main()
