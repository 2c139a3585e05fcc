"""Treatment programs (runs): steps as dicts, run status, and RunHandle.

A step is a dict of settings (units in the names, see derma.devices) plus duration_s, e.g.
{"needle_depth_mm": 1.0, "stroke_rate_hz": 100, "duration_s": 5}; fields left out keep the
previous step's value. A derma.v1.RunStep message is accepted as well.
"""
from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Optional, Union

import grpc

from derma.devices import enum_name, settings_dict, settings_proto, to_datetime
from derma.errors import DeadlineExceeded, DermaError, from_rpc_error
from derma.v1 import device_control_pb2 as pb
from derma.v1 import run_pb2

if TYPE_CHECKING:
    from derma.client import Client
    from derma.lease import Lease

StepLike = Union[Mapping[str, Any], run_pb2.RunStep]


def step_proto(kind: str, step: StepLike) -> run_pb2.RunStep:
    """A RunStep for a device of `kind` from a dict with duration_s (seconds) and settings."""
    if isinstance(step, run_pb2.RunStep):
        return step
    values = dict(step)
    if "duration_s" not in values:
        raise TypeError(f"step {step!r} has no duration_s")
    duration_s = float(values.pop("duration_s"))
    return run_pb2.RunStep(settings=settings_proto(kind, values), duration_s=duration_s)


@dataclass(frozen=True)
class Ledger:
    """What a run delivered (the device's counters: needle strokes of pens, charge in µC of
    stimulators), its output-on seconds, and what its program asked for over that time
    (strokes_programmed, charge_programmed_uc: run.proto's DoseLedger says how they are
    computed and the tolerance within which a run ends COMPLETED)."""
    strokes_delivered: int
    charge_delivered_uc: float
    output_on_s: float
    strokes_programmed: float = 0.0
    charge_programmed_uc: float = 0.0


@dataclass(frozen=True)
class Run:
    """A run as the server reported it. state: "RUNNING", "PAUSED", "SUCCEEDED" or
    "ENDED_EARLY"; end_reason (once ended): "COMPLETED", "CANCELLED", "STOPPED",
    "LEASE_EXPIRED", "FAULT", "EMERGENCY_STOP", "LINK_LOST", "SESSION_LIMIT", "SHUTDOWN",
    "INTERRUPTED" or "DOSE_OUT_OF_TOLERANCE" (every step finished, but the delivered dose is
    outside the tolerance: state ENDED_EARLY). start_time and end_time are device time (the
    fleet clock, which on a virtual clock is far from the wall clock); an INTERRUPTED run ends
    at the last device time the server recorded for it (start_time plus ledger.output_on_s)."""
    name: str
    device: str
    state: str
    end_reason: Optional[str]
    current_step: int
    step_elapsed_s: float
    total_duration_s: float
    ledger: Ledger
    steps: list[dict[str, Any]]
    start_time: Optional[datetime.datetime]
    end_time: Optional[datetime.datetime]
    end_message: str
    proto: run_pb2.Run = field(repr=False)

    @property
    def ended(self) -> bool:
        return self.state in ("SUCCEEDED", "ENDED_EARLY")

    @staticmethod
    def from_proto(run: run_pb2.Run) -> Run:
        reason = enum_name(run_pb2.RunEndReason, run.end_reason, "RUN_END_REASON_")
        return Run(
            name=run.name, device=run.device,
            state=enum_name(run_pb2.RunState, run.state, "RUN_STATE_"),
            end_reason=None if reason == "UNSPECIFIED" else reason,
            current_step=run.current_step, step_elapsed_s=run.step_elapsed_s,
            total_duration_s=run.total_duration_s,
            ledger=Ledger(run.ledger.strokes_delivered, run.ledger.charge_delivered_uc,
                          run.ledger.output_on_s, run.ledger.strokes_programmed,
                          run.ledger.charge_programmed_uc),
            steps=[{**settings_dict(s.settings), "duration_s": s.duration_s} for s in run.steps],
            start_time=to_datetime(run.start_time), end_time=to_datetime(run.end_time),
            end_message=run.end_message, proto=run)


