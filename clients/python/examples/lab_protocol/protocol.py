#!/usr/bin/env python3
"""A lab's treatment protocol: three microneedling passes on one pen, and what it delivered.

What a lab script built on the installed `derma` package looks like: it takes the pen's lease
for the run (derma.Client.run), runs the three passes as one program and reports the run's
dose ledger. test_protocol.py beside it checks the protocol in CI against a simulated station
(the derma.testing pytest plugin); against a real or simulated station:

    python3 protocol.py --target 127.0.0.1:50051 --device pen-1
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

import derma

# Each pass: needle depth, stroke rate and how long.
PASSES = [
    {"needle_depth_mm": 0.5, "stroke_rate_hz": 100, "duration_s": 3},
    {"needle_depth_mm": 1.0, "stroke_rate_hz": 120, "duration_s": 3},
    {"needle_depth_mm": 0.5, "stroke_rate_hz": 100, "duration_s": 2},
]
TOTAL_S = sum(p["duration_s"] for p in PASSES)
# Strokes the passes ask for: rate × duration, summed.
PRESCRIBED_STROKES = sum(p["stroke_rate_hz"] * p["duration_s"] for p in PASSES)


@dataclass(frozen=True)
class Report:
    """What one run of the protocol delivered."""
    run: str
    end_reason: Optional[str]   # "COMPLETED", "FAULT", "EMERGENCY_STOP", ...
    fault: Optional[str]        # the device's fault after a FAULT end, e.g. "OVER_TEMPERATURE"
    strokes_delivered: int
    strokes_programmed: float   # what the program asked for over its output-on time
    output_on_s: float

    @property
    def complete(self) -> bool:
        return self.end_reason == "COMPLETED"


def start(client: derma.Client, device: str) -> derma.RunHandle:
    """Starts the protocol on a pen; the handle holds the pen's lease until the run ends."""
    return client.run(device, PASSES, ttl_s=30)


def report(client: derma.Client, handle: derma.RunHandle, timeout_s: float) -> Report:
    """Waits for the run to end (at most timeout_s) and reports its ledger."""
    final = handle.result(timeout_s=timeout_s)
    fault = None
    if final.end_reason == "FAULT":
        active = client.device(final.device).fault
        fault = active.kind if active else None
    return Report(final.name, final.end_reason, fault, final.ledger.strokes_delivered,
                  final.ledger.strokes_programmed, final.ledger.output_on_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="dermad host:port")
    parser.add_argument("--device", default="pen-1", help="a microneedling pen")
    args = parser.parse_args()
    with derma.connect(args.target) as client:
        result = report(client, start(client, args.device), timeout_s=TOTAL_S + 30)
    print(f"{result.run}: {result.end_reason}, {result.strokes_delivered} strokes "
          f"({result.strokes_programmed:.0f} programmed, {PRESCRIBED_STROKES} prescribed) in "
          f"{result.output_on_s:.2f} s" + (f"; fault {result.fault}" if result.fault else ""))
    return 0 if result.complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
