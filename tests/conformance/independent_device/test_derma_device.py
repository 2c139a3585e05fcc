"""Conformance tests of derma_device.py against derma's register map v1 (REGISTER_MAP.md).

Each test starts the device as a subprocess and talks Modbus TCP to it with the small
hand-written client below (so that exception codes, unit ids, transaction ids and
malformed requests are fully under the test's control). Run with:

    /usr/bin/python3 -m pytest tests/conformance/independent_device

DERMA_DEVICE_SCRIPT may point at another device script (e.g. a deliberately broken copy).
"""
from __future__ import annotations

import math
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

DEVICE_SCRIPT = Path(os.environ.get("DERMA_DEVICE_SCRIPT",
                                    Path(__file__).with_name("derma_device.py")))
PYTHON = "/usr/bin/python3"
KINDS = ("pen", "stimulator")
KIND_NUMBER = {"pen": 1, "stimulator": 2}

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3

COIL_OUTPUT_ENABLE, COIL_EMERGENCY_STOP, COIL_FAULT_CLEAR = 0, 1, 2
STATUS_OUTPUT_ON, STATUS_ESTOP, STATUS_WATCHDOG = 1, 2, 4
DI_WATCHDOG, DI_ESTOP, DI_OUTPUT = 16, 17, 18
SIGNAL_FAULT = {"pen": 4, "stimulator": 3}  # motor stall, overcurrent (FaultKind numbers)
MEAN_ABS = {1: 0.5, 2: 1.0, 3: 0.5, 4: 2 / math.pi}


# --- A minimal Modbus TCP client ----------------------------------------------------------

class ModbusException(Exception):
    def __init__(self, function: int, code: int) -> None:
        super().__init__(f"function {function:#04x}: exception {code:02d}")
        self.function = function
        self.code = code


