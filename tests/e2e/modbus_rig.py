"""The Modbus end-to-end rig: the real device emulator (derma_modbus_emulator) serving a small
fleet on a Modbus TCP link and an RTU bus (a pseudo-terminal), and the real dermad driving it
through the same config file.

Environment (set by ctest): DERMA_EMULATOR (the emulator binary), plus conftest.py's.
"""
import os
import re
import subprocess
import threading
import time
import urllib.request

from conftest import Dermad, free_port

# One TCP link and one RTU bus, two devices each. Short timeouts, so faults show quickly.
CONFIG = """
clock {{ mode: CLOCK_MODE_REAL }}
sim_seed: 7
sample_rate_hz: 50
modbus_links {{
  name: "bench-tcp"
  tcp {{ host: "127.0.0.1" port: {tcp_port} }}
  response_timeout_s: 0.05
  retries: 2
  reconnect_backoff_s: 0.05
  reconnect_backoff_max_s: 0.4
  watchdog_s: {watchdog_s}
}}
modbus_links {{
  name: "bus-1"
  rtu {{ device: "{bus}" baud: 115200 }}
  response_timeout_s: 0.05
  retries: 2
  reconnect_backoff_s: 0.05
  reconnect_backoff_max_s: 0.4
  watchdog_s: {watchdog_s}
}}
devices {{ id: "tcp-pen-1" kind: DEVICE_KIND_MICRONEEDLING backend: BACKEND_MODBUS
           modbus {{ link: "bench-tcp" unit_id: 1 }} }}
devices {{ id: "tcp-stim-1" kind: DEVICE_KIND_MICROCURRENT backend: BACKEND_MODBUS
           modbus {{ link: "bench-tcp" unit_id: 2 }} }}
devices {{ id: "bus-pen-1" kind: DEVICE_KIND_MICRONEEDLING backend: BACKEND_MODBUS
           modbus {{ link: "bus-1" unit_id: 1 }} }}
devices {{ id: "bus-stim-1" kind: DEVICE_KIND_MICROCURRENT backend: BACKEND_MODBUS
           modbus {{ link: "bus-1" unit_id: 2 }} }}
"""

WATCHDOG_S = 0.5
DEVICES = ["devices/tcp-pen-1", "devices/tcp-stim-1", "devices/bus-pen-1", "devices/bus-stim-1"]


def write_config(directory, watchdog_s=WATCHDOG_S):
    path = os.path.join(directory, "fleet-modbus.textproto")
    with open(path, "w") as f:
        f.write(CONFIG.format(tcp_port=free_port(), bus=os.path.join(directory, "bus-1"),
                              watchdog_s=watchdog_s))
    return path


class Emulator:
    """A running derma_modbus_emulator; collects its event lines as they come."""

    def __init__(self, config, reply_log=None):
        args = [os.environ["DERMA_EMULATOR"], f"--config={config}"]
        if reply_log:
            args.append(f"--reply_log={reply_log}")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.grpc_port = None
        self.events = []  # (seconds since the epoch, device, what)
        self._lock = threading.Lock()
        for line in self.process.stdout:
            match = re.match(r"grpc port (\d+)", line)
            if match:
                self.grpc_port = int(match.group(1))
            if line.startswith("ready"):
                break
        else:
            raise RuntimeError(f"emulator did not start: {self.process.stderr.read()!r}")
        self._reader = threading.Thread(target=self._read_events, daemon=True)
        self._reader.start()

    def _read_events(self):
        for line in self.process.stdout:
            parts = line.rstrip("\n").split(" ", 3)
            if len(parts) == 4 and parts[0] == "event":
                with self._lock:
                    self.events.append((int(parts[1]) / 1e6, parts[2], parts[3]))

    def wait_for_event(self, device, text, after, timeout_s):
        """The first event of `device` containing `text` at or after `after`, or None."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                for event in self.events:
                    if event[0] >= after and event[1] == device and text in event[2]:
                        return event
            time.sleep(0.01)
        return None

    def kill(self):
        self.process.kill()
        self.process.wait()

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process.stdout.close()
        self.process.stderr.close()


def start_dermad(config):
    port = free_port()
    server = Dermad(config, f"--metrics_listen=127.0.0.1:{port}", "--log_level=error")
    server.metrics_port = port
    return server


def scrape(server):
    """Every sample of a scrape: {(name, frozenset(labels)): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics",
                                timeout=5) as response:
        body = response.read().decode()
    samples = {}
    for line in body.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if not match:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def metric(samples, name, **labels):
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, l), v in samples.items() if n == name and wanted <= set(l))
