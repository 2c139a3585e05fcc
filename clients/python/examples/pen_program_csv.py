#!/usr/bin/env python3
"""Runs a two-step microneedling program on a pen and writes its telemetry to CSV.

Step 1: 0.5 mm at 100 Hz; step 2: 1.0 mm at 120 Hz; --step-seconds each. Every sample from
the run's start to its end becomes one CSV row (device time in seconds, sequence, output on,
then the pen's readings with their units in the column names). Prints the run's ledger.

    python3 clients/python/examples/pen_program_csv.py --target 127.0.0.1:50051 --csv pen.csv
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import derma  # noqa: E402

READINGS = ("needle_depth_mm", "stroke_rate_hz", "strokes_total", "motor_current_a",
            "motor_temperature_c", "cartridge_strokes_used")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="dermad host:port")
    parser.add_argument("--device", default="devices/pen-1", help="a microneedling pen")
    parser.add_argument("--csv", default="pen-telemetry.csv", help="output file")
    parser.add_argument("--step-seconds", type=float, default=3.0, help="duration of each step")
    args = parser.parse_args()
    program = [
        {"needle_depth_mm": 0.5, "stroke_rate_hz": 100, "duration_s": args.step_seconds},
        {"needle_depth_mm": 1.0, "stroke_rate_hz": 120, "duration_s": args.step_seconds},
    ]

    with derma.connect(args.target) as client, client.telemetry([args.device]) as stream:
        items = iter(stream)
        for item in items:  # snapshot first: the stream is live once Synced arrives
            if isinstance(item, derma.Synced):
                break
        with client.lease(args.device, ttl_s=10) as pen, open(args.csv, "w", newline="") as out:
            run = pen.run(program)
            print(f"started {run.name}: {len(program)} steps of {args.step_seconds:g} s")
            writer = csv.writer(out)
            writer.writerow(["device_time_s", "sequence", "output_on", *READINGS])
            rows, recording = 0, False
            for item in items:
                if isinstance(item, derma.Event) and item.run == run.name:
                    print(f"  {item.type.lower()}: {item.message}")
                    recording = item.type != "RUN_ENDED"
                    if not recording:
                        break
                elif isinstance(item, derma.Gap):
                    print(f"  warning: {item.missing} {item.what} missing after "
                          f"#{item.after_sequence}", file=sys.stderr)
                elif isinstance(item, derma.Sample) and recording:
                    writer.writerow([f"{item.time_s:.3f}", item.sequence, int(item.output_on),
                                     *(item.values[name] for name in READINGS)])
                    rows += 1
            final = run.result(timeout_s=10)
    ledger = final.ledger
    print(f"{final.name} {final.state} ({final.end_reason}): output on {ledger.output_on_s:.2f} s, "
          f"{ledger.strokes_delivered} strokes; wrote {rows} samples to {args.csv}")
    return 0 if final.state == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
