"""Client: a channel to dermad and the DeviceControl calls that need no lease.

    with derma.connect("127.0.0.1:50051") as client:
        with client.lease("devices/pen-1", ttl_s=10) as pen:
            pen.configure(needle_depth_mm=1.0, stroke_rate_hz=120)
            ...

Every unary call gets a deadline (timeout_s, default 10 s). The channel pings the server
every 10 s, also without calls in flight, which the server's keepalive policy allows (pings
every ≥ 5 s), so a dead connection is found within seconds even while a stream is idle.
Failed calls raise a derma.errors.DermaError subclass. A Client is thread-safe.
"""
from __future__ import annotations

import contextlib
import datetime
import getpass
import os
import socket
import time
from typing import Any, Iterable, Iterator, Optional

import grpc

from derma.audit import AuditRecord
from derma.credentials import PathLike, channel_settings
from derma.devices import Device, device_name
from derma.errors import ConnectionError, TlsError, connection_failure, from_rpc_error
from derma.lease import Lease
from derma.runs import Run, RunHandle, StepLike, start_run
from derma.sim import Simulator
from derma.telemetry import TelemetryStream, open_stream
from derma.v1 import audit_pb2
from derma.v1 import device_control_pb2 as pb
from derma.v1 import device_control_pb2_grpc as pb_grpc

# Matches the server: it accepts pings every ≥ 5 s, with or without calls. The timeout stays
# well above 5 s: an idle Python channel reads a ping's ack only at its next poll, which was
# seen to take up to 5 s, and a shorter timeout would drop a healthy connection.
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)


def default_holder() -> str:
    """"user@host:pid", the lease holder name unless connect() is given one."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container
        user = "python"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"[:128]


class Client:
    """A connection to one dermad. Use derma.connect() to make one.

    Attributes:
        timeout_s: deadline of every unary call, in seconds.
        holder: the lease holder name this client gives AcquireLease.
        stub / sim.stub: the generated gRPC stubs, for calls the wrapper does not cover.
        sim: the simulator controls (derma.sim.Simulator).
    """

    def __init__(self, channel: grpc.Channel, *, timeout_s: float, holder: str) -> None:
        self.channel = channel
        self.timeout_s = timeout_s
        self.holder = holder
        self.stub = pb_grpc.DeviceControlStub(channel)
        self.sim = Simulator(self, channel)
        self.closed = False

    def close(self) -> None:
        """Closes the channel; open streams end and leases are no longer renewed (a device
        still running under one is stopped by the server's dead-man switch at its expiry)."""
        self.closed = True
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, rpc: Any, request: Any, timeout_s: Optional[float] = None) -> Any:
        """Calls a unary stub method with the default deadline; raises a DermaError."""
        if self.closed:
            raise ConnectionError("", "the client is closed")
        try:
            return rpc(request, timeout=self.timeout_s if timeout_s is None else timeout_s)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        except ValueError:  # grpc: "Cannot invoke RPC on closed channel!"
            if self.closed:
                raise ConnectionError("", "the client is closed") from None
            raise

    # --- reads ------------------------------------------------------------------------------

    def devices(self) -> list[Device]:
        """Every device, in name order."""
        devices: list[Device] = []
        token = ""
        while True:
            response = self.call(self.stub.ListDevices, pb.ListDevicesRequest(page_token=token))
            devices += [Device.from_proto(d) for d in response.devices]
            token = response.next_page_token
            if not token:
                return devices

    def device(self, name: str) -> Device:
        """One device ("devices/pen-1" or "pen-1"). DeviceNotFound if there is none."""
        request = pb.GetDeviceRequest(name=device_name(name))
        return Device.from_proto(self.call(self.stub.GetDevice, request).device)

    def runs(self, device: Optional[str] = None) -> list[Run]:
        """Runs of one device (or of every device), newest first."""
        parent = device_name(device) if device else "devices/-"
        runs: list[Run] = []
        token = ""
        while True:
            response = self.call(self.stub.ListRuns,
                                 pb.ListRunsRequest(parent=parent, page_token=token))
            runs += [Run.from_proto(r) for r in response.runs]
            token = response.next_page_token
            if not token:
                return runs

    def audit_events(self, device: Optional[str] = None, principal: Optional[str] = None,
                     since: Optional[datetime.datetime] = None,
                     until: Optional[datetime.datetime] = None,
                     limit: Optional[int] = None) -> list[AuditRecord]:
        """The audit trail, newest first (admin role): records of one device and/or principal,
        at or after `since` and before `until` (timezone-aware datetimes of server time, the
        records' `time`, not device time), at most `limit` (None: all). AuditUnavailable when the
        server keeps no audit trail."""
        request = audit_pb2.ListAuditEventsRequest(device=device_name(device) if device else "",
                                                   principal=principal or "")
        if since is not None:
            request.start_time.FromDatetime(since)
        if until is not None:
            request.end_time.FromDatetime(until)
        records: list[AuditRecord] = []
        while limit is None or len(records) < limit:
            request.page_size = 1000 if limit is None else min(1000, limit - len(records))
            response = self.call(self.stub.ListAuditEvents, request)
            records += [AuditRecord.from_proto(e) for e in response.events]
            request.page_token = response.next_page_token
            if not request.page_token:
                break
        return records

    def get_run(self, name: str) -> Run:
        """One run, "devices/{id}/runs/{run}". RunNotFound if there is none."""
        return Run.from_proto(self.call(self.stub.GetRun, pb.GetRunRequest(name=name)).run)

    def telemetry(self, devices: Optional[Iterable[str]] = None,
                  interval_s: float = 0) -> TelemetryStream:
        """Opens a telemetry stream for `devices` (None: every device). interval_s is the least
        device time between forwarded samples of one device, in seconds (0: every sample).
        Iterate the result for Snapshot, Synced, Sample, Event, Heartbeat and Gap items;
        close it (or use `with`) to end it. The stream has no deadline."""
        names = list(dict.fromkeys(device_name(d) for d in devices)) if devices else []
        return open_stream(self.stub, names, interval_s)

    # --- commands that need no lease ------------------------------------------------------

    def stop(self, name: str) -> Device:
        """Output off; RUNNING/PAUSED → IDLE and any run ends STOPPED. Legal in every state."""
        request = pb.StopRequest(name=device_name(name))
        return Device.from_proto(self.call(self.stub.Stop, request).device)

    def emergency_stop(self, name: Optional[str] = None) -> list[Device]:
        """Output off and ESTOPPED latched on one device, or on every device when name is None,
        ahead of every queued command. Returns the targeted devices once their outputs are off
        (an OFFLINE device stays OFFLINE with the latch pending)."""
        request = (pb.EmergencyStopRequest(all_devices=True) if name is None
                   else pb.EmergencyStopRequest(name=device_name(name)))
        return [Device.from_proto(d) for d in self.call(self.stub.EmergencyStop, request).devices]

    # --- leases and runs ----------------------------------------------------------------

    def lease(self, name: str, ttl_s: float = 10, *, auto_renew: bool = True) -> Lease:
        """Acquires the device's lease for ttl_s seconds (1–60) and, with auto_renew, renews it
        every ttl_s/3 seconds until released. Use it as a context manager (see derma.lease).
        Raises LeaseHeld (.holder) when someone else has it, DeviceNotFound, InvalidField."""
        device = self.device(name)
        request = pb.AcquireLeaseRequest(name=device.name, holder=self.holder, ttl_s=ttl_s)
        lease = self.call(self.stub.AcquireLease, request).lease
        return Lease(self, device, lease, ttl_s, auto_renew=auto_renew)

    def run(self, device: str, steps: Iterable[StepLike], *, ttl_s: float = 10,
            request_id: Optional[str] = None) -> RunHandle:
        """Takes the device's lease, starts a treatment program and returns its handle; the
        handle keeps the lease (renewed every ttl_s/3) until the run ends, then releases it.
        Steps are dicts of settings plus duration_s (seconds). If starting fails, the lease
        is released and the error raised."""
        lease = self.lease(device, ttl_s, auto_renew=False)
        try:
            return start_run(self, lease, steps, request_id, owns_lease=True)
        except BaseException:
            with contextlib.suppress(Exception):
                lease.release()
            raise


