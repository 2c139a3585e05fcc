"""End to end: the real dermad with the shipped config, driven by a client through a whole run,
then SIGTERM: every output stops, the open stream ends cleanly, and dermad exits 0 in < 2 s."""
import threading
import time

import grpc
import pytest

from derma.v1 import device_control_pb2 as pb
from derma.v1 import device_control_pb2_grpc as pb_grpc
from derma.v1 import device_pb2
from derma.v1 import run_pb2
from google.rpc import error_details_pb2, status_pb2
import health_pb2


def error_reason(error):
    """ErrorInfo.reason of a failed call, from the google.rpc.Status details."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return info.reason
    return None


def health(channel):
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    return check(health_pb2.HealthCheckRequest(), timeout=5).status


def pen_step(depth_mm, rate_hz, seconds):
    return run_pb2.RunStep(
        settings=device_pb2.Settings(microneedling=device_pb2.MicroneedlingSettings(
            needle_depth_mm=depth_mm, stroke_rate_hz=rate_hz)),
        duration_s=seconds)


def stim_step(current_ua, seconds):
    return run_pb2.RunStep(
        settings=device_pb2.Settings(microcurrent=device_pb2.MicrocurrentSettings(
            current_ua=current_ua)),
        duration_s=seconds)


def test_whole_run_then_sigterm_stops_every_output(dermad):
    stub = pb_grpc.DeviceControlStub(dermad.channel)
    assert health(dermad.channel) == health_pb2.HealthCheckResponse.SERVING
    devices = stub.ListDevices(pb.ListDevicesRequest(), timeout=5).devices
    assert [d.name for d in devices] == [
        "devices/pen-1", "devices/pen-2", "devices/stim-1", "devices/stim-2"]

    # A whole two-step program on a pen, watched until it ends.
    lease = stub.AcquireLease(pb.AcquireLeaseRequest(
        name="devices/pen-1", holder="e2e", ttl_s=30), timeout=5).lease
    run = stub.StartRun(pb.StartRunRequest(
        parent="devices/pen-1", lease_id=lease.lease_id, request_id="e2e-run-1",
        steps=[pen_step(0.5, 100, 0.4), pen_step(1.0, 120, 0.4)]), timeout=5).run
    states = [update.run for update in stub.WatchRun(pb.WatchRunRequest(name=run.name),
                                                        timeout=10)]
    final = states[-1]
    assert final.state == run_pb2.RUN_STATE_SUCCEEDED
    assert final.end_reason == run_pb2.RUN_END_REASON_COMPLETED
    assert abs(final.ledger.output_on_s - 0.8) < 1e-6
    assert final.ledger.strokes_delivered > 0
    # The retry of the same StartRun returns the same run and starts nothing.
    again = stub.StartRun(pb.StartRunRequest(
        parent="devices/pen-1", lease_id=lease.lease_id, request_id="e2e-run-1",
        steps=[pen_step(0.5, 100, 0.4), pen_step(1.0, 120, 0.4)]), timeout=5).run
    assert again.name == run.name

    # A long run on a stimulator, and a telemetry stream open when SIGTERM arrives.
    stim_lease = stub.AcquireLease(pb.AcquireLeaseRequest(
        name="devices/stim-1", holder="e2e", ttl_s=30), timeout=5).lease
    stub.StartRun(pb.StartRunRequest(
        parent="devices/stim-1", lease_id=stim_lease.lease_id,
        steps=[stim_step(200, 600)]), timeout=5)
    stream = stub.StreamTelemetry(pb.StreamTelemetryRequest(names=["devices/stim-1"]))
    received = []
    ended = {}

    def read():
        try:
            for message in stream:
                received.append(message)
        except grpc.RpcError as error:
            ended["code"] = error.code()
            ended["reason"] = error_reason(error)

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
            m.WhichOneof("payload") == "batch" and any(
                s.output_on for d in m.batch.devices for s in d.samples) for m in received):
        time.sleep(0.02)
    assert any(m.WhichOneof("payload") == "batch" for m in received), "no live samples"

    code, seconds = dermad.terminate(timeout_s=5)
    reader.join(timeout=5)
    assert code == 0
    assert seconds < 2.0, f"dermad took {seconds:.2f} s to exit"
    assert ended.get("code") == grpc.StatusCode.UNAVAILABLE
    assert ended.get("reason") == "SHUTTING_DOWN"

    # What the stream said last: the stimulator left RUNNING and its last sample is off.
    events = [m.event for m in received if m.WhichOneof("payload") == "event"]
    assert any(e.from_state == device_pb2.DEVICE_STATE_RUNNING and
               e.to_state == device_pb2.DEVICE_STATE_IDLE for e in events)
    last_samples = [s for m in received if m.WhichOneof("payload") == "batch"
                    for d in m.batch.devices for s in d.samples]
    assert last_samples and not last_samples[-1].output_on


def test_bad_config_exits_2_naming_the_file_and_line(tmp_path):
    import os
    import subprocess
    bad = tmp_path / "bad.textproto"
    bad.write_text('clock { mode: CLOCK_MODE_REAL }\ndevices { id: "pen-1" depht: 3 }\n')
    result = subprocess.run([os.environ["DERMAD"], "--config", str(bad), "--listen",
                             "127.0.0.1:0"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert f"{bad}:2:" in result.stderr
    assert "depht" in result.stderr


@pytest.mark.parametrize("flags, message", [
    (["--no_such_flag=1"], "unknown flag --no_such_flag"),
    (["--print_interval_s=-5"], "--print_interval_s must be a finite number ≥ 0, got -5"),
    (["--duration_s=nan"], "--duration_s must be a finite number ≥ 0, got nan"),
    (["--duration_s=soon"], "bad value \"soon\" for --duration_s"),
    (["--speed_factor=inf"], "--speed_factor must be a finite number ≥ 0, got inf"),
    (["--config"], "flag --config needs a value"),
    (["stray"], "unexpected argument \"stray\""),
])
def test_bad_flags_exit_2_naming_the_flag(tmp_path, flags, message):
    import os
    import subprocess
    fleet = os.path.join(os.environ["DERMA_REPO"], "deploy", "fleet.textproto")
    result = subprocess.run([os.environ["DERMAD"], "--listen", "127.0.0.1:0", "--metrics_listen=",
                             f"--state_dir={tmp_path}", f"--config={fleet}"] + flags,
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "port" not in result.stdout  # nothing was served


def test_unusable_audit_database_exits_2_naming_it_before_serving(tmp_path):
    """A corrupt audit file, one that is not a database, or a place no file can be created:
    a clear message naming the path and exit code 2 at start-up, never a crash later."""
    import os
    import subprocess
    fleet = os.path.join(os.environ["DERMA_REPO"], "deploy", "fleet.textproto")
    valid = tmp_path / "valid.db"
    made = subprocess.run([os.environ["DERMAD"], "--config", fleet, "--listen", "127.0.0.1:0",
                           "--metrics_listen=", f"--audit_db={valid}", "--duration_s=0.1"],
                          capture_output=True, text=True, timeout=20)
    assert made.returncode == 0, made.stderr
    corrupt = tmp_path / "corrupt.db"
    data = bytearray(valid.read_bytes())
    data[100:len(data)] = bytes(len(data) - 100)  # keep the header, zero every page
    corrupt.write_bytes(bytes(data) + b"\x01" * 4096)
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_text("this is not a database\n" * 100)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for path in (corrupt, not_a_database, blocker / "audit.db", "/proc/derma-audit.db"):
        result = subprocess.run([os.environ["DERMAD"], "--config", fleet, "--listen",
                                 "127.0.0.1:0", "--metrics_listen=", f"--audit_db={path}"],
                                capture_output=True, text=True, timeout=20)
        assert result.returncode == 2, (path, result.stderr)
        assert "cannot use the audit trail" in result.stderr, result.stderr
        assert str(path) in result.stderr
        assert "port" not in result.stdout  # nothing was served
