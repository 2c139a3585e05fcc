"""Lease: the right to command one device, and the commands that need it.

`with client.lease("devices/pen-1", ttl_s=10) as pen:` acquires the lease, renews it in a
background thread every ttl/3 seconds, and on leaving the block releases it; if the block
raised (including KeyboardInterrupt), the device is stopped first. If the lease was lost while
the block ran (it expired, so the server's dead-man switch stopped a running output), leaving
the block raises LeaseExpired / LeaseMismatch (both LeaseLost) unless another exception is
already on its way.
"""
from __future__ import annotations

import datetime
import threading
from typing import TYPE_CHECKING, Any, Iterable, Optional

from derma.devices import Device, settings_dict, settings_proto, to_datetime
from derma.errors import DermaError, LeaseLost
from derma.runs import RunHandle, StepLike, start_run
from derma.v1 import device_control_pb2 as pb

if TYPE_CHECKING:
    from derma.client import Client


class Lease:
    """A held lease on one device. Thread-safe (the renewal thread shares it).

    Attributes:
        device: "devices/{id}".
        kind: "MICRONEEDLING" or "MICROCURRENT" (decides which settings configure() takes).
        lease_id: the secret lease id sent with every command.
        ttl_s: the lease time to live in seconds (1–60); renewals extend it to now + ttl_s.
        expire_time: when the lease expires unless renewed (device time, UTC).
        lost: the LeaseLost error the renewal thread met, or None while the lease is held.
    """

    def __init__(self, client: Client, device: Device, lease: pb.Lease, ttl_s: float,
                 auto_renew: bool = True) -> None:
        self._client = client
        self.device = device.name
        self.kind = device.kind
        self.lease_id = lease.lease_id
        self.holder = lease.holder
        self.ttl_s = ttl_s
        self.expire_time: Optional[datetime.datetime] = to_datetime(lease.expire_time)
        self.lost: Optional[LeaseLost] = None
        self._released = False
        self._stop_renewing = threading.Event()
        self._renewer: Optional[threading.Thread] = None
        if auto_renew:
            self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                             name=f"derma-lease-{self.device}")
            self._renewer.start()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._halt_renewal()
        if exc_type is not None:
            try:
                self._client.stop(self.device)
            except DermaError as stop_error:
                exc.add_note(f"derma: stopping {self.device} failed: {stop_error}")
        try:
            self.release()
        except DermaError as release_error:
            if exc_type is None:
                raise
            exc.add_note(f"derma: releasing the lease of {self.device} failed: {release_error}")

    # --- the lease itself ---------------------------------------------------------------

    @property
    def renewing(self) -> bool:
        """True while the background thread renews the lease."""
        return self._renewer is not None and self._renewer.is_alive()

    def renew(self, ttl_s: Optional[float] = None) -> Optional[datetime.datetime]:
        """Extends the lease to now + ttl_s seconds (default: this lease's ttl_s); returns the
        new expire time. Raises LeaseExpired / LeaseMismatch when the lease is gone."""
        if ttl_s is not None:
            self.ttl_s = ttl_s
        request = pb.RenewLeaseRequest(name=self.device, lease_id=self.lease_id, ttl_s=self.ttl_s)
        response = self._client.call(self._client.stub.RenewLease, request,
                                     timeout_s=min(self._client.timeout_s, self.ttl_s / 3))
        self.expire_time = to_datetime(response.lease.expire_time)
        return self.expire_time

    def release(self) -> None:
        """Gives the lease back (the output is not changed). Idempotent."""
        self._halt_renewal()
        if self._released:
            return
        self._released = True
        self._client.call(self._client.stub.ReleaseLease,
                          pb.ReleaseLeaseRequest(name=self.device, lease_id=self.lease_id))

    def _halt_renewal(self) -> None:
        self._stop_renewing.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()

    def _renew_loop(self) -> None:
        while not self._stop_renewing.wait(self.ttl_s / 3) and not self._client.closed:
            try:
                self.renew()
            except LeaseLost as lost:
                self.lost = lost
                return
            except DermaError:
                continue  # unreachable or slow server: try again; expiry is the safety net

    # --- commands -----------------------------------------------------------------------

    def info(self) -> Device:
        """The device now (GetDevice)."""
        return self._client.device(self.device)

    def configure(self, *, validate_only: bool = False, **settings: Any) -> dict[str, Any]:
        """Applies settings given as keyword arguments with units in the names (pens:
        needle_depth_mm, stroke_rate_hz, session_limit_s; stimulators: current_ua,
        frequency_hz, waveform, polarity, ramp_s, session_limit_s). Unset fields keep their
        value. Returns every applied setting after quantization to the device's resolution.
        validate_only=True checks and quantizes without applying.
        Raises SettingOutOfRange (with .violations), SettingNotSupported, an InterlockError,
        RunActive, IllegalTransition or a LeaseLost; TypeError for a field of another kind."""
        request = pb.ConfigureRequest(name=self.device, lease_id=self.lease_id,
                                      settings=settings_proto(self.kind, settings),
                                      validate_only=validate_only)
        response = self._client.call(self._client.stub.Configure, request)
        return settings_dict(response.applied_settings)

    def start(self, request_id: Optional[str] = None) -> Device:
        """IDLE → RUNNING: output on with the current settings. A retry with the same
        request_id (≤ 64 characters) after a success returns OK and never starts twice."""
        request = pb.StartRequest(name=self.device, lease_id=self.lease_id,
                                  request_id=request_id or "")
        return Device.from_proto(self._client.call(self._client.stub.Start, request).device)

    def pause(self) -> Device:
        """RUNNING → PAUSED: output off, session and run held."""
        return self._command(self._client.stub.Pause, pb.PauseRequest)

    def resume(self) -> Device:
        """PAUSED → RUNNING, rechecking the same interlocks as start()."""
        return self._command(self._client.stub.Resume, pb.ResumeRequest)

    def stop(self) -> Device:
        """Output off; RUNNING/PAUSED → IDLE and any run ends with STOPPED. Idempotent."""
        return self._client.stop(self.device)

    def reset_fault(self) -> Device:
        """FAULT → IDLE once the fault condition is gone (else FaultConditionPresent)."""
        return self._command(self._client.stub.ResetFault, pb.ResetFaultRequest)

    def reset_emergency_stop(self) -> Device:
        """ESTOPPED → IDLE, or → FAULT when a latching fault arose before or during the stop."""
        return self._command(self._client.stub.ResetEmergencyStop, pb.ResetEmergencyStopRequest)

    def run(self, steps: Iterable[StepLike], request_id: Optional[str] = None) -> RunHandle:
        """Starts a treatment program on the IDLE device under this lease. Steps are dicts of
        settings plus duration_s (seconds), e.g. {"needle_depth_mm": 1.0, "duration_s": 5}.
        Every step is validated before anything starts."""
        return start_run(self._client, self, steps, request_id, owns_lease=False)

    def _command(self, rpc: Any, request_type: Any) -> Device:
        request = request_type(name=self.device, lease_id=self.lease_id)
        return Device.from_proto(self._client.call(rpc, request).device)

    def __repr__(self) -> str:
        return f"Lease({self.device!r}, holder={self.holder!r}, ttl_s={self.ttl_s})"