class Client:
    def __init__(self, port: int, unit: int = 1, timeout: float = 2.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.unit = unit
        self.transaction = 0

    def close(self) -> None:
        self.sock.close()

    def _receive_exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("device closed the connection")
            data += chunk
        return data

    def send(self, pdu: bytes, unit: Optional[int] = None) -> int:
        self.transaction = (self.transaction + 1) & 0xFFFF
        unit = self.unit if unit is None else unit
        self.sock.sendall(struct.pack(">HHHB", self.transaction, 0, len(pdu) + 1, unit) + pdu)
        return self.transaction

    def transact(self, pdu: bytes, unit: Optional[int] = None) -> bytes:
        """Sends one request and returns the reply PDU; raises ModbusException on exceptions."""
        transaction = self.send(pdu, unit)
        header = self._receive_exactly(7)
        reply_transaction, protocol, length, reply_unit = struct.unpack(">HHHB", header)
        reply = self._receive_exactly(length - 1)
        assert reply_transaction == transaction
        assert protocol == 0
        assert reply_unit == (self.unit if unit is None else unit)
        if reply[0] & 0x80:
            assert reply[0] == (pdu[0] | 0x80) & 0xFF and len(reply) == 2
            raise ModbusException(pdu[0], reply[1])
        assert reply[0] == pdu[0]
        return reply

    # -- functions --

    def _read_words(self, function: int, address: int, count: int) -> list[int]:
        reply = self.transact(struct.pack(">BHH", function, address, count))
        assert reply[1] == 2 * count and len(reply) == 2 + 2 * count
        return list(struct.unpack(f">{count}H", reply[2:]))

    def read_input(self, address: int, count: int) -> list[int]:
        return self._read_words(0x04, address, count)

    def read_holding(self, address: int, count: int) -> list[int]:
        return self._read_words(0x03, address, count)

    def _read_bits(self, function: int, address: int, count: int) -> list[int]:
        reply = self.transact(struct.pack(">BHH", function, address, count))
        assert reply[1] == (count + 7) // 8
        return [(reply[2 + i // 8] >> (i % 8)) & 1 for i in range(count)]

    def read_coils(self, address: int, count: int) -> list[int]:
        return self._read_bits(0x01, address, count)

    def read_discrete(self, address: int, count: int) -> list[int]:
        return self._read_bits(0x02, address, count)

    def write_coil(self, address: int, value: int) -> None:
        self.write_coil_raw(address, 0xFF00 if value else 0x0000)

    def write_coil_raw(self, address: int, raw: int) -> None:
        request = struct.pack(">BHH", 0x05, address, raw)
        assert self.transact(request) == request

    def write_coils(self, address: int, bits: list[int]) -> None:
        packed = bytearray((len(bits) + 7) // 8)
        for index, bit in enumerate(bits):
            packed[index // 8] |= bit << (index % 8)
        reply = self.transact(struct.pack(">BHHB", 0x0F, address, len(bits), len(packed))
                              + bytes(packed))
        assert reply == struct.pack(">BHH", 0x0F, address, len(bits))

    def write_register(self, address: int, value: int) -> None:
        request = struct.pack(">BHH", 0x06, address, value)
        assert self.transact(request) == request

    def write_registers(self, address: int, values: list[int]) -> None:
        reply = self.transact(struct.pack(f">BHHB{len(values)}H", 0x10, address, len(values),
                                          2 * len(values), *values))
        assert reply == struct.pack(">BHH", 0x10, address, len(values))

    def read_write(self, read_address: int, read_count: int, write_address: int,
                   values: list[int]) -> list[int]:
        reply = self.transact(struct.pack(f">BHHHHB{len(values)}H", 0x17, read_address,
                                          read_count, write_address, len(values),
                                          2 * len(values), *values))
        assert reply[1] == 2 * read_count
        return list(struct.unpack(f">{read_count}H", reply[2:]))


def expect_exception(code: int, action: Callable[[], object]) -> None:
    with pytest.raises(ModbusException) as caught:
        action()
    assert caught.value.code == code, f"expected exception {code}, got {caught.value.code}"


# --- Decoding ----------------------------------------------------------------------------------

def u32(words: list[int], index: int) -> int:
    return (words[index] << 16) | words[index + 1]


def u64(words: list[int], index: int) -> int:
    return (u32(words, index) << 32) | u32(words, index + 2)


def s32(words: list[int], index: int) -> int:
    """A signed 32-bit value: two's complement, most significant word first (§1)."""
    value = u32(words, index)
    return value - (1 << 32) if value & 0x8000_0000 else value


def text(words: list[int]) -> str:
    raw = b"".join(struct.pack(">H", w) for w in words)
    return raw.split(b"\0", 1)[0].decode("ascii")


@dataclass
class Parameter:
    minimum: int
    maximum: int
    resolution: int
    default: int

    def valid(self, value: int) -> bool:
        return (self.minimum <= value <= self.maximum
                and (value - self.minimum) % self.resolution == 0)


@dataclass
class Capabilities:
    raw: list[int]
    parameters: list[Parameter]
    supported_waveforms: int
    supported_polarities: int
    default_waveform: int
    default_polarity: int
    compliance_voltage_mv: int
    stroke_rate_slew: int

    @property
    def setpoint_length(self) -> int:
        return 2 * len(self.parameters) + (2 if self.supported_waveforms else 0)


def parse_capabilities(words: list[int]) -> Capabilities:
    parameters = []
    for i in range(words[0]):
        base = 0x10 + 8 * i
        parameters.append(Parameter(*(u32(words, base + 2 * k) for k in range(4))))
    return Capabilities(words, parameters, words[1], words[2], words[3], words[4],
                        u32(words, 8), u32(words, 10))


def parse_snapshot(kind: str, words: list[int]) -> dict[str, int]:
    assert len(words) == 32
    snapshot = {"tag_echo": words[0], "status": words[1], "fault_conditions": words[2],
                "reserved_0103": words[3], "uptime_ms": u64(words, 4)}
    if kind == "pen":
        temperature = words[0x12] - 0x10000 if words[0x12] & 0x8000 else words[0x12]
        snapshot.update(needle_depth=u32(words, 8), stroke_rate=u32(words, 0xA),
                        strokes_total=u64(words, 0xC), motor_current=u32(words, 0x10),
                        motor_temperature=temperature, cartridge_needle_count=words[0x13],
                        cartridge_needle_length=u32(words, 0x14),
                        cartridge_strokes_used=u64(words, 0x16),
                        cartridge_strokes_rated=u64(words, 0x1A),
                        reserved=sum(words[0x1E:]))
    else:
        snapshot.update(current_setpoint=u32(words, 8), current_measured=s32(words, 0xA),
                        electrode_impedance=u32(words, 0xC), output_voltage=u32(words, 0xE),
                        charge_delivered=u64(words, 0x10), electrode_contact=words[0x14],
                        reserved=sum(words[0x15:]))
    return snapshot


# --- Device process handling ----------------------------------------------------------------

class DeviceProcess:
    def __init__(self, kind: str, *extra: str, stdin=subprocess.PIPE) -> None:
        self.kind = kind
        self.process = subprocess.Popen(
            [PYTHON, str(DEVICE_SCRIPT), "--kind", kind, *extra],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.port_line = self._read_port_line()
        self.port = int(self.port_line.split()[1])
        self.clients: list[Client] = []
        self.tag = 0

    def _read_port_line(self) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], 10)
        assert ready, "device printed no port line"
        return self.process.stdout.readline().decode()

    def client(self, unit: int = 1, timeout: float = 2.0) -> Client:
        client = Client(self.port, unit, timeout)
        self.clients.append(client)
        return client

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def stop(self) -> Optional[int]:
        for client in self.clients:
            client.close()
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        finally:
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                if stream:
                    stream.close()


@pytest.fixture
def start_device():
    started: list[DeviceProcess] = []

    def start(kind: str, *extra: str, **options) -> DeviceProcess:
        device = DeviceProcess(kind, *extra, **options)
        started.append(device)
        return device

    yield start
    for device in started:
        device.stop()


def connect(client: Client, watchdog_ms: int = 10000) -> tuple[list[int], Capabilities]:
    """derma's connect sequence (§8); the setpoints it writes are the capability defaults."""
    identification = client.read_input(0x0000, 48)
    capabilities = parse_capabilities(client.read_input(0x0040, 48))
    client.write_register(0x0000, watchdog_ms)
    client.write_coil(COIL_FAULT_CLEAR, 1)
    client.write_coil(COIL_OUTPUT_ENABLE, 0)
    client.write_registers(0x0010, default_setpoints(capabilities))
    return identification, capabilities


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def device(start_device, kind):
    return start_device(kind)


@pytest.fixture
def link(device):
    client = device.client()
    _, capabilities = connect(client)
    return device, client, capabilities


def tagged_poll(device: DeviceProcess, client: Client) -> dict[str, int]:
    device.tag = (device.tag + 1) & 0xFFFF
    snapshot = parse_snapshot(device.kind, client.read_write(0x0100, 32, 0x0001, [device.tag]))
    assert snapshot["tag_echo"] == device.tag
    return snapshot


def wait_for(condition: Callable[[], object], timeout: float = 3.0,
             interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def setpoints_of(client: Client, capabilities: Capabilities) -> list[int]:
    return client.read_holding(0x0010, capabilities.setpoint_length)


def setpoint_words(values: list[int], enumerations: tuple[int, ...] = ()) -> list[int]:
    words: list[int] = []
    for value in values:
        words += [(value >> 16) & 0xFFFF, value & 0xFFFF]
    return words + list(enumerations)


def default_setpoints(capabilities: Capabilities) -> list[int]:
    return setpoint_words([p.default for p in capabilities.parameters],
                          (capabilities.default_waveform, capabilities.default_polarity)
                          if capabilities.supported_waveforms else ())


def non_default_setpoints(capabilities: Capabilities) -> list[int]:
    values = [p.maximum for p in capabilities.parameters]
    enumerations: tuple[int, ...] = ()
    if capabilities.supported_waveforms:
        enumerations = (supported_numbers(capabilities.supported_waveforms)[-1],
                        supported_numbers(capabilities.supported_polarities)[-1])
    return setpoint_words(values, enumerations)


def supported_numbers(bit_set: int) -> list[int]:
    return [n for n in range(16) if bit_set & (1 << n)]


# --- §3 identification and capabilities -------------------------------------------------------

def test_port_line_and_identification(device, kind):
    assert re.fullmatch(r"port \d+\n", device.port_line)
    words = device.client().read_input(0x0000, 48)
    assert words[0] == 1, "map_version"
    assert words[1] == KIND_NUMBER[kind]
    for block in (words[2:0x12], words[0x12:0x22], words[0x22:0x2A]):
        assert_identity_string(block)
    assert text(words[2:0x12]) and text(words[0x12:0x22]), "model and serial are not empty"
    assert 1 <= words[0x2A] <= 1000, "max_reply_latency_ms"
    assert 0 <= words[0x2B] <= 1000, "output_off_reaction_ms"
    assert words[0x2C] == 0, "broadcast_turnaround_ms is 0 on TCP"
    assert words[0x2D:0x30] == [0, 0, 0]


def assert_identity_string(block: list[int]) -> None:
    """Printable ASCII (0x20-0x7E), then NUL padding to the block's length (§1)."""
    raw = b"".join(struct.pack(">H", w) for w in block)
    content = raw.rstrip(b"\0")
    assert all(0x20 <= byte <= 0x7E for byte in content), raw
    assert raw == content.ljust(len(raw), b"\0")


def test_identification_from_command_line(start_device):
    model = "M" * 32  # fills its block: no NUL
    device = start_device("stimulator", "--model", model, "--serial", "SN-42",
                          "--firmware", "9.8.7-rc1")
    client = device.client()
    words = client.read_input(0x0000, 48)
    assert text(words[2:0x12]) == model
    assert text(words[0x12:0x22]) == "SN-42"
    assert words[0x12 + 2] == 0x3200 and words[0x12 + 3:0x22] == [0] * 13, "NUL padding"
    assert text(words[0x22:0x2A]) == "9.8.7-rc1"
    client.close()
    assert device.client().read_input(0x0000, 48) == words, "identification stays the same"


def test_identity_strings_must_be_printable_and_model_and_serial_non_empty():
    for option, value in (("--model", ""), ("--serial", ""), ("--serial", "   "),
                          ("--model", "tab\there"), ("--firmware", "1.0\x7f"),
                          ("--model", "Ünïcode"), ("--serial", "S" * 33),
                          ("--firmware", "1" * 17)):
        result = subprocess.run([PYTHON, str(DEVICE_SCRIPT), "--kind", "pen", option, value],
                                stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        assert result.returncode != 0 and not result.stdout, (option, value)


def test_capabilities_follow_the_rules(link, kind):
    _, client, caps = link
    words = caps.raw
    if kind == "pen":
        assert len(caps.parameters) == 3
        assert words[1:5] == [0, 0, 0, 0]
        assert caps.compliance_voltage_mv == 0
        assert caps.stroke_rate_slew > 0
    else:
        assert len(caps.parameters) == 4
        assert caps.supported_waveforms & 0b11110 and not caps.supported_waveforms & ~0b11110
        assert caps.supported_polarities & 0b110 and not caps.supported_polarities & ~0b110
        assert caps.supported_waveforms & (1 << caps.default_waveform)
        assert 1 <= caps.default_waveform <= 4 and 1 <= caps.default_polarity <= 2
        assert caps.supported_polarities & (1 << caps.default_polarity)
        assert caps.compliance_voltage_mv > 0
        assert caps.stroke_rate_slew == 0
    assert words[0xC:0x10] == [0, 0, 0, 0], "reserved"
    assert words[0x10 + 8 * len(caps.parameters):] == [0] * (48 - 0x10 - 8 * len(caps.parameters))
    for parameter in caps.parameters:
        assert parameter.resolution >= 1
        assert parameter.minimum <= parameter.default <= parameter.maximum
        assert (parameter.default - parameter.minimum) % parameter.resolution == 0
        assert (parameter.maximum - parameter.minimum) % parameter.resolution == 0
    session_limit = caps.parameters[-1]
    assert session_limit.minimum <= 1000 and session_limit.maximum >= 3_600_000
    assert session_limit.valid(1000) and session_limit.valid(3_600_000)
    assert client.read_input(0x0040, 48) == words, "capabilities do not change"


# --- §4 holding registers -------------------------------------------------------------------

def test_power_up_holding_registers(device):
    client = device.client()
    caps = parse_capabilities(client.read_input(0x0040, 48))
    assert client.read_holding(0x0000, 2) == [1000, 0], "watchdog_ms and poll_tag at power-up"
    defaults = setpoint_words([p.default for p in caps.parameters],
                              (caps.default_waveform, caps.default_polarity)
                              if caps.supported_waveforms else ())
    assert setpoints_of(client, caps) == defaults


def test_setpoint_write_must_cover_the_whole_block(link):
    _, client, caps = link
    length = caps.setpoint_length
    valid = non_default_setpoints(caps)
    client.write_registers(0x0010, valid)
    attempts = [
        lambda: client.write_registers(0x0010, valid[:-2]),
        lambda: client.write_registers(0x0010, valid + [0, 0]),
        lambda: client.write_registers(0x0012, valid[2:]),
        lambda: client.write_registers(0x000F, [0] + valid),
        lambda: client.write_register(0x0010, valid[0]),
        lambda: client.write_register(0x0011, valid[1]),
        lambda: client.read_write(0x0100, 1, 0x0010, valid),
    ]
    for attempt in attempts:
        expect_exception(ILLEGAL_DATA_ADDRESS, attempt)
        assert setpoints_of(client, caps) == valid
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_holding(0x0010, length + 1))


def invalid_setpoint_blocks(caps: Capabilities, base: list[int]) -> list[list[int]]:
    blocks = []
    for index, p in enumerate(caps.parameters):
        bad_values = [p.maximum + p.resolution, 0xFFFFFFFF]
        if p.minimum > 0:
            bad_values.append(p.minimum - 1)
        if p.resolution > 1:
            bad_values.append(p.minimum + p.resolution // 2)
        for bad in bad_values:
            block = list(base)
            block[2 * index:2 * index + 2] = [(bad >> 16) & 0xFFFF, bad & 0xFFFF]
            blocks.append(block)
    if caps.supported_waveforms:
        enum_index = 2 * len(caps.parameters)
        for offset, bit_set in ((0, caps.supported_waveforms), (1, caps.supported_polarities)):
            for bad in [n for n in range(0, 17) if not bit_set & (1 << n)] + [0xFFFF]:
                block = list(base)
                block[enum_index + offset] = bad
                blocks.append(block)
    return blocks


def test_setpoint_values_are_validated_and_old_ones_kept(link):
    _, client, caps = link
    valid = non_default_setpoints(caps)
    client.write_registers(0x0010, valid)
    assert setpoints_of(client, caps) == valid
    for block in invalid_setpoint_blocks(caps, valid):
        expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_registers(0x0010, block))
    assert setpoints_of(client, caps) == valid
    on_grid = [p.minimum + p.resolution for p in caps.parameters]
    enumerations = ((supported_numbers(caps.supported_waveforms)[0],
                     supported_numbers(caps.supported_polarities)[0])
                    if caps.supported_waveforms else ())
    client.write_registers(0x0010, setpoint_words(on_grid, enumerations))
    assert setpoints_of(client, caps) == setpoint_words(on_grid, enumerations)


def test_watchdog_ms_range(link):
    _, client, _ = link
    for bad in (0, 99, 60001, 0xFFFF):
        expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_register(0x0000, bad))
        expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_registers(0x0000, [bad, 77]))
    assert client.read_holding(0x0000, 2) == [10000, 0], "refused writes change nothing"
    client.write_register(0x0000, 60000)
    client.write_registers(0x0000, [100, 5])
    assert client.read_holding(0x0000, 2) == [100, 5]
    client.write_register(0x0000, 10000)


# --- §5 snapshot and the tagged poll ------------------------------------------------------------

def test_tag_echo(link, kind):
    device, client, _ = link
    for tag in (1, 0xFFFF, 0x1234, 0, 0x8000):
        words = client.read_write(0x0100, 32, 0x0001, [tag])
        assert words[0] == tag, "code 23 reads the tag its own write part stored"
        assert client.read_input(0x0100, 1) == [tag]
        assert client.read_holding(0x0001, 1) == [tag]
    assert client.read_write(0x0000, 2, 0x0001, [0x4321]) == [10000, 0x4321]
    client.write_register(0x0001, 777)
    assert client.read_input(0x0100, 1) == [777]
    client.write_registers(0x0001, [778])
    assert client.read_holding(0x0100, 1) == [778]
    snapshot = tagged_poll(device, client)
    assert snapshot["reserved_0103"] == 0 and snapshot["reserved"] == 0
    assert snapshot["status"] == 0 and snapshot["fault_conditions"] == 0


def test_failed_code_23_changes_nothing(link):
    _, client, _ = link
    client.write_register(0x0001, 55)
    # a read part that would be refused refuses the request before anything is written
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_write(0x0120, 1, 0x0001, [9]))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_write(0x0100, 33, 0x0001, [9]))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_write(0x0002, 1, 0x0001, [9]))
    # the write part may write poll_tag alone (§2, §4), anything else is 02
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_write(0x0100, 1, 0x0100, [9]))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_write(0x0100, 1, 0x0002, [9]))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_write(0x0100, 1, 0x0000, [500, 9]))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_write(0x0100, 1, 0x0000, [500]))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_write(0x0100, 1, 0x0001, [9, 9]))
    # even an out-of-range watchdog_ms is 02 (address before value), not 03
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_write(0x0100, 1, 0x0000, [5]))
    assert client.read_holding(0x0000, 2) == [10000, 55]


