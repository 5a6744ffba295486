#!/usr/bin/env python3
"""Shard model: predicts the gateway's events/s and CPU per event for N shards (one per core)
from what two shards on one machine can measure. Inputs and reasoning: tuning/shard-model.md.

    tuning/shard_model.py                      # the table for 1, 2, 4, 8, 16, 32, 64 shards
    tuning/shard_model.py --c1 4.1 --c2 4.8    # other measured inputs (see --help)

Model, per event (µs of gateway CPU):
    cost(N)      = c1 + (N-1)/N * H              H = 2 (c2 - c1): both hops of a cross-shard event
    events/s(N)  = min(N, cores) * u * 1e6 / cost(N)      u: the share of each core the
                                                          gateway may use (headroom)
    read-bound   = C * u * 1e6 / c_read          C router connections: only the shards holding
                                                 one read and frame (hand-off spreads them)
The same with the moderate-load inputs (c1m, c2m: one event per read, a wake-up per message)
gives the CPU a deployment pays per event when its routers send far below capacity.
"""
import argparse


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Defaults: measured on the 2-vCPU development VM (perf/RESULTS.md, "Roofline" and
    # "Shard model" sections); replace them with your own machine's figures.
    p.add_argument("--c1", type=float, default=4.13, help="full load, 1 shard: CPU µs/event")
    p.add_argument("--c2", type=float, default=4.75, help="full load, 2 shards: CPU µs/event")
    p.add_argument("--c1m", type=float, default=14.1, help="moderate load, 1 shard: CPU µs/event")
    p.add_argument("--c2m", type=float, default=21.3, help="moderate load, 2 shards: CPU µs/event")
    p.add_argument("--read-share", type=float, default=0.75,
                   help="share of c1 spent where the event is read (framing, reading the event)")
    p.add_argument("--hop", type=float, default=None,
                   help="measured cost of one mesh hop at full load (µs), to check H against 2 x hop")
    p.add_argument("--connections", type=int, default=0, help="router connections (0: at least one per shard)")
    p.add_argument("--headroom", type=float, default=0.8, help="share of each core the gateway may use")
    p.add_argument("--shards", default="1,2,4,8,16,32,64")
    a = p.parse_args()

    h_full = 2 * (a.c2 - a.c1)
    h_mod = 2 * (a.c2m - a.c1m)
    print(f"inputs: full load c1 {a.c1} µs, c2 {a.c2} µs -> H = 2 (c2 - c1) = {h_full:.2f} µs per cross-shard event")
    print(f"        moderate load c1 {a.c1m} µs, c2 {a.c2m} µs -> H = {h_mod:.2f} µs per cross-shard event")
    if a.hop is not None:
        print(f"        measured hop {a.hop:.2f} µs: 2 hops = {2 * a.hop:.2f} µs against H = {h_full:.2f} µs")
    print(f"        headroom {a.headroom:.0%} of each core; read share {a.read_share:.0%} of c1\n")
    print(f"{'shards':>6} {'cross':>6} {'µs/event':>9} {'events/s':>11} {'per core':>9} {'efficiency':>10}"
          f" {'read-bound':>11} {'µs/event moderate':>18}")
    for n in (int(x) for x in a.shards.split(",")):
        cross = (n - 1) / n
        cost = a.c1 + cross * h_full
        cost_m = a.c1m + cross * h_mod
        eps = n * a.headroom * 1e6 / cost
        conns = a.connections or n
        read_bound = min(conns, n) * a.headroom * 1e6 / (a.c1 * a.read_share)
        shown = min(eps, read_bound)
        print(f"{n:>6} {cross:>6.2f} {cost:>9.2f} {shown:>11,.0f} {shown / n:>9,.0f} {a.c1 / cost:>10.0%}"
              f" {read_bound:>11,.0f} {cost_m:>18.2f}")
    print("\nefficiency = events/s per core against one shard's (c1 / cost); events/s is the smaller of the")
    print("CPU bound and the read bound. The moderate-load column is the CPU per event at a rate far below")
    print("capacity (one event per read): more shards spread a fixed rate thinner, so no shard batches.")


if __name__ == "__main__":
    main()
