"""What mod_palisade costs Prosody (see bench.sh): PAIRS sender/receiver pairs of raw c2s
clients; each sender sends its share of N chat messages to its receiver as fast as Prosody
takes them (or, with --window K, keeps at most K of them on their way: it sends the next one
each time its receiver gets one); the run ends when every receiver has counted its share.
Prints one JSON line with the message rate and the CPU time each watched process (PIDs) spent
during the run."""

import argparse
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
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


# Counts that do not move with the machine's load, per watched process (`perf stat -p`, every
# thread; software counters and tracepoints, which work where hardware counters do not).
COUNTERS = [
    ("task-clock", "task_clock_ms"),
    ("context-switches", "context_switches"),
    ("raw_syscalls:sys_enter", "syscalls"),
    ("syscalls:sys_enter_recvfrom", "recvfrom"),
    ("syscalls:sys_enter_sendto", "sendto"),
    ("syscalls:sys_enter_io_uring_enter", "io_uring_enter"),
    ("syscalls:sys_enter_epoll_wait", "epoll_wait"),
    ("syscalls:sys_enter_epoll_ctl", "epoll_ctl"),
    ("io_uring:io_uring_submit_req", "io_uring_requests"),
]


class PerfStat:
    """`perf stat` attached to `pid` until stop(); nothing (no figures) without perf."""

    def __init__(self, pid):
        self.proc = None
        self.out = None
        if os.environ.get("BENCH_COUNT", "1") == "0" or shutil.which("perf") is None:
            return
        fd, self.out = tempfile.mkstemp(suffix=".perfstat")
        os.close(fd)
        events = ",".join(e for e, _ in COUNTERS)
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", events, "-p", str(pid), "-o", self.out],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        """{key: count} over the time it ran."""
        if self.proc is None:
            return {}
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()
        found = {}
        names = dict(COUNTERS)
        with open(self.out) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) < 3 or fields[2] not in names:
                    continue
                try:
                    found[names[fields[2]]] = float(fields[0])
                except ValueError:
                    pass  # <not supported> / <not counted>
        os.unlink(self.out)
        return found


class Callgrind:
    """Zeroes, then dumps, the counters of a process running under valgrind --tool=callgrind
    (bench.sh BENCH_CALLGRIND=1): its instructions over the run, C and Lua alike."""

    def __init__(self, pid, out_prefix):
        self.pid, self.prefix = pid, out_prefix
        subprocess.run(["callgrind_control", "-z", str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)

    def stop(self):
        before = set(os.listdir(os.path.dirname(self.prefix)))
        subprocess.run(["callgrind_control", "-d", str(self.pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = [n for n in set(os.listdir(os.path.dirname(self.prefix))) - before
                   if os.path.join(os.path.dirname(self.prefix), n).startswith(self.prefix)]
            for n in new:
                with open(os.path.join(os.path.dirname(self.prefix), n)) as f:
                    for line in f:
                        if line.startswith("summary:") or line.startswith("totals:"):
                            return {"instructions": float(line.split()[1])}
            time.sleep(0.2)
        return {}


def message(to, n, pair):
    return ("<message type='chat' to='%s' id='b%d'><body>benchmark message %d of pair %d, "
            "about the size of a short chat line</body></message>" % (to, n, n, pair)).encode()


def run_windowed(pairs, per, window, finished, results):
    """Every pair in one thread: each sender keeps at most `window` messages on their way to its
    receiver, sending the next one as each arrives, as users who write a line, see it
    delivered and write the next one would. `finished` gets, per receiver, when it had its
    share; `results`, per receiver, how many messages it counted."""
    sel = selectors.DefaultSelector()
    END = b"</message>"
    state = []
    for i, (s, r) in enumerate(pairs):
        st = {"pair": i, "sender": s, "to": r.jid, "sent": 0, "seen": r.buf.count("</message>"),
              "tail": b"", "done": False}
        r.buf = ""
        state.append(st)
        for c in (s, r):
            c.sock.setblocking(False)
        sel.register(r.sock, selectors.EVENT_READ, ("receiver", st))
        sel.register(s.sock, selectors.EVENT_READ, ("sender", st))

    def send_more(st):
        # Small writes on a socket whose peer reads: sendall returns at once.
        while st["sent"] < per and st["sent"] - st["seen"] < window:
            st["sender"].sock.setblocking(True)
            st["sender"].sock.sendall(message(st["to"], st["sent"], st["pair"]))
            st["sender"].sock.setblocking(False)
            st["sent"] += 1

    for st in state:
        send_more(st)
    left = len(state)
    timeout = float(os.environ.get("BENCH_RECV_TIMEOUT", "120"))
    while left > 0:
        ready = sel.select(timeout)
        if not ready:
            break  # nothing for BENCH_RECV_TIMEOUT seconds: counted as it stands
        for key, _ in ready:
            role, st = key.data
            try:
                data = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                if role == "receiver" and not st["done"]:
                    st["done"] = True
                    left -= 1
                continue
            if role == "sender":
                continue  # nothing is expected; read so that it never blocks Prosody
            chunk = st["tail"] + data
            st["seen"] += chunk.count(END)
            # An end tag split between two reads is counted in the second: the last bytes are
            # kept (no end tag overlaps another, so none is counted twice).
            st["tail"] = chunk[-(len(END) - 1):]
            if not st["done"] and st["seen"] >= per:
                st["done"] = True
                left -= 1
                finished.append(time.monotonic())
            send_more(st)
    # Anything more is a message delivered twice (or from elsewhere): counted too.
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        for key, _ in sel.select(0.1):
            role, st = key.data
            try:
                data = key.fileobj.recv(1 << 20)
            except (BlockingIOError, OSError):
                continue
            if not data:
                sel.unregister(key.fileobj)
            elif role == "receiver":
                st["seen"] += (st["tail"] + data).count(END)
                st["tail"] = b""
    for st in state:
        results.append(st["seen"])
    for s, r in pairs:
        for c in (s, r):
            c.sock.setblocking(True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--pid", action="append", default=[], help="NAME=PID to measure")
    ap.add_argument("--label", default="")
    ap.add_argument("--window", type=int, default=0,
                    help="messages each sender keeps on their way (0: all of them at once)")
    ap.add_argument("--callgrind", action="append", default=[],
                    help="NAME=PREFIX: that watched process runs under callgrind, dumping to PREFIX.*")
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
    if args.window > 0:
        threads = [threading.Thread(target=run_windowed,
                                    args=(pairs, per, args.window, finished, results))]
        senders = []
    else:
        threads = [threading.Thread(target=receive, args=(r, results)) for _, r in pairs]
        batches = [b"".join(message(r.jid, n, i) for n in range(per))
                   for i, (_, r) in enumerate(pairs)]
        senders = [threading.Thread(target=s.sock.sendall, args=(b,))
                   for (s, _), b in zip(pairs, batches)]

    grinds = dict(p.split("=", 1) for p in args.callgrind)
    counters = {name: (Callgrind(int(pid), grinds[name]) if name in grinds else PerfStat(int(pid)))
                for name, pid in pids.items()}
    time.sleep(0.5)  # perf attaches to every thread
    before = {name: cpu_times(int(pid)) for name, pid in pids.items()}
    after = {}
    counts = {}

    def measure_when_done():
        # CPU times are read once every receiver has its share, before the lingering read.
        while len(finished) < len(pairs) and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        after.update({name: cpu_times(int(pid)) for name, pid in pids.items()})
        counts.update({name: c.stop() for name, c in counters.items()})
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
        "window": args.window,
    }
    per_msg = lambda seconds: round(seconds * 1e6 / max(counted, 1), 1)
    for name in pids:
        user = after[name][0] - before[name][0]
        system = after[name][1] - before[name][1]
        out["%s_cpu_us_per_msg" % name] = per_msg(user + system)
        out["%s_sys_us_per_msg" % name] = per_msg(system)
        for key, value in counts.get(name, {}).items():
            out["%s_%s_per_msg" % (name, key)] = round(value / max(counted, 1), 3)
    print(json.dumps(out))
    for s, r in pairs:
        s.close()
        r.close()


if __name__ == "__main__":
    main()
