"""Metrics end to end: a live scrape passes `promtool check metrics`, and a real Prometheus
server scraping dermad sees the same device values the gRPC API reports, and sees a fault
injected through the Simulator service."""
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import Dermad, free_port
from derma.v1 import device_control_pb2 as pb
from derma.v1 import device_control_pb2_grpc as pb_grpc
from derma.v1 import device_pb2
from derma.sim.v1 import simulator_pb2 as sim_pb
from derma.sim.v1 import simulator_pb2_grpc as sim_grpc

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


@pytest.fixture
def dermad_with_metrics():
    port = free_port()
    server = Dermad(os.path.join(os.environ["DERMA_REPO"], "deploy", "fleet.textproto"),
                    f"--metrics_listen=127.0.0.1:{port}", "--log_level=error")
    server.metrics_port = port
    yield server
    server.close()


@pytest.fixture
def prometheus(tmp_path, dermad_with_metrics):
    """A real Prometheus scraping dermad every 250 ms; yields a query function."""
    assert PROMETHEUS, "the prometheus binary is missing (Debian package prometheus)"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 250ms\n  scrape_timeout: 200ms\n"
        "scrape_configs:\n  - job_name: derma\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{dermad_with_metrics.metrics_port}']\n")
    port = free_port()
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def query(expr):
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(http_get(url))
        assert body["status"] == "success", body
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1])
                for r in body["data"]["result"]}

    def wait_for(expr, predicate, timeout_s=20):
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                last = query(expr)
                if predicate(last):
                    return last
            except OSError:
                pass  # Prometheus still starting
            time.sleep(0.1)
        pytest.fail(f"{expr}: never matched; last result {last}")

    yield wait_for
    process.terminate()
    process.wait(timeout=10)


def one_value(result):
    assert len(result) == 1, result
    return next(iter(result.values()))


def test_live_scrape_passes_promtool_check_metrics(dermad_with_metrics):
    assert PROMTOOL, "promtool is missing (Debian package prometheus)"
    body = http_get(f"http://127.0.0.1:{dermad_with_metrics.metrics_port}/metrics")
    assert 'derma_device_info{device="pen-1"' in body
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "" and check.stderr.strip() == "", check.stdout + check.stderr


def test_prometheus_sees_grpc_values_and_an_injected_fault(dermad_with_metrics, prometheus):
    stub = pb_grpc.DeviceControlStub(dermad_with_metrics.channel)
    sim = sim_grpc.SimulatorStub(dermad_with_metrics.channel)
    prometheus("up", lambda r: r and one_value(r) == 1)

    # Values set through gRPC and read back through gRPC match what Prometheus stored.
    lease = stub.AcquireLease(pb.AcquireLeaseRequest(
        name="devices/pen-1", holder="prometheus-e2e", ttl_s=30), timeout=5).lease
    applied = stub.Configure(pb.ConfigureRequest(
        name="devices/pen-1", lease_id=lease.lease_id,
        settings=device_pb2.Settings(microneedling=device_pb2.MicroneedlingSettings(
            needle_depth_mm=1.25, stroke_rate_hz=120))), timeout=5).applied_settings
    stub.Start(pb.StartRequest(name="devices/pen-1", lease_id=lease.lease_id), timeout=5)
    device = stub.GetDevice(pb.GetDeviceRequest(name="devices/pen-1"), timeout=5).device
    depth_m = applied.microneedling.needle_depth_mm / 1e3
    prometheus('derma_needle_depth_meters{device="pen-1"}',
               lambda r: r and abs(one_value(r) - depth_m) < 1e-9)
    prometheus('derma_cartridge_strokes_rated{device="pen-1"}',
               lambda r: r and one_value(r) == device.cartridge.strokes_rated)
    prometheus('derma_device_state{device="pen-1",state="running"}',
               lambda r: r and one_value(r) == 1)
    stim = stub.GetDevice(pb.GetDeviceRequest(name="devices/stim-1"), timeout=5).device
    prometheus('derma_compliance_voltage_limit_volts{device="stim-1"}',
               lambda r: r and one_value(r) == stim.capabilities.compliance_voltage_v)
    prometheus('derma_device_info{device="stim-1"}', lambda r: r and json.loads(
        next(iter(r)))["model"] == stim.model)

    # A fault injected through the Simulator service shows up as a counter and a state.
    prometheus('derma_faults_total{device="pen-1",reason="over_temperature"}',
               lambda r: r and one_value(r) == 0)
    sim.InjectFault(sim_pb.InjectFaultRequest(
        name="devices/pen-1", kind=device_pb2.FAULT_KIND_OVER_TEMPERATURE), timeout=5)
    prometheus('derma_faults_total{device="pen-1",reason="over_temperature"}',
               lambda r: r and one_value(r) == 1)
    prometheus('derma_device_state{device="pen-1",state="fault"}',
               lambda r: r and one_value(r) == 1)
    prometheus('derma_device_output_on{device="pen-1"}', lambda r: r and one_value(r) == 0)
    after = stub.GetDevice(pb.GetDeviceRequest(name="devices/pen-1"), timeout=5).device
    assert after.state == device_pb2.DEVICE_STATE_FAULT
    # The gRPC calls themselves are counted.
    prometheus('derma_grpc_server_handled_total{method="/derma.v1.DeviceControl/Configure",'
               'code="OK"}', lambda r: r and one_value(r) >= 1)


def stop_counts(port):
    """derma_emergency_stop_duration_seconds_count by scope, from a live scrape."""
    counts = {}
    for line in http_get(f"http://127.0.0.1:{port}/metrics").splitlines():
        if line.startswith("derma_emergency_stop_duration_seconds_count{"):
            labels, value = line.rsplit(" ", 1)
            scope = labels.split('scope="', 1)[1].split('"', 1)[0]
            counts[scope] = float(value)
    return counts


def test_each_emergency_stop_is_timed_once_in_its_scope(dermad_with_metrics):
    stub = pb_grpc.DeviceControlStub(dermad_with_metrics.channel)
    port = dermad_with_metrics.metrics_port
    assert stop_counts(port) == {"device": 0, "all": 0}
    stub.EmergencyStop(pb.EmergencyStopRequest(name="devices/stim-1"), timeout=5)
    assert stop_counts(port) == {"device": 1, "all": 0}
    response = stub.EmergencyStop(pb.EmergencyStopRequest(
        all_devices=True, view=pb.STOP_RESPONSE_VIEW_COUNT), timeout=5)
    assert len(response.devices) == 0 and response.stopped_count > 1
    assert stop_counts(port) == {"device": 1, "all": 1}
    body = http_get(f"http://127.0.0.1:{port}/metrics")
    # Sub-millisecond buckets, so the goal (≤ 1 ms) can be read off the histogram.
    assert 'derma_emergency_stop_duration_seconds_bucket{scope="all",le="0.0005"}' in body