@contextlib.contextmanager
def connect(target: str, *, timeout_s: float = 10.0, holder: Optional[str] = None,
            tls: bool = False, tls_ca: Optional[PathLike] = None,
            tls_cert: Optional[PathLike] = None, tls_key: Optional[PathLike] = None,
            tls_server_name: Optional[str] = None, token: Optional[str] = None,
            token_file: Optional[PathLike] = None) -> Iterator[Client]:
    """Connects to dermad at target ("host:port"), waiting up to timeout_s seconds for it to
    answer; yields a Client whose unary calls each get a timeout_s deadline, and closes the
    channel on exit. holder names this client in leases (default "user@host:pid", at most
    128 characters).

    Security (see derma.credentials): tls_ca (the lab CA's PEM file) or tls=True (the
    system's CAs) turn TLS on; tls_cert and tls_key add the client certificate (mTLS);
    tls_server_name overrides the name the server's certificate must carry; token, or the
    first line of token_file, is sent as a bearer token (over TLS, or plaintext to loopback).

    Connecting makes one ListDevices call (page_size 1), so it checks the credentials too.
    Raises ValueError for bad arguments or unreadable files; TlsError when the TLS handshake
    fails (certificate not trusted, name mismatch, no client certificate for an mTLS server,
    plaintext against TLS); Unauthenticated when the token or certificate is not accepted;
    ConnectionError when nothing answers within timeout_s."""
    settings = channel_settings(target, tls=tls, tls_ca=tls_ca, tls_cert=tls_cert,
                                tls_key=tls_key, tls_server_name=tls_server_name, token=token,
                                token_file=token_file)
    options = [*CHANNEL_OPTIONS, *settings.options]
    channel = (grpc.secure_channel(target, settings.credentials, options=options)
               if settings.credentials is not None
               else grpc.insecure_channel(target, options=options))
    try:
        client = Client(channel, timeout_s=timeout_s, holder=holder or default_holder())
        wait_until_answering(client, target, timeout_s, tls=settings.tls)
        with client:
            yield client
    finally:
        channel.close()


def wait_until_answering(client: Client, target: str, timeout_s: float, *, tls: bool) -> None:
    """Calls ListDevices (page_size 1) until the server answers, for at most timeout_s;
    raises the typed error when it refuses, a TlsError at once for a failed handshake (or
    after three closed connections in a row), else the last ConnectionError at the end."""
    deadline = time.monotonic() + timeout_s
    request = pb.ListDevicesRequest(page_size=1)
    closed_in_a_row = 0
    while True:
        try:
            client.stub.ListDevices(request, timeout=max(deadline - time.monotonic(), 0.001))
            return
        except grpc.RpcError as error:
            failure = connection_failure(error, target, timeout_s, tls=tls)
            if failure is None:
                raise from_rpc_error(error) from None
            closed_in_a_row = closed_in_a_row + 1 if isinstance(failure, TlsError) else 0
            if (isinstance(failure, TlsError) and (not failure.uncertain or closed_in_a_row >= 3)
                    or time.monotonic() + 0.05 >= deadline):
                raise failure from None
        time.sleep(0.05)