def test_snapshot_is_the_same_through_codes_03_04_and_23(link, kind):
    device, client, _ = link
    client.write_register(0x0001, 99)
    via_input = parse_snapshot(kind, client.read_input(0x0100, 32))
    via_holding = parse_snapshot(kind, client.read_holding(0x0100, 32))
    via_23 = parse_snapshot(kind, client.read_write(0x0100, 32, 0x0001, [99]))
    static = (["tag_echo", "status", "fault_conditions", "reserved"]
              + (["needle_depth", "cartridge_needle_count", "cartridge_strokes_rated"]
                 if kind == "pen" else ["electrode_contact"]))
    for field in static:
        assert via_input[field] == via_holding[field] == via_23[field], field
    assert via_input["uptime_ms"] <= via_holding["uptime_ms"] <= via_23["uptime_ms"]
    partial = client.read_input(0x0104, 4)
    assert u64(partial, 0) >= via_23["uptime_ms"]


def test_concurrent_tagged_polls_are_atomic(link, kind):
    device, _, _ = link
    clients = [device.client() for _ in range(3)]
    errors: list[str] = []
    uptimes: list[list[int]] = [[] for _ in clients]

    def poll(index: int) -> None:
        try:
            for n in range(120):
                tag = (index << 12) | n
                words = clients[index].read_write(0x0100, 32, 0x0001, [tag])
                if words[0] != tag:
                    errors.append(f"client {index} wrote {tag:#x}, echo {words[0]:#x}")
                uptimes[index].append(u64(words, 4))
        except Exception as error:  # reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors
    for series in uptimes:
        assert series == sorted(series), "uptime_ms is monotonic"


