"""The rig for the HTTP/2 abuse tests and their bench: dermad with a tokens file (optionally
behind the nginx front of deploy/nginx/), an honest client calling GetDevice, a flood from
h2_flood.py in a process of its own, and dermad's memory and CPU read from /proc.

Environment: DERMAD, DERMA_PYTHON_DIR, DERMA_REPO (as set by ctest for tests/e2e).
"""
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.environ["DERMA_PYTHON_DIR"])

import grpc  # noqa: E402
from derma.v1 import device_control_pb2 as pb  # noqa: E402
from derma.v1 import device_control_pb2_grpc as pb_grpc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ["DERMA_REPO"]
FLEET = os.path.join(REPO, "deploy", "fleet.textproto")
FRONT_CONFIG = os.path.join(REPO, "deploy", "nginx", "derma-front.conf")
VIEWER_TOKEN = "viewer-token"
PORT_LINE = re.compile(r"port (\d+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status_kib(pid, field):
    """VmRSS, VmHWM... of `pid` in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid):
    """User + system CPU time `pid` has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Dermad:
    """dermad on 127.0.0.1 with a tokens file (a viewer token), no metrics endpoint."""

    def __init__(self, port=0, *extra):
        self.dir = tempfile.mkdtemp(prefix="dermad-flood-")
        tokens = os.path.join(self.dir, "tokens")
        with open(tokens, "w") as f:
            f.write(f"token sha256:{hashlib.sha256(VIEWER_TOKEN.encode()).hexdigest()} "
                    "vera viewer\n")
        self.process = subprocess.Popen(
            [os.environ["DERMAD"], "--config", FLEET, f"--listen=127.0.0.1:{port}",
             "--metrics_listen=", f"--state_dir={self.dir}", f"--tokens_file={tokens}",
             "--log_level=error", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        match = PORT_LINE.search(line)
        if match is None:
            self.process.kill()
            raise RuntimeError(f"dermad did not start: {line!r}")
        self.port = int(match.group(1))
        self.pid = self.process.pid

    def rss_mib(self):
        return proc_status_kib(self.pid, "VmRSS") / 1024

    def hwm_mib(self):
        return proc_status_kib(self.pid, "VmHWM") / 1024

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Front:
    """nginx with deploy/nginx/derma-front.conf in front of `backend_port`, on a free port.

    The shipped config terminates TLS; the tests use it as it is except for plaintext on the
    listener (and the ports and file paths), so the limits under test are the shipped ones."""

    def __init__(self, backend_port):
        self.dir = tempfile.mkdtemp(prefix="derma-front-")
        self.port = free_port()
        with open(FRONT_CONFIG) as f:
            config = f.read()
        config = re.sub(r"listen\s+\S+\s+ssl\s+http2;", f"listen 127.0.0.1:{self.port} http2;",
                        config)
        config = re.sub(r"^\s*ssl_\w+[^;]*;\n", "", config, flags=re.M)
        config = re.sub(r"server 127\.0\.0\.1:\d+", f"server 127.0.0.1:{backend_port}", config)
        config = config.replace("/run/derma-front.pid", os.path.join(self.dir, "nginx.pid"))
        config = config.replace("/var/log/nginx/derma-front.error.log",
                                os.path.join(self.dir, "error.log"))
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(config)
        self.process = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", self.dir, "-e", os.path.join(self.dir, "error.log"),
             "-c", path, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {self.process.stderr.read()}")
                time.sleep(0.05)

    def pids(self):
        """nginx's master and workers."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True,
                             text=True).stdout.split()
        return [self.process.pid, *map(int, out)]

    def rss_mib(self):
        return sum(proc_status_kib(pid, "VmRSS") for pid in self.pids()) / 1024

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class HonestClient:
    """Calls GetDevice with a viewer token every 10 ms (2 s deadline) on its own channel,
    keeping each call's latency and its outcome."""

    def __init__(self, port):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.stub = pb_grpc.DeviceControlStub(self.channel)
        self.calls = []  # (start time, seconds, status code name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def call_once(self):
        start = time.monotonic()
        try:
            self.stub.GetDevice(pb.GetDeviceRequest(name="devices/pen-1"), timeout=2,
                                metadata=(("authorization", f"Bearer {VIEWER_TOKEN}"),))
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        self.calls.append((start, time.monotonic() - start, code))

    def _run(self):
        while not self._stop.is_set():
            self.call_once()
            self._stop.wait(0.01)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.channel.close()

    def between(self, start, end):
        return [c for c in self.calls if start <= c[0] < end]


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def start_flood(port, mode, seconds, reconnect):
    return subprocess.Popen(
        ["/usr/bin/python3", os.path.join(HERE, "h2_flood.py"), "--port", str(port),
         "--mode", mode, "--seconds", str(seconds), *(["--reconnect"] if reconnect else [])],
        stdout=subprocess.PIPE, text=True)


def wait_until_idle(pid, timeout_s, busy_fraction=0.2, window_s=0.1):
    """Seconds until `pid` used less than `busy_fraction` of a core over `window_s`; None if it
    stayed busy for `timeout_s`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        before = cpu_seconds(pid)
        time.sleep(window_s)
        if cpu_seconds(pid) - before < busy_fraction * window_s:
            return time.monotonic() - start - window_s
    return None


def measure(dermad, target_port, mode, seconds, reconnect=False, sample_s=0.05):
    """Floods `target_port` (dermad's or the front's) for `seconds` (from new connections
    whenever one is closed, with `reconnect`) while an honest client calls GetDevice there;
    returns the figures as a dict."""
    client = HonestClient(target_port)
    client.start()
    time.sleep(0.5)  # a baseline for the honest client's latency before the flood
    rss_before = dermad.rss_mib()
    flood_start = time.monotonic()
    flood = start_flood(target_port, mode, seconds, reconnect)
    rss_peak = rss_before
    while flood.poll() is None:
        if dermad.process.poll() is not None:
            break
        rss_peak = max(rss_peak, dermad.rss_mib())
        time.sleep(sample_s)
    report = json.loads(flood.stdout.read() or "{}")
    flood.stdout.close()
    flood_end = time.monotonic()
    idle_after_s = wait_until_idle(dermad.pid, timeout_s=15)
    time.sleep(max(0.0, flood_end + 1.0 - time.monotonic()))
    client.stop()
    during = client.between(flood_start, flood_end)
    after = client.between(flood_end, flood_end + 1.0)
    return {
        "mode": mode, "flood": report, "rss_before_mib": rss_before, "rss_peak_mib": rss_peak,
        "hwm_mib": dermad.hwm_mib(),
        "p50_ms": percentile([c[1] for c in during], 50) * 1000,
        "p99_ms": percentile([c[1] for c in during], 99) * 1000,
        "calls": len(during), "failed": sum(c[2] != "OK" for c in during),
        "failed_after": sum(c[2] != "OK" for c in after), "calls_after": len(after),
        "p99_after_ms": percentile([c[1] for c in after], 99) * 1000,
        "idle_after_s": idle_after_s, "dermad_alive": dermad.process.poll() is None,
    }
