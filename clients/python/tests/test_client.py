"""Client calls that need no lease, against a real dermad on a virtual clock.

Typed exceptions that no dermad can produce, so no test here raises them from a server:
DriverError (DRIVER_ERROR: the simulated drivers never break their contract) and
NotSimulated (NOT_SIMULATED: every device dermad serves is simulated). test_units.py covers
how their reasons map to classes.
"""
from __future__ import annotations

import socket
import time

import pytest

import derma
from derma import errors
from derma.v1 import device_control_pb2 as pb


def test_connect_yields_a_client_with_the_default_deadline(dermad) -> None:
    with derma.connect(dermad.target, timeout_s=3) as client:
        assert client.timeout_s == 3
        assert client.holder  # user@host:pid
        assert len(client.devices()) == 4


def test_connect_to_a_closed_port_raises_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(errors.ConnectionError, match="cannot reach"):
        with derma.connect(f"127.0.0.1:{port}", timeout_s=0.5):
            pass


def test_devices_lists_the_fleet_in_name_order_with_capabilities(client) -> None:
    devices = client.devices()
    assert [(d.name, d.kind, d.model, d.state) for d in devices] == [
        ("devices/pen-1", "MICRONEEDLING", "DP-100", "IDLE"),
        ("devices/pen-2", "MICRONEEDLING", "DP-300", "IDLE"),
        ("devices/stim-1", "MICROCURRENT", "MC-10", "IDLE"),
        ("devices/stim-2", "MICROCURRENT", "MC-5", "IDLE")]
    depth = devices[0].parameters["needle_depth_mm"]
    assert (depth.unit, depth.min, depth.max, depth.resolution) == ("mm", 0, 2.5, 0.05)
    assert devices[1].cartridge.needle_length_mm == 3.0
    assert devices[2].settings["waveform"] == "BIPHASIC_SQUARE"


def test_device_takes_a_short_or_full_name(client) -> None:
    assert client.device("stim-2").name == client.device("devices/stim-2").name
    assert client.device("pen-1").id == "pen-1"


def test_an_unknown_device_is_device_not_found(client) -> None:
    with pytest.raises(errors.DeviceNotFound) as caught:
        client.device("devices/nope")
    assert caught.value.device == "devices/nope"


def test_a_malformed_name_is_invalid_field_naming_the_field(client) -> None:
    with pytest.raises(errors.InvalidField) as caught:
        client.device("nope/x")
    assert caught.value.violations[0][0] == "name"


def test_stop_needs_no_lease_and_is_idempotent(client) -> None:
    with client.lease("pen-1") as pen:
        pen.start()
        assert client.stop("pen-1").state == "IDLE"
        assert client.stop("pen-1").state == "IDLE"


def test_emergency_stop_of_one_device_latches_only_it(client) -> None:
    stopped = client.emergency_stop("stim-1")
    assert [(d.name, d.state) for d in stopped] == [("devices/stim-1", "ESTOPPED")]
    assert client.device("stim-2").state == "IDLE"


def test_emergency_stop_without_a_name_stops_every_device(client) -> None:
    with client.lease("pen-1") as pen:
        pen.start()
        devices = client.emergency_stop()
        assert {d.state for d in devices} == {"ESTOPPED"} and len(devices) == 4
        assert not client.device("pen-1").output_on


def test_call_runs_a_raw_stub_method_and_maps_its_error(client) -> None:
    # The wrapper always sends the lease id; only a raw call can leave it out.
    with pytest.raises(errors.LeaseRequired) as caught:
        client.call(client.stub.Start, pb.StartRequest(name="devices/pen-1"))
    assert caught.value.violations == [("lease_id", "required")]


def test_a_call_past_its_deadline_raises_deadline_exceeded(client) -> None:
    # A long AdvanceClock takes the server about a second; 10 ms is far too short.
    with pytest.raises(errors.DeadlineExceeded) as caught:
        client.call(client.sim.stub.AdvanceClock, derma.sim.v1.simulator_pb2.AdvanceClockRequest(
            duration_s=600), timeout_s=0.01)
    assert isinstance(caught.value, TimeoutError)


def test_closing_the_client_stops_lease_renewal_and_later_calls(dermad) -> None:
    with derma.connect(dermad.target) as client:
        pen = client.lease("pen-1", ttl_s=1)
        assert pen.renewing
    time.sleep(0.5)  # one renewal period: the thread sees the client closed
    assert not pen.renewing
    with pytest.raises(errors.ConnectionError, match="closed"):
        client.devices()


def test_audit_events_lists_commands_newest_first_with_filters(client) -> None:
    client.emergency_stop("pen-1")
    client.stop("stim-1")
    records = client.audit_events(device="pen-1")
    assert records and all(r.device == "devices/pen-1" for r in records)
    command = next(r for r in records if r.method.endswith("/EmergencyStop"))
    assert (command.kind, command.principal, command.code, command.reason) == (
        "COMMAND", "local", 0, "")
    assert any(r.kind == "ESTOP" and "-> ESTOPPED" in r.detail for r in records)
    newest = client.audit_events(limit=1)
    assert len(newest) == 1 and newest[0].method.endswith("/Stop")
    assert [r.id for r in client.audit_events()] == sorted(
        (r.id for r in client.audit_events()), reverse=True)
    assert client.audit_events(principal="nobody") == []
