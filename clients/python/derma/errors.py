"""Typed exceptions for derma's errors.

Every error the service returns carries a google.rpc.Status in the `grpc-status-details-bin`
trailer, holding an ErrorInfo (domain "derma", `reason` from derma.v1.ErrorReason, metadata
such as `device`, `current_state`, `required_states`) and, for bad fields, a BadRequest that
lists every violation. `from_rpc_error` turns a grpc.RpcError into the DermaError subclass for
its reason; the wrapper raises nothing else for failed calls.
"""
from __future__ import annotations

import builtins
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import grpc
from derma.rpc_protos import error_details_pb2, status_pb2

DOMAIN = "derma"
_DETAILS_KEY = "grpc-status-details-bin"


class DermaError(Exception):
    """A failed derma call.

    Attributes:
        reason: ErrorInfo.reason, e.g. "SETTING_OUT_OF_RANGE" ("" when the server sent none).
        message: the server's (or gRPC's) human-readable message.
        metadata: ErrorInfo.metadata, e.g. {"device": "devices/pen-1"}.
        violations: BadRequest field violations as (field, description) pairs.
        code: the gRPC status code (None for errors made by the client itself).
    """

    reason_name: ClassVar[str] = ""

    def __init__(self, reason: str, message: str, metadata: Mapping[str, str] | None = None,
                 violations: Sequence[tuple[str, str]] = (),
                 code: grpc.StatusCode | None = None) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations: list[tuple[str, str]] = list(violations)
        self.code = code
        self.rpc_error: grpc.RpcError | None = None  # the failed call, when there was one

    @property
    def device(self) -> str | None:
        """The device the error is about ("devices/{id}"), when the server named one."""
        return self.metadata.get("device")

    def __str__(self) -> str:
        text = f"{self.reason}: {self.message}" if self.reason else self.message
        for field, description in self.violations:
            text += f"\n  {field}: {description}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {self.message!r})"


# --- INVALID_ARGUMENT ---------------------------------------------------------------------

class InvalidField(DermaError):
    """A request field is malformed or missing; `violations` names each one."""
    reason_name = "INVALID_FIELD"


class SettingOutOfRange(DermaError):
    """Settings outside the device's capability range (rejected, never clipped).

    `violations` lists every bad field with the allowed range and unit, e.g.
    ("settings.microneedling.needle_depth_mm", "7 mm is outside 0–2.5 mm").
    """
    reason_name = "SETTING_OUT_OF_RANGE"


class SettingNotSupported(DermaError):
    """Settings of another device kind, or an enumeration value the model lacks."""
    reason_name = "SETTING_NOT_SUPPORTED"


class RequestIdReused(DermaError):
    """A request_id was reused with a different request."""
    reason_name = "REQUEST_ID_REUSED"


class FaultNotApplicable(DermaError):
    """Simulator: the fault kind does not apply to this device kind."""
    reason_name = "FAULT_NOT_APPLICABLE"


class ScenarioInvalid(DermaError):
    """Simulator: the scenario cannot be parsed or names an unknown device."""
    reason_name = "SCENARIO_INVALID"


# --- FAILED_PRECONDITION: interlocks and state --------------------------------------------

class InterlockError(DermaError):
    """A cross-parameter interlock refused the settings (base of the two below)."""


class DepthExceedsNeedle(InterlockError):
    """Needle depth exceeds the installed cartridge's needle length."""
    reason_name = "INTERLOCK_DEPTH_EXCEEDS_NEEDLE"

    @property
    def needle_length_mm(self) -> float | None:
        """The cartridge's needle length in millimetres."""
        return _float(self.metadata.get("needle_length_mm"))


class ComplianceInterlock(InterlockError):
    """Current × measured electrode impedance exceeds the compliance voltage."""
    reason_name = "INTERLOCK_COMPLIANCE"

    @property
    def max_current_ua(self) -> float | None:
        """The highest current in µA the compliance voltage can drive at this impedance."""
        return _float(self.metadata.get("max_current_ua"))

    @property
    def impedance_ohm(self) -> float | None:
        """The measured electrode impedance in ohms."""
        return _float(self.metadata.get("impedance_ohm"))

    @property
    def compliance_voltage_v(self) -> float | None:
        """The stimulator's compliance voltage in volts."""
        return _float(self.metadata.get("compliance_voltage_v"))


class IllegalTransition(DermaError):
    """The command is not legal in the device's current state."""
    reason_name = "ILLEGAL_TRANSITION"

    @property
    def current_state(self) -> str | None:
        """The device's state, e.g. "IDLE"."""
        return self.metadata.get("current_state")

    @property
    def required_states(self) -> list[str]:
        """The states the command is legal in, e.g. ["RUNNING"]."""
        value = self.metadata.get("required_states", "")
        return [s for s in value.split(",") if s]


class LeaseRequired(DermaError):
    """A mutating command was sent without a lease id."""
    reason_name = "LEASE_REQUIRED"


class EstopLatched(IllegalTransition):
    """The device is ESTOPPED; reset_emergency_stop() first."""
    reason_name = "ESTOP_LATCHED"


