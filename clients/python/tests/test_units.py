"""The wrapper's conversions and bookkeeping, without a server: settings and steps, error
mapping from the status trailer, and gap detection on a scripted telemetry stream."""
from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from derma.rpc_protos import error_details_pb2, status_pb2

from derma import errors
from derma.devices import device_name, settings_dict, settings_proto
from derma.runs import step_proto
from derma.telemetry import Event, Gap, Sample, Snapshot, Synced, TelemetryStream
from derma.v1 import device_control_pb2 as pb
from derma.v1 import device_pb2, errors_pb2, telemetry_pb2


def test_pen_keywords_map_onto_the_microneedling_oneof() -> None:
    settings = settings_proto("MICRONEEDLING", {"needle_depth_mm": 1, "stroke_rate_hz": 120})
    assert settings.WhichOneof("kind") == "microneedling"
    assert settings.microneedling.needle_depth_mm == 1.0
    assert not settings.microneedling.HasField("session_limit_s")  # unset keeps its value


def test_stimulator_enums_accept_short_names_and_come_back_short() -> None:
    settings = settings_proto("MICROCURRENT", {"current_ua": 200, "waveform": "sine",
                                               "polarity": "POLARITY_NEGATIVE"})
    assert settings.microcurrent.waveform == device_pb2.WAVEFORM_SINE
    assert settings_dict(settings) == {"current_ua": 200.0, "waveform": "SINE",
                                       "polarity": "NEGATIVE"}


def test_a_setting_of_the_other_kind_is_a_type_error_naming_the_accepted_ones() -> None:
    with pytest.raises(TypeError, match="current_ua not a microneedling setting.*needle_depth_mm"):
        settings_proto("MICRONEEDLING", {"current_ua": 100})


def test_step_dicts_carry_their_duration() -> None:
    step = step_proto("MICRONEEDLING", {"needle_depth_mm": 1.0, "duration_s": 5})
    assert step.duration_s == 5.0 and step.settings.microneedling.needle_depth_mm == 1.0
    with pytest.raises(TypeError, match="duration_s"):
        step_proto("MICRONEEDLING", {"needle_depth_mm": 1.0})


def test_short_device_ids_get_the_collection_prefix() -> None:
    assert device_name("pen-1") == device_name("devices/pen-1") == "devices/pen-1"


def test_every_error_reason_has_its_own_exception_class() -> None:
    reasons = {name.removeprefix("ERROR_REASON_") for name in errors_pb2.ErrorReason.keys()}
    reasons.discard("UNSPECIFIED")
    assert set(errors.BY_REASON) == reasons
    assert all(cls is not errors.DermaError for cls in errors.BY_REASON.values())
    assert issubclass(errors.LeaseExpired, errors.LeaseLost)
    assert issubclass(errors.LeaseMismatch, errors.LeaseLost)


