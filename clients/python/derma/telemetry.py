"""Typed telemetry: what `Client.telemetry()` yields, and the stream that checks for gaps.

The server sends, per requested device, a snapshot (the device and its last event sequence),
then one sync marker, then live sample batches and events, and a heartbeat on a stream that
was idle for a second. Every sample and event carries a per-device sequence number, so
`TelemetryStream` yields a `Gap` before the first item after missing ones: samples the server
dropped because this client read too slowly (`dropped=True`, from DeviceSamples.dropped_samples)
and, when every sample is requested (interval_s=0), any other jump in sample sequence numbers;
events are never dropped, so an event gap always means something is wrong.
"""
from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Literal, Optional, Union

import grpc

from derma.errors import from_rpc_error
from derma.v1 import device_control_pb2, device_control_pb2_grpc, telemetry_pb2

if TYPE_CHECKING:
    from derma.devices import Device, Fault

ReadingValue = Union[float, int, bool]


@dataclass(frozen=True)
class Sample:
    """One measurement of one device.

    `values` holds every reading field with its unit in the name: a pen's needle_depth_mm,
    stroke_rate_hz, strokes_total, motor_current_a, motor_temperature_c,
    cartridge_strokes_used; a stimulator's current_setpoint_ua, current_measured_ua,
    electrode_impedance_ohm, output_voltage_v, charge_delivered_uc, electrode_contact.
    """
    device: str
    sequence: int
    device_time_us: int
    output_on: bool
    values: dict[str, ReadingValue]

    @property
    def time_s(self) -> float:
        """Device time in seconds since the Unix epoch (virtual time on a virtual clock)."""
        return self.device_time_us / 1e6


@dataclass(frozen=True)
class Event:
    """A discrete change: type is "STATE_CHANGED", "FAULT_RAISED", "FAULT_CLEARED",
    "LEASE_EXPIRED", "SETTINGS_APPLIED", "RUN_STARTED", "RUN_STEP" or "RUN_ENDED"."""
    device: str
    sequence: int
    device_time_us: int
    type: str
    from_state: Optional[str]
    to_state: Optional[str]
    fault: Optional["Fault"]
    run: Optional[str]
    message: str


@dataclass(frozen=True)
class Snapshot:
    """A device's state when the stream began; live events follow last_event_sequence."""
    device: "Device"
    last_event_sequence: int


@dataclass(frozen=True)
class Synced:
    """Every snapshot was sent (device_count of them); what follows is live."""
    device_count: int


@dataclass(frozen=True)
class Heartbeat:
    """The stream carried nothing else for a second; server_time is the server's clock."""
    server_time: Optional[datetime.datetime]


@dataclass(frozen=True)
class Gap:
    """`missing` sequence numbers of `what` ("samples" or "events") after `after_sequence`
    never arrived. dropped=True: the server dropped them because this client read too slowly."""
    device: str
    what: Literal["samples", "events"]
    after_sequence: int
    missing: int
    dropped: bool


Item = Union[Snapshot, Synced, Sample, Event, Heartbeat, Gap]


def sample_from_proto(device: str, sample: telemetry_pb2.TelemetrySample) -> Sample:
    which = sample.WhichOneof("reading")
    values: dict[str, ReadingValue] = {}
    if which is not None:
        reading = getattr(sample, which)
        values = {f.name: getattr(reading, f.name) for f in reading.DESCRIPTOR.fields}
    return Sample(device, sample.sequence, sample.device_time_us, sample.output_on, values)


def event_from_proto(event: device_control_pb2.DeviceEvent) -> Event:
    from derma.devices import Fault, enum_name  # devices imports this module
    from derma.v1 import device_pb2
    is_state = event.type == device_control_pb2.DEVICE_EVENT_TYPE_STATE_CHANGED

    def state(value: int) -> Optional[str]:
        return enum_name(device_pb2.DeviceState, value, "DEVICE_STATE_") if is_state else None

    return Event(
        device=event.device, sequence=event.sequence, device_time_us=event.device_time_us,
        type=enum_name(device_control_pb2.DeviceEventType, event.type, "DEVICE_EVENT_TYPE_"),
        from_state=state(event.from_state), to_state=state(event.to_state),
        fault=Fault.from_proto(event.fault), run=event.run or None, message=event.message)


