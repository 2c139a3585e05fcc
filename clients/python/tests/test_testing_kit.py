"""derma.testing.start_dermad, the context manager under the pytest plugin (the plugin itself,
through the installed wheel's entry point, is tested by package_tests/test_wheel.py)."""
from __future__ import annotations

import os
import signal
import urllib.request
from pathlib import Path

import pytest

import derma
from conftest import dermad_binary
from derma.testing import DEFAULT_FLEET, DermadError, find_dermad, start_dermad

REPO = Path(__file__).resolve().parents[3]


def test_a_station_serves_the_default_fleet_on_a_virtual_clock_and_cleans_up():
    with start_dermad(dermad=dermad_binary()) as station:
        assert [d.id for d in station.client.devices()] == ["pen-1", "pen-2", "stim-1", "stim-2"]
        assert station.target == f"127.0.0.1:{station.port}"
        assert station.metrics_url is None
        before = station.advance(1.0)
        assert station.advance(2.5) - before == 2_500_000  # device time moves only when told
        scratch = station.scratch
        assert (station.state_dir / "audit.db").is_file()
        assert "dermad: serving 4 devices" in station.log_text()
    assert station.process.returncode == 0
    assert not scratch.exists()
    assert "dermad: serving 4 devices" in station.log_text()  # kept after the folder is gone


def test_the_default_fleet_is_the_repositorys_virtual_fleet():
    def devices(path: Path) -> str:
        text = path.read_text()
        return text[text.index("devices {"):].replace(" ", "")

    stripped = [line for line in devices(DEFAULT_FLEET).splitlines()
                if line and not line.startswith("#")]
    shipped = [line for line in devices(REPO / "deploy" / "fleet-virtual.textproto").splitlines()
               if line and not line.startswith("#")]
    assert stripped == shipped


def test_metrics_on_a_free_port_when_asked():
    with start_dermad(dermad=dermad_binary(), metrics=True) as station:
        assert station.metrics_url is not None and station.metrics_url.endswith("/metrics")
        with urllib.request.urlopen(station.metrics_url, timeout=10) as response:
            assert 'derma_device_up{device="pen-1"} 1' in response.read().decode()


def test_fleet_text_scenarios_and_faults(tmp_path: Path):
    fleet = ('clock { mode: CLOCK_MODE_VIRTUAL }\n'
             'devices { id: "stim-9" kind: DEVICE_KIND_MICROCURRENT model: "MC-10" }\n')
    scenario = tmp_path / "contact.textproto"
    scenario.write_text('actions { at_s: 1 inject_fault { name: "devices/stim-9" '
                        'kind: FAULT_KIND_OVERCURRENT } }\n')
    with start_dermad(dermad=dermad_binary(), fleet_text=fleet) as station:
        assert station.load_scenario(scenario) == 1
        with station.client.lease("stim-9", ttl_s=30) as stim:
            stim.configure(current_ua=100)
            stim.start()
            station.advance(1.5)
        device = station.client.device("stim-9")
        assert device.state == "FAULT" and device.fault.kind == "OVERCURRENT"
        assert not device.output_on


def test_a_bad_fleet_fails_the_start_with_dermads_own_words(tmp_path: Path):
    with pytest.raises(DermadError) as failure:
        with start_dermad(dermad=dermad_binary(), fleet_text="devices { id: 7 }"):
            pass
    assert "exited with code 2 before serving" in str(failure.value)
    assert "bad config" in failure.value.log


def test_a_dermad_that_dies_fails_the_stop_with_its_exit_code():
    with pytest.raises(DermadError, match="dermad exited with code -9"):
        with start_dermad(dermad=dermad_binary()) as station:
            os.kill(station.process.pid, signal.SIGKILL)
            station.process.wait()


def test_the_blocks_own_exception_wins_and_dermad_is_still_stopped():
    with pytest.raises(KeyError):
        with start_dermad(dermad=dermad_binary()) as station:
            raise KeyError("from the test")
    assert station.process.returncode == 0


def test_which_dermad(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("DERMA_DERMAD", dermad_binary())
    assert find_dermad() == str(Path(dermad_binary()).resolve())
    monkeypatch.setenv("DERMA_DERMAD", str(tmp_path / "nothing"))
    with pytest.raises(DermadError, match=r"\$DERMA_DERMAD names .*nothing, which is not"):
        find_dermad()
    monkeypatch.delenv("DERMA_DERMAD")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DermadError, match="no dermad: pass dermad=PATH"):
        find_dermad()


def test_arguments_are_checked_before_anything_starts():
    with pytest.raises(ValueError, match="fleet or fleet_text, not both"):
        with start_dermad(fleet=DEFAULT_FLEET, fleet_text="", dermad=dermad_binary()):
            pass
    with pytest.raises(ValueError, match="clock must be"):
        with start_dermad(clock="sundial", dermad=dermad_binary()):
            pass
    with pytest.raises(ValueError, match="is not a file"):
        with start_dermad(fleet="/nonexistent.textproto", dermad=dermad_binary()):
            pass


def test_extra_args_reach_dermad(tmp_path: Path):
    with start_dermad(dermad=dermad_binary(), clock="real", args=["--speed_factor=10"]) as s:
        assert "(real clock)" in s.log_text()
        with pytest.raises(derma.errors.VirtualClockRequired):
            s.advance(1)
