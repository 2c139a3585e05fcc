#!/usr/bin/env python3
"""What derma.testing costs a lab's CI: start-to-serving and stop times of start_dermad, and the
per-test overhead of the pytest fixture, measured against the same tests without a station.

    DERMA_DERMAD=build/plugin/host/dermad PYTHONPATH=clients/python \\
        /usr/bin/python3 tests/bench/testing_kit_bench.py [--cycles 30] [--tests 30]

Start-to-serving runs from the call to start_dermad until its client has had an answer (the
ListDevices connect makes); stop is SIGTERM to exit. Fleet: derma.testing's default (4 devices).
The per-test overhead is (time of a pytest session of N tests using derma_client − the same N
tests without it) / N, both sessions run here one after the other.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import derma
from derma.testing import start_dermad

WITH_STATION = "def test_{i}(derma_client):\n    assert len(derma_client.devices()) == 4\n"
WITHOUT_STATION = "def test_{i}():\n    assert len([1, 2, 3, 4]) == 4\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_stop_cycles(cycles: int) -> tuple[list[float], list[float]]:
    starts, stops = [], []
    for _ in range(cycles):
        t0 = time.perf_counter()
        with start_dermad() as station:
            t1 = time.perf_counter()
            station.client.devices()
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        starts.append(t1 - t0)
        stops.append(t3 - t2)
    return starts, stops


def session_seconds(folder: Path, template: str, tests: int) -> float:
    folder.mkdir()
    (folder / "test_many.py").write_text("\n".join(template.format(i=i) for i in range(tests)))
    # The derma package this script imported, wherever it came from (checkout or venv).
    package_root = str(Path(derma.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": package_root}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                    "derma.testing.pytest_plugin", str(folder)], check=True,
                   stdout=subprocess.DEVNULL, cwd=folder, env=env)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30, help="start/stop cycles")
    parser.add_argument("--tests", type=int, default=30, help="tests per pytest session")
    args = parser.parse_args()
    if "DERMA_DERMAD" not in os.environ:
        sys.exit("testing_kit_bench.py: set DERMA_DERMAD to the dermad binary")
    os.environ["DERMA_DERMAD"] = str(Path(os.environ["DERMA_DERMAD"]).resolve())

    starts, stops = start_stop_cycles(args.cycles)
    with tempfile.TemporaryDirectory() as scratch:
        with_station = session_seconds(Path(scratch) / "with", WITH_STATION, args.tests)
        without = session_seconds(Path(scratch) / "without", WITHOUT_STATION, args.tests)
    ms = 1000
    print(f"{'row':<44} {'p50':>8} {'p95':>8}")
    print(f"{'start_dermad to serving (ms)':<44} {statistics.median(starts) * ms:8.1f} "
          f"{percentile(starts, 0.95) * ms:8.1f}")
    print(f"{'stop: SIGTERM to exit (ms)':<44} {statistics.median(stops) * ms:8.1f} "
          f"{percentile(stops, 0.95) * ms:8.1f}")
    overhead = (with_station - without) / args.tests
    print(f"pytest, {args.tests} tests: {with_station:.2f} s with derma_client, "
          f"{without:.2f} s without: {overhead * ms:.0f} ms per test (goal < 300 ms)")


if __name__ == "__main__":
    main()
