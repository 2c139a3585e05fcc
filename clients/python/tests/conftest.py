"""Fixtures: a real dermad on a free port (as in tests/e2e/conftest.py) and clients to it.

Environment (set by ctest): DERMAD, the dermad binary (default: build/plugin/host/dermad);
PYTHONPATH with clients/python, whose generated modules come from generate.py.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

CLIENT_DIR = Path(__file__).resolve().parent.parent
REPO = CLIENT_DIR.parent.parent
sys.path.insert(0, str(CLIENT_DIR))

import derma  # noqa: E402

PORT_LINE = re.compile(r"port (\d+)")
VIRTUAL_FLEET = REPO / "deploy" / "fleet-virtual.textproto"
REAL_FLEET = REPO / "deploy" / "fleet.textproto"


def dermad_binary() -> str:
    return os.environ.get("DERMAD", str(REPO / "build" / "plugin" / "host" / "dermad"))


class Dermad:
    """A running dermad process (no metrics endpoint) and its target "127.0.0.1:N"."""

    def __init__(self, config: Path, *extra: str) -> None:
        # An audit trail of its own in a temporary state directory.
        self.state_dir = tempfile.mkdtemp(prefix="dermad-state-")
        self.process = subprocess.Popen(
            [dermad_binary(), "--config", str(config), "--listen", "127.0.0.1:0",
             "--metrics_listen=", "--log_level=error", f"--state_dir={self.state_dir}",
             "--mutex_deadlock_detection", *extra],  # lock-order checks on, as in every test
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = PORT_LINE.search(line)
        if match is None:
            self.process.kill()
            raise RuntimeError(f"dermad did not start: {line!r} {self.process.stderr.read()!r}")
        self.port = int(match.group(1))
        self.target = f"127.0.0.1:{self.port}"

    def terminate(self, timeout_s: float = 5) -> int:
        """SIGTERM; returns the exit code."""
        self.process.terminate()
        return self.process.wait(timeout=timeout_s)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()
        shutil.rmtree(self.state_dir, ignore_errors=True)


@pytest.fixture
def dermad() -> Iterator[Dermad]:
    """dermad with deploy/fleet-virtual.textproto: time moves only by advance_clock."""
    server = Dermad(VIRTUAL_FLEET)
    yield server
    server.close()


@pytest.fixture
def client(dermad: Dermad) -> Iterator[derma.Client]:
    with derma.connect(dermad.target, timeout_s=5, holder="pytest") as c:
        yield c


@pytest.fixture
def real_dermad() -> Iterator[Dermad]:
    """dermad with the shipped deploy/fleet.textproto (real clock)."""
    server = Dermad(REAL_FLEET)
    yield server
    server.close()


# Two pens the shipped fleets cannot show: a cartridge shorter than the model's depth range
# (INTERLOCK_DEPTH_EXCEEDS_NEEDLE) and a cartridge with every rated stroke used
# (CARTRIDGE_EXPIRED).
EDGE_FLEET = """
clock { mode: CLOCK_MODE_VIRTUAL }
sim_seed: 42
devices {
  id: "pen-short"
  kind: DEVICE_KIND_MICRONEEDLING
  model: "DP-300"
  pen { cartridge_needle_length_mm: 1.0 }
}
devices {
  id: "pen-worn"
  kind: DEVICE_KIND_MICRONEEDLING
  model: "DP-100"
  pen { cartridge_strokes_rated: 1000 cartridge_strokes_used: 1000 }
}
"""


@pytest.fixture
def edge_client(tmp_path: Path) -> Iterator[derma.Client]:
    config = tmp_path / "edge-fleet.textproto"
    config.write_text(EDGE_FLEET)
    server = Dermad(config)
    with derma.connect(server.target, timeout_s=5, holder="pytest") as c:
        yield c
    server.close()


@pytest.fixture
def pen_steps() -> list[dict[str, float]]:
    """Two 1 s steps on a pen: 0.5 mm at 100 Hz, then 1.0 mm at 120 Hz."""
    return [{"needle_depth_mm": 0.5, "stroke_rate_hz": 100, "duration_s": 1.0},
            {"needle_depth_mm": 1.0, "stroke_rate_hz": 120, "duration_s": 1.0}]