class RunHandle:
    """A started run. progress() watches it, result() waits for its end, cancel() ends it;
    as a context manager, leaving the block stops a run that is still active.

    A handle made by Client.run() holds the device's lease for the run: a background thread
    renews it every ttl/3 until the run has ended, then releases it. If this process stops
    before the run ends, the lease expires and the server's dead-man switch stops the output.
    Thread-safe.
    """

    def __init__(self, client: Client, run: Run, lease: Lease, owns_lease: bool) -> None:
        self._client = client
        self._lease = lease
        self._owns_lease = owns_lease
        self._last = run
        self._done = threading.Event()
        self._finish_lock = threading.Lock()
        self.name = run.name
        self.device = run.device
        if owns_lease:
            threading.Thread(target=self._keep_lease, name=f"derma-run-{run.name}",
                             daemon=True).start()

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """A run does not outlive its `with` block: leaving the block (normally or by an
        exception) while the run is still active stops the device; then an owned lease is
        released."""
        try:
            if not self._last.ended and not self.get().ended:
                self._client.stop(self.device)
        except DermaError as stop_error:
            if exc is None:
                raise
            exc.add_note(f"derma: stopping {self.device} failed: {stop_error}")
        finally:
            self._finish()

    @property
    def last(self) -> Run:
        """The latest state this handle saw (no server call)."""
        return self._last

    def get(self) -> Run:
        """The run's current state (GetRun)."""
        return self._seen(self._client.call(self._client.stub.GetRun,
                                            pb.GetRunRequest(name=self.name)).run)

    def progress(self, timeout_s: Optional[float] = None) -> Iterator[Run]:
        """Yields the run on every change (step, state, at most every 100 ms of progress) until
        it ends. timeout_s bounds the whole watch (DeadlineExceeded past it)."""
        call = self._client.stub.WatchRun(pb.WatchRunRequest(name=self.name), timeout=timeout_s)
        try:
            for update in call:
                yield self._seen(update.run)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    def result(self, timeout_s: Optional[float] = None) -> Run:
        """Waits until the run ends (at most timeout_s seconds of wall time) and returns it
        with its final ledger. Raises DeadlineExceeded (a TimeoutError) if it has not ended."""
        if not self._last.ended:
            for _ in self.progress(timeout_s):
                pass
        if not self._last.ended:  # the stream closed early; ask once more
            self.get()
        if not self._last.ended:
            raise DeadlineExceeded("", f"{self.name} has not ended", {"run": self.name})
        return self._last

    def cancel(self) -> Run:
        """Ends the run with CANCELLED (output off, device IDLE). RunEnded if it had ended."""
        request = pb.CancelRunRequest(name=self.name, lease_id=self._lease.lease_id)
        return self._seen(self._client.call(self._client.stub.CancelRun, request).run)

    def _seen(self, run: run_pb2.Run) -> Run:
        self._last = Run.from_proto(run)
        if self._last.ended:
            self._finish()
        return self._last

    def _finish(self) -> None:
        with self._finish_lock:
            if not self._owns_lease or self._done.is_set():
                return
            self._done.set()
            try:
                self._lease.release()
            except DermaError:
                pass  # expired or lost: nothing left to give back

    def _keep_lease(self) -> None:
        interval_s = self._lease.ttl_s / 3
        while not self._done.wait(interval_s) and not self._client.closed:
            try:
                if self.get().ended:
                    return
                self._lease.renew()
            except DermaError:
                continue  # transient; the lease's own expiry is the safety net

    def __repr__(self) -> str:
        return f"RunHandle({self.name!r}, state={self._last.state!r})"


def start_run(client: Client, lease: Lease, steps: Iterable[StepLike],
              request_id: Optional[str], owns_lease: bool) -> RunHandle:
    request = pb.StartRunRequest(parent=lease.device, lease_id=lease.lease_id,
                                 steps=[step_proto(lease.kind, s) for s in steps],
                                 request_id=request_id or "")
    run = client.call(client.stub.StartRun, request).run
    return RunHandle(client, Run.from_proto(run), lease, owns_lease)