# --- §6 coils and discrete inputs ------------------------------------------------------------

def status_bits(device: DeviceProcess, client: Client) -> int:
    return tagged_poll(device, client)["status"]


def test_output_enable_on_and_off(link):
    device, client, _ = link
    assert client.read_coils(0, 3) == [0, 0, 0]
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    assert client.read_coils(0, 3) == [1, 0, 0]
    assert status_bits(device, client) == STATUS_OUTPUT_ON
    assert client.read_discrete(0, 19) == [0] * 18 + [1]
    client.write_coil(COIL_OUTPUT_ENABLE, 1)  # already on: accepted
    assert client.read_coils(0, 1) == [1]
    client.write_coil(COIL_OUTPUT_ENABLE, 0)
    assert status_bits(device, client) == 0
    client.write_coil(COIL_OUTPUT_ENABLE, 0)  # already off: accepted
    client.write_coils(0, [1])
    assert client.read_discrete(DI_OUTPUT, 1) == [1]
    client.write_coils(0, [0, 0, 0])
    assert client.read_coils(0, 3) == [0, 0, 0]


def test_emergency_stop_latch(link):
    device, client, caps = link
    valid = non_default_setpoints(caps)
    client.write_registers(0x0010, valid)
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    client.write_coil(COIL_EMERGENCY_STOP, 1)
    assert status_bits(device, client) == STATUS_ESTOP
    assert client.read_coils(0, 3) == [0, 1, 0]
    assert client.read_discrete(DI_WATCHDOG, 3) == [0, 1, 0]
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coil(COIL_OUTPUT_ENABLE, 1))
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coils(0, [1]))
    client.write_coil(COIL_EMERGENCY_STOP, 1)  # latched already: accepted, no change
    client.write_coil(COIL_FAULT_CLEAR, 1)  # does not clear the emergency stop
    client.write_coil(COIL_OUTPUT_ENABLE, 0)
    assert status_bits(device, client) == STATUS_ESTOP
    client.write_coil(COIL_EMERGENCY_STOP, 0)
    assert status_bits(device, client) == 0, "the output stays off"
    client.write_coil(COIL_EMERGENCY_STOP, 0)  # not latched: accepted
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    assert status_bits(device, client) == STATUS_OUTPUT_ON
    assert setpoints_of(client, caps) == valid, "setpoints survive an emergency stop"


def test_multiple_coil_write_is_all_or_nothing(link):
    device, client, _ = link
    client.write_coil(COIL_EMERGENCY_STOP, 1)
    # output_enable = 1 comes first (address order) while the stop is still latched
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coils(0, [1, 0]))
    assert client.read_coils(0, 3) == [0, 1, 0], "nothing of the refused write applied"
    client.write_coils(0, [0, 0])
    client.write_coils(0, [1, 1])  # on, then stopped
    assert client.read_coils(0, 3) == [0, 1, 0]
    client.write_coils(1, [0])
    client.write_coils(0, [1])
    assert client.read_coils(0, 3) == [1, 0, 0]
    client.write_coils(0, [0, 0, 1])
    assert client.read_coils(0, 3) == [0, 0, 0]


def test_coil_values_and_addresses(link):
    _, client, _ = link
    for raw in (0x0001, 0x00FF, 0xFFFF, 0x1234):
        expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coil_raw(COIL_OUTPUT_ENABLE, raw))
    assert client.read_coils(0, 1) == [0]
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_coil(3, 1))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_coils(2, [0, 0]))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_coils(3, 1))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_coils(0, 4))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_discrete(19, 1))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_discrete(18, 2))
    client.write_coil(COIL_FAULT_CLEAR, 0)  # no effect, accepted
    assert client.read_coils(COIL_FAULT_CLEAR, 1) == [0]


# --- §7 watchdog ------------------------------------------------------------------------------

def test_watchdog_expiry_switches_off_and_latches(link, kind):
    device, client, caps = link
    valid = non_default_setpoints(caps)
    client.write_registers(0x0010, valid)
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    client.write_register(0x0000, 200)  # applies from this request on
    for _ in range(3):  # every request restarts the timer
        time.sleep(0.12)
        assert status_bits(device, client) == STATUS_OUTPUT_ON
    time.sleep(0.4)
    snapshot = tagged_poll(device, client)
    assert snapshot["status"] == STATUS_WATCHDOG, "output off, watchdog latch set"
    assert client.read_discrete(DI_WATCHDOG, 3) == [1, 0, 0]
    assert client.read_coils(0, 3) == [0, 0, 0]
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coil(COIL_OUTPUT_ENABLE, 1))
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coils(0, [1, 0, 1]))
    assert status_bits(device, client) == STATUS_WATCHDOG
    client.write_coil(COIL_FAULT_CLEAR, 1)
    assert status_bits(device, client) == 0
    client.write_register(0x0000, 10000)
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    assert status_bits(device, client) == STATUS_OUTPUT_ON
    assert setpoints_of(client, caps) == valid, "setpoints survive watchdog expiry"


