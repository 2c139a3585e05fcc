#!/usr/bin/python3
"""A Modbus TCP microneedling pen or microcurrent stimulator for derma (register map v1).

Written from derma's register map document (REGISTER_MAP.md, "derma Modbus register
map, version 1") alone, the way an outside device maker would, with no knowledge of
derma's code. The Modbus TCP framing is hand-written on asyncio so that every rule of the
document (exception codes, atomic writes, function 23, watchdog fed by every request)
can be followed exactly.

Usage:
    /usr/bin/python3 derma_device.py --kind pen|stimulator [--unit 1] [--host 127.0.0.1]
        [--port 0] [--model NAME] [--serial SERIAL] [--firmware VERSION]
        [--cartridge-strokes-rated N] [--skin-impedance-ohm OHMS] [--no-electrode-contact]
        [--no-stdin-watch]

The device listens on host:port (port 0 = an ephemeral port), prints exactly one line
``port N`` to stdout, and serves until SIGTERM or SIGINT (exit status 0) or, when its stdin
is a pipe, until that pipe reaches end of file (so it dies with its parent).

Controls outside the Modbus contract, for tests:
    SIGUSR1  toggles a fault condition: "overcurrent" (derma.v1.FaultKind 3) on a
             stimulator, "motor stall" (FaultKind 4) on a pen. While it is present the
             device switches its output off and refuses output_enable = 1.
    SIGUSR2  presses the device's own stop button: latches the emergency stop as if coil 1
             had been written 1.
    --cartridge-strokes-rated N   (pens) the rated life of the inserted cartridge, so a test
             can use a cartridge up quickly. Default 1,500,000 strokes.
    --skin-impedance-ohm OHMS     (stimulators) the nominal skin-electrode impedance,
             default 5000 Ω. A high value makes the compliance voltage limit the delivered
             current, as it would on a real device.
    --no-electrode-contact        (stimulators) the electrodes are not on the skin:
             electrode_contact reads 0, electrode_impedance reads 1 000 000 Ω, and the
             fault condition "electrode contact lost" (FaultKind 1) is present, so
             output_enable = 1 is refused.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import signal
import stat
import struct
import sys
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

# --- Register map constants ---------------------------------------------------------------

MAP_VERSION = 1
KIND_PEN = 1
KIND_STIMULATOR = 2

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04

IDENTIFICATION_START, IDENTIFICATION_LENGTH = 0x0000, 0x30
CAPABILITIES_START, CAPABILITIES_LENGTH = 0x0040, 0x30
SNAPSHOT_START, SNAPSHOT_LENGTH = 0x0100, 0x20
CONTROL_START, CONTROL_LENGTH = 0x0000, 2  # holding: watchdog_ms, poll_tag
REG_WATCHDOG_MS = 0x0000
REG_POLL_TAG = 0x0001
SETPOINT_START = 0x0010
PARAMETER_CAPS_START = 0x0050

COIL_OUTPUT_ENABLE = 0
COIL_EMERGENCY_STOP = 1
COIL_FAULT_CLEAR = 2
COIL_COUNT = 3
DISCRETE_INPUT_COUNT = 19
DI_WATCHDOG_EXPIRED = 16
DI_EMERGENCY_STOP = 17
DI_OUTPUT_ON = 18

STATUS_OUTPUT_ON = 1 << 0
STATUS_EMERGENCY_STOP = 1 << 1
STATUS_WATCHDOG_EXPIRED = 1 << 2

FAULT_ELECTRODE_CONTACT_LOST = 1  # derma.v1.FaultKind numbers
FAULT_OVERCURRENT = 3
FAULT_MOTOR_STALL = 4

MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
MAX_READ_WRITE_WRITE_REGISTERS = 121
MAX_READ_BITS = 2000
MAX_WRITE_COILS = 1968

WATCHDOG_MIN_MS = 100
WATCHDOG_MAX_MS = 60000
WATCHDOG_POWER_UP_MS = 1000

COIL_ON = 0xFF00
COIL_OFF = 0x0000

# Mean |shape| of each derma.v1.Waveform, used for the delivered charge.
WAVEFORM_MEAN_ABS = {1: 0.5, 2: 1.0, 3: 0.5, 4: 2.0 / math.pi}
POLARITY_POSITIVE, POLARITY_NEGATIVE = 1, 2  # derma.v1.Polarity numbers

# electrode_impedance without contact (§5: "a large value such as 1 000 000").
NO_CONTACT_IMPEDANCE_OHM = 1_000_000

MBAP_HEADER = struct.Struct(">HHHB")
MAX_MBAP_LENGTH = 254  # unit id + a PDU of at most 253 bytes


class ModbusError(Exception):
    """A request refused with a Modbus exception code; nothing was changed."""

    def __init__(self, code: int) -> None:
        super().__init__(f"Modbus exception {code:02d}")
        self.code = code


# --- Word encoding helpers ----------------------------------------------------------------

def u32_words(value: int) -> list[int]:
    return [(value >> 16) & 0xFFFF, value & 0xFFFF]


def u64_words(value: int) -> list[int]:
    return [(value >> shift) & 0xFFFF for shift in (48, 32, 16, 0)]


def s16_word(value: int) -> int:
    return value & 0xFFFF  # two's complement


def s32_words(value: int) -> list[int]:
    return u32_words(value & 0xFFFFFFFF)  # two's complement, most significant word first


def words_to_u32(high: int, low: int) -> int:
    return (high << 16) | low


def string_words(text: str, register_count: int) -> list[int]:
    raw = text.encode("ascii").ljust(register_count * 2, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, register_count * 2, 2)]


def pack_bits(bits: list[int]) -> bytes:
    packed = bytearray((len(bits) + 7) // 8)
    for index, bit in enumerate(bits):
        if bit:
            packed[index // 8] |= 1 << (index % 8)
    return bytes(packed)


def unpack_bits(data: bytes, count: int) -> list[int]:
    return [(data[i // 8] >> (i % 8)) & 1 for i in range(count)]


# --- Device description ---------------------------------------------------------------------

@dataclass(frozen=True)
class Parameter:
    """One setpoint parameter, all values in the parameter's fixed-point scale."""

    name: str
    minimum: int
    maximum: int
    resolution: int
    default: int

    def is_valid(self, value: int) -> bool:
        return (self.minimum <= value <= self.maximum
                and (value - self.minimum) % self.resolution == 0)