class FakeRpcError(grpc.RpcError, grpc.Call):
    """What a failed call raises: a status code, details and trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers=()) -> None:
        self._code, self._details, self._trailers = code, details, tuple(trailers)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers

    def initial_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


def status_trailer(reason: str, metadata: dict[str, str],
                   violations: list[tuple[str, str]] = ()) -> tuple[str, bytes]:
    status = status_pb2.Status(code=9, message="m")
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="derma", metadata=metadata))
    status.details.append(info)
    if violations:
        bad = any_pb2.Any()
        bad.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
            for f, d in violations]))
        status.details.append(bad)
    return ("grpc-status-details-bin", status.SerializeToString())


def test_the_reason_in_the_status_trailer_picks_the_class_and_fills_it() -> None:
    error = errors.from_rpc_error(FakeRpcError(
        grpc.StatusCode.FAILED_PRECONDITION, "Pause needs RUNNING",
        [status_trailer("ILLEGAL_TRANSITION", {"device": "devices/pen-1",
                                               "current_state": "IDLE",
                                               "required_states": "RUNNING,PAUSED"})]))
    assert type(error) is errors.IllegalTransition
    assert (error.device, error.current_state, error.required_states) == (
        "devices/pen-1", "IDLE", ["RUNNING", "PAUSED"])
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert str(error) == "ILLEGAL_TRANSITION: Pause needs RUNNING"


def test_bad_request_violations_become_field_description_pairs() -> None:
    error = errors.from_rpc_error(FakeRpcError(
        grpc.StatusCode.INVALID_ARGUMENT, "bad", [status_trailer(
            "SETTING_OUT_OF_RANGE", {}, [("a", "too big"), ("b", "too small")])]))
    assert isinstance(error, errors.SettingOutOfRange)
    assert error.violations == [("a", "too big"), ("b", "too small")]


def test_unavailable_without_a_reason_is_a_connection_error() -> None:
    error = errors.from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    assert isinstance(error, errors.ConnectionError) and isinstance(error, ConnectionError)
    assert error.reason == ""


def test_an_unknown_reason_is_a_plain_derma_error() -> None:
    error = errors.from_rpc_error(FakeRpcError(
        grpc.StatusCode.INTERNAL, "new", [status_trailer("SOMETHING_NEW", {})]))
    assert type(error) is errors.DermaError and error.reason == "SOMETHING_NEW"


class ScriptedCall:
    """A finished StreamTelemetry call that yields the given messages."""

    def __init__(self, messages: list[pb.StreamTelemetryResponse]) -> None:
        self.messages = messages

    def __iter__(self):
        return iter(self.messages)

    def cancel(self) -> bool:
        return True


def snapshot(name: str, sample_sequence: int, event_sequence: int) -> pb.StreamTelemetryResponse:
    device = device_pb2.Device(name=name, latest_sample=telemetry_pb2.TelemetrySample(
        sequence=sample_sequence))
    return pb.StreamTelemetryResponse(snapshot=pb.DeviceSnapshot(
        device=device, last_event_sequence=event_sequence))


def batch(name: str, sequences: list[int], dropped: int = 0) -> pb.StreamTelemetryResponse:
    samples = [telemetry_pb2.TelemetrySample(sequence=s) for s in sequences]
    return pb.StreamTelemetryResponse(batch=pb.SampleBatch(devices=[pb.DeviceSamples(
        device=name, samples=samples, dropped_samples=dropped)]))


def event(name: str, sequence: int) -> pb.StreamTelemetryResponse:
    return pb.StreamTelemetryResponse(event=pb.DeviceEvent(
        device=name, sequence=sequence, type=pb.DEVICE_EVENT_TYPE_SETTINGS_APPLIED))


def test_the_stream_reports_dropped_and_missing_samples_and_missing_events() -> None:
    d = "devices/pen-1"
    stream = TelemetryStream(ScriptedCall([
        snapshot(d, 10, 3), pb.StreamTelemetryResponse(sync=pb.SyncMarker(device_count=1)),
        batch(d, [11, 12]),
        batch(d, [16, 17], dropped=3),   # 13–15 dropped by the server: explained
        batch(d, [20]),                  # 18–19 missing without explanation
        event(d, 4), event(d, 6),        # event 5 missing
    ]), interval_s=0)
    items = list(stream)
    assert isinstance(items[0], Snapshot) and isinstance(items[1], Synced)
    gaps = [i for i in items if isinstance(i, Gap)]
    assert gaps == [Gap(d, "samples", 12, 3, True), Gap(d, "samples", 17, 2, False),
                    Gap(d, "events", 4, 1, False)]
    assert [i.sequence for i in items if isinstance(i, Sample)] == [11, 12, 16, 17, 20]
    assert [i.sequence for i in items if isinstance(i, Event)] == [4, 6]
    assert (stream.dropped_samples, stream.missing_samples, stream.missing_events) == (3, 2, 1)


def test_a_decimated_stream_expects_sample_sequence_jumps() -> None:
    d = "devices/pen-1"
    items = list(TelemetryStream(ScriptedCall([snapshot(d, 1, 0), batch(d, [11, 21, 31])]),
                                 interval_s=0.1))
    assert not [i for i in items if isinstance(i, Gap)]
