"""A client that opens a StreamTelemetry call over its own TCP connection and then never reads
another byte: plain HTTP/2 over a socket (gRPC's clients keep reading into their own buffers),
so the server's writes back up as they would behind a stalled reader."""
import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload):
    return (struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) +
            struct.pack(">I", stream) + payload)


def literal_header(name, value):
    """An HPACK literal header field without indexing (names and values under 127 bytes)."""
    name, value = name.encode(), value.encode()
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def open_stalled_stream(port, request=b"", path="/derma.v1.DeviceControl/StreamTelemetry"):
    """Starts the call, acknowledges the server's SETTINGS, then stops reading. Returns the
    socket; closing it ends the call."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    headers = b"".join(literal_header(n, v) for n, v in (
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
        ("content-type", "application/grpc"), ("te", "trailers")))
    message = b"\x00" + struct.pack(">I", len(request)) + request
    sock.sendall(PREFACE + frame(4, 0, 0, b"") + frame(1, 0x4, 1, headers) +
                 frame(0, 0x1, 1, message))
    sock.recv(9)  # the header of the server's SETTINGS frame
    sock.sendall(frame(4, 0x1, 0, b""))  # SETTINGS ACK, so the server keeps the connection
    return sock
