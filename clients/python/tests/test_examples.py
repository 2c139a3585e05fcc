"""The examples, each run as a script against a spawned dermad with the shipped
deploy/fleet.textproto (real clock), checked by what they print and write."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import derma

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, timeout_s: float = 60) -> str:
    """Runs examples/<name>.py with args; returns its stdout (asserting exit 0)."""
    result = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args],
                            capture_output=True, text=True, timeout=timeout_s)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_pen_program_csv_writes_every_sample_of_both_steps(real_dermad, tmp_path) -> None:
    out = tmp_path / "pen.csv"
    stdout = run_example("pen_program_csv", "--target", real_dermad.target,
                         "--step-seconds", "1", "--csv", str(out))
    assert "SUCCEEDED (COMPLETED): output on 2.00 s" in stdout
    rows = list(csv.DictReader(out.open()))
    assert f"wrote {len(rows)} samples to {out}" in stdout
    # 2 s at 100 samples/s. The simulator samples once per tick of the real clock, so on a
    # machine busy with other work late ticks make fewer (seen: 176); never more.
    assert 150 <= len(rows) <= 210
    times = [float(r["device_time_s"]) for r in rows]
    assert 1.9 <= times[-1] - times[0] <= 2.1  # the whole program, both steps
    sequences = [int(r["sequence"]) for r in rows]
    assert sequences == list(range(sequences[0], sequences[0] + len(rows)))  # no gaps
    depths = [float(r["needle_depth_mm"]) for r in rows]
    assert depths[0] == 0.5 and depths[-1] == 1.0 and depths == sorted(depths)
    assert all(r["output_on"] == "1" for r in rows[:-1])
    assert float(rows[-1]["motor_temperature_c"]) > 25


def test_microcurrent_contact_loss_resumes_and_delivers_the_whole_session(real_dermad) -> None:
    stdout = run_example("microcurrent_contact_loss", "--target", real_dermad.target,
                         "--seconds", "2", "--loss-at", "0.8", "--restore-at", "1.6")
    lines = stdout.splitlines()
    lost = next(i for i, line in enumerate(lines) if "contact lost: stimulator paused" in line)
    back = next(i for i, line in enumerate(lines) if "contact back: resumed" in line)
    assert lost < back
    assert "SUCCEEDED (COMPLETED): output on 2.00 s of 2 s" in lines[-1]
    paused_s = float(lines[-1].split("paused ")[1].split(" s")[0])
    assert 0.7 <= paused_s <= 1.5  # contact was gone 0.8 s (+ up to one 0.1 s sample)


def test_fleet_watch_prints_a_live_table_of_every_device(real_dermad) -> None:
    with derma.connect(real_dermad.target, holder="pytest") as client, \
            client.lease("pen-1") as pen:
        pen.start()
        client.sim.inject_fault("pen-2", "CARTRIDGE_JAM")
        stdout = run_example("fleet_watch", "--target", real_dermad.target,
                             "--duration", "2", "--refresh", "1")
        pen.stop()
    tables = stdout.strip().split("\n\n")
    assert len(tables) == 2 and all(t.startswith("derma fleet at") for t in tables)
    rows = {line.split()[0]: line.split() for line in tables[-1].splitlines()[2:]}
    assert sorted(rows) == ["pen-1", "pen-2", "stim-1", "stim-2"]
    assert rows["pen-1"][2:4] == ["RUNNING", "ON"] and "pytest" in rows["pen-1"]
    assert rows["pen-2"][2] == "FAULT" and "CARTRIDGE_JAM" in rows["pen-2"]
    assert rows["stim-2"][2:4] == ["IDLE", "off"]