@dataclass(frozen=True)
class Profile:
    """Everything fixed about one kind of device: capabilities, identity defaults, timing."""

    kind: int
    default_model: str
    default_serial: str
    default_firmware: str
    parameters: tuple[Parameter, ...]
    supported_waveforms: int = 0
    supported_polarities: int = 0
    default_waveform: int = 0
    default_polarity: int = 0
    regulation_tolerance: int = 1000
    regulation_grace_ms: int = 250
    dose_tolerance: int = 200
    compliance_voltage_mv: int = 0
    stroke_rate_slew: int = 0
    max_reply_latency_ms: int = 50
    output_off_reaction_ms: int = 20
    broadcast_turnaround_ms: int = 0

    @property
    def has_enumerations(self) -> bool:
        return self.kind == KIND_STIMULATOR

    @property
    def setpoint_length(self) -> int:
        return 2 * len(self.parameters) + (2 if self.has_enumerations else 0)


SESSION_LIMIT = Parameter("session_limit_s", 1_000, 3_600_000, 1_000, 600_000)

PEN_PROFILE = Profile(
    kind=KIND_PEN,
    default_model="Kestrel MN-7 Pen",
    default_serial="KMN7-24C-00419",
    default_firmware="3.2.0",
    parameters=(
        Parameter("needle_depth_mm", 250, 2_500, 50, 500),     # 0.25-2.5 mm, 0.05 mm
        Parameter("stroke_rate_hz", 5_000, 15_000, 100, 10_000),  # 50-150 Hz, 1 Hz
        SESSION_LIMIT,
    ),
    stroke_rate_slew=40_000,  # 400 Hz/s
)

STIMULATOR_PROFILE = Profile(
    kind=KIND_STIMULATOR,
    default_model="Kestrel MC-4 Stim",
    default_serial="KMC4-24A-01377",
    default_firmware="2.0.5",
    parameters=(
        Parameter("current_ua", 1_000, 100_000, 100, 10_000),  # 10-1000 uA, 1 uA
        Parameter("frequency_hz", 50, 40_000, 50, 1_000),      # 0.5-400 Hz, 0.5 Hz
        Parameter("ramp_s", 0, 10_000, 100, 1_000),            # 0-10 s, 0.1 s
        SESSION_LIMIT,
    ),
    supported_waveforms=(1 << 1) | (1 << 2) | (1 << 4),  # monophasic, biphasic, sine
    supported_polarities=(1 << 1) | (1 << 2),
    default_waveform=2,
    default_polarity=1,
    compliance_voltage_mv=10_000,
)


@dataclass(frozen=True)
class Identity:
    model: str
    serial: str
    firmware: str


@dataclass(frozen=True)
class Setpoints:
    values: tuple[int, ...]
    waveform: int = 0
    polarity: int = 0

    @classmethod
    def defaults(cls, profile: Profile) -> "Setpoints":
        return cls(tuple(p.default for p in profile.parameters),
                   profile.default_waveform, profile.default_polarity)

    @classmethod
    def from_registers(cls, profile: Profile, registers: list[int]) -> "Setpoints":
        count = len(profile.parameters)
        values = tuple(words_to_u32(registers[2 * i], registers[2 * i + 1]) for i in range(count))
        if profile.has_enumerations:
            return cls(values, registers[2 * count], registers[2 * count + 1])
        return cls(values)

    def to_registers(self, profile: Profile) -> list[int]:
        words: list[int] = []
        for value in self.values:
            words += u32_words(value)
        if profile.has_enumerations:
            words += [self.waveform, self.polarity]
        return words

    def is_valid(self, profile: Profile) -> bool:
        if not all(p.is_valid(v) for p, v in zip(profile.parameters, self.values)):
            return False
        if profile.has_enumerations:
            return (_supported(profile.supported_waveforms, self.waveform)
                    and _supported(profile.supported_polarities, self.polarity))
        return True


