"""dermactl against a spawned dermad: each subcommand's output and exit code (0 ok, 2 usage,
3 device/state error, 4 connection error)."""
import json
import os
import re
import subprocess

import pytest

DERMACTL = os.environ.get("DERMACTL", "")


def ctl(dermad, *args, timeout=30):
    return subprocess.run([DERMACTL, f"--target=127.0.0.1:{dermad.port}", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def need_dermactl():
    assert DERMACTL and os.path.exists(DERMACTL), "DERMACTL must name the dermactl binary"


def test_help_lists_every_command():
    result = subprocess.run([DERMACTL, "--help"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0
    for command in ["list", "get", "watch", "configure", "start", "stop", "estop", "reset",
                    "run", "runs", "sim fault", "audit"]:
        assert command in result.stdout


def test_usage_errors_exit_2(dermad):
    assert ctl(dermad).returncode == 2
    assert ctl(dermad, "bogus").returncode == 2
    assert ctl(dermad, "get").returncode == 2
    assert ctl(dermad, "--frobnicate", "list").returncode == 2
    for duration in ("nan", "inf", "-5"):
        refused = ctl(dermad, f"--duration_s={duration}", "watch")
        assert refused.returncode == 2 and "finite number of seconds" in refused.stderr
    bad_key = ctl(dermad, "configure", "pen-1", "depth=1")
    assert bad_key.returncode == 2
    assert "needle_depth_mm" in bad_key.stderr, "lists the settable keys"
    assert ctl(dermad, "sim", "fault", "pen-1", "gremlins").returncode == 2


def test_connection_error_exits_4():
    result = subprocess.run([DERMACTL, "--target=127.0.0.1:1", "list"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 4
    assert "cannot reach" in result.stderr


def test_list_and_get(dermad):
    listed = ctl(dermad, "list")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "devices/pen-1", "devices/pen-2", "devices/stim-1", "devices/stim-2"]
    got = ctl(dermad, "get", "pen-1")
    assert got.returncode == 0
    assert "needle_depth_mm" in got.stdout and "cartridge" in got.stdout
    as_json = json.loads(ctl(dermad, "--json", "get", "devices/stim-1").stdout)
    assert as_json["name"] == "devices/stim-1"
    assert as_json["capabilities"]["compliance_voltage_v"] == 12
    missing = ctl(dermad, "get", "pen-9")
    assert missing.returncode == 3
    assert "DEVICE_NOT_FOUND" in missing.stderr


def test_configure_applies_quantized_values_and_names_bad_fields(dermad):
    ok = ctl(dermad, "--json", "configure", "pen-1", "needle_depth_mm=1.23", "stroke_rate_hz=120")
    assert ok.returncode == 0, ok.stderr
    applied = json.loads(ok.stdout)["microneedling"]
    assert applied["needle_depth_mm"] == pytest.approx(1.25)  # 0.05 mm steps
    assert applied["stroke_rate_hz"] == 120
    bad = ctl(dermad, "configure", "pen-1", "needle_depth_mm=9", "stroke_rate_hz=1000")
    assert bad.returncode == 3
    assert "SETTING_OUT_OF_RANGE" in bad.stderr
    assert "settings.microneedling.needle_depth_mm: 9 mm is outside" in bad.stderr
    assert "settings.microneedling.stroke_rate_hz" in bad.stderr
    stim = ctl(dermad, "configure", "stim-1", "waveform=sine", "current_ua=300")
    assert stim.returncode == 0, stim.stderr
    assert "sine" in stim.stdout


def test_start_pause_resume_stop(dermad):
    assert "running" in ctl(dermad, "start", "pen-2").stdout
    assert "paused" in ctl(dermad, "pause", "pen-2").stdout
    assert "running" in ctl(dermad, "resume", "pen-2").stdout
    stopped = ctl(dermad, "stop", "pen-2")
    assert stopped.returncode == 0 and "idle" in stopped.stdout and " off " in stopped.stdout
    illegal = ctl(dermad, "pause", "pen-2")
    assert illegal.returncode == 3
    assert "ILLEGAL_TRANSITION" in illegal.stderr


def test_estop_reset_and_simulated_fault(dermad):
    everything = ctl(dermad, "estop", "--all")
    assert everything.returncode == 0
    assert everything.stdout.count("estopped") == 4
    latched = ctl(dermad, "start", "pen-1")
    assert latched.returncode == 3 and "ESTOP_LATCHED" in latched.stderr
    assert "idle" in ctl(dermad, "reset", "pen-1").stdout
    assert ctl(dermad, "estop").returncode == 2
    assert ctl(dermad, "reset", "stim-1").returncode == 0
    injected = ctl(dermad, "sim", "fault", "stim-1", "overcurrent")
    assert injected.returncode == 0 and "overcurrent" in injected.stdout
    assert "fault: overcurrent" in ctl(dermad, "get", "stim-1").stdout
    present = ctl(dermad, "reset", "stim-1")
    assert present.returncode == 3 and "FAULT_CONDITION_PRESENT" in present.stderr


def test_run_shows_progress_and_ledger_then_runs_lists_it(dermad, tmp_path):
    program = tmp_path / "program.textproto"
    program.write_text(
        "steps { settings { microneedling { needle_depth_mm: 1.0 stroke_rate_hz: 100 } } "
        "duration_s: 0.3 }\n"
        "steps { settings { microneedling { needle_depth_mm: 1.5 } } duration_s: 0.3 }\n")
    result = ctl(dermad, "run", "pen-1", str(program))
    assert result.returncode == 0, result.stderr
    assert "step 1/2" in result.stdout and "step 2/2" in result.stdout
    assert "RUN_STATE_SUCCEEDED" in result.stdout
    assert "output on 0.600 s" in result.stdout
    runs = ctl(dermad, "--json", "runs", "pen-1")
    assert runs.returncode == 0
    run = json.loads(runs.stdout.splitlines()[0])
    assert run["state"] == "RUN_STATE_SUCCEEDED"
    assert ctl(dermad, "get", "pen-1").stdout.find("lease:") == -1, "lease released on exit"
    bad = tmp_path / "bad.textproto"
    bad.write_text("steps { duration_s: 0 }\n")
    refused = ctl(dermad, "run", "pen-1", str(bad))
    assert refused.returncode == 3 and "steps[0].duration_s" in refused.stderr
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("this is not a program")
    assert ctl(dermad, "run", "pen-1", str(garbage)).returncode == 2


def test_watch_prints_lines_when_piped_and_json(dermad):
    lines = ctl(dermad, "--duration_s=1", "watch", "pen-1", "stim-1")
    assert lines.returncode == 0, lines.stderr
    assert "devices/pen-1" in lines.stdout and "devices/stim-1" in lines.stdout
    as_json = ctl(dermad, "--json", "--duration_s=0.5", "watch", "pen-1")
    kinds = [next(iter(json.loads(line))) for line in as_json.stdout.splitlines()]
    assert kinds[:2] == ["snapshot", "sync"]
    assert "batch" in kinds


def test_audit_lists_commands_newest_first_with_filters(dermad):
    assert ctl(dermad, "configure", "pen-1", "needle_depth_mm=1.0").returncode == 0
    assert ctl(dermad, "start", "pen-1").returncode == 0
    assert ctl(dermad, "stop", "pen-1").returncode == 0
    assert ctl(dermad, "get", "pen-2").returncode == 0  # a read: not in the trail

    text = ctl(dermad, "audit", "pen-1")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any(re.search(r" Configure +OK ", line) for line in lines), text.stdout
    assert any(re.search(r" Stop +OK ", line) for line in lines), text.stdout
    assert all("devices/pen-1" in line for line in lines), "only pen-1's records"

    records = [json.loads(line) for line in ctl(dermad, "--json", "audit", "pen-1").stdout.splitlines()]
    methods = [r.get("method", "") for r in records]
    assert methods.index("/derma.v1.DeviceControl/Stop") < methods.index(
        "/derma.v1.DeviceControl/Configure"), "newest first"
    ids = [int(r["id"]) for r in records]
    assert ids == sorted(ids, reverse=True), "in the order they were written, newest first"
    assert not any(m.endswith("/GetDevice") for m in methods)

    assert len(ctl(dermad, "audit", "--limit=2").stdout.splitlines()) == 2
    assert ctl(dermad, "audit", "--principal=nobody-at-all").stdout == ""
    assert len(ctl(dermad, "audit", "--since=1h").stdout.splitlines()) >= 3
    assert ctl(dermad, "audit", "--since=later").returncode == 2
    assert ctl(dermad, "audit", "--limit=0").returncode == 2
    assert ctl(dermad, "audit", "pen-1", "pen-2").returncode == 2
