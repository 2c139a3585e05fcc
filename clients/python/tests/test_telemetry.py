"""client.telemetry(): typed items, decimation, gap reports, and how a stream ends."""
from __future__ import annotations

import itertools
import threading
from typing import Iterable, Iterator

import pytest

import derma
from derma import errors


def until_heartbeat(items: Iterable[derma.telemetry.Item]) -> Iterator[derma.telemetry.Item]:
    """Items up to the first heartbeat: on a virtual clock, everything the devices made."""
    for item in items:
        if isinstance(item, derma.Heartbeat):
            return
        yield item


def test_a_stream_opens_with_snapshots_then_sync_then_live_items(client) -> None:
    with client.telemetry(["pen-1", "stim-1"]) as stream:
        items = iter(stream)
        head = list(itertools.islice(items, 3))
        with client.lease("pen-1") as pen:
            pen.start()
            client.sim.advance_clock(0.05)
            pen.stop()
        live = list(until_heartbeat(items))
    assert [type(i) for i in head] == [derma.Snapshot, derma.Snapshot, derma.Synced]
    assert {s.device.name for s in head[:2]} == {"devices/pen-1", "devices/stim-1"}
    events = [i for i in live if isinstance(i, derma.Event) and i.device == "devices/pen-1"]
    assert [(e.type, e.from_state, e.to_state) for e in events if e.type == "STATE_CHANGED"] == [
        ("STATE_CHANGED", "IDLE", "RUNNING"), ("STATE_CHANGED", "RUNNING", "IDLE")]
    samples = [i for i in live if isinstance(i, derma.Sample) and i.device == "devices/pen-1"]
    assert [s.sequence for s in samples] == list(range(2, 2 + len(samples)))
    assert samples[0].output_on and not samples[-1].output_on
    assert set(samples[0].values) >= {"needle_depth_mm", "stroke_rate_hz", "motor_temperature_c"}
    assert not [i for i in live if isinstance(i, derma.Gap)]


def test_interval_decimates_samples_in_device_time(client) -> None:
    with client.telemetry(["stim-1"], interval_s=0.1) as stream:
        items = iter(stream)
        list(itertools.islice(items, 2))  # snapshot, sync
        client.sim.advance_clock(1.0)
        samples = [i for i in until_heartbeat(items) if isinstance(i, derma.Sample)]
    assert len(samples) == 10
    steps = {b.device_time_us - a.device_time_us for a, b in zip(samples, samples[1:])}
    assert steps == {100_000}


def test_a_slow_reader_gets_a_gap_for_every_dropped_sample(client) -> None:
    with client.telemetry(["pen-1"]) as stream:
        items = iter(stream)
        snapshot = next(items)
        next(items)  # sync
        # 2 h at 100 samples/s is 720,000 samples, far past the stream's 65,536-sample buffer.
        client.sim.advance_clock(7200)
        live = list(until_heartbeat(items))
    gaps = [i for i in live if isinstance(i, derma.Gap)]
    received = [i for i in live if isinstance(i, derma.Sample)]
    assert gaps and all(g.dropped and g.what == "samples" for g in gaps)
    assert stream.dropped_samples == sum(g.missing for g in gaps) > 0
    assert stream.missing_samples == 0  # every missing sample was announced
    first = snapshot.device.latest_sample.sequence
    assert len(received) + stream.dropped_samples == received[-1].sequence - first == 720_000


def test_shutdown_ends_the_stream_with_shutting_down(dermad) -> None:
    with derma.connect(dermad.target) as client:
        stream = client.telemetry()
        outcome: dict[str, BaseException] = {}
        opened = threading.Event()

        def read() -> None:
            try:
                for _ in stream:
                    opened.set()
            except errors.DermaError as error:
                outcome["error"] = error

        reader = threading.Thread(target=read)
        reader.start()
        assert opened.wait(timeout=5)
        assert dermad.terminate() == 0
        reader.join(timeout=5)
    assert isinstance(outcome.get("error"), errors.ShuttingDown)


def test_past_the_stream_limit_a_stream_fails_with_stream_limit(client) -> None:
    streams = []
    try:
        with pytest.raises(errors.StreamLimit) as refused:
            # 32 per principal; without a tokens file every caller is the principal "local"
            for _ in range(33):
                stream = client.telemetry(["pen-2"])
                streams.append(stream)
                next(iter(stream))  # the snapshot: this stream is open
    finally:
        for stream in streams:
            stream.close()
    assert len(streams) == 33
    assert refused.value.principal == "local"


def test_a_device_named_twice_is_streamed_once(client) -> None:
    with client.telemetry(["pen-1", "devices/pen-1"]) as stream:
        head = list(itertools.islice(stream, 2))
    assert [type(i) for i in head] == [derma.Snapshot, derma.Synced]
    assert head[1].device_count == 1
