"""CI for protocol.py, against a simulated station per test (the derma.testing plugin, which
the installed `derma` package registers with pytest; nothing to import or configure).

derma_station runs dermad on a virtual clock: device time moves only when a test calls
derma_station.advance(), so these tests take milliseconds of device-independent wall time
and never wait on the clock. The station's default fleet has pen-1, pen-2, stim-1, stim-2.
"""
import pytest

import derma
import protocol

# A pen fitted with a cartridge whose needles are shorter than the protocol's 1.0 mm pass.
FLEET_WITH_A_SHORT_CARTRIDGE = """
clock { mode: CLOCK_MODE_VIRTUAL }
devices {
  id: "pen-1"
  kind: DEVICE_KIND_MICRONEEDLING
  model: "DP-300"
  pen { cartridge_needle_length_mm: 0.8 }
}
"""


def test_the_protocol_delivers_its_prescribed_strokes(derma_station, derma_client):
    handle = protocol.start(derma_client, "pen-1")
    derma_station.advance(protocol.TOTAL_S + 0.5)

    report = protocol.report(derma_client, handle, timeout_s=10)

    assert report.complete
    assert report.output_on_s == pytest.approx(protocol.TOTAL_S, abs=0.05)
    # The programmed dose follows the motor's ramps between rates, a little under rate × time;
    # on the virtual clock the delivered strokes match it to the stroke.
    assert report.strokes_programmed == pytest.approx(protocol.PRESCRIBED_STROKES, rel=0.02)
    assert abs(report.strokes_delivered - report.strokes_programmed) < 1


def test_an_over_temperature_stops_the_pen_and_the_ledger_shows_the_partial_dose(
        derma_station, derma_client):
    handle = protocol.start(derma_client, "pen-1")
    derma_station.advance(4.0)  # into the second pass
    derma_station.inject_fault("pen-1", "OVER_TEMPERATURE")
    derma_station.advance(1.0)

    report = protocol.report(derma_client, handle, timeout_s=10)

    assert report.end_reason == "FAULT"
    assert report.fault == "OVER_TEMPERATURE"
    pen = derma_client.device("pen-1")
    assert pen.state == "FAULT" and not pen.output_on
    # Four seconds and a tick of output: the first pass and a third of the second.
    assert 4.0 <= report.output_on_s < 4.5
    assert report.strokes_delivered < protocol.PRESCRIBED_STROKES
    assert abs(report.strokes_delivered - report.strokes_programmed) < 1


@pytest.mark.derma(fleet_text=FLEET_WITH_A_SHORT_CARTRIDGE)
def test_a_pen_with_too_short_needles_refuses_the_protocol_and_stays_off(derma_client):
    with pytest.raises(derma.errors.DepthExceedsNeedle) as refused:
        protocol.start(derma_client, "pen-1")

    assert ("steps[1].settings.microneedling.needle_depth_mm"
            in dict(refused.value.violations))
    pen = derma_client.device("pen-1")
    assert not pen.output_on and pen.active_run is None and pen.lease_holder is None
