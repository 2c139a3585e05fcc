"""Durability of the audit trail: clients drive dermad as fast as it answers, dermad is killed
with SIGKILL at a random moment, restarted on the same database, and every command a client
saw acknowledged must be in the trail, in the order it was acknowledged. A run active at the
kill is listed INTERRUPTED after the restart, ending at the last device time recorded for it,
with its device idle and its output off.
Repeated KILLS times; the figures are printed (run with -s)."""
import os
import random
import re
import signal
import tempfile
import threading
import time

import grpc
from google.protobuf import timestamp_pb2

from conftest import Dermad
from derma.v1 import audit_pb2
from derma.v1 import device_control_pb2 as pb
from derma.v1 import device_control_pb2_grpc as pb_grpc
from derma.v1 import device_pb2
from derma.v1 import run_pb2

KILLS = 6
DRIVEN = ("devices/pen-1", "devices/pen-2", "devices/stim-1")  # configure / start / stop
RUNNING = "devices/stim-2"  # one long run per round, killed mid-run
FLEET = os.path.join(os.environ["DERMA_REPO"], "deploy", "fleet.textproto")


def settings(device, i):
    if "pen" in device:
        return device_pb2.Settings(microneedling=device_pb2.MicroneedlingSettings(
            needle_depth_mm=round(0.25 + 0.05 * (i % 10), 2), stroke_rate_hz=100))
    return device_pb2.Settings(microcurrent=device_pb2.MicrocurrentSettings(
        current_ua=50 + (i % 100)))


def drive(port, device, acked, stop):
    """Configure, Start, Stop in a loop until the server dies; appends each acknowledged
    command as (method, None or the (field, value) a Configure asked for) to `acked`."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.DeviceControlStub(channel)
        try:
            lease = stub.AcquireLease(pb.AcquireLeaseRequest(name=device, holder="durability",
                                                             ttl_s=60), timeout=5).lease.lease_id
            acked.append(("AcquireLease", None))
            i = 0
            while not stop.is_set():
                s = settings(device, i)
                stub.Configure(pb.ConfigureRequest(name=device, lease_id=lease, settings=s),
                               timeout=5)
                field = "needle_depth_mm" if "pen" in device else "current_ua"
                value = (s.microneedling.needle_depth_mm if "pen" in device
                         else s.microcurrent.current_ua)
                acked.append(("Configure", (field, value)))
                stub.Start(pb.StartRequest(name=device, lease_id=lease), timeout=5)
                acked.append(("Start", None))
                stub.Stop(pb.StopRequest(name=device), timeout=5)
                acked.append(("Stop", None))
                i += 1
        except grpc.RpcError as error:
            # The only way a call may fail here is the server going away.
            assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                    grpc.StatusCode.DEADLINE_EXCEEDED), error


def start_long_run(port):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.DeviceControlStub(channel)
        lease = stub.AcquireLease(pb.AcquireLeaseRequest(name=RUNNING, holder="durability",
                                                         ttl_s=60), timeout=5).lease.lease_id
        step = run_pb2.RunStep(settings=settings(RUNNING, 0), duration_s=600)
        return stub.StartRun(pb.StartRunRequest(parent=RUNNING, lease_id=lease, steps=[step]),
                             timeout=5).run.name


def trail_since(stub, since):
    """Every record at or after `since`, oldest first."""
    start = timestamp_pb2.Timestamp()
    start.FromNanoseconds(int(since * 1e9))
    events, token = [], ""
    while True:
        page = stub.ListAuditEvents(audit_pb2.ListAuditEventsRequest(
            start_time=start, page_size=1000, page_token=token), timeout=10)
        events.extend(page.events)
        token = page.next_page_token
        if not token:
            return list(reversed(events))


def matches(record, method, value):
    """The record is of `method` and, for a Configure, asked for (field, value)."""
    if not record.method.endswith("/" + method):
        return False
    if value is None:
        return True
    field, number = value
    found = re.search(field + r": ([-+0-9.e]+)", record.summary)
    return found is not None and float(found.group(1)) == number


def missing_from(acked, recorded):
    """Acknowledged commands not found, in order, among the recorded successful commands."""
    lost, position = [], 0
    for method, value in acked:
        while position < len(recorded) and not matches(recorded[position], method, value):
            position += 1
        if position == len(recorded):
            lost.append((method, value))
        else:
            position += 1
    return lost


def test_every_acknowledged_command_survives_sigkill():
    state_dir = tempfile.mkdtemp(prefix="dermad-durability-")
    rng = random.Random(20261129)
    totals = {"acked": 0, "lost": 0, "interrupted": 0}
    server = Dermad(FLEET, f"--state_dir={state_dir}", "--log_level=error")
    try:
        for _ in range(KILLS):
            round_start = time.time()
            run_name = start_long_run(server.port)
            acked = {device: [] for device in DRIVEN}
            stop = threading.Event()
            threads = [threading.Thread(target=drive, args=(server.port, d, acked[d], stop))
                       for d in DRIVEN]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 1.5))
            killed_at = time.time()
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=10)
            stop.set()
            for t in threads:
                t.join(timeout=30)
            server.close()

            server = Dermad(FLEET, f"--state_dir={state_dir}", "--log_level=error")
            stub = pb_grpc.DeviceControlStub(server.channel)
            events = trail_since(stub, round_start)
            for device in DRIVEN:
                recorded = [e for e in events if e.device == device and e.code == 0
                            and e.kind != audit_pb2.AUDIT_EVENT_KIND_AUTH_FAILURE and e.method]
                lost = missing_from(acked[device], recorded)
                assert not lost, f"{device}: acknowledged but not in the trail: {lost[:5]}"
                totals["acked"] += len(acked[device])
            # The run dermad was running when it died: ended INTERRUPTED, output off.
            run = stub.GetRun(pb.GetRunRequest(name=run_name), timeout=5).run
            assert run.end_reason == run_pb2.RUN_END_REASON_INTERRUPTED, run
            # It ends at the last device time recorded for it (device time is wall time on this
            # fleet's clock): start_time plus its ledger's output-on time, before the kill, never
            # the restart's time.
            start_s = run.start_time.ToNanoseconds() / 1e9
            end_s = run.end_time.ToNanoseconds() / 1e9
            assert start_s <= end_s <= killed_at, (start_s, end_s, killed_at)
            assert abs(end_s - start_s - run.ledger.output_on_s) < 1e-5, run
            device = stub.GetDevice(pb.GetDeviceRequest(name=RUNNING), timeout=5).device
            assert device.state == device_pb2.DEVICE_STATE_IDLE
            assert not device.latest_sample.output_on
            totals["interrupted"] += 1
    finally:
        server.close()
    print(f"\naudit durability: {KILLS} SIGKILLs, {totals['acked']} acknowledged commands, "
          f"{totals['lost']} lost, {totals['interrupted']} active runs recorded INTERRUPTED")
    assert totals["acked"] > KILLS * 10  # the load was real
