"""HTTP/2 abuse bench: one unauthenticated connection floods dermad (directly, or through the
nginx front of deploy/nginx/) for N seconds while an honest client calls GetDevice every 10 ms;
prints one row per flood with dermad's memory, the honest client's latency, when the flooding
connection was closed and how long dermad stayed busy after the flood.

  DERMAD=build/plugin/host/dermad DERMA_PYTHON_DIR=build/python DERMA_REPO=. \\
    /usr/bin/python3 tests/bench/h2_abuse_bench.py [--seconds 10] [--front] [--reconnect] [--modes ...] \\
      [--dermad_arg=--flag=value ...]

Goals (README "Hostile clients"): RSS growth < 256 MiB, GetDevice p99 <= 50 ms during the flood,
dermad idle within 1 s after it.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

import flood_rig  # noqa: E402

MODES = ("rapid-reset", "ping", "ping-refused")
HEADER = ("| flood | via | attacker frames/s | first connection closed after s | connections "
          "| dermad RSS MiB before → peak | GetDevice p50 / p99 ms | failed / calls | p99 in the next 1 s | dermad idle after s |")


def row(via, r):
    flood = r["flood"]
    closed = flood.get("server_closed_after_s")
    idle = r["idle_after_s"]
    return (f"| {r['mode']} | {via} | {flood.get('frames_per_s', 0):,} "
            f"| {'open' if closed is None else f'{closed:.2f}'} | {flood.get('connections', 1)} "
            f"| {r['rss_before_mib']:.0f} → {r['rss_peak_mib']:.0f} "
            f"| {r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['failed']} / {r['calls']} "
            f"| {r['p99_after_ms']:.1f} | {'> 15' if idle is None else f'{idle:.2f}'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--front", action="store_true", help="through the nginx front")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--dermad_arg", action="append", default=[],
                        help="an extra dermad flag (repeatable)")
    parser.add_argument("--reconnect", action="store_true",
                        help="the attacker opens a new connection whenever one is closed")
    args = parser.parse_args()
    print(HEADER)
    print("|---" * 10 + "|")
    for mode in args.modes:
        dermad = flood_rig.Dermad(0, *args.dermad_arg)
        front = flood_rig.Front(dermad.port) if args.front else None
        try:
            r = flood_rig.measure(dermad, front.port if front else dermad.port, mode,
                                  args.seconds, reconnect=args.reconnect)
            print(row("nginx front" if front else "direct", r), flush=True)
        finally:
            if front:
                front.close()
            dermad.close()


if __name__ == "__main__":
    main()