def test_watchdog_ms_write_restarts_the_timer_with_the_new_time(link):
    device, client, _ = link  # connected with watchdog_ms = 10000
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    client.write_register(0x0000, 200)  # the last request: 200 ms from here, not 10 s
    time.sleep(0.45)
    assert status_bits(device, client) == STATUS_WATCHDOG
    client.write_coil(COIL_FAULT_CLEAR, 1)
    client.write_registers(0x0000, [1500])  # the last request: 1.5 s from here, not 200 ms
    time.sleep(0.45)
    assert status_bits(device, client) == 0
    client.write_register(0x0000, 200)
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_register(0x0000, 60001))
    time.sleep(0.1)  # a refused write feeds the watchdog with the time it leaves (200 ms)
    assert status_bits(device, client) == 0
    time.sleep(0.45)
    assert status_bits(device, client) == STATUS_WATCHDOG


def test_refused_requests_feed_the_watchdog(link):
    device, client, _ = link
    client.write_register(0x0000, 200)
    deadline = time.monotonic() + 0.7
    while time.monotonic() < deadline:
        expect_exception(ILLEGAL_FUNCTION, lambda: client.transact(bytes([0x2B, 0x0E, 1, 0])))
        expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_input(0x0030, 1))
        time.sleep(0.06)
    assert status_bits(device, client) == 0


def test_other_unit_ids_are_ignored_and_do_not_feed_the_watchdog(link):
    device, client, _ = link
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    stranger = device.client(unit=2, timeout=0.2)
    # unit 0 (no broadcast on TCP), 248-255 and any other unit id: no reply, no action
    for unit in (0, 248, 255, 2):
        with pytest.raises(socket.timeout):
            stranger.transact(struct.pack(">BHH", 0x05, COIL_EMERGENCY_STOP, 0xFF00), unit=unit)
    assert status_bits(device, client) == STATUS_OUTPUT_ON, "the stops were not acted on"
    client.write_register(0x0000, 200)
    deadline = time.monotonic() + 0.45
    while time.monotonic() < deadline:  # ... and no watchdog feed
        for unit in (0, 2, 247, 248, 250, 255):
            stranger.send(struct.pack(">BHH", 0x04, 0x0100, 32), unit=unit)
        time.sleep(0.03)
    assert status_bits(device, client) == STATUS_WATCHDOG


def test_watchdog_runs_from_power_up(device):
    client = device.client()
    assert client.read_input(0x0101, 1) == [0]
    time.sleep(1.25)
    assert client.read_input(0x0101, 1) == [STATUS_WATCHDOG], "expired 1000 ms after power-up"
    client.write_coil(COIL_FAULT_CLEAR, 1)
    assert client.read_input(0x0101, 1) == [0]


def test_state_and_watchdog_survive_reconnects(device):
    first = device.client()
    _, caps = connect(first, watchdog_ms=300)
    first.write_registers(0x0010, non_default_setpoints(caps))
    first.write_register(0x0001, 4242)
    first.write_coil(COIL_OUTPUT_ENABLE, 1)
    first.close()
    second = device.client()
    assert second.read_input(0x0100, 2) == [4242, STATUS_OUTPUT_ON]
    assert setpoints_of(second, caps) == non_default_setpoints(caps)
    second.close()
    time.sleep(0.5)
    third = device.client()
    assert third.read_input(0x0101, 1) == [STATUS_WATCHDOG], "watchdog ran without a link"


# --- §2 function codes and exception codes ----------------------------------------------------

def test_unsupported_function_codes(link):
    _, client, _ = link
    for pdu in (bytes([0x07]), bytes([0x08, 0, 0, 0x12, 0x34]), bytes([0x11]),
                bytes([0x14, 7, 6, 0, 1, 0, 0, 0, 1]), bytes([0x16, 0, 1, 0xFF, 0xFF, 0, 0]),
                bytes([0x18, 0, 0]), bytes([0x2B, 0x0E, 1, 0]), bytes([0x41, 1, 2]),
                bytes([0x00])):
        expect_exception(ILLEGAL_FUNCTION, lambda: client.transact(pdu))


def test_writes_to_read_only_areas(link, kind):
    _, client, caps = link
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_register(0x0100, 1))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_register(0x0108, 1))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_registers(0x0100, [1] * 32))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_write(0x0100, 1, 0x0101, [1]))
    for address in (0x0002, 0x000F, 0x0040, 0x0050, 0x002A):
        expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_register(address, 1))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_registers(0x0000, [1000, 1, 0]))
    assert client.read_input(0x0100, 1) == [0]
    assert client.read_input(0x0000, 2) == [1, KIND_NUMBER[kind]]


def test_reads_outside_every_block(link):
    _, client, caps = link
    for address, count in ((0x0030, 1), (0x002F, 2), (0x003F, 1), (0x0070, 1), (0x006F, 2),
                           (0x00FF, 2), (0x0120, 1), (0x011F, 2), (0xFFFF, 1)):
        expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_input(address, count))
    for address, count in ((0x0002, 1), (0x0000, 3), (0x0040, 1), (0x000F, 2),
                           (0x0010 + caps.setpoint_length, 1), (0x0120, 1)):
        expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.read_holding(address, count))
    assert client.read_input(0x0000, 48) and client.read_input(0x0040, 48)
    assert client.read_input(0x0100, 32) and client.read_holding(0x0100, 32)


def test_quantity_limits(link):
    _, client, _ = link

    def raw(pdu: bytes) -> Callable[[], bytes]:
        return lambda: client.transact(pdu)

    bad_quantities = [
        struct.pack(">BHH", 0x03, 0x0100, 0), struct.pack(">BHH", 0x03, 0x0100, 126),
        struct.pack(">BHH", 0x04, 0x0100, 0), struct.pack(">BHH", 0x04, 0x0000, 126),
        struct.pack(">BHH", 0x01, 0, 0), struct.pack(">BHH", 0x01, 0, 2001),
        struct.pack(">BHH", 0x02, 0, 0), struct.pack(">BHH", 0x02, 0, 2001),
        struct.pack(">BHHB", 0x10, 0x0001, 0, 0),
        struct.pack(">BHHB", 0x10, 0x0000, 124, 248) + bytes(246),  # fits no MBAP frame
        struct.pack(">BHHB", 0x0F, 0, 0, 0),
        struct.pack(">BHHB", 0x0F, 0, 1969, 247) + bytes(247),
        struct.pack(">BHHHHB", 0x17, 0x0100, 0, 0x0001, 1, 2) + bytes(2),
        struct.pack(">BHHHHB", 0x17, 0x0100, 126, 0x0001, 1, 2) + bytes(2),
        struct.pack(">BHHHHB", 0x17, 0x0100, 1, 0x0001, 0, 0),
        struct.pack(">BHHHHB", 0x17, 0x0100, 1, 0x0001, 122, 0),
    ]
    for pdu in bad_quantities:  # a quantity of 0 or above the Modbus limit is 03 (§2)
        expect_exception(ILLEGAL_DATA_VALUE, raw(pdu))
    assert client.read_holding(0x0000, 2) == [10000, 0]
    # the limits themselves are accepted where the block allows them
    assert len(client.read_discrete(0, 19)) == 19 and len(client.read_coils(0, 3)) == 3


