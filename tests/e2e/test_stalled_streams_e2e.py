"""Stalled readers cannot take the station's memory: 100 telemetry streams whose clients stop
reading, against 100 devices at 100 Hz. dermad's resident memory stays within the telemetry
budget plus what each stream may hold encoded, and goes back down once the streams close.
Prints its figures (pytest -s)."""
import os
import re
import subprocess
import time

from conftest import PORT_LINE
from stalled_client import open_stalled_stream

STREAMS = 100
BUDGET_MIB = 32
# What one stalled stream may pin beyond the shared budget: one encoded drain (16,384 samples
# in SampleBatch messages and their arenas) and gRPC's buffers of the write in flight.
PER_STREAM_MIB = 2.5
FLEET = """
clock { mode: CLOCK_MODE_REAL speed_factor: 1 }
sample_rate_hz: 100
groups { id_prefix: "pen-" count: 50 device { kind: DEVICE_KIND_MICRONEEDLING } }
groups { id_prefix: "stim-" count: 50 device { kind: DEVICE_KIND_MICROCURRENT } }
"""


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_stalled_streams_stay_within_the_telemetry_budget(tmp_path):
    fleet = tmp_path / "fleet.textproto"
    fleet.write_text(FLEET)
    dermad = subprocess.Popen(
        [os.environ["DERMAD"], f"--config={fleet}", "--listen=127.0.0.1:0", "--metrics_listen=",
         "--noaudit", "--log_level=error", f"--max_streams={STREAMS}",
         "--max_streams_per_principal=0", f"--telemetry_memory_mib={BUDGET_MIB}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(PORT_LINE.search(dermad.stdout.readline()).group(1))
        base = rss_mib(dermad.pid)
        sockets = [open_stalled_stream(port) for _ in range(STREAMS)]
        # Each stream's queue would reach its 65,536-sample capacity within 7 s at 10,000
        # samples/s: watch for 8 s (gRPC closes a connection whose peer never answers its
        # pings after about 10 s).
        peak = base
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            peak = max(peak, rss_mib(dermad.pid))
            time.sleep(0.1)
        for sock in sockets:
            sock.close()
        bound = BUDGET_MIB + STREAMS * PER_STREAM_MIB
        # Back down once the streams closed: wait for it (a heartbeat trims the heap).
        after = peak
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = rss_mib(dermad.pid)
            if after - base < (peak - base) / 2:
                break
            time.sleep(0.1)
        print(f"\nstalled streams: {STREAMS}, budget {BUDGET_MIB} MiB: RSS {base:.0f} MiB "
              f"before, peak {peak:.0f} MiB (+{peak - base:.0f}, bound +{bound:.0f}), "
              f"{after:.0f} MiB after they closed")
        assert peak - base <= bound
        assert after - base < (peak - base) / 2
        assert dermad.poll() is None
    finally:
        dermad.kill()
        dermad.wait()
        dermad.stdout.close()
