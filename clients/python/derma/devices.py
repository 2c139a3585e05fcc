"""Devices and settings as plain Python values.

Settings are keyword arguments named like the proto fields, each carrying its unit:
pens take needle_depth_mm (mm), stroke_rate_hz (Hz), session_limit_s (s); stimulators take
current_ua (µA), frequency_hz (Hz), waveform ("MONOPHASIC_SQUARE", "BIPHASIC_SQUARE",
"ALTERNATING_POLARITY", "SINE"), polarity ("POSITIVE", "NEGATIVE"), ramp_s (s) and
session_limit_s (s). Enumerations come back as those short names.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from google.protobuf import timestamp_pb2

from derma.telemetry import Sample, sample_from_proto
from derma.v1 import device_pb2

SettingValue = Union[float, str]

MICRONEEDLING = "MICRONEEDLING"
MICROCURRENT = "MICROCURRENT"

# Settings fields per device kind (DeviceKind name without prefix) and their oneof member.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    MICRONEEDLING: ("needle_depth_mm", "stroke_rate_hz", "session_limit_s"),
    MICROCURRENT: ("current_ua", "frequency_hz", "waveform", "polarity", "ramp_s",
                   "session_limit_s"),
}
_ONEOF = {MICRONEEDLING: "microneedling", MICROCURRENT: "microcurrent"}
_ENUM_FIELDS = {"waveform": (device_pb2.Waveform, "WAVEFORM_"),
                "polarity": (device_pb2.Polarity, "POLARITY_")}


def device_name(device: str) -> str:
    """"pen-1" or "devices/pen-1" → "devices/pen-1"."""
    return device if "/" in device else f"devices/{device}"


def enum_name(enum_type: Any, value: int, prefix: str) -> str:
    """The enum value's name without its prefix: DEVICE_STATE_IDLE → "IDLE"."""
    name = enum_type.Name(value)
    return name[len(prefix):] if name.startswith(prefix) else name


def enum_value(enum_type: Any, value: Union[str, int], prefix: str) -> int:
    """"IDLE", "DEVICE_STATE_IDLE" or 2 → 2. Raises ValueError for an unknown name."""
    if isinstance(value, int):
        return value
    name = value.upper()
    return enum_type.Value(name if name.startswith(prefix) else prefix + name)


def settings_proto(kind: str, values: Mapping[str, Any]) -> device_pb2.Settings:
    """device_pb2.Settings for a device of `kind` from keyword values (units in the names).

    Raises TypeError naming the accepted fields when a field does not belong to the kind.
    """
    if kind not in KIND_FIELDS:
        raise ValueError(f"unknown device kind {kind!r}")
    unknown = sorted(set(values) - set(KIND_FIELDS[kind]))
    if unknown:
        raise TypeError(f"{', '.join(unknown)} not a {kind.lower()} setting; "
                        f"expected some of {', '.join(KIND_FIELDS[kind])}")
    settings = device_pb2.Settings()
    part = getattr(settings, _ONEOF[kind])
    part.SetInParent()
    for key, value in values.items():
        if value is None:
            continue
        if key in _ENUM_FIELDS:
            enum_type, prefix = _ENUM_FIELDS[key]
            setattr(part, key, enum_value(enum_type, value, prefix))
        else:
            setattr(part, key, float(value))
    return settings


def settings_dict(settings: device_pb2.Settings) -> dict[str, SettingValue]:
    """The fields that are set, e.g. {"needle_depth_mm": 1.0, "stroke_rate_hz": 120.0}."""
    which = settings.WhichOneof("kind")
    if which is None:
        return {}
    part = getattr(settings, which)
    out: dict[str, SettingValue] = {}
    for descriptor, value in part.ListFields():
        if descriptor.name in _ENUM_FIELDS:
            enum_type, prefix = _ENUM_FIELDS[descriptor.name]
            out[descriptor.name] = enum_name(enum_type, value, prefix)
        else:
            out[descriptor.name] = value
    return out


def to_datetime(stamp: timestamp_pb2.Timestamp) -> datetime.datetime | None:
    """A UTC datetime, or None for an unset (zero) timestamp."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.ToDatetime(tzinfo=datetime.timezone.utc)


@dataclass(frozen=True)
class Fault:
    """A device fault: kind ("MOTOR_STALL", "ELECTRODE_CONTACT_LOST", …), detail, device time."""
    kind: str
    message: str
    detect_time: datetime.datetime | None

    @staticmethod
    def from_proto(fault: device_pb2.Fault) -> Fault | None:
        if fault.kind == device_pb2.FAULT_KIND_UNSPECIFIED:
            return None
        return Fault(enum_name(device_pb2.FaultKind, fault.kind, "FAULT_KIND_"), fault.message,
                     to_datetime(fault.detect_time))


@dataclass(frozen=True)
class Parameter:
    """One settable parameter: min ≤ value ≤ max in `unit`, quantized to `resolution`."""
    field: str
    unit: str
    min: float
    max: float
    resolution: float
    default: float


@dataclass(frozen=True)
class Cartridge:
    """A pen's installed needle cartridge; expired when strokes_used ≥ strokes_rated."""
    needle_count: int
    needle_length_mm: float
    strokes_used: int
    strokes_rated: int


@dataclass(frozen=True)
class Device:
    """A device as the server last reported it. `proto` is the derma.v1.Device message."""
    name: str
    kind: str
    model: str
    state: str
    settings: dict[str, SettingValue]
    fault: Fault | None
    lease_holder: str | None
    active_run: str | None
    latest_sample: Sample | None
    parameters: dict[str, Parameter]
    cartridge: Cartridge | None
    proto: device_pb2.Device = field(repr=False)

    @property
    def id(self) -> str:
        """"pen-1" for "devices/pen-1"."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def output_on(self) -> bool:
        """True when the latest sample says the output (motor or current) is on."""
        return self.latest_sample is not None and self.latest_sample.output_on

    @staticmethod
    def from_proto(device: device_pb2.Device) -> Device:
        caps = device.capabilities
        return Device(
            name=device.name,
            kind=enum_name(device_pb2.DeviceKind, device.kind, "DEVICE_KIND_"),
            model=device.model,
            state=enum_name(device_pb2.DeviceState, device.state, "DEVICE_STATE_"),
            settings=settings_dict(device.settings),
            fault=Fault.from_proto(device.active_fault),
            lease_holder=device.lease.holder if device.HasField("lease") else None,
            active_run=device.active_run or None,
            latest_sample=(sample_from_proto(device.name, device.latest_sample)
                           if device.HasField("latest_sample") else None),
            parameters={p.field: Parameter(p.field, p.unit, p.min, p.max, p.resolution,
                                           p.default_value) for p in caps.parameters},
            cartridge=(Cartridge(device.cartridge.needle_count, device.cartridge.needle_length_mm,
                                 device.cartridge.strokes_used, device.cartridge.strokes_rated)
                       if device.HasField("cartridge") else None),
            proto=device)