def test_exception_precedence(link):
    """01; then 03 for length, byte count or quantity; then 02; then 03 for values (§2)."""
    _, client, caps = link

    def raw(pdu: bytes) -> Callable[[], bytes]:
        return lambda: client.transact(pdu)

    # 01 before everything: unknown functions with malformed bodies
    for pdu in (bytes([0x07, 1, 2, 3]), bytes([0x2B]), bytes([0x18, 0xFF, 0xFF, 0, 0, 0, 0])):
        expect_exception(ILLEGAL_FUNCTION, raw(pdu))
    # 03 (length, byte count, quantity) before 02 (address)
    for pdu in (
        struct.pack(">BHH", 0x03, 0x0030, 0),          # quantity 0 in a gap
        struct.pack(">BHH", 0x04, 0xFFFF, 126),        # too many, outside every block
        struct.pack(">BHH", 0x01, 0x0100, 0),          # no coil there either
        struct.pack(">BHH", 0x02, 0x0100, 2001),
        struct.pack(">BHH", 0x03, 0x0120, 1) + b"\0",  # a length that does not fit code 03
        struct.pack(">BH", 0x04, 0x0120),
        struct.pack(">BHH", 0x05, 0x0003, 0xFF00) + b"\0",
        struct.pack(">BHH", 0x06, 0x0100, 1)[:4],
        struct.pack(">BHHB", 0x0F, 0x0010, 1, 2) + b"\1\0",  # byte count does not match
        struct.pack(">BHHB", 0x0F, 0x0010, 0, 0),
        struct.pack(">BHHBH", 0x10, 0x0100, 1, 3, 7),        # byte count does not match
        struct.pack(">BHHBH", 0x10, 0x0002, 1, 2, 7) + b"\0",  # length does not match
        struct.pack(">BHHB", 0x10, 0x0100, 0, 0),
        struct.pack(">BHHHHBH", 0x17, 0x0120, 1, 0x0100, 1, 1, 7),
        struct.pack(">BHHHHB", 0x17, 0x0120, 1, 0x0001, 0, 0),
        struct.pack(">BHHHHBH", 0x17, 0x0120, 0, 0x0001, 1, 2, 7),
    ):
        expect_exception(ILLEGAL_DATA_VALUE, raw(pdu))
    # 02 (address) before 03 (values)
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_coil_raw(3, 0x1234))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_register(0x0002, 0xFFFF))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_register(0x0010, 0xFFFF))
    expect_exception(ILLEGAL_DATA_ADDRESS, lambda: client.write_registers(0x0000, [0, 1, 0]))
    expect_exception(ILLEGAL_DATA_ADDRESS,
                     lambda: client.write_registers(0x0012, [0xFFFF] * (caps.setpoint_length - 2)))
    expect_exception(ILLEGAL_DATA_ADDRESS,
                     lambda: client.write_registers(0x0010, [0xFFFF] * (caps.setpoint_length + 1)))
    # and 03 for the values once the addresses are right
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_register(0x0000, 0))
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coil_raw(2, 0x1234))
    expect_exception(ILLEGAL_DATA_VALUE,
                     lambda: client.write_registers(0x0010, [0xFFFF] * caps.setpoint_length))
    assert client.read_holding(0x0000, 2) == [10000, 0], "refused requests change nothing"
    assert setpoints_of(client, caps) == default_setpoints(caps)
    assert client.read_coils(0, 3) == [0, 0, 0]


# --- Physics and counters -----------------------------------------------------------------------

def test_pen_stroke_rate_slews_and_counters_grow(start_device):
    device = start_device("pen")
    client = device.client()
    _, caps = connect(client)
    rate = caps.parameters[1]
    slew = caps.stroke_rate_slew  # 0.01 Hz/s
    depth = caps.parameters[0].default
    client.write_registers(0x0010, setpoint_words([depth, rate.maximum,
                                                   caps.parameters[2].default]))
    idle = tagged_poll(device, client)
    assert idle["stroke_rate"] == 0 and idle["motor_current"] == 0
    assert idle["needle_depth"] == depth
    assert -4000 <= idle["motor_temperature"] <= 6000
    assert idle["cartridge_needle_count"] > 0 and idle["cartridge_needle_length"] > 0
    assert idle["cartridge_strokes_rated"] > idle["cartridge_strokes_used"]

    before = tagged_poll(device, client)["uptime_ms"]
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    history = [tagged_poll(device, client)]
    assert history[0]["stroke_rate"] < rate.maximum, "starts from 0"
    while history[-1]["stroke_rate"] < rate.maximum * 0.995:
        history.append(tagged_poll(device, client))
        elapsed_s = (history[-1]["uptime_ms"] - before) / 1000
        assert history[-1]["stroke_rate"] <= slew * elapsed_s * 1.01 + 50, "slews, no jump"
        assert elapsed_s < 3, "reaches its setpoint"
        time.sleep(0.02)
    time.sleep(0.3)
    steady_start = tagged_poll(device, client)
    time.sleep(0.5)
    steady_end = tagged_poll(device, client)
    strokes = steady_end["strokes_total"] - steady_start["strokes_total"]
    seconds = (steady_end["uptime_ms"] - steady_start["uptime_ms"]) / 1000
    assert strokes == pytest.approx(rate.maximum / 100 * seconds, rel=0.05, abs=3)
    assert steady_end["cartridge_strokes_used"] - steady_start["cartridge_strokes_used"] \
        == pytest.approx(strokes, abs=2)
    assert steady_end["motor_current"] > 0
    history += [steady_start, steady_end]
    for earlier, later in zip(history, history[1:]):
        for field in ("uptime_ms", "strokes_total", "cartridge_strokes_used"):
            assert later[field] >= earlier[field], field

    # a new setpoint while on: slews from the rate it has
    client.write_registers(0x0010, setpoint_words([depth, rate.minimum,
                                                   caps.parameters[2].default]))
    falling = tagged_poll(device, client)
    assert falling["stroke_rate"] > rate.minimum
    wait_for(lambda: tagged_poll(device, client)["stroke_rate"] <= rate.minimum * 1.005,
             what="slew down")

    client.write_coil(COIL_OUTPUT_ENABLE, 0)
    stopped = tagged_poll(device, client)
    assert stopped["stroke_rate"] == 0 and stopped["motor_current"] == 0
    time.sleep(0.2)
    assert tagged_poll(device, client)["strokes_total"] == stopped["strokes_total"]
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    assert tagged_poll(device, client)["stroke_rate"] < rate.minimum, "restarts from 0"


