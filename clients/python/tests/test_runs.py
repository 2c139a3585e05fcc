"""Treatment programs: pen.run / client.run, progress, result with the ledger, cancel."""
from __future__ import annotations

import threading

import pytest

from derma import errors


def test_pen_run_takes_step_dicts_and_result_returns_the_exact_ledger(client, pen_steps) -> None:
    with client.lease("pen-1") as pen:
        run = pen.run(pen_steps)
        assert run.last.state == "RUNNING" and run.last.total_duration_s == 2.0
        assert [s["needle_depth_mm"] for s in run.last.steps] == [0.5, 1.0]
        client.sim.advance_clock(2.5)
        final = run.result(timeout_s=5)
    assert (final.state, final.end_reason) == ("SUCCEEDED", "COMPLETED")
    assert final.ledger.output_on_s == 2.0
    assert 0 < final.ledger.strokes_delivered <= 100 + 120  # the motor ramps up first
    assert final.end_time is not None


def test_progress_yields_every_step_until_the_run_ends(client, pen_steps) -> None:
    with client.lease("pen-1") as pen:
        run = pen.run(pen_steps)
        seen = []
        reader = threading.Thread(target=lambda: seen.extend(run.progress(timeout_s=10)))
        reader.start()
        for _ in range(25):  # 2.5 s of device time, 0.1 s at a time
            client.sim.advance_clock(0.1)
        reader.join(timeout=10)
    assert seen[-1].ended and seen[-1].end_reason == "COMPLETED"
    assert {u.current_step for u in seen} == {0, 1}
    output_on = [u.ledger.output_on_s for u in seen]
    assert output_on == sorted(output_on)


def test_client_run_holds_the_lease_for_the_run_and_releases_it_at_the_end(client,
                                                                           pen_steps) -> None:
    run = client.run("pen-2", pen_steps, ttl_s=10)
    assert client.device("pen-2").lease_holder == "pytest"
    client.sim.advance_clock(2.5)
    assert run.result(timeout_s=5).end_reason == "COMPLETED"
    assert client.device("pen-2").lease_holder is None
    assert client.get_run(run.name).ledger == run.last.ledger


def test_runs_lists_newest_first_and_get_run_finds_one(client, pen_steps) -> None:
    first = client.run("pen-1", pen_steps)
    first.cancel()
    second = client.run("stim-1", [{"current_ua": 200, "duration_s": 1}])
    assert [r.name for r in client.runs()][:2] == [second.name, first.name]
    assert [r.name for r in client.runs("pen-1")] == [first.name]
    assert client.get_run(second.name).device == "devices/stim-1"
    second.cancel()


def test_an_unknown_run_is_run_not_found(client) -> None:
    with pytest.raises(errors.RunNotFound):
        client.get_run("devices/pen-1/runs/nope")


def test_cancel_ends_the_run_and_a_second_cancel_is_run_ended(client, pen_steps) -> None:
    run = client.run("pen-1", pen_steps)
    client.sim.advance_clock(0.5)
    cancelled = run.cancel()
    assert (cancelled.state, cancelled.end_reason) == ("ENDED_EARLY", "CANCELLED")
    assert client.device("pen-1").state == "IDLE"
    assert run.result(timeout_s=5).end_reason == "CANCELLED"
    with pytest.raises(errors.RunEnded):
        run.cancel()


def test_a_run_owns_the_device_so_configure_is_run_active(client, pen_steps) -> None:
    with client.lease("pen-1") as pen:
        run = pen.run(pen_steps)
        with pytest.raises(errors.RunActive) as caught:
            pen.configure(needle_depth_mm=1.0)
        assert caught.value.run == run.name
        run.cancel()


def test_a_request_id_retry_returns_the_same_run_and_another_program_is_refused(
        client, pen_steps) -> None:
    with client.lease("pen-1") as pen:
        run = pen.run(pen_steps, request_id="program-7")
        assert pen.run(pen_steps, request_id="program-7").name == run.name
        with pytest.raises(errors.RequestIdReused):
            pen.run(pen_steps[:1], request_id="program-7")
        run.cancel()


def test_an_empty_program_is_invalid_field(client) -> None:
    with client.lease("pen-1") as pen:
        with pytest.raises(errors.InvalidField) as caught:
            pen.run([])
    assert caught.value.violations[0][0] == "steps"


def test_a_failed_client_run_gives_the_lease_back(client) -> None:
    with pytest.raises(errors.SettingOutOfRange):
        client.run("pen-1", [{"needle_depth_mm": 9, "duration_s": 1}])
    assert client.device("pen-1").lease_holder is None


def test_leaving_a_run_block_by_an_exception_stops_the_device(client, pen_steps) -> None:
    with pytest.raises(KeyError):
        with client.run("pen-1", pen_steps) as run:
            raise KeyError("operator abort")
    assert client.get_run(run.name).end_reason == "STOPPED"
    assert client.device("pen-1").lease_holder is None


def test_result_raises_a_timeout_while_the_run_is_still_going(client, pen_steps) -> None:
    run = client.run("pen-1", pen_steps)
    with pytest.raises(TimeoutError):
        run.result(timeout_s=0.3)  # the virtual clock stands still
    run.cancel()


def test_a_run_does_not_outlive_its_block(client, pen_steps) -> None:
    with client.run("pen-1", pen_steps) as run:
        client.sim.advance_clock(0.5)
    assert client.get_run(run.name).end_reason == "STOPPED"
    assert client.device("pen-1").lease_holder is None


def test_a_run_block_that_waited_for_the_end_stops_nothing(client, pen_steps) -> None:
    with client.lease("pen-1") as pen:
        with pen.run(pen_steps) as run:
            client.sim.advance_clock(2.5)
            assert run.result(timeout_s=5).end_reason == "COMPLETED"
        assert pen.start().state == "RUNNING"  # the lease is still ours
        pen.stop()
