"""A dermad started for a test: the simulator in a lab's CI, for any test runner.

    from derma.testing import start_dermad
    with start_dermad(fleet="my-fleet.textproto") as station:
        with station.client.lease("pen-1", ttl_s=30) as pen:
            pen.configure(needle_depth_mm=0.5, stroke_rate_hz=100)
            pen.start()
            station.advance(2.0)          # two seconds of device time, at once

start_dermad() runs the dermad binary (the `dermad` argument, else $DERMA_DERMAD, else
`dermad` on PATH) with --listen=127.0.0.1:0 (the port it picks is read from the line it
prints), no metrics listener unless metrics=True (then on a free port too), its own
temporary --state_dir (the audit trail; in /dev/shm when there is one, so its fsyncs cost
nothing), the given fleet config and, by default, a virtual clock: device time moves only
when the test calls advance(). It waits until dermad serves, hands over a connected
derma.Client, and at the end stops dermad with SIGTERM (every output off) and removes the
state folder. dermad's stdout and stderr go to a log file, `Station.log_text()`.

A Station is not thread-safe, but its client is.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Sequence, Union

from derma.client import Client, connect
from derma.sim import FaultLike

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_FLEET = Path(__file__).resolve().parent / "default_fleet.textproto"
ENV_DERMAD = "DERMA_DERMAD"
_PORT_LINE = re.compile(r"^dermad: serving .* port (\d+) ")
_METRICS_LINE = re.compile(r"^dermad: metrics on (http://\S+)")


class DermadError(RuntimeError):
    """dermad could not be found, did not start or serve in time, or exited with a failure.
    The message ends with the tail of its log; `log` holds all of it."""

    def __init__(self, message: str, log: str = "") -> None:
        tail = "\n".join(log.splitlines()[-40:])
        super().__init__(f"{message}\n--- dermad log (last 40 lines) ---\n{tail}" if log
                         else message)
        self.log = log


def find_dermad(dermad: Optional[PathLike] = None) -> str:
    """The dermad to run: `dermad` if given, else $DERMA_DERMAD, else `dermad` on PATH.
    Raises DermadError naming what was tried when none is an executable file."""
    named = dermad if dermad is not None else os.environ.get(ENV_DERMAD)
    if named:
        path = Path(named)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
        source = "the dermad argument" if dermad is not None else f"${ENV_DERMAD}"
        raise DermadError(f"{source} names {named}, which is not an executable file")
    found = shutil.which("dermad")
    if found is None:
        raise DermadError(f"no dermad: pass dermad=PATH, set ${ENV_DERMAD}, or put dermad on "
                          "PATH (the build makes build/plugin/host/dermad)")
    return found


def _scratch_root() -> Optional[str]:
    """/dev/shm when it is a writable folder (a RAM file system: fsync is free), else the
    system's temporary folder."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


class Station:
    """A running dermad and a client connected to it. Use start_dermad() to make one.

    Attributes:
        target: "127.0.0.1:PORT", for derma.connect or any gRPC client.
        port: the gRPC port.
        metrics_url: "http://127.0.0.1:PORT/metrics" with metrics=True, else None.
        client: a derma.Client connected to the station (lease holder "derma.testing").
        state_dir: dermad's --state_dir (its audit trail, audit.db), removed at stop.
        log_path: the file dermad's stdout and stderr go to.
        process: the dermad subprocess.Popen.
    """

    def __init__(self, command: list[str], scratch: Path, *, expect_metrics: bool,
                 start_timeout_s: float, call_timeout_s: float,
                 client_settings: dict[str, Any]) -> None:
        self.command = command
        self._expect_metrics = expect_metrics
        self.scratch = scratch
        self.state_dir = scratch / "state"
        self.log_path = scratch / "dermad.log"
        self.metrics_url: Optional[str] = None
        self.port = 0
        self.target = ""
        self.client: Optional[Client] = None
        self._client_context: Optional[contextlib.AbstractContextManager[Client]] = None
        self._final_log: Optional[str] = None  # the log, kept once the folder is removed
        self._serving = threading.Event()
        self._log = open(self.log_path, "a", buffering=1, encoding="utf-8", errors="replace")
        self.process = subprocess.Popen(
            [*command, f"--state_dir={self.state_dir}"], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self._log, text=True, errors="replace")
        self._reader = threading.Thread(target=self._read_stdout, args=(self.process.stdout,),
                                        name="dermad-stdout", daemon=True)
        self._reader.start()
        try:
            self._wait_until_serving(start_timeout_s)
            context = connect(self.target, **{"timeout_s": call_timeout_s,
                                              "holder": "derma.testing", **client_settings})
            self.client = context.__enter__()
            self._client_context = context
        except BaseException:
            self.close(keep_files=True)  # start_dermad removes the folder
            raise

    def _read_stdout(self, stdout: IO[str]) -> None:
        """Copies dermad's stdout into the log and picks the port and metrics lines out."""
        for line in stdout:
            self._log.write(line)
            if not self.port and (match := _PORT_LINE.match(line)):
                self.port = int(match.group(1))
                self.target = f"127.0.0.1:{self.port}"
            elif match := _METRICS_LINE.match(line):
                self.metrics_url = match.group(1)
            if self.port and (self.metrics_url or not self._expect_metrics):
                self._serving.set()
        self._serving.set()  # stdout closed: dermad is gone (checked by the waiter)

    def _wait_until_serving(self, timeout_s: float) -> None:
        if not self._serving.wait(timeout_s):
            self._kill()
            raise DermadError(f"dermad did not serve within {timeout_s} s", self.log_text())
        if not self.port or self.process.poll() is not None:
            code = self.process.wait()
            raise DermadError(f"dermad exited with code {code} before serving (command: "
                              f"{' '.join(self.command)})", self.log_text())

    def log_text(self) -> str:
        """Everything dermad has written to stdout and stderr so far."""
        if self._final_log is not None:
            return self._final_log
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # --- the simulator, for tests ------------------------------------------------------------

    def advance(self, seconds: float) -> int:
        """Moves the virtual clock on by seconds, ticking every device through the interval;
        returns the new device time in µs since the epoch. Needs clock="virtual"."""
        return self._require_client().sim.advance_clock(seconds)

    def load_scenario(self, scenario: Union[str, Path]) -> int:
        """Schedules a scenario's timed actions relative to now. A pathlib.Path is read as a
        scenario file; a str is the scenario itself in text format. Returns the action count."""
        text = scenario.read_text() if isinstance(scenario, Path) else scenario
        return self._require_client().sim.load_scenario(text)

    def inject_fault(self, device: str, kind: FaultLike) -> None:
        """Raises a simulated fault ("OVER_TEMPERATURE", "ELECTRODE_CONTACT_LOST", ...) on a
        device; it reacts on its next tick (on a virtual clock, the next advance())."""
        self._require_client().sim.inject_fault(device, kind)

    def clear_fault(self, device: str, kind: FaultLike) -> None:
        """Removes a simulated fault condition (the device stays latched until reset)."""
        self._require_client().sim.clear_fault(device, kind)

    def _require_client(self) -> Client:
        if self.client is None:
            raise DermadError("the station is stopped")
        return self.client

    # --- stopping ------------------------------------------------------------------------------

    def stop(self, timeout_s: float = 10) -> int:
        """Closes the client and stops dermad with SIGTERM (every output off, streams ended);
        returns its exit code. Raises DermadError when it does not exit within timeout_s (it
        is then killed) or exits with anything but 0. Safe to call twice."""
        if self._client_context is not None:
            self._client_context.__exit__(None, None, None)
            self._client_context = None
            self.client = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._kill()
                raise DermadError(f"dermad did not stop within {timeout_s} s of SIGTERM; "
                                  "killed", self.log_text()) from None
        self._reader.join(timeout=timeout_s)
        code = self.process.returncode
        if code != 0:
            raise DermadError(f"dermad exited with code {code}", self.log_text())
        return code

    def _kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self, keep_files: bool = False) -> None:
        """Kills dermad if it still runs and removes its folder (unless keep_files)."""
        if self._client_context is not None:
            self._client_context.__exit__(None, None, None)
            self._client_context = None
            self.client = None
        self._kill()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._final_log = self.log_text()
        self._log.close()
        if not keep_files:
            shutil.rmtree(self.scratch, ignore_errors=True)


