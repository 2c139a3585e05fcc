"""What a client sees when its request's bytes are not a valid request message: INVALID_ARGUMENT
with reason MALFORMED_REQUEST naming the method (gRPC's own answer would be UNIMPLEMENTED with an
empty message), counted in the gRPC metrics; a flood of them leaves dermad's log a few lines and
the service answering."""
import os
import time
import urllib.request

import grpc
import pytest

from conftest import Dermad, free_port
from derma.v1 import device_control_pb2 as pb
from derma.v1 import device_control_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2, status_pb2

FLEET = os.path.join(os.environ["DERMA_REPO"], "deploy", "fleet.textproto")
GET_DEVICE = "/derma.v1.DeviceControl/GetDevice"
STREAM = "/derma.v1.DeviceControl/StreamTelemetry"
# GetDeviceRequest{name = "\xff\xfe"}: field 1, length 2, bytes that are not UTF-8.
NOT_UTF8 = b"\x0a\x02\xff\xfe"
# A length that runs past the end of the message.
TRUNCATED = b"\x0a\x10devices/pen-1"


@pytest.fixture
def server():
    port = free_port()
    dermad = Dermad(FLEET, f"--metrics_listen=127.0.0.1:{port}", "--log_level=info")
    dermad.metrics_port = port
    yield dermad
    dermad.close()


def reason_and_metadata(error):
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason, dict(info.metadata)
    return None, {}


def raw_unary(channel, method):
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


def handled(metrics_port, method, code):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    wanted = f'derma_grpc_server_handled_total{{code="{code}",method="{method}"}}'
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("body", [NOT_UTF8, TRUNCATED], ids=["not-utf8", "truncated"])
def test_an_unparseable_unary_request_is_invalid_argument_naming_the_method(server, body):
    with pytest.raises(grpc.RpcError) as refused:
        raw_unary(server.channel, GET_DEVICE)(body, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "could not be parsed" in refused.value.details()
    assert GET_DEVICE in refused.value.details()
    reason, metadata = reason_and_metadata(refused.value)
    assert reason == "MALFORMED_REQUEST"
    assert metadata == {"method": GET_DEVICE}
    assert handled(server.metrics_port, GET_DEVICE, "INVALID_ARGUMENT") >= 1
    assert handled(server.metrics_port, GET_DEVICE, "UNIMPLEMENTED") == 0
    # The service keeps answering.
    device = pb_grpc.DeviceControlStub(server.channel).GetDevice(
        pb.GetDeviceRequest(name="devices/pen-1"), timeout=10)
    assert device.device.name == "devices/pen-1"


def test_an_unparseable_stream_request_is_invalid_argument(server):
    call = server.channel.unary_stream(STREAM, request_serializer=None,
                                       response_deserializer=None)
    with pytest.raises(grpc.RpcError) as refused:
        list(call(b"\x0a\x02\xff\xfe", timeout=10))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_and_metadata(refused.value)[0] == "MALFORMED_REQUEST"


def test_an_unknown_method_stays_unimplemented(server):
    with pytest.raises(grpc.RpcError) as refused:
        raw_unary(server.channel, "/derma.v1.DeviceControl/NoSuchMethod")(b"", timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_flood_of_non_utf8_requests_leaves_the_log_a_few_lines(server):
    call = raw_unary(server.channel, GET_DEVICE)
    start = time.monotonic()
    sent = 0
    while sent < 2000:
        futures = [call.future(NOT_UTF8, timeout=10) for _ in range(100)]
        for future in futures:
            assert future.code() == grpc.StatusCode.INVALID_ARGUMENT
        sent += len(futures)
    seconds = time.monotonic() - start
    code, _ = server.terminate(timeout_s=10)
    assert code == 0
    log = server.process.stderr.read()
    protobuf_lines = [line for line in log.splitlines() if "protobuf" in line]
    # At most one line per second of flood (and one more for the second it began in).
    assert len(protobuf_lines) <= seconds + 2, log[:2000]