def _supported(bit_set: int, number: int) -> bool:
    return 0 < number < 16 and bool(bit_set & (1 << number))


# --- Physics ----------------------------------------------------------------------------------

class PenPhysics:
    """Motor, stroke counter, temperature and cartridge of a microneedling pen."""

    AMBIENT_C = 24.0
    THERMAL_TIME_CONSTANT_S = 90.0
    DEGREES_PER_MA = 0.06

    def __init__(self, profile: Profile, cartridge_strokes_rated: int, rng: random.Random):
        self.profile = profile
        self.rng = rng
        self.rate_hz = 0.0
        self.strokes = 0.0
        self.cartridge_strokes_at_insert = 0.0
        self.cartridge_strokes_rated = cartridge_strokes_rated
        self.cartridge_needle_count = 12
        self.cartridge_needle_length = 3_000  # 0.001 mm
        self.temperature_c = self.AMBIENT_C

    def output_on(self, now: float) -> None:
        self.rate_hz = 0.0

    def output_off(self, now: float) -> None:
        self.rate_hz = 0.0

    def advance(self, start: float, end: float, output_on: bool, setpoints: Setpoints) -> None:
        duration = end - start
        if duration <= 0:
            return
        if output_on:
            target_hz = setpoints.values[1] * 0.01
            self.strokes += self._slew(duration, target_hz, self.profile.stroke_rate_slew * 0.01)
        heating = self.motor_current_ma(output_on, setpoints) * self.DEGREES_PER_MA
        settle = 1.0 - math.exp(-duration / self.THERMAL_TIME_CONSTANT_S)
        self.temperature_c += (self.AMBIENT_C + heating - self.temperature_c) * settle

    def _slew(self, duration: float, target_hz: float, slew_hz_per_s: float) -> float:
        """Moves the rate linearly towards the target; returns the strokes made meanwhile."""
        start_hz = self.rate_hz
        if slew_hz_per_s <= 0:
            self.rate_hz = target_hz
            return target_hz * duration
        gap = target_hz - start_hz
        time_to_reach = abs(gap) / slew_hz_per_s
        if time_to_reach >= duration:
            self.rate_hz = start_hz + math.copysign(slew_hz_per_s * duration, gap)
            return (start_hz + self.rate_hz) / 2 * duration
        self.rate_hz = target_hz
        return (start_hz + target_hz) / 2 * time_to_reach + target_hz * (duration - time_to_reach)

    def motor_current_ma(self, output_on: bool, setpoints: Setpoints) -> float:
        if not output_on:
            return 0.0
        depth_mm = setpoints.values[0] * 0.001
        return 45.0 + 1.1 * self.rate_hz + 20.0 * depth_mm

    @property
    def cartridge_strokes_used(self) -> int:
        return int(self.strokes - self.cartridge_strokes_at_insert)

    def blocks_output(self) -> bool:
        return self.cartridge_strokes_used >= self.cartridge_strokes_rated

    def fault_conditions(self) -> int:
        return 0

    def readings(self, now: float, output_on: bool, setpoints: Setpoints) -> list[int]:
        """Registers 0x0108-0x011F."""
        measured_hz = self.rate_hz * (1.0 + self.rng.uniform(-0.002, 0.002))
        current_ma = self.motor_current_ma(output_on, setpoints)
        if current_ma:
            current_ma += self.rng.uniform(-2.0, 2.0)
        words = u32_words(setpoints.values[0])
        words += u32_words(round(measured_hz * 100))
        words += u64_words(int(self.strokes))
        words += u32_words(max(0, round(current_ma)))
        words.append(s16_word(round(self.temperature_c * 100)))
        words.append(self.cartridge_needle_count)
        words += u32_words(self.cartridge_needle_length)
        words += u64_words(self.cartridge_strokes_used)
        words += u64_words(self.cartridge_strokes_rated)
        words += [0, 0]
        return words


