"""HTTP/2 abuse end to end: one unauthenticated connection floods dermad (started with a tokens
file) on 127.0.0.1 while an honest client calls GetDevice. dermad closes a connection that
pings far faster than its keepalive policy allows, also when refused calls between the pings
keep resetting chttp2's ping strikes, and keeps one that pings as often as the README allows;
behind the nginx front of deploy/nginx/, a rapid-reset flood from reconnecting connections
leaves dermad's memory and the honest client's calls alone. Each flood lasts at most FLOOD_S;
the latencies are bench rows (tests/bench/h2_abuse_bench.py), not assertions here.
"""
import socket
import time

import pytest

import flood_rig
import h2_flood

FLOOD_S = 5
RSS_GROWTH_BOUND_MIB = 256  # README "Hostile clients"
ENHANCE_YOUR_CALM = 0xB


@pytest.fixture
def dermad():
    server = flood_rig.Dermad()
    yield server
    server.close()


@pytest.fixture
def front(dermad):
    proxy = flood_rig.Front(dermad.port)
    yield proxy
    proxy.close()


def assert_honest_client_served(r):
    assert r["dermad_alive"]
    assert r["calls"] > 0 and r["failed"] == 0, r
    assert r["calls_after"] > 0 and r["failed_after"] == 0, r
    assert r["rss_peak_mib"] - r["rss_before_mib"] < RSS_GROWTH_BOUND_MIB, r


# From the first ping to the attacker seeing the connection closed: 0.5 s on an idle machine,
# 1.9 s with two compilers on its two cores; unlimited strikes keep it open for the whole flood.
CLOSED_WITHIN_S = 3.0


def test_ping_flood_connection_is_closed_with_too_many_pings(dermad):
    r = flood_rig.measure(dermad, dermad.port, "ping", FLOOD_S)
    assert r["flood"]["goaway"] == [ENHANCE_YOUR_CALM, "too_many_pings"], r
    assert r["flood"]["server_closed_after_s"] is not None, r
    assert r["flood"]["server_closed_after_s"] < CLOSED_WITHIN_S, r
    assert_honest_client_served(r)


def test_pings_between_refused_calls_are_still_too_many(dermad):
    r = flood_rig.measure(dermad, dermad.port, "ping-refused", FLOOD_S)
    assert r["flood"]["goaway"] == [ENHANCE_YOUR_CALM, "too_many_pings"], r
    assert r["flood"]["server_closed_after_s"] < CLOSED_WITHIN_S, r
    assert_honest_client_served(r)


def test_client_pinging_at_the_promised_interval_keeps_its_connection(dermad):
    sock = socket.create_connection(("127.0.0.1", dermad.port), timeout=10)
    with sock:
        sock.sendall(h2_flood.PREFACE + h2_flood.frame(h2_flood.SETTINGS, 0, 0))
        ping = h2_flood.frame(h2_flood.PING, 0, 0, b"honest!!")
        # One more ping than the strikes chttp2 forgives: each would be a strike if early.
        for _ in range(4):
            sock.sendall(ping)
            time.sleep(5.05)
        sock.sendall(ping)
        received = b""
        while received.count(b"honest!!") < 5:
            chunk = sock.recv(4096)
            assert chunk, "dermad closed the connection"
            received += chunk
        assert bytes((h2_flood.GOAWAY,)) not in frame_types(received)


def frame_types(data):
    types = []
    while len(data) >= 9:
        types.append(data[3])
        data = data[9 + int.from_bytes(data[:3], "big"):]
    return bytes(types)


def test_rapid_reset_through_the_front_leaves_dermad_and_honest_calls_alone(dermad, front):
    r = flood_rig.measure(dermad, front.port, "rapid-reset", FLOOD_S, reconnect=True)
    assert_honest_client_served(r)
    # The honest client calls every 10 ms; without the front's per-address call limit it
    # completed 143 calls in 5 s (p99 326 ms) instead of 640.
    assert r["calls"] >= 60 * FLOOD_S, r
    assert r["idle_after_s"] is not None and r["idle_after_s"] < 1.0, r