def charge_rate_nc_per_ms(device: DeviceProcess, client: Client, seconds: float = 0.4) -> float:
    start = tagged_poll(device, client)
    time.sleep(seconds)
    end = tagged_poll(device, client)
    return ((end["charge_delivered"] - start["charge_delivered"])
            / (end["uptime_ms"] - start["uptime_ms"]))


def test_stimulator_ramp_and_charge(start_device):
    device = start_device("stimulator")
    client = device.client()
    _, caps = connect(client)
    current = 50_000  # 500 uA
    ramp_ms = 1000
    session = caps.parameters[3].default
    frequency = caps.parameters[1].default
    waveform = 2 if caps.supported_waveforms & 4 else caps.default_waveform
    client.write_registers(0x0010, setpoint_words([current, frequency, ramp_ms, session],
                                                  (waveform, caps.default_polarity)))
    idle = tagged_poll(device, client)
    assert idle["current_setpoint"] == idle["current_measured"] == idle["output_voltage"] == 0
    assert idle["electrode_contact"] == 1
    assert 1000 <= idle["electrode_impedance"] <= 100_000

    before = tagged_poll(device, client)["uptime_ms"]
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    after = tagged_poll(device, client)["uptime_ms"]
    history = []
    while True:
        snapshot = tagged_poll(device, client)
        history.append(snapshot)
        low = current * min(1, max(0, snapshot["uptime_ms"] - after - 1) / ramp_ms)
        high = current * min(1, (snapshot["uptime_ms"] - before + 1) / ramp_ms)
        assert low - 1 <= snapshot["current_setpoint"] <= high + 1, "amplitude on the ramp"
        if snapshot["current_setpoint"] == current:
            break
        assert snapshot["uptime_ms"] - before < 3000
        time.sleep(0.05)
    assert len(history) > 3, "the amplitude ramps rather than jumps"

    snapshot = tagged_poll(device, client)
    assert abs(snapshot["current_measured"]) == pytest.approx(current, rel=0.02), "biphasic: ±A"
    expected_mv = abs(snapshot["current_measured"]) / 100 * snapshot["electrode_impedance"] / 1000
    assert snapshot["output_voltage"] == pytest.approx(expected_mv, rel=0.02), "a magnitude"
    assert snapshot["output_voltage"] <= caps.compliance_voltage_mv
    expected_rate = current / 100 * MEAN_ABS[waveform]  # uA -> nC per ms
    assert charge_rate_nc_per_ms(device, client) == pytest.approx(expected_rate, rel=0.03)

    for other in supported_numbers(caps.supported_waveforms):
        client.write_registers(0x0010, setpoint_words([current, frequency, ramp_ms, session],
                                                      (other, caps.default_polarity)))
        assert tagged_poll(device, client)["current_setpoint"] == current, "ramp continues"
        assert charge_rate_nc_per_ms(device, client) == pytest.approx(
            current / 100 * MEAN_ABS[other], rel=0.03), f"waveform {other}"

    client.write_coil(COIL_OUTPUT_ENABLE, 0)
    stopped = tagged_poll(device, client)
    assert stopped["current_setpoint"] == stopped["current_measured"] == 0
    assert stopped["output_voltage"] == 0
    time.sleep(0.2)
    assert tagged_poll(device, client)["charge_delivered"] == stopped["charge_delivered"]
    history.append(stopped)
    for earlier, later in zip(history, history[1:]):
        assert later["charge_delivered"] >= earlier["charge_delivered"]
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    assert tagged_poll(device, client)["current_setpoint"] < current / 2, "ramp restarts"


def test_stimulator_compliance_voltage_limits_the_current(start_device):
    device = start_device("stimulator", "--skin-impedance-ohm", "20000")
    client = device.client()
    _, caps = connect(client)
    current = caps.parameters[0].maximum
    waveform = 2 if caps.supported_waveforms & 4 else caps.default_waveform
    assert caps.parameters[2].minimum == 0, "this test needs a ramp of 0"
    client.write_registers(0x0010, setpoint_words(
        [current, caps.parameters[1].default, 0, caps.parameters[3].default],
        (waveform, caps.default_polarity)))
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    snapshot = tagged_poll(device, client)
    assert snapshot["current_setpoint"] == current, "ramp 0: at once"
    limit = caps.compliance_voltage_mv / snapshot["electrode_impedance"] * 100_000
    assert abs(snapshot["current_measured"]) == pytest.approx(limit, rel=0.03)
    assert abs(snapshot["current_measured"]) < current
    assert caps.compliance_voltage_mv * 0.97 <= snapshot["output_voltage"] \
        <= caps.compliance_voltage_mv
    # the charge actually delivered (∫|i|dt) is the limited current's, not the programme's
    assert charge_rate_nc_per_ms(device, client) == pytest.approx(
        limit / 100 * MEAN_ABS[waveform], rel=0.05)


def grid_value(parameter: Parameter, target: int) -> int:
    """The valid value of a parameter nearest to target."""
    steps = round((min(max(target, parameter.minimum), parameter.maximum) - parameter.minimum)
                  / parameter.resolution)
    return min(parameter.minimum + steps * parameter.resolution, parameter.maximum)


def collect_currents(device: DeviceProcess, client: Client, done: Callable[[list[int]], bool],
                     timeout: float = 3.0) -> list[int]:
    """Polls current_measured (and checks its raw two's complement words) until done."""
    readings: list[int] = []
    deadline = time.monotonic() + timeout
    while not done(readings):
        assert time.monotonic() < deadline, f"readings so far: {readings}"
        device.tag = (device.tag + 1) & 0xFFFF
        words = client.read_write(0x0100, 32, 0x0001, [device.tag])
        value = s32(words, 0xA)
        assert (words[0xA] & 0x8000 != 0) == (value < 0), "s32, two's complement"
        snapshot = parse_snapshot("stimulator", words)
        assert snapshot["output_voltage"] == pytest.approx(
            abs(value) / 100 * snapshot["electrode_impedance"] / 1000, rel=0.02, abs=2)
        readings.append(value)
        time.sleep(0.013)  # not a divisor of the ~50 ms half period: polls walk its phase
    return readings


