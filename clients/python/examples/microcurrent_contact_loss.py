#!/usr/bin/env python3
"""A microcurrent session that rides out an electrode contact loss.

The stimulator pauses by itself when its electrodes lose skin contact (output off, run held);
this script watches telemetry, and once the samples show contact again it resumes the
session, so the run still delivers its full output-on time. Against the simulator it
injects the contact loss itself (a scenario: lost at --loss-at s, back at --restore-at s);
--no-inject leaves that to real electrodes.

    python3 clients/python/examples/microcurrent_contact_loss.py --target 127.0.0.1:50051
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import derma  # noqa: E402
from derma import errors  # noqa: E402

CONTACT_LOST = "ELECTRODE_CONTACT_LOST"


def scenario(device: str, loss_at_s: float, restore_at_s: float) -> str:
    """Scenario text: contact lost at loss_at_s, back at restore_at_s (seconds from now)."""
    fault = f'name: "{device}" kind: FAULT_KIND_{CONTACT_LOST}'
    return (f"actions {{ at_s: {loss_at_s} inject_fault {{ {fault} }} }}\n"
            f"actions {{ at_s: {restore_at_s} clear_fault {{ {fault} }} }}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="dermad host:port")
    parser.add_argument("--device", default="devices/stim-1", help="a microcurrent stimulator")
    parser.add_argument("--current-ua", type=float, default=200, help="current in µA")
    parser.add_argument("--seconds", type=float, default=4.0, help="output-on time of the session")
    parser.add_argument("--loss-at", type=float, default=1.5, help="contact lost after s")
    parser.add_argument("--restore-at", type=float, default=3.0, help="contact back after s")
    parser.add_argument("--no-inject", action="store_true", help="do not use the simulator")
    args = parser.parse_args()

    with derma.connect(args.target) as client, \
            client.telemetry([args.device], interval_s=0.1) as stream:
        items = iter(stream)
        for item in items:
            if isinstance(item, derma.Synced):
                break
        with client.lease(args.device, ttl_s=10) as stim:
            applied = stim.configure(frequency_hz=10, waveform="BIPHASIC_SQUARE", ramp_s=0.5)
            print(f"{args.device}: {applied['waveform']} at {applied['frequency_hz']:g} Hz, "
                  f"ramp {applied['ramp_s']:g} s")
            if not args.no_inject:
                client.sim.load_scenario(scenario(args.device, args.loss_at, args.restore_at))
            run = stim.run([{"current_ua": args.current_ua, "duration_s": args.seconds}])
            start_us, paused_us, waiting = None, 0, None
            for item in items:
                if isinstance(item, derma.Event):
                    if item.type == "RUN_STARTED" and item.run == run.name:
                        start_us = item.device_time_us
                    t = (item.device_time_us - (start_us or item.device_time_us)) / 1e6
                    if item.to_state == "PAUSED" and item.fault and item.fault.kind == CONTACT_LOST:
                        print(f"t={t:5.2f} s  contact lost: stimulator paused, output off")
                        waiting = item.device_time_us
                    elif item.type == "RUN_ENDED" and item.run == run.name:
                        break
                elif isinstance(item, derma.Sample) and waiting and item.values["electrode_contact"]:
                    try:
                        stim.resume()
                    except errors.NoElectrodeContact:
                        continue  # gone again: wait for the next sample with contact
                    t = (item.device_time_us - (start_us or item.device_time_us)) / 1e6
                    print(f"t={t:5.2f} s  contact back: resumed")
                    paused_us += item.device_time_us - waiting
                    waiting = None
            final = run.result(timeout_s=10)
    ledger = final.ledger
    print(f"{final.name} {final.state} ({final.end_reason}): output on "
          f"{ledger.output_on_s:.2f} s of {final.total_duration_s:g} s, charge "
          f"{ledger.charge_delivered_uc:.1f} µC, paused {paused_us / 1e6:.2f} s for contact")
    return 0 if final.state == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
