"""Leases and the commands that need one, against a real dermad (virtual clock unless the
test is about wall-time renewal)."""
from __future__ import annotations

import time

import pytest

import derma
from derma import errors


def test_lease_block_holds_the_lease_and_releases_it_on_exit(client) -> None:
    with client.lease("devices/pen-1", ttl_s=10) as pen:
        assert (pen.device, pen.kind, pen.holder) == ("devices/pen-1", "MICRONEEDLING", "pytest")
        assert pen.expire_time is not None
        assert client.device("pen-1").lease_holder == "pytest"
    assert client.device("pen-1").lease_holder is None


def test_a_second_holder_gets_lease_held_naming_the_first(client, dermad) -> None:
    with client.lease("pen-1"):
        with derma.connect(dermad.target, holder="other") as other:
            with pytest.raises(errors.LeaseHeld) as caught:
                other.lease("pen-1")
    assert caught.value.holder == "pytest"


def test_a_ttl_outside_1_to_60_s_is_invalid_field(client) -> None:
    with pytest.raises(errors.InvalidField) as caught:
        client.lease("pen-1", ttl_s=100)
    assert caught.value.violations[0][0] == "ttl_s"


def test_the_background_thread_renews_the_lease_past_its_ttl(real_dermad) -> None:
    with derma.connect(real_dermad.target) as client:
        with client.lease("pen-1", ttl_s=1) as pen:
            first_expiry = pen.expire_time
            time.sleep(2.5)  # 2.5 TTLs of wall time; renewed every 1/3 s
            assert pen.lost is None
            assert pen.expire_time > first_expiry
            assert pen.start().state == "RUNNING"
            pen.stop()


def test_an_unrenewed_lease_expires_and_leaving_the_block_raises_lease_expired(client) -> None:
    with pytest.raises(errors.LeaseExpired):
        with client.lease("pen-1", ttl_s=2, auto_renew=False) as pen:
            pen.start()
            client.sim.advance_clock(3)
            # The dead-man switch stopped the output at the expiry.
            assert client.device("pen-1").state == "IDLE"
            with pytest.raises(errors.LeaseLost):
                pen.start()


def test_a_released_lease_is_lease_mismatch(client) -> None:
    pen = client.lease("pen-1")
    pen.release()
    with pytest.raises(errors.LeaseMismatch):
        pen.start()
    pen.release()  # idempotent


def test_an_exception_in_the_block_stops_the_device_and_propagates(client) -> None:
    with pytest.raises(RuntimeError, match="script failed"):
        with client.lease("pen-1") as pen:
            pen.start()
            raise RuntimeError("script failed")
    device = client.device("pen-1")
    assert (device.state, device.lease_holder) == ("IDLE", None)


def test_configure_returns_the_applied_settings_quantized(client) -> None:
    with client.lease("pen-1") as pen:
        applied = pen.configure(needle_depth_mm=1.03, stroke_rate_hz=120)
        assert applied == {"needle_depth_mm": 1.05, "stroke_rate_hz": 120.0,
                           "session_limit_s": 1200.0}
        assert client.device("pen-1").settings["needle_depth_mm"] == 1.05


def test_configure_validate_only_applies_nothing(client) -> None:
    with client.lease("stim-1") as stim:
        applied = stim.configure(current_ua=250, waveform="SINE", validate_only=True)
        assert (applied["current_ua"], applied["waveform"]) == (250.0, "SINE")
        assert client.device("stim-1").settings["current_ua"] == 100.0


def test_out_of_range_settings_list_every_violation(client) -> None:
    with client.lease("pen-1") as pen:
        with pytest.raises(errors.SettingOutOfRange) as caught:
            pen.configure(needle_depth_mm=7, stroke_rate_hz=1000)
    assert caught.value.violations == [
        ("settings.microneedling.needle_depth_mm", "7 mm is outside 0–2.5 mm"),
        ("settings.microneedling.stroke_rate_hz", "1000 Hz is outside 50–150 Hz")]


def test_a_waveform_the_model_lacks_is_setting_not_supported(client) -> None:
    with client.lease("stim-2") as stim:  # MC-5 has no sine
        with pytest.raises(errors.SettingNotSupported):
            stim.configure(waveform="SINE")


