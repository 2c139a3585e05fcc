"""The audit trail against tampering and floods, end to end on 127.0.0.1: a flood of
unauthenticated calls is a bounded number of records whose counts sum to the calls; an empty
audit.db is refused at start-up (exit 2) and left as found; rows edited, deleted, reordered or
truncated with Python's sqlite3 are each found by `dermactl audit verify`, offline on the file
and through VerifyAuditTrail; dermad logs the chain head at start-up and shutdown."""
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.request

import grpc
import pytest

from conftest import Dermad, free_port
from derma.v1 import device_control_pb2 as pb
from derma.v1 import device_control_pb2_grpc as pb_grpc

FLEET = os.path.join(os.environ["DERMA_REPO"], "deploy", "fleet.textproto")
HEAD_LINE = re.compile(r"audit chain head at (start-up|shutdown): length (\d+), record (\d+), "
                       r"sha256 ([0-9a-f]{64})")
INTERVAL_S = 10  # RefusalCoalescingOptions::interval


def bearer(token):
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"token sha256:{hashlib.sha256(b'admin-token').hexdigest()} ada admin\n")
    return path


def dermactl(*args):
    return subprocess.run([os.environ["DERMACTL"], *args], capture_output=True, text=True,
                          timeout=60)


def stop(server):
    code, _ = server.terminate(timeout_s=20)
    assert code == 0
    return server.process.stderr.read()


def flood(port, calls, threads=4):
    """`calls` unauthenticated ListDevices from `threads` threads; each must be refused."""
    refused = []

    def worker(n):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.DeviceControlStub(ch)
            for _ in range(n):
                try:
                    stub.ListDevices(pb.ListDevicesRequest(), timeout=10)
                except grpc.RpcError as e:
                    refused.append(e.code())

    workers = [threading.Thread(target=worker, args=(calls // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return refused


def test_a_flood_of_refusals_is_a_few_records_whose_counts_sum_to_it(tokens, tmp_path):
    db = tmp_path / "audit.db"
    metrics_port = free_port()
    server = Dermad(FLEET, f"--tokens_file={tokens}", f"--audit_db={db}",
                    f"--metrics_listen=127.0.0.1:{metrics_port}")
    try:
        calls = 2000
        start = time.monotonic()
        refused = flood(server.port, calls)
        elapsed = time.monotonic() - start
        assert refused == [grpc.StatusCode.UNAUTHENTICATED] * calls
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert f"derma_audit_refusals_total {calls}" in body
        assert "derma_audit_chain_length " in body and "derma_audit_chain_head " in body
        # Every commit's time is in the histogram (a commit between reading the two may be in
        # the histogram and not yet in the counter, never the other way round).
        values = {line.split(" ")[0]: float(line.split(" ")[1])
                  for line in body.splitlines() if line.startswith("derma_audit_commit")}
        commits = values["derma_audit_commits_total"]
        assert commits >= 1
        assert values["derma_audit_commit_duration_seconds_count"] >= commits
        assert values['derma_audit_commit_duration_seconds_bucket{le="+Inf"}'] == \
            values["derma_audit_commit_duration_seconds_count"]
        assert values["derma_audit_commit_duration_seconds_sum"] > 0
        stderr = stop(server)  # the counted refusals are written at shutdown: none is lost
    finally:
        server.close()
    rows = sqlite3.connect(db).execute(
        "SELECT count, peer_ip, reason FROM events WHERE kind = 'AUTH_FAILURE'").fetchall()
    assert sum(count for count, _, _ in rows) == calls
    assert {(ip, reason) for _, ip, reason in rows} == {("127.0.0.1", "UNAUTHENTICATED")}
    # One (IP, reason) pair: at most 2 records per interval the flood spanned.
    assert len(rows) <= 2 * (int(elapsed // INTERVAL_S) + 2), rows
    heads = HEAD_LINE.findall(stderr)
    assert [h[0] for h in heads] == ["start-up", "shutdown"]
    assert int(heads[1][1]) == len(sqlite3.connect(db).execute("SELECT id FROM events").fetchall())


def test_an_empty_audit_file_is_refused_at_start_up(tmp_path):
    db = tmp_path / "audit.db"
    db.write_bytes(b"")
    result = subprocess.run([os.environ["DERMAD"], "--config", FLEET, "--listen",
                             "127.0.0.1:0", "--metrics_listen=", f"--audit_db={db}"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert str(db) in result.stderr and "holds no audit trail" in result.stderr
    assert db.stat().st_size == 0


def make_trail(tmp_path):
    """A trail with some twenty records; returns (its path, the head dermad logged at exit)."""
    db = tmp_path / "audit.db"
    server = Dermad(FLEET, f"--audit_db={db}")
    try:
        stub = pb_grpc.DeviceControlStub(server.channel)
        for _ in range(5):  # each call a COMMAND record, refused or not, plus device events
            stub.EmergencyStop(pb.EmergencyStopRequest(name="devices/pen-1"), timeout=10)
            with pytest.raises(grpc.RpcError):  # needs the lease
                stub.ResetEmergencyStop(pb.ResetEmergencyStopRequest(name="devices/pen-1"),
                                        timeout=10)
        stderr = stop(server)
    finally:
        server.close()
    shutdown = [h for h in HEAD_LINE.findall(stderr) if h[0] == "shutdown"]
    assert len(shutdown) == 1
    return db, shutdown[0][3]


TAMPERING = {
    "edited": "UPDATE events SET detail = 'nothing happened' WHERE id = 5",
    "deleted": "DELETE FROM events WHERE id = 5",
    "reordered": "UPDATE events SET id = -5 WHERE id = 5; UPDATE events SET id = 5 WHERE id = 6;"
                 " UPDATE events SET id = 6 WHERE id = -5",
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_tampered_rows_are_found_offline_and_through_the_service(tmp_path, how):
    db, head = make_trail(tmp_path)
    intact = dermactl("audit", "verify", f"--db={db}", f"--expect_head={head}")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert f"sha256 {head}" in intact.stdout
    with sqlite3.connect(db) as c:
        c.executescript(TAMPERING[how])
    offline = dermactl("audit", "verify", f"--db={db}")
    assert offline.returncode == 5, offline.stdout + offline.stderr
    assert "BROKEN at record" in offline.stdout
    server = Dermad(FLEET, f"--audit_db={db}")
    try:
        online = dermactl(f"--target=127.0.0.1:{server.port}", "audit", "verify")
    finally:
        server.close()
    assert online.returncode == 5, online.stdout + online.stderr
    assert online.stdout == offline.stdout


def test_removed_newest_records_are_found_against_the_exported_head(tmp_path):
    db, head = make_trail(tmp_path)
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM events WHERE id > (SELECT max(id) - 3 FROM events)")
    assert dermactl("audit", "verify", f"--db={db}").returncode == 0  # still a chain...
    against_head = dermactl("audit", "verify", f"--db={db}", f"--expect_head={head[:12]}")
    assert against_head.returncode == 5  # ...but not the one whose head was logged
    assert "removed" in against_head.stdout