@contextlib.contextmanager
def start_dermad(fleet: Optional[PathLike] = None, *, fleet_text: Optional[str] = None,
                 dermad: Optional[PathLike] = None, clock: Optional[str] = "virtual",
                 metrics: bool = False, args: Sequence[str] = (),
                 start_timeout_s: float = 10, call_timeout_s: float = 10,
                 client_settings: Optional[dict[str, Any]] = None,
                 keep_files: bool = False) -> Iterator[Station]:
    """Starts a dermad for a test and yields its Station; stops it at the end.

    fleet: a fleet config file (text format or JSON); fleet_text: the config itself, in text
    format (give one or neither; neither: derma.testing's default fleet, pens pen-1 and pen-2
    and stimulators stim-1 and stim-2). clock: "virtual" (default), "real", or None for the
    config's own. metrics: serve /metrics on a free port (Station.metrics_url); off by default.
    args: more dermad flags, e.g. ["--tokens_file=tokens"]. start_timeout_s bounds the wait
    for dermad to serve; call_timeout_s is the client's deadline per call. client_settings
    are more derma.connect arguments for the station's client, e.g. {"tls_ca": "ca.pem",
    "token": "..."} for a station started with --tls_* and --tokens_file in args.

    When the block raises, dermad is still stopped and the block's exception propagates;
    otherwise a dermad that does not exit 0 on SIGTERM raises DermadError. keep_files leaves
    the scratch folder (log and audit trail) in place, e.g. to inspect it.
    """
    if fleet is not None and fleet_text is not None:
        raise ValueError("start_dermad: give fleet or fleet_text, not both")
    if clock not in ("virtual", "real", None):
        raise ValueError(f"start_dermad: clock must be 'virtual', 'real' or None, not {clock!r}")
    binary = find_dermad(dermad)
    scratch = Path(tempfile.mkdtemp(prefix="derma-testing-", dir=_scratch_root()))
    if fleet_text is not None:
        config = scratch / "fleet.textproto"
        config.write_text(fleet_text)
    else:
        config = Path(fleet) if fleet is not None else DEFAULT_FLEET
        if not config.is_file():
            shutil.rmtree(scratch, ignore_errors=True)
            raise ValueError(f"start_dermad: fleet config {config} is not a file")
    command = [binary, f"--config={Path(config).resolve()}", "--listen=127.0.0.1:0",
               "--metrics_listen=127.0.0.1:0" if metrics else "--metrics_listen=",
               *([f"--clock={clock}"] if clock else []), *args]
    try:
        station = Station(command, scratch, expect_metrics=metrics,
                          start_timeout_s=start_timeout_s, call_timeout_s=call_timeout_s,
                          client_settings=dict(client_settings or {}))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    try:
        yield station
    except BaseException:
        with contextlib.suppress(DermadError):
            station.stop()
        station.close(keep_files)
        raise
    try:
        station.stop()
    finally:
        station.close(keep_files)