def test_stimulator_current_is_signed_by_direction(start_device):
    device = start_device("stimulator")
    client = device.client()
    _, caps = connect(client)
    current = grid_value(caps.parameters[0], 50_000)  # 500 uA
    frequency = grid_value(caps.parameters[1], 1_000)  # 10 Hz: a 50 ms half period
    assert 500 <= frequency <= 2_500, "this test needs a frequency of about 10 Hz"
    ramp = caps.parameters[2].minimum
    session = caps.parameters[3].default
    polarities = supported_numbers(caps.supported_polarities)

    def run(waveform: int, polarity: int) -> None:
        client.write_registers(0x0010, setpoint_words([current, frequency, ramp, session],
                                                      (waveform, polarity)))
        client.write_coil(COIL_OUTPUT_ENABLE, 1)
        wait_for(lambda: tagged_poll(device, client)["current_setpoint"] == current,
                 what="the end of the ramp")

    def near(value: int, target: float) -> bool:
        return abs(value - target) <= 0.02 * abs(target) + 2

    if caps.supported_waveforms & (1 << 2):  # biphasic square: +A in one phase, -A in the other
        run(2, polarities[0])
        readings = collect_currents(device, client, lambda r: any(v > 0 for v in r)
                                    and any(v < 0 for v in r) and len(r) >= 6)
        assert all(near(abs(v), current) for v in readings), readings
        client.write_coil(COIL_OUTPUT_ENABLE, 0)
        assert tagged_poll(device, client)["current_measured"] == 0, "0 while off"
    if caps.supported_waveforms & (1 << 1):  # monophasic square: pulses of one sign only
        for polarity in polarities:
            sign = 1 if polarity == 1 else -1
            run(1, polarity)
            readings = collect_currents(device, client, lambda r: any(v == 0 for v in r)
                                        and any(v != 0 for v in r))
            assert all(v == 0 or near(v, sign * current) for v in readings), readings
            client.write_coil(COIL_OUTPUT_ENABLE, 0)
    if caps.supported_waveforms & (1 << 4):  # sine: both signs, never above the amplitude
        run(4, polarities[0])
        readings = collect_currents(device, client, lambda r: any(v > current / 4 for v in r)
                                    and any(v < -current / 4 for v in r))
        assert all(abs(v) <= current * 1.01 for v in readings), readings
        client.write_coil(COIL_OUTPUT_ENABLE, 0)


def test_stimulator_without_electrode_contact(start_device):
    device = start_device("stimulator", "--no-electrode-contact")
    client = device.client()
    connect(client)
    snapshot = tagged_poll(device, client)
    assert snapshot["electrode_contact"] == 0
    assert snapshot["electrode_impedance"] >= 1_000_000, "a large value without contact"
    # this device's choice: no contact is the live condition 'electrode contact lost'
    assert snapshot["fault_conditions"] == 1 << 1
    assert client.read_discrete(0, 8) == [0, 1, 0, 0, 0, 0, 0, 0]
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coil(COIL_OUTPUT_ENABLE, 1))
    client.write_coil(COIL_FAULT_CLEAR, 1)  # fault conditions are live: not cleared by it
    assert tagged_poll(device, client)["fault_conditions"] == 1 << 1
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coil(COIL_OUTPUT_ENABLE, 1))
    snapshot = tagged_poll(device, client)
    assert snapshot["status"] == 0
    assert snapshot["current_measured"] == snapshot["output_voltage"] == 0
    assert snapshot["charge_delivered"] == 0


def test_pen_cartridge_used_up_refuses_output(start_device):
    device = start_device("pen", "--cartridge-strokes-rated", "60")
    client = device.client()
    _, caps = connect(client)
    client.write_registers(0x0010, setpoint_words(
        [caps.parameters[0].default, caps.parameters[1].maximum, caps.parameters[2].default]))
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    snapshot = wait_for(lambda: (lambda s: s if s["cartridge_strokes_used"] >= 60 else None)(
        tagged_poll(device, client)), what="cartridge used up")
    assert snapshot["cartridge_strokes_rated"] == 60
    # used up while on: a pen may keep running or switch off; this one keeps running, and
    # writing 1 while on is accepted and changes nothing (the refusal applies to switching on)
    assert snapshot["status"] == STATUS_OUTPUT_ON
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    assert status_bits(device, client) == STATUS_OUTPUT_ON
    client.write_coil(COIL_OUTPUT_ENABLE, 0)
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coil(COIL_OUTPUT_ENABLE, 1))
    assert status_bits(device, client) == 0


# --- Out-of-band controls ---------------------------------------------------------------------

def test_fault_toggle_by_sigusr1(link, kind):
    device, client, _ = link
    fault = SIGNAL_FAULT[kind]
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    device.signal(signal.SIGUSR1)
    snapshot = wait_for(lambda: (lambda s: s if s["fault_conditions"] else None)(
        tagged_poll(device, client)), what="fault condition")
    assert snapshot["fault_conditions"] == 1 << fault
    assert snapshot["status"] & STATUS_OUTPUT_ON == 0, "this device switches off on a fault"
    discrete = client.read_discrete(0, 19)
    assert [i for i, bit in enumerate(discrete) if bit] == [fault]
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coil(COIL_OUTPUT_ENABLE, 1))
    client.write_coil(COIL_FAULT_CLEAR, 1)
    expect_exception(ILLEGAL_DATA_VALUE, lambda: client.write_coil(COIL_OUTPUT_ENABLE, 1))
    device.signal(signal.SIGUSR1)
    wait_for(lambda: tagged_poll(device, client)["fault_conditions"] == 0, what="fault gone")
    assert client.read_discrete(0, 19) == [0] * 19
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    assert status_bits(device, client) == STATUS_OUTPUT_ON


def test_stop_button_by_sigusr2(link):
    device, client, _ = link
    client.write_coil(COIL_OUTPUT_ENABLE, 1)
    device.signal(signal.SIGUSR2)
    wait_for(lambda: status_bits(device, client) == STATUS_ESTOP, what="stop button")
    assert client.read_coils(COIL_EMERGENCY_STOP, 1) == [1]
    client.write_coil(COIL_EMERGENCY_STOP, 0)
    assert status_bits(device, client) == 0


# --- Process behaviour --------------------------------------------------------------------------

@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_exits_zero_on_signal(start_device, signal_number):
    device = start_device("pen")
    device.client().read_input(0, 1)
    started = time.monotonic()
    device.signal(signal_number)
    assert device.process.wait(3) == 0
    assert time.monotonic() - started < 2


def test_exits_when_stdin_pipe_closes(start_device):
    device = start_device("stimulator")
    device.process.stdin.close()
    assert device.process.wait(3) == 0


def test_keeps_running_with_stdin_not_a_pipe(start_device):
    device = start_device("stimulator", stdin=subprocess.DEVNULL)
    time.sleep(0.3)
    assert device.process.poll() is None
    assert device.client().read_input(0, 2) == [1, 2]


def test_replies_within_max_reply_latency(link):
    device, client, _ = link
    latency_ms = client.read_input(0x002A, 1)[0]
    times = []
    for _ in range(21):
        started = time.monotonic()
        tagged_poll(device, client)
        times.append((time.monotonic() - started) * 1000)
    assert sorted(times)[len(times) // 2] < latency_ms, times  # the median, to spare CI hiccups


def test_configured_unit_id(start_device):
    device = start_device("pen", "--unit", "7")
    client = device.client(unit=7)
    assert client.read_input(0x0000, 2) == [1, 1]
    other = device.client(unit=1, timeout=0.3)
    with pytest.raises(socket.timeout):
        other.read_input(0x0000, 2)
    assert client.read_input(0x0001, 1) == [1], "connection stays usable"