@dataclass
class _Sequences:
    """The last sequence numbers seen of one device (None: no base yet to compare with)."""
    samples: Optional[int] = None
    events: Optional[int] = None


class TelemetryStream:
    """An open StreamTelemetry call: an iterator of typed items (`Item`).

    Iterating raises a DermaError subclass when the stream fails (ShuttingDown when dermad
    stops, StreamLimit past the server's stream limit). close() (or leaving a `with` block)
    cancels the call; iteration then simply ends. Thread-safe: close() may be called from
    another thread while one thread iterates.
    """

    def __init__(self, call: grpc.Call, interval_s: float) -> None:
        self._call = call
        self._interval_s = interval_s
        self._closed = threading.Event()
        self._seen: dict[str, _Sequences] = {}
        self.dropped_samples = 0  # total samples the server dropped for this stream
        self.missing_samples = 0  # total samples missing without the server saying so
        self.missing_events = 0
        self._items = self._read()

    def __enter__(self) -> TelemetryStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancels the stream. Idempotent."""
        self._closed.set()
        self._call.cancel()

    def __iter__(self) -> TelemetryStream:
        return self

    def __next__(self) -> Item:
        return next(self._items)

    def _read(self) -> Iterator[Item]:
        from derma.devices import Device, to_datetime
        try:
            for message in self._call:
                which = message.WhichOneof("payload")
                if which == "snapshot":
                    snap = message.snapshot
                    self._seen[snap.device.name] = _Sequences(
                        snap.device.latest_sample.sequence, snap.last_event_sequence)
                    yield Snapshot(Device.from_proto(snap.device), snap.last_event_sequence)
                elif which == "sync":
                    yield Synced(message.sync.device_count)
                elif which == "batch":
                    for samples in message.batch.devices:
                        yield from self._samples(samples)
                elif which == "event":
                    yield from self._event(message.event)
                elif which == "heartbeat":
                    yield Heartbeat(to_datetime(message.heartbeat.server_time))
        except grpc.RpcError as error:
            if self._closed.is_set() and error.code() == grpc.StatusCode.CANCELLED:
                return
            raise from_rpc_error(error) from None

    def _samples(self, samples: device_control_pb2.DeviceSamples) -> Iterator[Item]:
        seen = self._seen.setdefault(samples.device, _Sequences())
        dropped = samples.dropped_samples
        if dropped:
            self.dropped_samples += dropped
            yield Gap(samples.device, "samples", seen.samples or 0, dropped, True)
        for index, sample in enumerate(samples.samples):
            if self._interval_s == 0 and seen.samples is not None:
                expected = seen.samples + 1 + (dropped if index == 0 else 0)
                if sample.sequence > expected:
                    missing = sample.sequence - expected
                    self.missing_samples += missing
                    yield Gap(samples.device, "samples", expected - 1, missing, False)
            seen.samples = max(seen.samples or 0, sample.sequence)
            yield sample_from_proto(samples.device, sample)

    def _event(self, event: device_control_pb2.DeviceEvent) -> Iterator[Item]:
        seen = self._seen.setdefault(event.device, _Sequences())
        if seen.events is not None and event.sequence > seen.events + 1:
            missing = event.sequence - seen.events - 1
            self.missing_events += missing
            yield Gap(event.device, "events", seen.events, missing, False)
        seen.events = max(seen.events or 0, event.sequence)
        yield event_from_proto(event)


def open_stream(stub: device_control_pb2_grpc.DeviceControlStub, names: list[str],
                interval_s: float) -> TelemetryStream:
    """Starts StreamTelemetry for `names` ("devices/{id}"; empty = every device)."""
    request = device_control_pb2.StreamTelemetryRequest(names=names, sample_interval_s=interval_s)
    return TelemetryStream(stub.StreamTelemetry(request), interval_s)


__all__ = ["Sample", "Event", "Snapshot", "Synced", "Heartbeat", "Gap", "Item",
           "TelemetryStream"]
