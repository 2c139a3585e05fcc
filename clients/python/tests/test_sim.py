"""client.sim: faults, impedance, link, virtual clock and scenarios, and their errors."""
from __future__ import annotations

import pytest

import derma
from derma import errors


def test_advance_clock_moves_virtual_time_exactly(client) -> None:
    start = client.device("pen-1").latest_sample.device_time_us
    assert client.sim.advance_clock(1.5) == start + 1_500_000
    assert client.device("pen-1").latest_sample.device_time_us == start + 1_500_000


def test_advance_clock_on_the_real_clock_is_virtual_clock_required(real_dermad) -> None:
    with derma.connect(real_dermad.target) as client:
        with pytest.raises(errors.VirtualClockRequired):
            client.sim.advance_clock(1)


def test_inject_fault_raises_it_on_the_next_tick_and_clear_fault_removes_it(client) -> None:
    client.sim.inject_fault("stim-1", "OVERCURRENT")
    client.sim.advance_clock(0.1)
    device = client.device("stim-1")
    assert (device.state, device.fault.kind) == ("FAULT", "OVERCURRENT")
    client.sim.clear_fault("stim-1", "FAULT_KIND_OVERCURRENT")  # the long name works too
    client.sim.advance_clock(0.1)
    with client.lease("stim-1") as stim:
        assert stim.reset_fault().state == "IDLE"


def test_a_pen_fault_on_a_stimulator_is_fault_not_applicable(client) -> None:
    with pytest.raises(errors.FaultNotApplicable):
        client.sim.inject_fault("stim-1", "MOTOR_STALL")


def test_a_transport_fault_on_the_in_process_simulator_is_fault_not_applicable(client) -> None:
    with pytest.raises(errors.FaultNotApplicable):
        client.sim.set_transport_fault("stim-1", "BAD_CRC", count=1)


def test_without_contact_a_stimulator_refuses_to_start(client) -> None:
    client.sim.inject_fault("stim-2", "ELECTRODE_CONTACT_LOST")
    client.sim.advance_clock(0.1)
    assert client.device("stim-2").latest_sample.values["electrode_contact"] is False
    with client.lease("stim-2") as stim:
        with pytest.raises(errors.NoElectrodeContact):
            stim.start()


def test_set_electrode_impedance_shows_in_the_samples(client) -> None:
    client.sim.set_electrode_impedance("stim-1", 20_000)
    client.sim.advance_clock(0.5)
    impedance = client.device("stim-1").latest_sample.values["electrode_impedance_ohm"]
    assert impedance == pytest.approx(20_000, rel=0.05)


def test_set_link_takes_a_device_offline_and_back(client) -> None:
    client.sim.set_link("pen-1", up=False)
    client.sim.advance_clock(0.1)
    assert client.device("pen-1").state == "OFFLINE"
    client.sim.set_link("pen-1", up=True)
    client.sim.advance_clock(0.1)
    assert client.device("pen-1").state == "IDLE"


def test_a_scenario_runs_its_actions_at_their_times(client) -> None:
    count = client.sim.load_scenario("""
        actions { at_s: 1 set_link { name: "devices/pen-2" up: false } }
        actions { at_s: 2 set_link { name: "devices/pen-2" up: true } }
    """)
    assert count == 2
    client.sim.advance_clock(1.5)
    assert client.device("pen-2").state == "OFFLINE"
    client.sim.advance_clock(1.0)
    assert client.device("pen-2").state == "IDLE"


def test_a_scenario_message_works_like_its_text(client) -> None:
    from derma.sim.v1 import simulator_pb2 as sim_pb
    from derma.v1 import device_pb2
    scenario = sim_pb.Scenario(actions=[sim_pb.ScenarioAction(
        at_s=0.5, inject_fault=sim_pb.InjectFaultRequest(
            name="devices/pen-1", kind=device_pb2.FAULT_KIND_OVER_TEMPERATURE))])
    assert client.sim.load_scenario(scenario) == 1
    client.sim.advance_clock(1)
    assert client.device("pen-1").fault.kind == "OVER_TEMPERATURE"


def test_a_scenario_that_does_not_parse_is_scenario_invalid_with_the_position(client) -> None:
    with pytest.raises(errors.ScenarioInvalid, match="line 1 column"):
        client.sim.load_scenario("garbage {")
