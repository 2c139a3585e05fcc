#!/usr/bin/env python3
"""Prints a live table of every device: state, output, latest readings, fault, lease holder.

One telemetry stream feeds the table (samples decimated to --interval-s of device time); it is
redrawn every --refresh seconds for --duration seconds (0 = until Ctrl-C). On a terminal the
table is redrawn in place; otherwise each refresh is printed below the last.

    python3 clients/python/examples/fleet_watch.py --target 127.0.0.1:50051 --duration 30
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import derma  # noqa: E402

COLUMNS = ("DEVICE", "MODEL", "STATE", "OUTPUT", "READINGS", "FAULT", "LEASE", "SAMPLES", "GAPS")


@dataclass
class Row:
    """What the table shows about one device."""
    model: str
    state: str
    holder: Optional[str]
    fault: str = ""
    sample: Optional[derma.Sample] = None
    samples: int = 0
    gaps: int = 0


def readings(sample: Optional[derma.Sample]) -> str:
    if sample is None:
        return "-"
    v = sample.values
    if "needle_depth_mm" in v:
        return (f"{v['needle_depth_mm']:.2f} mm {v['stroke_rate_hz']:5.1f} Hz "
                f"{v['motor_temperature_c']:4.1f} °C")
    contact = "contact" if v["electrode_contact"] else "NO CONTACT"
    current_ua = v["current_setpoint_ua"] + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{current_ua:6.1f} µA {v['electrode_impedance_ohm'] / 1000:5.1f} kΩ {contact}"


class Fleet:
    """The table's rows, updated by the stream reader thread. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, Row] = {}

    def apply(self, item: derma.telemetry.Item) -> None:
        with self._lock:
            if isinstance(item, derma.Snapshot):
                d = item.device
                self._rows[d.name] = Row(d.model, d.state, d.lease_holder,
                                         d.fault.kind if d.fault else "", d.latest_sample)
                return
            row = self._rows.get(getattr(item, "device", ""))
            if row is None:
                return
            if isinstance(item, derma.Sample):
                row.sample, row.samples = item, row.samples + 1
            elif isinstance(item, derma.Gap):
                row.gaps += item.missing
            elif isinstance(item, derma.Event):
                if item.to_state:
                    row.state = item.to_state
                if item.type == "FAULT_RAISED" and item.fault:
                    row.fault = item.fault.kind
                elif item.type == "FAULT_CLEARED" or item.to_state == "IDLE":
                    row.fault = ""
                if item.type == "LEASE_EXPIRED":
                    row.holder = None

    def table(self) -> str:
        with self._lock:
            rows = [(name.removeprefix("devices/"), r.model, r.state,
                     "ON" if r.sample and r.sample.output_on else "off", readings(r.sample),
                     r.fault or "-", r.holder or "-", str(r.samples), str(r.gaps))
                    for name, r in sorted(self._rows.items())]
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                 for line in [COLUMNS, *rows]]
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="dermad host:port")
    parser.add_argument("--duration", type=float, default=0, help="seconds to watch (0 = forever)")
    parser.add_argument("--refresh", type=float, default=1.0, help="seconds between redraws")
    parser.add_argument("--interval-s", type=float, default=0.1,
                        help="device seconds between samples of one device")
    args = parser.parse_args()
    fleet = Fleet()
    failure: list[BaseException] = []

    with derma.connect(args.target) as client, \
            client.telemetry(interval_s=args.interval_s) as stream:
        def read() -> None:
            try:
                for item in stream:
                    fleet.apply(item)
            except derma.DermaError as error:
                failure.append(error)

        threading.Thread(target=read, daemon=True).start()
        start = time.monotonic()
        redraw = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
        try:
            while not failure:
                time.sleep(args.refresh)
                elapsed = time.monotonic() - start
                print(f"{redraw}derma fleet at {args.target}, {elapsed:.0f} s\n{fleet.table()}\n",
                      flush=True)
                if args.duration and elapsed >= args.duration:
                    break
        except KeyboardInterrupt:
            pass
    if failure:
        print(f"stream ended: {failure[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