class StimulatorPhysics:
    """Current source, electrodes and charge counter of a microcurrent stimulator.

    The amplitude follows the trajectory of §3.2 (current_ua on its ramp), reduced to what the
    compliance voltage can drive through the skin. The current flowing now is that amplitude
    times the waveform's shape at the present phase, signed by its direction; the phase runs
    from 0 at output-on at the programmed frequency. Charge accumulates at the delivered
    amplitude times the waveform's mean |shape|, i.e. ∫|i|dt averaged over whole periods.
    """

    INTEGRATION_STEP_S = 0.005

    def __init__(self, profile: Profile, skin_impedance_ohm: float, electrode_contact: bool,
                 rng: random.Random):
        self.profile = profile
        self.rng = rng
        self.skin_impedance_ohm = skin_impedance_ohm
        self.electrode_contact = electrode_contact
        self.output_on_time: Optional[float] = None
        self.phase_cycles = 0.0  # waveform periods since output-on
        self.charge_nc = 0.0  # 0.001 uC

    def output_on(self, now: float) -> None:
        self.output_on_time = now
        self.phase_cycles = 0.0

    def output_off(self, now: float) -> None:
        self.output_on_time = None

    def blocks_output(self) -> bool:
        return False

    def fault_conditions(self) -> int:
        """'Electrode contact lost' is present for as long as there is no contact."""
        return 0 if self.electrode_contact else 1 << FAULT_ELECTRODE_CONTACT_LOST

    def programmed_ua(self, t: float, setpoints: Setpoints) -> float:
        if self.output_on_time is None:
            return 0.0
        amplitude_ua = setpoints.values[0] * 0.01
        ramp_s = setpoints.values[2] * 0.001
        if ramp_s <= 0:
            return amplitude_ua
        return amplitude_ua * min(1.0, (t - self.output_on_time) / ramp_s)

    def impedance_ohm(self, t: float) -> float:
        """Skin impedance drifts slowly by a few percent around its nominal value."""
        if not self.electrode_contact:
            return float(NO_CONTACT_IMPEDANCE_OHM)
        return self.skin_impedance_ohm * (1.0 + 0.02 * math.sin(2 * math.pi * t / 29.0))

    def delivered_ua(self, t: float, setpoints: Setpoints) -> float:
        """The amplitude the source can actually drive, limited by the compliance voltage."""
        if not self.electrode_contact:
            return 0.0
        limit_ua = self.profile.compliance_voltage_mv * 1000.0 / self.impedance_ohm(t)
        return min(self.programmed_ua(t, setpoints), limit_ua)

    @staticmethod
    def shape(waveform: int, polarity: int, phase_cycles: float) -> float:
        """The waveform's value (-1 ... 1) at a phase; polarity gives the leading sign."""
        sign = -1.0 if polarity == POLARITY_NEGATIVE else 1.0
        cycle = math.floor(phase_cycles)
        fraction = phase_cycles - cycle
        first_half = fraction < 0.5
        if waveform == 1:  # monophasic square: a pulse in the first half of each period
            return sign if first_half else 0.0
        if waveform == 2:  # biphasic square: the leading phase, then the opposite one
            return sign if first_half else -sign
        if waveform == 3:  # alternating polarity: monophasic pulses of alternating sign
            return (sign if cycle % 2 == 0 else -sign) if first_half else 0.0
        return sign * math.sin(2 * math.pi * fraction)  # 4, sine

    def advance(self, start: float, end: float, output_on: bool, setpoints: Setpoints) -> None:
        if not output_on or end <= start:
            return
        self.phase_cycles += setpoints.values[1] * 0.01 * (end - start)
        self.phase_cycles %= 2.0  # keeps precision; two periods keep the alternating sign
        mean_abs = WAVEFORM_MEAN_ABS.get(setpoints.waveform, 1.0)
        steps = max(1, math.ceil((end - start) / self.INTEGRATION_STEP_S))
        step = (end - start) / steps
        for index in range(steps):
            middle = start + (index + 0.5) * step
            self.charge_nc += self.delivered_ua(middle, setpoints) * mean_abs * step * 1000.0

    def readings(self, now: float, output_on: bool, setpoints: Setpoints) -> list[int]:
        """Registers 0x0108-0x011F."""
        impedance = self.impedance_ohm(now)
        if self.electrode_contact:
            impedance += self.rng.uniform(-15.0, 15.0)
        measured_ua = self.delivered_ua(now, setpoints) * self.shape(
            setpoints.waveform, setpoints.polarity, self.phase_cycles)
        if measured_ua:
            measured_ua *= 1.0 + self.rng.uniform(-0.002, 0.002)
        voltage_mv = min(abs(measured_ua) * impedance / 1000.0,
                         self.profile.compliance_voltage_mv)
        words = u32_words(round(self.programmed_ua(now, setpoints) * 100))
        words += s32_words(round(measured_ua * 100))
        words += u32_words(round(impedance))
        words += u32_words(round(voltage_mv))
        words += u64_words(int(self.charge_nc))
        words.append(int(self.electrode_contact))
        words += [0] * 11
        return words


# --- The device -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Latches:
    output_on: bool
    emergency_stop: bool
    watchdog_expired: bool


