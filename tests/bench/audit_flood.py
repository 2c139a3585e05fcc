#!/usr/bin/env python3
"""Audit growth and an operator's Configure latency while unauthenticated callers flood dermad.

Starts the given dermad on 127.0.0.1 with a tokens file (one operator) and a fresh audit trail,
measures the operator's Configure p50 alone, then again while THREADS threads send
unauthenticated ListDevices as fast as they are refused for SECONDS, stops dermad (SIGTERM) and
reports the audit records and bytes the flood added. Works on any dermad since the audit trail
existed (older trails have no count column: every refusal is then one record).

  python3 tests/bench/audit_flood.py --dermad build/plugin/host/dermad \\
      --python_dir build/python [--seconds 20] [--threads 4] [--rate CALLS_PER_S]
"""
import argparse
import hashlib
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def configure_p50(stub, pb, device_pb2, lease_id, seconds):
    """Median Configure latency (ms) of one operator calling back to back for `seconds`."""
    latencies = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        depth = round(0.5 + 0.05 * (i % 10), 2)
        i += 1
        start = time.perf_counter()
        stub.Configure(pb.ConfigureRequest(
            name="devices/pen-1", lease_id=lease_id,
            settings=device_pb2.Settings(microneedling=device_pb2.MicroneedlingSettings(
                needle_depth_mm=depth))), metadata=(("authorization", "Bearer op-token"),),
            timeout=10)
        latencies.append((time.perf_counter() - start) * 1000)
        time.sleep(0.01)  # an operator, not a load generator
    return statistics.median(latencies), len(latencies)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dermad", required=True)
    parser.add_argument("--python_dir", required=True, help="the generated Python modules")
    parser.add_argument("--config", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "deploy", "fleet.textproto"))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rate", type=float, default=0,
                        help="unauthenticated calls per second in all (0: as fast as refused)")
    args = parser.parse_args()
    sys.path.insert(0, args.python_dir)
    import grpc
    from derma.v1 import device_control_pb2 as pb
    from derma.v1 import device_control_pb2_grpc as pb_grpc
    from derma.v1 import device_pb2

    state = tempfile.mkdtemp(prefix="audit-flood-")
    tokens = os.path.join(state, "tokens")
    with open(tokens, "w") as f:
        f.write(f"token sha256:{hashlib.sha256(b'op-token').hexdigest()} olga operator\n")
    db = os.path.join(state, "audit.db")
    dermad = subprocess.Popen(
        [args.dermad, "--config", args.config, "--listen", "127.0.0.1:0", "--metrics_listen=",
         f"--tokens_file={tokens}", f"--audit_db={db}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = int(re.search(r"port (\d+)", dermad.stdout.readline()).group(1))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.DeviceControlStub(channel)
    lease = stub.AcquireLease(pb.AcquireLeaseRequest(name="devices/pen-1", holder="olga",
                                                     ttl_s=60),
                              metadata=(("authorization", "Bearer op-token"),), timeout=10).lease
    quiet_p50, _ = configure_p50(stub, pb, device_pb2, lease.lease_id, 3)

    def rows():
        c = sqlite3.connect(db)
        columns = [r[1] for r in c.execute("PRAGMA table_info(events)")]
        count = "sum(count)" if "count" in columns else "count(*)"
        records, refusals = c.execute(
            f"SELECT count(*), coalesce({count}, 0) FROM events WHERE kind = 'AUTH_FAILURE'"
        ).fetchone()
        c.close()
        return records, refusals

    def size():
        # The database file once the log is copied into it (dermad checkpoints at exit; a
        # passive checkpoint from here does the same while it runs, without blocking it).
        if dermad.poll() is None:
            c = sqlite3.connect(db)
            c.execute("PRAGMA wal_checkpoint(PASSIVE)")
            c.close()
        return os.path.getsize(db)

    bytes_before = size()
    stop = threading.Event()
    sent = [0] * args.threads

    def flood(k):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            s = pb_grpc.DeviceControlStub(ch)
            start = time.monotonic()
            while not stop.is_set():
                if args.rate > 0:  # paced: the same attack whatever the server's speed
                    wait = start + sent[k] * args.threads / args.rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                try:
                    s.ListDevices(pb.ListDevicesRequest(), timeout=10)
                except grpc.RpcError:
                    pass
                sent[k] += 1

    workers = [threading.Thread(target=flood, args=(k,)) for k in range(args.threads)]
    for w in workers:
        w.start()
    flood_p50, samples = configure_p50(stub, pb, device_pb2, lease.lease_id, args.seconds)
    stop.set()
    for w in workers:
        w.join()
    stub.ReleaseLease(pb.ReleaseLeaseRequest(name="devices/pen-1", lease_id=lease.lease_id),
                      metadata=(("authorization", "Bearer op-token"),), timeout=10)
    channel.close()
    dermad.send_signal(signal.SIGTERM)
    dermad.wait(timeout=30)
    records, refusals = rows()
    grown = size() - bytes_before
    print(f"flood: {args.threads} threads x {args.seconds:.0f} s, {sum(sent)} unauthenticated "
          f"calls refused")
    print(f"audit AUTH_FAILURE records: {records} (counts sum to {refusals}); audit file grew "
          f"{grown / 1e6:.2f} MB")
    print(f"operator Configure p50: {quiet_p50:.2f} ms alone, {flood_p50:.2f} ms during the "
          f"flood ({samples} calls)")


if __name__ == "__main__":
    main()
