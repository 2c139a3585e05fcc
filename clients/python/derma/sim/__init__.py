"""Simulator controls (derma.sim.v1.Simulator), as `client.sim`.

This is a package rather than derma/sim.py because the generated derma/sim/v1/ modules live
inside it. Fault kinds are FaultKind names without the prefix: "ELECTRODE_CONTACT_LOST",
"IMPEDANCE_SPIKE", "OVERCURRENT" (stimulators); "MOTOR_STALL", "MOTOR_UNDERSPEED",
"OVER_TEMPERATURE", "CARTRIDGE_JAM" (pens); "LINK_DROP" (any). The device reacts on its next
tick exactly as it would to real hardware; on a virtual clock that is the next advance_clock().
"MOTOR_UNDERSPEED" makes the motor top out at half its stroke rate without reporting anything,
so derma's regulation check faults the pen after the grace time (0.2 s of device time).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Union

import grpc

from derma.devices import device_name, enum_value
from derma.sim.v1 import simulator_pb2 as sim_pb
from derma.sim.v1 import simulator_pb2_grpc as sim_grpc
from derma.v1 import device_pb2

if TYPE_CHECKING:
    from derma.client import Client

FaultLike = Union[str, int]


def fault_kind(kind: FaultLike) -> int:
    """"MOTOR_STALL", "FAULT_KIND_MOTOR_STALL" or 4 → 4."""
    return enum_value(device_pb2.FaultKind, kind, "FAULT_KIND_")


def transport_fault(fault: FaultLike) -> int:
    """"BAD_CRC", "TRANSPORT_FAULT_BAD_CRC" or 3 → 3; None or "" clear."""
    return enum_value(sim_pb.TransportFault, fault or 0, "TRANSPORT_FAULT_")


class Simulator:
    """The simulated backend's controls. Errors: FaultNotApplicable, DeviceNotFound,
    NotSimulated, VirtualClockRequired, ScenarioInvalid, InvalidField. Thread-safe."""

    def __init__(self, client: Client, channel: grpc.Channel) -> None:
        self._client = client
        self.stub = sim_grpc.SimulatorStub(channel)

    def inject_fault(self, device: str, kind: FaultLike) -> None:
        """Raises a fault condition on a device (it stays until clear_fault)."""
        request = sim_pb.InjectFaultRequest(name=device_name(device), kind=fault_kind(kind))
        self._client.call(self.stub.InjectFault, request)

    def clear_fault(self, device: str, kind: FaultLike) -> None:
        """Removes a fault condition; the device stays latched (FAULT) until reset_fault()."""
        request = sim_pb.ClearFaultRequest(name=device_name(device), kind=fault_kind(kind))
        self._client.call(self.stub.ClearFault, request)

    def set_electrode_impedance(self, device: str, impedance_ohm: float) -> None:
        """Sets a stimulator's baseline skin–electrode impedance, in ohms (100–1000000)."""
        request = sim_pb.SetElectrodeImpedanceRequest(name=device_name(device),
                                                      impedance_ohm=impedance_ohm)
        self._client.call(self.stub.SetElectrodeImpedance, request)

    def set_link(self, device: str, up: bool) -> None:
        """Drops (up=False: the device goes OFFLINE) or restores a device's link."""
        request = sim_pb.SetLinkRequest(name=device_name(device), up=up)
        self._client.call(self.stub.SetLink, request)

    def set_transport_fault(self, device: str, fault: FaultLike, count: int = 0,
                            delay_s: float = 0, exception_code: int = 0,
                            garbage_bytes: int = 0) -> None:
        """The Modbus device emulator only (connect to its --grpc_listen port): makes the
        device's transport misbehave for `count` requests (0: until cleared with fault=None):
        "NO_REPLY", "LATE_REPLY" (delay_s), "BAD_CRC" (RTU), "EXCEPTION" (exception_code),
        "DROP_CONNECTION" (TCP), "GARBAGE" (garbage_bytes). FaultNotApplicable from dermad's
        in-process simulator, which has no transport."""
        request = sim_pb.SetTransportFaultRequest(
            name=device_name(device), fault=transport_fault(fault), count=count, delay_s=delay_s,
            exception_code=exception_code, garbage_bytes=garbage_bytes)
        self._client.call(self.stub.SetTransportFault, request)

    def advance_clock(self, seconds: float) -> int:
        """Advances the virtual clock by seconds (> 0, ≤ 86400), ticking every device through
        the interval; returns the new virtual time in microseconds since the Unix epoch.
        VirtualClockRequired when dermad runs on the real clock."""
        request = sim_pb.AdvanceClockRequest(duration_s=seconds)
        timeout_s = max(self._client.timeout_s, seconds / 100)  # a long advance takes a while
        return self._client.call(self.stub.AdvanceClock, request, timeout_s=timeout_s).now_us

    def load_scenario(self, scenario: Union[str, sim_pb.Scenario]) -> int:
        """Schedules timed actions relative to now, from text format (as in a scenario file,
        e.g. 'actions { at_s: 5 inject_fault { name: "devices/stim-1" kind:
        FAULT_KIND_OVERCURRENT } }') or a derma.sim.v1.Scenario. Returns the action count."""
        request = (sim_pb.LoadScenarioRequest(scenario_text=scenario)
                   if isinstance(scenario, str) else sim_pb.LoadScenarioRequest(scenario=scenario))
        return self._client.call(self.stub.LoadScenario, request).action_count