class Device:
    """The register map, state machine and watchdog; one request at a time, atomically."""

    def __init__(self, profile: Profile, identity: Identity, physics, now: float) -> None:
        self.profile = profile
        self.identity = identity
        self.physics = physics
        self.fault_kind = FAULT_OVERCURRENT if profile.kind == KIND_STIMULATOR else FAULT_MOTOR_STALL
        self.power_up_time = now
        self.model_time = now
        self.watchdog_ms = WATCHDOG_POWER_UP_MS
        self.watchdog_deadline: Optional[float] = now + WATCHDOG_POWER_UP_MS / 1000.0
        self.poll_tag = 0
        self.setpoints = Setpoints.defaults(profile)
        self.latches = Latches(False, False, False)
        self.fault_present = False
        self.handlers: dict[int, Callable[[bytes, float], bytes]] = {
            0x01: self._read_coils,
            0x02: self._read_discrete_inputs,
            0x03: self._read_holding_registers,
            0x04: self._read_input_registers,
            0x05: self._write_single_coil,
            0x06: self._write_single_register,
            0x0F: self._write_multiple_coils,
            0x10: self._write_multiple_registers,
            0x17: self._read_write_multiple_registers,
        }

    # -- time and physics --

    def advance(self, now: float) -> None:
        """Brings the physical model to `now`, letting the watchdog expire on time."""
        now = max(now, self.model_time)
        if self.watchdog_deadline is not None and self.watchdog_deadline <= now:
            self._integrate(self.watchdog_deadline)
            self._expire_watchdog(self.watchdog_deadline)
        self._integrate(now)

    def _integrate(self, until: float) -> None:
        if until > self.model_time:
            self.physics.advance(self.model_time, until, self.latches.output_on, self.setpoints)
            self.model_time = until

    def _expire_watchdog(self, when: float) -> None:
        self._set_output(False, when)
        self.latches = replace(self.latches, watchdog_expired=True)
        self.watchdog_deadline = None  # stopped until the next request

    def feed_watchdog(self, now: float) -> None:
        """Restarts the timer at this request, with watchdog_ms as this request left it."""
        self.watchdog_deadline = now + self.watchdog_ms / 1000.0

    def _set_output(self, on: bool, now: float) -> None:
        if on == self.latches.output_on:
            return
        self.latches = replace(self.latches, output_on=on)
        if on:
            self.physics.output_on(now)
        else:
            self.physics.output_off(now)

    # -- controls outside Modbus --

    def toggle_fault(self, now: float) -> None:
        self.advance(now)
        self.fault_present = not self.fault_present
        if self.fault_present:
            self._set_output(False, now)

    def press_stop_button(self, now: float) -> None:
        self.advance(now)
        self._set_output(False, now)
        self.latches = replace(self.latches, emergency_stop=True)

    # -- request processing --

    def process(self, pdu: bytes, now: float) -> bytes:
        """Answers one request PDU addressed to this unit; always feeds the watchdog.

        Exceptions follow §2's precedence: 01 (unknown function); then 03 for the request's
        length, byte count or quantity; then 02 (addresses); then 03 for the values. Every
        handler checks in that order and changes nothing before all checks have passed.
        """
        self.advance(now)
        function = pdu[0]
        try:
            handler = self.handlers.get(function)
            if handler is None:
                raise ModbusError(ILLEGAL_FUNCTION)
            reply = handler(pdu, now)
        except ModbusError as error:
            reply = bytes([(function | 0x80) & 0xFF, error.code])
        except Exception as error:  # an internal failure; planned writes were not applied
            print(f"internal error: {error!r}", file=sys.stderr, flush=True)
            reply = bytes([(function | 0x80) & 0xFF, SERVER_DEVICE_FAILURE])
        self.feed_watchdog(now)
        return reply

    # -- register images --

    def identification_registers(self) -> list[int]:
        words = [MAP_VERSION, self.profile.kind]
        words += string_words(self.identity.model, 16)
        words += string_words(self.identity.serial, 16)
        words += string_words(self.identity.firmware, 8)
        words += [self.profile.max_reply_latency_ms, self.profile.output_off_reaction_ms,
                  self.profile.broadcast_turnaround_ms, 0, 0, 0]
        return words

    def capability_registers(self) -> list[int]:
        p = self.profile
        words = [len(p.parameters), p.supported_waveforms, p.supported_polarities,
                 p.default_waveform, p.default_polarity, p.regulation_tolerance,
                 p.regulation_grace_ms, p.dose_tolerance]
        words += u32_words(p.compliance_voltage_mv)
        words += u32_words(p.stroke_rate_slew)
        words += [0, 0, 0, 0]
        for parameter in p.parameters:
            for value in (parameter.minimum, parameter.maximum, parameter.resolution,
                          parameter.default):
                words += u32_words(value)
        return words + [0] * (CAPABILITIES_LENGTH - len(words))

    def status_word(self) -> int:
        return ((STATUS_OUTPUT_ON if self.latches.output_on else 0)
                | (STATUS_EMERGENCY_STOP if self.latches.emergency_stop else 0)
                | (STATUS_WATCHDOG_EXPIRED if self.latches.watchdog_expired else 0))

    def fault_conditions(self) -> int:
        """Live fault conditions: the signalled one and any the physics reports."""
        signalled = (1 << self.fault_kind) if self.fault_present else 0
        return signalled | self.physics.fault_conditions()

    def snapshot_registers(self, now: float) -> list[int]:
        words = [self.poll_tag, self.status_word(), self.fault_conditions(), 0]
        words += u64_words(int((now - self.power_up_time) * 1000))
        words += self.physics.readings(now, self.latches.output_on, self.setpoints)
        return words

    def coil_bits(self) -> list[int]:
        return [int(self.latches.output_on), int(self.latches.emergency_stop), 0]

    def discrete_input_bits(self) -> list[int]:
        faults = self.fault_conditions()
        bits = [0] * DISCRETE_INPUT_COUNT
        for kind in range(1, 7):
            bits[kind] = (faults >> kind) & 1
        bits[DI_WATCHDOG_EXPIRED] = int(self.latches.watchdog_expired)
        bits[DI_EMERGENCY_STOP] = int(self.latches.emergency_stop)
        bits[DI_OUTPUT_ON] = int(self.latches.output_on)
        return bits

    def _input_blocks(self, now: float):
        return [(IDENTIFICATION_START, IDENTIFICATION_LENGTH, self.identification_registers),
                (CAPABILITIES_START, CAPABILITIES_LENGTH, self.capability_registers),
                (SNAPSHOT_START, SNAPSHOT_LENGTH, lambda: self.snapshot_registers(now))]

    def _holding_blocks(self, now: float):
        return [(CONTROL_START, CONTROL_LENGTH, lambda: [self.watchdog_ms, self.poll_tag]),
                (SETPOINT_START, self.profile.setpoint_length,
                 lambda: self.setpoints.to_registers(self.profile)),
                (SNAPSHOT_START, SNAPSHOT_LENGTH, lambda: self.snapshot_registers(now))]

    @staticmethod
    def _locate(blocks, address: int, count: int) -> Callable[[], list[int]]:
        """The producer of the one block that holds [address, address + count), else 02."""
        for start, length, producer in blocks:
            if start <= address and address + count <= start + length:
                return lambda: producer()[address - start:address - start + count]
        raise ModbusError(ILLEGAL_DATA_ADDRESS)

    # -- planning writes (validate everything, change nothing) --

    def _plan_register_write(self, function: int, address: int,
                             values: list[int]) -> Callable[[], None]:
        end = address + len(values)
        if CONTROL_START <= address and end <= CONTROL_START + CONTROL_LENGTH:
            return self._plan_control_write(function, address, values)
        if (function == 0x10 and address == SETPOINT_START
                and len(values) == self.profile.setpoint_length):
            setpoints = Setpoints.from_registers(self.profile, values)
            if not setpoints.is_valid(self.profile):
                raise ModbusError(ILLEGAL_DATA_VALUE)
            return lambda: setattr(self, "setpoints", setpoints)
        raise ModbusError(ILLEGAL_DATA_ADDRESS)

    def _plan_control_write(self, function: int, address: int,
                            values: list[int]) -> Callable[[], None]:
        if function == 0x17 and (address != REG_POLL_TAG or len(values) != 1):
            raise ModbusError(ILLEGAL_DATA_ADDRESS)  # code 23 writes poll_tag only
        watchdog_ms, poll_tag = self.watchdog_ms, self.poll_tag
        for offset, value in enumerate(values):
            if address + offset == REG_WATCHDOG_MS:
                if not WATCHDOG_MIN_MS <= value <= WATCHDOG_MAX_MS:
                    raise ModbusError(ILLEGAL_DATA_VALUE)
                watchdog_ms = value
            else:
                poll_tag = value

        def apply() -> None:
            self.watchdog_ms, self.poll_tag = watchdog_ms, poll_tag
        return apply

    def _output_may_go_on(self, latches: Latches) -> bool:
        return not (latches.emergency_stop or latches.watchdog_expired
                    or self.fault_conditions() or self.physics.blocks_output())

    def _next_latches(self, latches: Latches, coil: int, value: int) -> Latches:
        """The latches after writing one coil; ModbusError(03) when the write is refused."""
        if coil == COIL_OUTPUT_ENABLE:
            if value and not latches.output_on and not self._output_may_go_on(latches):
                raise ModbusError(ILLEGAL_DATA_VALUE)
            return replace(latches, output_on=bool(value))
        if coil == COIL_EMERGENCY_STOP:
            if value:
                return replace(latches, output_on=False, emergency_stop=True)
            return replace(latches, emergency_stop=False)
        if value:  # fault_clear
            return replace(latches, watchdog_expired=False)
        return latches

    def _write_coils(self, address: int, values: list[int], now: float) -> None:
        latches = self.latches
        for offset, value in enumerate(values):  # validate the whole write first
            latches = self._next_latches(latches, address + offset, value)
        for offset, value in enumerate(values):  # then apply it in address order
            after = self._next_latches(self.latches, address + offset, value)
            self._set_output(after.output_on, now)
            self.latches = after

    # -- function handlers --

    @staticmethod
    def _address_and_quantity(pdu: bytes) -> tuple[int, int]:
        if len(pdu) != 5:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        return struct.unpack(">HH", pdu[1:5])

    def _read_bits(self, pdu: bytes, bits: list[int]) -> bytes:
        address, quantity = self._address_and_quantity(pdu)
        if not 1 <= quantity <= MAX_READ_BITS:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        if address + quantity > len(bits):
            raise ModbusError(ILLEGAL_DATA_ADDRESS)
        packed = pack_bits(bits[address:address + quantity])
        return bytes([pdu[0], len(packed)]) + packed

    def _read_coils(self, pdu: bytes, now: float) -> bytes:
        return self._read_bits(pdu, self.coil_bits())

    def _read_discrete_inputs(self, pdu: bytes, now: float) -> bytes:
        return self._read_bits(pdu, self.discrete_input_bits())

    def _read_registers(self, pdu: bytes, blocks) -> bytes:
        address, quantity = self._address_and_quantity(pdu)
        if not 1 <= quantity <= MAX_READ_REGISTERS:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        words = self._locate(blocks, address, quantity)()
        return bytes([pdu[0], 2 * quantity]) + struct.pack(f">{quantity}H", *words)

    def _read_holding_registers(self, pdu: bytes, now: float) -> bytes:
        return self._read_registers(pdu, self._holding_blocks(now))

    def _read_input_registers(self, pdu: bytes, now: float) -> bytes:
        return self._read_registers(pdu, self._input_blocks(now))

    def _write_single_coil(self, pdu: bytes, now: float) -> bytes:
        address, value = self._address_and_quantity(pdu)
        if address >= COIL_COUNT:
            raise ModbusError(ILLEGAL_DATA_ADDRESS)
        if value not in (COIL_ON, COIL_OFF):
            raise ModbusError(ILLEGAL_DATA_VALUE)
        self._write_coils(address, [int(value == COIL_ON)], now)
        return pdu

    def _write_single_register(self, pdu: bytes, now: float) -> bytes:
        address, value = self._address_and_quantity(pdu)
        self._plan_register_write(pdu[0], address, [value])()
        return pdu

    def _write_multiple_coils(self, pdu: bytes, now: float) -> bytes:
        if len(pdu) < 6:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        address, quantity, byte_count = struct.unpack(">HHB", pdu[1:6])
        if not 1 <= quantity <= MAX_WRITE_COILS:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        if byte_count != (quantity + 7) // 8 or len(pdu) != 6 + byte_count:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        if address + quantity > COIL_COUNT:
            raise ModbusError(ILLEGAL_DATA_ADDRESS)
        self._write_coils(address, unpack_bits(pdu[6:], quantity), now)
        return pdu[:5]

    def _write_multiple_registers(self, pdu: bytes, now: float) -> bytes:
        if len(pdu) < 6:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        address, quantity, byte_count = struct.unpack(">HHB", pdu[1:6])
        if not 1 <= quantity <= MAX_WRITE_REGISTERS:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        if byte_count != 2 * quantity or len(pdu) != 6 + byte_count:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        values = list(struct.unpack(f">{quantity}H", pdu[6:]))
        self._plan_register_write(pdu[0], address, values)()
        return pdu[:5]

    def _read_write_multiple_registers(self, pdu: bytes, now: float) -> bytes:
        if len(pdu) < 10:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        read_address, read_quantity, write_address, write_quantity, byte_count = \
            struct.unpack(">HHHHB", pdu[1:10])
        if not (1 <= read_quantity <= MAX_READ_REGISTERS
                and 1 <= write_quantity <= MAX_READ_WRITE_WRITE_REGISTERS):
            raise ModbusError(ILLEGAL_DATA_VALUE)
        if byte_count != 2 * write_quantity or len(pdu) != 10 + byte_count:
            raise ModbusError(ILLEGAL_DATA_VALUE)
        values = list(struct.unpack(f">{write_quantity}H", pdu[10:]))
        # A read part that would be refused refuses the request before anything is written;
        # a write part other than poll_tag alone is 02 as well (so no 03 can come from it).
        read = self._locate(self._holding_blocks(now), read_address, read_quantity)
        apply_write = self._plan_register_write(pdu[0], write_address, values)
        apply_write()  # the write first, then the read sees it
        words = read()
        return bytes([pdu[0], 2 * read_quantity]) + struct.pack(f">{read_quantity}H", *words)


