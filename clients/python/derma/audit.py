"""The audit trail as the client sees it: AuditRecord, one record of who did what, when."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Optional

from derma.devices import enum_name, to_datetime
from derma.v1 import audit_pb2


@dataclass(frozen=True)
class AuditRecord:
    """One record: a call a client sent (kind "COMMAND", with its principal, method, request
    summary and result: leases, emergency stops and runs included), a refused call
    ("AUTH_FAILURE"), or an event a device raised on its own ("STATE_CHANGE", "FAULT", "LEASE"
    for a lease expiry, "ESTOP" for entering or leaving ESTOPPED, "RUN"; no method)."""
    id: int
    time: Optional[datetime.datetime]  # server time (the server's wall clock), not device time
    kind: str         # "COMMAND", "STATE_CHANGE", "FAULT", "LEASE", "ESTOP", "RUN", "AUTH_FAILURE"
    principal: str    # "" for events the device raised on its own, or unauthenticated callers
    device: str       # "devices/{id}", or "" (e.g. EmergencyStop on every device)
    method: str       # e.g. "/derma.v1.DeviceControl/Configure"; "" for device events
    summary: str      # the request (without lease ids), or the device event type
    code: int         # gRPC status code number, 0 = OK
    reason: str       # ErrorReason name, "" when OK
    detail: str       # the error message, the transition, the fault, the run's end

    @classmethod
    def from_proto(cls, event: audit_pb2.AuditEvent) -> "AuditRecord":
        return cls(id=event.id, time=to_datetime(event.time),
                   kind=enum_name(audit_pb2.AuditEventKind, event.kind, "AUDIT_EVENT_KIND_"),
                   principal=event.principal, device=event.device, method=event.method,
                   summary=event.summary, code=event.code, reason=event.reason,
                   detail=event.detail)
