"""Modbus end to end, real processes: dermad driving the device emulator over a Modbus TCP link
and an RTU bus (pseudo-terminal). Whole runs with their ledgers on both transports; the
emulator killed mid-run (OFFLINE, LINK_LOST, reconnection when it is back); dermad SIGKILLed
mid-run (every output off by the devices' own watchdogs); dermactl estop naming the outputs it
could not confirm off; each transport fault with its documented outcome and counters; and late
replies never taken for current readings.

Timing tolerances (the register map's and the README's): a device is seen OFFLINE within one
sample period + response timeout × (retries + 1) + the resynchronising waits, so the tests wait
up to 2 s for it; a device reconnects within reconnect_backoff_max_s (0.4 s) of its link coming
back, so the tests wait up to 5 s; a watchdog switches an output off within watchdog_s (0.5 s)
+ the emulator's 5 ms tick of dermad's last request.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

from derma.sim.v1 import simulator_pb2 as sim_pb
from derma.sim.v1 import simulator_pb2_grpc as sim_grpc
from derma.v1 import device_control_pb2 as pb
from derma.v1 import device_control_pb2_grpc as pb_grpc
from derma.v1 import device_pb2
from derma.v1 import run_pb2
import modbus_rig
from modbus_rig import DEVICES, Emulator, metric, scrape, start_dermad


def open_rig(watchdog_s=modbus_rig.WATCHDOG_S):
    """The emulator and dermad on a new config, every device IDLE; close with close_rig."""
    directory = tempfile.mkdtemp(prefix="derma-modbus-e2e-")
    config = modbus_rig.write_config(directory, watchdog_s=watchdog_s)
    reply_log = os.path.join(directory, "replies.log")
    state = {"directory": directory, "config": config, "reply_log": reply_log,
             "emulator": Emulator(config, reply_log=reply_log)}
    try:
        state["dermad"] = start_dermad(config)
        state["stub"] = pb_grpc.DeviceControlStub(state["dermad"].channel)
        state["sim"] = sim_grpc.SimulatorStub(
            grpc.insecure_channel(f"127.0.0.1:{state['emulator'].grpc_port}"))
        wait_for(lambda: all(device(state, d).state == device_pb2.DEVICE_STATE_IDLE
                             for d in DEVICES), 10, "every device IDLE")
    except BaseException:
        close_rig(state)
        raise
    return state


def close_rig(state):
    if "dermad" in state:
        state["dermad"].close()
    state["emulator"].close()
    shutil.rmtree(state["directory"], ignore_errors=True)


@pytest.fixture
def rig():
    state = open_rig()
    yield state
    close_rig(state)


def device(rig, name):
    return rig["stub"].GetDevice(pb.GetDeviceRequest(name=name), timeout=5).device


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def lease(rig, name):
    return rig["stub"].AcquireLease(pb.AcquireLeaseRequest(name=name, holder="e2e", ttl_s=60),
                                    timeout=5).lease.lease_id


def steps(name, seconds):
    if "pen" in name:
        settings = [device_pb2.Settings(microneedling=device_pb2.MicroneedlingSettings(
            needle_depth_mm=d, stroke_rate_hz=r)) for d, r in ((0.5, 100), (1.0, 120))]
    else:
        settings = [device_pb2.Settings(microcurrent=device_pb2.MicrocurrentSettings(
            current_ua=c, ramp_s=0)) for c in (100, 200)]
    return [run_pb2.RunStep(settings=s, duration_s=seconds) for s in settings]


def start_run(rig, name, seconds):
    return rig["stub"].StartRun(pb.StartRunRequest(
        parent=name, lease_id=lease(rig, name), steps=steps(name, seconds)), timeout=5).run


def final_run(rig, run_name, timeout_s):
    updates = rig["stub"].WatchRun(pb.WatchRunRequest(name=run_name), timeout=timeout_s)
    return [u.run for u in updates][-1]


@pytest.mark.parametrize("name", DEVICES)
def test_whole_run_with_its_ledger(rig, name):
    run = start_run(rig, name, 0.6)
    final = final_run(rig, run.name, 15)
    assert final.state == run_pb2.RUN_STATE_SUCCEEDED, final
    assert final.end_reason == run_pb2.RUN_END_REASON_COMPLETED, final
    ledger = final.ledger
    assert abs(ledger.output_on_s - 1.2) < 0.05, ledger
    if "pen" in name:
        # The device's own stroke counter, within the dose tolerance of the programme.
        assert ledger.strokes_delivered > 0
        assert abs(ledger.strokes_delivered - ledger.strokes_programmed) <= \
            0.02 * ledger.strokes_programmed + 2, ledger
    else:
        assert ledger.charge_delivered_uc > 0
        assert abs(ledger.charge_delivered_uc - ledger.charge_programmed_uc) <= \
            0.02 * ledger.charge_programmed_uc + 1, ledger


def test_emulator_killed_mid_run_then_back(rig):
    runs = {name: start_run(rig, name, 20) for name in ("devices/bus-pen-1", "devices/tcp-stim-1")}
    wait_for(lambda: all(device(rig, n).state == device_pb2.DEVICE_STATE_RUNNING for n in runs),
             5, "both RUNNING")
    rig["emulator"].kill()
    wait_for(lambda: all(device(rig, n).state == device_pb2.DEVICE_STATE_OFFLINE for n in runs),
             2, "both OFFLINE")
    for run in runs.values():
        ended = rig["stub"].GetRun(pb.GetRunRequest(name=run.name), timeout=5).run
        assert ended.end_reason == run_pb2.RUN_END_REASON_LINK_LOST, ended
    rig["emulator"] = Emulator(rig["config"])
    wait_for(lambda: all(device(rig, d).state == device_pb2.DEVICE_STATE_IDLE for d in DEVICES),
             5, "every device back IDLE")


def dermactl(rig, *args):
    return subprocess.run([os.environ["DERMACTL"], f"--target=127.0.0.1:{rig['dermad'].port}",
                           *args], capture_output=True, text=True, timeout=30)


def test_dermactl_estop_names_the_outputs_it_could_not_confirm_off():
    # A watchdog far longer than the test: the devices cannot have switched off by themselves,
    # so an output that was on when the emulator died stays unconfirmed.
    rig = open_rig(watchdog_s=60)
    try:
        start_run(rig, "devices/tcp-stim-1", 20)
        assert rig["emulator"].wait_for_event("devices/tcp-stim-1", "output on", 0, 5)
        rig["emulator"].kill()
        estop = dermactl(rig, "--json", "estop", "--all")
        assert estop.returncode == 8, estop
        assert "output NOT confirmed off" in estop.stderr, estop.stderr
        assert "on 1 device(s): devices/tcp-stim-1." in estop.stderr, estop.stderr
        # A line per device, the unreachable ones too, in the SUMMARY view (no capabilities).
        stopped = {d["name"]: d for d in map(json.loads, estop.stdout.splitlines())}
        assert sorted(stopped) == sorted(DEVICES), estop.stdout
        assert all("capabilities" not in d and "settings" not in d for d in stopped.values())
        assert stopped["devices/tcp-stim-1"]["latest_sample"]["output_unconfirmed"] is True
        listed = dermactl(rig, "list")
        assert "UNCONFIRMED" in next(line for line in listed.stdout.splitlines()
                                     if line.startswith("devices/tcp-stim-1")), listed.stdout
        # The emulator back: every device answers, reads its output off, and stays latched.
        wait_for(lambda: device(rig, "devices/tcp-stim-1").state ==
                 device_pb2.DEVICE_STATE_OFFLINE, 5, "tcp-stim-1 OFFLINE")
        rig["emulator"] = Emulator(rig["config"])
        wait_for(lambda: all(
            device(rig, d).state == device_pb2.DEVICE_STATE_ESTOPPED and
            not device(rig, d).latest_sample.output_unconfirmed for d in DEVICES),
            10, "every device back, ESTOPPED, its output confirmed off")
        again = dermactl(rig, "estop", "--all")
        assert again.returncode == 0, again
        assert again.stderr == "", again.stderr
        assert "UNCONFIRMED" not in again.stdout, again.stdout
    finally:
        close_rig(rig)


def test_dermad_sigkill_mid_run_outputs_go_off_by_watchdog(rig):
    names = ["devices/tcp-pen-1", "devices/bus-stim-1"]
    for name in names:
        start_run(rig, name, 20)
    emulator = rig["emulator"]
    for name in names:
        assert emulator.wait_for_event(name, "output on", 0, 5), f"{name} never switched on"
    killed_at = time.time()
    rig["dermad"].process.send_signal(signal.SIGKILL)
    rig["dermad"].process.wait()
    for name in names:
        event = emulator.wait_for_event(name, "watchdog expired (output was on)", killed_at - 1,
                                        5)
        assert event is not None, f"{name}: no watchdog expiry"
        # The watchdog ran from dermad's last request, which came before the kill.
        assert event[0] - killed_at <= modbus_rig.WATCHDOG_S + 0.05, event


def faults_of(rig, kind):
    return metric(scrape(rig["dermad"]), "derma_faults_total", kind=kind)


def set_fault(rig, name, fault, **fields):
    rig["sim"].SetTransportFault(sim_pb.SetTransportFaultRequest(name=name, fault=fault, **fields),
                                 timeout=5)


@pytest.mark.parametrize("name,fault,outcome,link", [
    ("devices/tcp-pen-1", sim_pb.TRANSPORT_FAULT_NO_REPLY, "timeout", "bench-tcp"),
    ("devices/bus-pen-1", sim_pb.TRANSPORT_FAULT_NO_REPLY, "timeout", "bus-1"),
    ("devices/bus-pen-1", sim_pb.TRANSPORT_FAULT_BAD_CRC, "crc_error", "bus-1"),
    ("devices/tcp-stim-1", sim_pb.TRANSPORT_FAULT_LATE_REPLY, "timeout", "bench-tcp"),
    ("devices/bus-stim-1", sim_pb.TRANSPORT_FAULT_LATE_REPLY, "timeout", "bus-1"),
])
def test_one_bad_reply_is_retried_and_counted(rig, name, fault, outcome, link):
    before = scrape(rig["dermad"])
    set_fault(rig, name, fault, count=1, delay_s=0.08)
    wait_for(lambda: metric(scrape(rig["dermad"]), "derma_modbus_requests_total", link=link,
                            outcome=outcome) > metric(before, "derma_modbus_requests_total",
                                                      link=link, outcome=outcome),
             3, f"a {outcome} counted on {link}")
    time.sleep(0.3)  # the retry and a few polls after it
    assert device(rig, name).state == device_pb2.DEVICE_STATE_IDLE
    assert faults_of(rig, "LINK_DROP") == metric(before, "derma_faults_total", kind="LINK_DROP")


@pytest.mark.parametrize("name,link", [("devices/bus-stim-1", "bus-1"),
                                       ("devices/tcp-stim-1", "bench-tcp")])
def test_garbage_before_a_reply_is_discarded(rig, name, link):
    before = scrape(rig["dermad"])
    set_fault(rig, name, sim_pb.TRANSPORT_FAULT_GARBAGE, count=1, garbage_bytes=9)

    def bad_replies(samples):
        return sum(metric(samples, "derma_modbus_requests_total", link=link, outcome=o)
                   for o in ("crc_error", "foreign_reply", "timeout"))
    wait_for(lambda: bad_replies(scrape(rig["dermad"])) > bad_replies(before), 3,
             "the corrupt reply counted")
    time.sleep(0.3)
    assert device(rig, name).state == device_pb2.DEVICE_STATE_IDLE
    assert faults_of(rig, "LINK_DROP") == metric(before, "derma_faults_total", kind="LINK_DROP")


def test_dropped_connection_reconnects_without_losing_the_device(rig):
    before = scrape(rig["dermad"])
    set_fault(rig, "devices/tcp-stim-1", sim_pb.TRANSPORT_FAULT_DROP_CONNECTION)
    wait_for(lambda: metric(scrape(rig["dermad"]), "derma_modbus_reconnects_total",
                            link="bench-tcp") > metric(before, "derma_modbus_reconnects_total",
                                                       link="bench-tcp"),
             3, "a reconnect")
    time.sleep(0.3)
    assert device(rig, "devices/tcp-stim-1").state == device_pb2.DEVICE_STATE_IDLE
    assert faults_of(rig, "LINK_DROP") == metric(before, "derma_faults_total", kind="LINK_DROP")


def test_exception_replies_fault_the_device_until_reset(rig):
    name = "devices/tcp-pen-1"
    set_fault(rig, name, sim_pb.TRANSPORT_FAULT_EXCEPTION)  # every request, code 04
    wait_for(lambda: device(rig, name).state == device_pb2.DEVICE_STATE_FAULT, 3, "FAULT")
    assert "exception 04" in device(rig, name).active_fault.message
    set_fault(rig, name, sim_pb.TRANSPORT_FAULT_UNSPECIFIED)
    lease_id = lease(rig, name)

    def reset():
        try:
            rig["stub"].ResetFault(pb.ResetFaultRequest(name=name, lease_id=lease_id), timeout=5)
            return True
        except grpc.RpcError:
            return False  # until a poll has read the device normally again
    wait_for(reset, 3, "ResetFault accepted")
    assert device(rig, name).state == device_pb2.DEVICE_STATE_IDLE


@pytest.mark.parametrize("name", ["devices/bus-pen-1", "devices/tcp-pen-1"])
def test_a_mute_device_goes_offline_and_comes_back(rig, name):
    set_fault(rig, name, sim_pb.TRANSPORT_FAULT_NO_REPLY)  # until cleared
    wait_for(lambda: device(rig, name).state == device_pb2.DEVICE_STATE_OFFLINE, 2, "OFFLINE")
    set_fault(rig, name, sim_pb.TRANSPORT_FAULT_UNSPECIFIED)
    wait_for(lambda: device(rig, name).state == device_pb2.DEVICE_STATE_IDLE, 5, "IDLE again")


def test_late_replies_never_yield_stale_readings(rig):
    names = ["devices/tcp-stim-1", "devices/bus-stim-1"]
    for name in names:
        start_run(rig, name, 20)
    samples = {name: [] for name in names}
    stream = rig["stub"].StreamTelemetry(pb.StreamTelemetryRequest(names=names), timeout=10)

    def collect():
        try:
            for message in stream:
                if message.HasField("batch"):
                    for batch in message.batch.devices:
                        for s in batch.samples:
                            samples[batch.device].append(
                                round(s.microcurrent.charge_delivered_uc * 1000))
        except grpc.RpcError:
            pass
    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    # One late reply every 0.25 s on each link for 2 s, each arriving after the next request.
    for _ in range(8):
        for name in names:
            set_fault(rig, name, sim_pb.TRANSPORT_FAULT_LATE_REPLY, count=1, delay_s=0.15)
        time.sleep(0.25)
    stream.cancel()
    reader.join(5)
    replies = {name: {"on_time": set(), "late": set()} for name in names}
    with open(rig["reply_log"]) as log:
        for line in log:
            _, name, _, counter, on_time = line.split()
            if name in replies:
                replies[name]["on_time" if on_time == "1" else "late"].add(int(counter))
    for name in names:
        assert replies[name]["late"], f"{name}: no late reply happened"
        published = [c for c in samples[name] if c > 0]
        assert published, f"{name}: no samples"
        stale = [c for c in published if c in replies[name]["late"] and
                 c not in replies[name]["on_time"]]
        assert not stale, f"{name}: published values of late replies: {stale[:5]}"
        unknown = [c for c in published if c not in replies[name]["on_time"]]
        assert not unknown, f"{name}: published values no timely reply carried: {unknown[:5]}"


def test_a_device_unreachable_at_start_has_no_capabilities_until_it_is_read():
    directory = tempfile.mkdtemp(prefix="derma-modbus-e2e-")
    config = modbus_rig.write_config(directory)
    dermad = start_dermad(config)  # before the emulator: nothing answers
    emulator = None
    try:
        stub = pb_grpc.DeviceControlStub(dermad.channel)
        pen = stub.GetDevice(pb.GetDeviceRequest(name="devices/tcp-pen-1"), timeout=5).device
        assert pen.state == device_pb2.DEVICE_STATE_OFFLINE
        assert len(pen.capabilities.parameters) == 0
        assert pen.model == ""
        with pytest.raises(grpc.RpcError) as refused:
            lease_id = stub.AcquireLease(pb.AcquireLeaseRequest(
                name="devices/tcp-pen-1", holder="e2e", ttl_s=30), timeout=5).lease.lease_id
            stub.Configure(pb.ConfigureRequest(
                name="devices/tcp-pen-1", lease_id=lease_id, settings=device_pb2.Settings(
                    microneedling=device_pb2.MicroneedlingSettings(stroke_rate_hz=100))),
                timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        emulator = Emulator(config)
        wait_for(lambda: stub.GetDevice(pb.GetDeviceRequest(name="devices/tcp-pen-1"),
                                        timeout=5).device.state == device_pb2.DEVICE_STATE_IDLE,
                 5, "tcp-pen-1 read and IDLE")
        pen = stub.GetDevice(pb.GetDeviceRequest(name="devices/tcp-pen-1"), timeout=5).device
        assert pen.model == "DP-100"
        assert [p.field for p in pen.capabilities.parameters] == [
            "needle_depth_mm", "stroke_rate_hz", "session_limit_s"]
    finally:
        dermad.close()
        if emulator is not None:
            emulator.close()


def test_another_device_at_the_same_unit_after_a_reconnect_is_not_adopted(rig):
    before = device(rig, "devices/tcp-pen-1")
    rig["emulator"].kill()
    wait_for(lambda: device(rig, "devices/tcp-pen-1").state == device_pb2.DEVICE_STATE_OFFLINE,
             2, "OFFLINE")
    # The emulator comes back with another instrument at tcp-pen-1's unit: another serial.
    with open(rig["config"]) as f:
        text = f.read()
    swapped = rig["config"] + ".swapped"
    with open(swapped, "w") as f:
        f.write(text.replace('id: "tcp-pen-1" kind: DEVICE_KIND_MICRONEEDLING',
                             'id: "tcp-pen-1" kind: DEVICE_KIND_MICRONEEDLING '
                             'serial_number: "SWAPPED-1"'))
    rig["emulator"] = Emulator(swapped)
    wait_for(lambda: device(rig, "devices/tcp-pen-1").state == device_pb2.DEVICE_STATE_FAULT,
             5, "FAULT")
    after = device(rig, "devices/tcp-pen-1")
    assert "SWAPPED-1" in after.active_fault.message
    assert after.serial_number == before.serial_number
    assert after.capabilities == before.capabilities
    wait_for(lambda: device(rig, "devices/bus-pen-1").state == device_pb2.DEVICE_STATE_IDLE,
             5, "the other devices back")