# --- Modbus TCP server ------------------------------------------------------------------------

class ModbusTcpServer:
    """MBAP framing for one unit id; several connections share one Device."""

    def __init__(self, device: Device, unit_id: int) -> None:
        self.device = device
        self.unit_id = unit_id
        self.connections: set[asyncio.StreamWriter] = set()
        self.watchdog_timer: Optional[asyncio.TimerHandle] = None

    def schedule_watchdog(self) -> None:
        """Wakes up when the watchdog runs out so the output goes off physically on time."""
        if self.watchdog_timer is not None:
            self.watchdog_timer.cancel()
            self.watchdog_timer = None
        deadline = self.device.watchdog_deadline
        if deadline is not None:
            delay = max(0.0, deadline - time.monotonic())
            self.watchdog_timer = asyncio.get_running_loop().call_later(
                delay, lambda: self.device.advance(time.monotonic()))

    async def handle_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        try:
            while True:
                header = await reader.readexactly(MBAP_HEADER.size)
                transaction, protocol, length, unit = MBAP_HEADER.unpack(header)
                if not 2 <= length <= MAX_MBAP_LENGTH:
                    break  # framing lost: drop the connection
                pdu = await reader.readexactly(length - 1)
                if protocol != 0 or unit != self.unit_id:
                    continue  # not a Modbus request for this device: no reply, no feed
                reply = self.device.process(pdu, time.monotonic())
                self.schedule_watchdog()
                writer.write(MBAP_HEADER.pack(transaction, 0, len(reply) + 1, unit) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.connections.discard(writer)
            writer.close()


# --- Command line -----------------------------------------------------------------------------

def printable_text(max_length: int, min_length: int = 0) -> Callable[[str], str]:
    """Identity strings are printable ASCII (0x20-0x7E); model and serial are not empty."""
    def parse(text: str) -> str:
        printable = all(0x20 <= ord(character) <= 0x7E for character in text)
        if not printable or not min_length <= len(text) <= max_length or (
                min_length and not text.strip()):
            raise argparse.ArgumentTypeError(
                f"must be {min_length}-{max_length} printable ASCII characters"
                + (", not only spaces" if min_length else ""))
        return text
    return parse


def unit_id(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 247:
        raise argparse.ArgumentTypeError("unit id must be 1-247")
    return value


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("pen", "stimulator"), required=True)
    parser.add_argument("--unit", type=unit_id, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", type=printable_text(32, min_length=1))
    parser.add_argument("--serial", type=printable_text(32, min_length=1))
    parser.add_argument("--firmware", type=printable_text(16))
    parser.add_argument("--cartridge-strokes-rated", type=int, default=1_500_000)
    parser.add_argument("--skin-impedance-ohm", type=float, default=5000.0)
    parser.add_argument("--no-electrode-contact", action="store_true",
                        help="(stimulators) the electrodes are not on the skin")
    parser.add_argument("--no-stdin-watch", action="store_true",
                        help="do not exit when stdin (a pipe) reaches end of file")
    args = parser.parse_args(argv)
    if args.no_electrode_contact and args.kind != "stimulator":
        parser.error("--no-electrode-contact is for stimulators")
    return args


def build_device(args: argparse.Namespace) -> Device:
    profile = PEN_PROFILE if args.kind == "pen" else STIMULATOR_PROFILE
    identity = Identity(profile.default_model if args.model is None else args.model,
                        profile.default_serial if args.serial is None else args.serial,
                        profile.default_firmware if args.firmware is None else args.firmware)
    rng = random.Random()
    if profile.kind == KIND_PEN:
        physics = PenPhysics(profile, args.cartridge_strokes_rated, rng)
    else:
        physics = StimulatorPhysics(profile, args.skin_impedance_ohm,
                                    not args.no_electrode_contact, rng)
    return Device(profile, identity, physics, time.monotonic())


def watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stops the device when stdin is a pipe and its writer goes away."""
    try:
        if not stat.S_ISFIFO(os.fstat(0).st_mode):
            return
    except OSError:
        return

    def on_readable() -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            stop.set()
    loop.add_reader(0, on_readable)


async def serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    device = build_device(args)
    server = ModbusTcpServer(device, args.unit)
    stop = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: device.toggle_fault(time.monotonic()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: device.press_stop_button(time.monotonic()))
    listener = await asyncio.start_server(server.handle_connection, args.host, args.port)
    server.schedule_watchdog()  # the power-up watchdog (1000 ms)
    port = listener.sockets[0].getsockname()[1]
    print(f"port {port}", flush=True)
    if not args.no_stdin_watch:
        watch_stdin(loop, stop)
    await stop.wait()
    listener.close()
    for writer in list(server.connections):
        writer.close()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