def test_depth_beyond_the_cartridge_is_the_depth_interlock(edge_client) -> None:
    with edge_client.lease("pen-short") as pen:  # 1.0 mm needles on a 3.0 mm model
        with pytest.raises(errors.DepthExceedsNeedle) as caught:
            pen.configure(needle_depth_mm=2.0)
    assert caught.value.needle_length_mm == 1.0
    assert isinstance(caught.value, errors.InterlockError)


def test_current_beyond_the_compliance_voltage_is_the_compliance_interlock(client) -> None:
    client.sim.set_electrode_impedance("stim-2", 100_000)
    client.sim.advance_clock(0.1)
    with client.lease("stim-2") as stim:
        with pytest.raises(errors.ComplianceInterlock) as caught:
            stim.configure(current_ua=500)
    error = caught.value
    assert error.compliance_voltage_v == 12
    assert 100 < error.max_current_ua < 130 and error.impedance_ohm > 90_000


def test_start_pause_resume_stop_walk_the_state_machine(client) -> None:
    with client.lease("pen-1") as pen:
        assert pen.start().state == "RUNNING"
        assert pen.pause().state == "PAUSED"
        assert pen.resume().state == "RUNNING"
        assert pen.stop().state == "IDLE"
        assert pen.info().state == "IDLE"


def test_start_with_the_same_request_id_starts_once(client) -> None:
    with client.lease("pen-1") as pen:
        assert pen.start(request_id="start-1").state == "RUNNING"
        pen.pause()
        # A retry of the successful Start returns OK and does not start (or resume) again.
        assert pen.start(request_id="start-1").state == "PAUSED"


def test_an_illegal_command_names_current_and_required_states(client) -> None:
    with client.lease("pen-1") as pen:
        with pytest.raises(errors.IllegalTransition) as caught:
            pen.pause()
    assert (caught.value.current_state, caught.value.required_states) == ("IDLE", ["RUNNING"])


def test_a_worn_cartridge_is_cartridge_expired(edge_client) -> None:
    with edge_client.lease("pen-worn") as pen:
        with pytest.raises(errors.CartridgeExpired):
            pen.start()


def test_estop_latches_until_reset_emergency_stop(client) -> None:
    with client.lease("pen-1") as pen:
        pen.start()
        client.emergency_stop("pen-1")
        with pytest.raises(errors.EstopLatched) as caught:
            pen.start()
        assert caught.value.current_state == "ESTOPPED"
        assert pen.reset_emergency_stop().state == "IDLE"
        assert pen.start().state == "RUNNING"
        pen.stop()


def test_a_fault_latches_until_the_condition_is_gone_and_reset_fault(client) -> None:
    with client.lease("pen-1") as pen:
        pen.start()
        client.sim.inject_fault("pen-1", "MOTOR_STALL")
        client.sim.advance_clock(0.1)
        device = pen.info()
        assert (device.state, device.fault.kind, device.output_on) == (
            "FAULT", "MOTOR_STALL", False)
        with pytest.raises(errors.FaultLatched):
            pen.start()
        with pytest.raises(errors.FaultConditionPresent) as caught:
            pen.reset_fault()
        assert caught.value.fault == "FAULT_KIND_MOTOR_STALL"
        client.sim.clear_fault("pen-1", "MOTOR_STALL")
        client.sim.advance_clock(0.1)
        assert pen.reset_fault().state == "IDLE"


def test_contact_loss_pauses_a_stimulator_until_contact_returns(client) -> None:
    with client.lease("stim-1") as stim:
        stim.start()
        client.sim.inject_fault("stim-1", "ELECTRODE_CONTACT_LOST")
        client.sim.advance_clock(0.1)
        assert stim.info().state == "PAUSED"
        with pytest.raises(errors.NoElectrodeContact):
            stim.resume()
        client.sim.clear_fault("stim-1", "ELECTRODE_CONTACT_LOST")
        client.sim.advance_clock(0.1)
        assert stim.resume().state == "RUNNING"
        stim.stop()


def test_an_offline_device_refuses_start_until_its_link_returns(client) -> None:
    with client.lease("pen-2") as pen:
        client.sim.set_link("pen-2", up=False)
        client.sim.advance_clock(0.1)
        assert pen.info().state == "OFFLINE"
        with pytest.raises(errors.DeviceOffline):
            pen.start()
        client.sim.set_link("pen-2", up=True)
        client.sim.advance_clock(0.1)
        assert pen.start().state == "RUNNING"
        pen.stop()