class FaultLatched(IllegalTransition):
    """The device is in FAULT; reset_fault() first."""
    reason_name = "FAULT_LATCHED"

    @property
    def fault(self) -> str | None:
        return self.metadata.get("fault")


class FaultConditionPresent(DermaError):
    """The fault condition is still present (ResetFault, Start or Resume refused)."""
    reason_name = "FAULT_CONDITION_PRESENT"

    @property
    def fault(self) -> str | None:
        """The fault kind, e.g. "FAULT_KIND_MOTOR_STALL"."""
        return self.metadata.get("fault")


class CartridgeExpired(DermaError):
    """The installed cartridge has used all its rated strokes."""
    reason_name = "CARTRIDGE_EXPIRED"


class NoElectrodeContact(DermaError):
    """Start or Resume on a stimulator without electrode contact."""
    reason_name = "NO_ELECTRODE_CONTACT"


class RunActive(DermaError):
    """A run owns the device (Configure, Start or StartRun refused)."""
    reason_name = "RUN_ACTIVE"

    @property
    def run(self) -> str | None:
        """The active run's name, "devices/{id}/runs/{run}"."""
        return self.metadata.get("run")


class RunEnded(DermaError):
    """CancelRun on a run that already ended."""
    reason_name = "RUN_ENDED"


class VirtualClockRequired(DermaError):
    """Simulator: AdvanceClock needs dermad on the virtual clock."""
    reason_name = "VIRTUAL_CLOCK_REQUIRED"


class NotSimulated(DermaError):
    """Simulator: the device is not backed by the simulator."""
    reason_name = "NOT_SIMULATED"


# --- ABORTED: leases ----------------------------------------------------------------------

class LeaseLost(DermaError):
    """The lease is no longer ours (expired or replaced); the output may have been stopped."""


class LeaseMismatch(LeaseLost):
    """The lease id is not the device's current lease (released, or never granted)."""
    reason_name = "LEASE_MISMATCH"


class LeaseExpired(LeaseLost):
    """The lease expired; if the device was running, the dead-man switch stopped it."""
    reason_name = "LEASE_EXPIRED"


class LeaseHeld(DermaError):
    """Another holder has the device's lease."""
    reason_name = "LEASE_HELD"

    @property
    def holder(self) -> str | None:
        """Who holds the lease."""
        return self.metadata.get("holder")


# --- NOT_FOUND, UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL ---------------------------------

class DeviceNotFound(DermaError):
    """No device has this name."""
    reason_name = "DEVICE_NOT_FOUND"


class RunNotFound(DermaError):
    """No run has this name."""
    reason_name = "RUN_NOT_FOUND"


class DeviceOffline(DermaError):
    """The device's link is down (OFFLINE)."""
    reason_name = "DEVICE_OFFLINE"


class ShuttingDown(DermaError):
    """The service is shutting down; outputs are being stopped."""
    reason_name = "SHUTTING_DOWN"


class AuditUnavailable(DermaError):
    """The server's audit trail cannot be written (or it keeps none, for audit_events). When a
    command's own call raises this with metadata command_carried_out="true", the command WAS
    carried out; only its record is missing."""
    reason_name = "AUDIT_UNAVAILABLE"

    @property
    def command_carried_out(self) -> bool:
        """True when the command took effect although its record could not be written."""
        return self.metadata.get("command_carried_out") == "true"


class StreamLimit(DermaError):
    """Too many concurrent streams on the server, or for this principal (metadata `principal`;
    without a tokens file every caller is the one principal "local"), or a client stopped
    reading for too long."""
    reason_name = "STREAM_LIMIT"

    @property
    def principal(self) -> str | None:
        """The principal whose own limit was reached (None for the server-wide one)."""
        return self.metadata.get("principal")


class DriverError(DermaError):
    """A driver broke its contract (the simulator never does)."""
    reason_name = "DRIVER_ERROR"


# --- UNAUTHENTICATED, PERMISSION_DENIED --------------------------------------------------

class Unauthenticated(DermaError):
    """The call carried no valid credentials (bearer token or client certificate)."""
    reason_name = "UNAUTHENTICATED"


class MalformedRequest(DermaError):
    """The request's bytes did not parse as the method's request message (a client built from
    another version of the proto, or a string that is not UTF-8). Metadata: `method`."""
    reason_name = "MALFORMED_REQUEST"


class PermissionDenied(DermaError):
    """The caller's role (viewer < operator < admin) is below what the method needs."""
    reason_name = "PERMISSION_DENIED"

    @property
    def required_role(self) -> str | None:
        """The least role the method needs."""
        return self.metadata.get("required_role")


# --- errors without an ErrorInfo ----------------------------------------------------------

class ConnectionError(DermaError, builtins.ConnectionError):  # noqa: A001 (is-a builtin one)
    """The server cannot be reached (gRPC UNAVAILABLE without a derma reason)."""


class TlsError(ConnectionError):
    """The TLS handshake failed: the server's certificate is not trusted by tls_ca, does not
    carry the target's name (or tls_server_name), the server wants a client certificate
    (mTLS) and got none or one it does not trust, or one side speaks TLS and the other
    plaintext. `message` says what gRPC reported. `uncertain` is true when the server only
    closed the connection, so the cause is inferred."""

    uncertain = False


