"""Fixtures for the end-to-end tests: the real dermad binary on a free port, and clients.

Environment (set by ctest): DERMAD (the binary), DERMA_PYTHON_DIR (generated modules),
DERMA_REPO (the repository root, for deploy/ configs).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.environ["DERMA_PYTHON_DIR"])

import grpc  # noqa: E402

PORT_LINE = re.compile(r"port (\d+)")


def free_port():
    """A loopback port that was free a moment ago (for servers that cannot report theirs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dermad:
    """A running dermad process and a channel to it."""

    def __init__(self, config, *extra):
        if not any(arg.startswith("--metrics_listen") for arg in extra):
            extra = (*extra, "--metrics_listen=")  # no metrics endpoint unless a test scrapes
        # Every dermad keeps its audit trail in a directory of its own unless a test names one.
        self.state_dir = None
        if not any(arg.startswith(("--audit_db", "--noaudit", "--state_dir")) for arg in extra):
            self.state_dir = tempfile.mkdtemp(prefix="dermad-state-")
            extra = (*extra, f"--state_dir={self.state_dir}")
        # The tests keep abseil's lock-order checker on (dermad turns it off by default).
        self.process = subprocess.Popen(
            [os.environ["DERMAD"], "--config", config, "--listen", "127.0.0.1:0",
             "--mutex_deadlock_detection", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = PORT_LINE.search(line)
        if match is None:
            self.process.kill()
            raise RuntimeError(f"dermad did not start: {line!r} {self.process.stderr.read()!r}")
        self.port = int(match.group(1))
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=10)

    def terminate(self, timeout_s):
        """Sends SIGTERM; returns (exit code, seconds until exit)."""
        start = time.monotonic()
        self.process.terminate()
        code = self.process.wait(timeout=timeout_s)
        return code, time.monotonic() - start

    def close(self):
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)


@pytest.fixture
def dermad():
    server = Dermad(os.path.join(os.environ["DERMA_REPO"], "deploy", "fleet.textproto"),
                    "--log_level=info")
    yield server
    server.close()