class DeadlineExceeded(DermaError, builtins.TimeoutError):
    """The call's deadline passed before the server answered."""


BY_REASON: dict[str, type[DermaError]] = {
    cls.reason_name: cls for cls in (
        InvalidField, SettingOutOfRange, SettingNotSupported, RequestIdReused, FaultNotApplicable,
        ScenarioInvalid, DepthExceedsNeedle, ComplianceInterlock, IllegalTransition,
        LeaseRequired, EstopLatched, FaultLatched, FaultConditionPresent, CartridgeExpired,
        NoElectrodeContact, RunActive, RunEnded, VirtualClockRequired, NotSimulated,
        LeaseMismatch, LeaseExpired, LeaseHeld, DeviceNotFound, RunNotFound, DeviceOffline,
        ShuttingDown, StreamLimit, DriverError, Unauthenticated, PermissionDenied,
        AuditUnavailable, MalformedRequest)
}


def from_rpc_error(error: grpc.RpcError) -> DermaError:
    """The typed exception for a failed gRPC call, with the call as .rpc_error (raise it
    `from None`: the gRPC error repeats the message and would double every traceback)."""
    typed = _typed(error)
    typed.rpc_error = error
    return typed


# What gRPC's TLS layer (OpenSSL 3 or BoringSSL) puts in the status message of a failed
# handshake, and what each means; compared in lower case with "_" read as " ".
_TLS_SYMPTOMS = (
    ("certificate verify failed", "the server's certificate is not signed by a CA in tls_ca "
                                  "(or the system's CAs), or has expired"),
    ("peer name", "the server's certificate does not carry the target's host name (give "
                  "tls_server_name=NAME to check another name)"),
    ("wrong version number", "the server does not speak TLS (a plaintext dermad?)"),
    ("certificate required", "the server requires a client certificate (tls_cert, tls_key)"),
    ("unknown ca", "the server does not trust the client certificate's CA"),
    ("handshake failed", "the TLS handshake failed"),
)


def connection_failure(error: grpc.RpcError, target: str, timeout_s: float, *,
                       tls: bool) -> ConnectionError | None:
    """For a call that never reached the service (UNAVAILABLE or DEADLINE_EXCEEDED without a
    derma reason): a TlsError when the message shows a failed handshake, a TlsError marked
    `uncertain` when the server closed the connection without a word (what a TLS server does
    to plaintext, and an mTLS server to a client without an accepted certificate), else a
    ConnectionError naming target. None for any other error."""
    code = error.code() if isinstance(error, grpc.Call) else None
    message = (error.details() if isinstance(error, grpc.Call) else str(error)) or ""
    trailers = error.trailing_metadata() if isinstance(error, grpc.Call) else None
    info, _ = _details(trailers or ())
    if (info is not None and info.reason) or code not in (grpc.StatusCode.UNAVAILABLE,
                                                          grpc.StatusCode.DEADLINE_EXCEEDED):
        return None
    said = message.lower().replace("_", " ")
    for symptom, meaning in _TLS_SYMPTOMS:
        if symptom in said:
            return TlsError("", f"TLS to {target} failed: {meaning} ({message})",
                            {"target": target}, (), code)
    if "socket closed" in said or "connection reset" in said:
        meaning = ("the server closed the connection during the TLS handshake: it requires a "
                   "client certificate (tls_cert, tls_key) signed by a CA it trusts" if tls else
                   "the server closed the connection: it serves TLS (connect with tls_ca=...)")
        failure = TlsError("", f"{target}: {meaning} ({message})", {"target": target}, (), code)
        failure.uncertain = True
        return failure
    return ConnectionError("", f"cannot reach dermad at {target} within {timeout_s} s "
                               f"({message})", {"target": target}, (), code)


def _typed(error: grpc.RpcError) -> DermaError:
    code = error.code() if isinstance(error, grpc.Call) else None
    message = (error.details() if isinstance(error, grpc.Call) else str(error)) or ""
    trailers = error.trailing_metadata() if isinstance(error, grpc.Call) else None
    info, violations = _details(trailers or ())
    if info is not None and info.reason:
        cls = BY_REASON.get(info.reason, DermaError)
        return cls(info.reason, message, dict(info.metadata), violations, code)
    if code == grpc.StatusCode.UNAVAILABLE:
        return ConnectionError("", message or "server unavailable", {}, violations, code)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded("", message or "deadline exceeded", {}, violations, code)
    return DermaError("", f"{code.name if code else 'ERROR'}: {message}", {}, violations, code)


def _details(trailers: Iterable[tuple[str, Any]]
             ) -> tuple[error_details_pb2.ErrorInfo | None, list[tuple[str, str]]]:
    """ErrorInfo and BadRequest violations from the grpc-status-details-bin trailer."""
    info = None
    violations: list[tuple[str, str]] = []
    for key, value in trailers:
        if key != _DETAILS_KEY:
            continue
        for detail in status_pb2.Status.FromString(value).details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [(v.field, v.description) for v in bad.field_violations]
    return info, violations


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
