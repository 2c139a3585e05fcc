"""Security end to end: dermad refuses plaintext on a network address unless --insecure; TLS and
mTLS handshakes through gRPC's credentials; bearer tokens and client certificates mapped to
roles; UNAUTHENTICATED / PERMISSION_DENIED carry an ErrorInfo reason."""
import hashlib
import os
import subprocess
import urllib.request

import grpc
import pytest

from conftest import free_port
from derma.v1 import audit_pb2
from derma.v1 import device_control_pb2 as pb
from derma.v1 import device_control_pb2_grpc as pb_grpc
from derma.v1 import device_pb2
from google.rpc import error_details_pb2, status_pb2
from security_rig import FLEET, make_pki, start_dermad, stop_dermad


def reason(error):
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return info.reason
    return None


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A lab CA, a server certificate for 127.0.0.1, and client certificates for two CNs."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_plaintext_on_a_network_address_is_refused_unless_insecure():
    refused = subprocess.run([os.environ["DERMAD"], "--config", FLEET, "--metrics_listen=",
                              "--listen", f"0.0.0.0:{free_port()}"],
                             capture_output=True, text=True, timeout=20)
    assert refused.returncode == 2
    assert "refusing to serve plaintext" in refused.stderr
    process, port = start_dermad("--listen", f"0.0.0.0:{free_port()}", "--insecure")
    try:
        assert port is not None
    finally:
        stop_dermad(process)
    assert "WARNING: serving plaintext" in process.stderr.read()


@pytest.fixture
def secure_dermad(pki, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(
        f"token sha256:{hashlib.sha256(b'viewer-token').hexdigest()} vera viewer\n"
        f"token sha256:{hashlib.sha256(b'admin-token').hexdigest()} ada admin\n"
        "cert robot-7 robot-7 operator\n")
    metrics_port = free_port()
    process, port = start_dermad(
        "--listen", "127.0.0.1:0", f"--metrics_listen=127.0.0.1:{metrics_port}",
        f"--tls_cert={pki / 'server.pem'}", f"--tls_key={pki / 'server.key'}",
        f"--tls_client_ca={pki / 'ca.pem'}", f"--tokens_file={tokens}")
    assert port is not None, process.stderr.read()
    yield port, metrics_port
    stop_dermad(process)


def channel(pki, port, client=None):
    root = (pki / "ca.pem").read_bytes()
    if client is None:
        creds = grpc.ssl_channel_credentials(root_certificates=root)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=root, private_key=(pki / f"{client}.key").read_bytes(),
            certificate_chain=(pki / f"{client}.pem").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{port}", creds)


def bearer(token):
    return (("authorization", f"Bearer {token}"),)


def test_mtls_tokens_and_roles(pki, secure_dermad):
    port, metrics_port = secure_dermad
    with channel(pki, port, "stranger") as ch:
        stub = pb_grpc.DeviceControlStub(ch)
        # TLS handshake with a CA-signed client certificate; a viewer token reads.
        devices = stub.ListDevices(pb.ListDevicesRequest(), metadata=bearer("viewer-token"),
                                   timeout=10).devices
        assert len(devices) == 4
        # A viewer may not configure: PERMISSION_DENIED, and the device is not even looked up.
        with pytest.raises(grpc.RpcError) as denied:
            stub.Configure(pb.ConfigureRequest(name="devices/no-such-device"),
                           metadata=bearer("viewer-token"), timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason(denied.value) == "PERMISSION_DENIED"
        assert "no-such-device" not in denied.value.details()
        # No token, and a certificate the tokens file does not know: UNAUTHENTICATED.
        with pytest.raises(grpc.RpcError) as unknown:
            stub.GetDevice(pb.GetDeviceRequest(name="devices/pen-1"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert reason(unknown.value) == "UNAUTHENTICATED"
        with pytest.raises(grpc.RpcError) as wrong:
            stub.GetDevice(pb.GetDeviceRequest(name="devices/pen-1"),
                           metadata=bearer("guessed"), timeout=10)
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # EmergencyStop is open to every authenticated role.
        stopped = stub.EmergencyStop(pb.EmergencyStopRequest(name="devices/pen-2"),
                                     metadata=bearer("viewer-token"), timeout=10)
        assert stopped.devices[0].state == device_pb2.DEVICE_STATE_ESTOPPED
    with channel(pki, port, "robot-7") as ch:
        # The certificate's subject is the principal (operator): it may drive a device.
        stub = pb_grpc.DeviceControlStub(ch)
        lease = stub.AcquireLease(pb.AcquireLeaseRequest(
            name="devices/pen-1", holder="robot-7", ttl_s=10), timeout=10).lease
        stub.Configure(pb.ConfigureRequest(
            name="devices/pen-1", lease_id=lease.lease_id,
            settings=device_pb2.Settings(microneedling=device_pb2.MicroneedlingSettings(
                needle_depth_mm=1.0))), timeout=10)
        # Resetting an emergency stop needs admin.
        with pytest.raises(grpc.RpcError) as admin_only:
            stub.ResetEmergencyStop(pb.ResetEmergencyStopRequest(name="devices/pen-2"),
                                    timeout=10)
        assert admin_only.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Every refusal is counted: 2 unauthenticated calls, 2 denied ones.
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        body = r.read().decode()
    assert 'derma_auth_failures_total{reason="unauthenticated"} 2' in body
    assert 'derma_auth_failures_total{reason="permission_denied"} 2' in body
    # ...and in the audit trail, which only an admin may read.
    with channel(pki, port, "stranger") as ch:
        stub = pb_grpc.DeviceControlStub(ch)
        with pytest.raises(grpc.RpcError) as viewer:
            stub.ListAuditEvents(audit_pb2.ListAuditEventsRequest(),
                                 metadata=bearer("viewer-token"), timeout=10)
        assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED
        events = stub.ListAuditEvents(audit_pb2.ListAuditEventsRequest(page_size=1000),
                                      metadata=bearer("admin-token"), timeout=10).events
    # Refusals are coalesced by (peer IP, reason): the first of each pair is written at once,
    # the others counted and written with their count at the interval's end or at shutdown.
    failures = [(e.principal, e.method.rsplit("/", 1)[1], e.reason, e.peer_ip, e.count)
                for e in events if e.kind == audit_pb2.AUDIT_EVENT_KIND_AUTH_FAILURE]
    assert sorted(failures) == sorted([
        ("", "GetDevice", "UNAUTHENTICATED", "127.0.0.1", 1),
        ("vera", "Configure", "PERMISSION_DENIED", "127.0.0.1", 1)])
    commands = {(e.principal, e.method.rsplit("/", 1)[1]) for e in events
                if e.kind != audit_pb2.AUDIT_EVENT_KIND_AUTH_FAILURE and e.principal}
    assert {("vera", "EmergencyStop"), ("robot-7", "AcquireLease"),
            ("robot-7", "Configure")} <= commands


def test_a_token_decides_even_over_a_known_certificate(pki, secure_dermad):
    port, _ = secure_dermad
    with channel(pki, port, "robot-7") as ch:  # a certificate the tokens file maps to operator
        stub = pb_grpc.DeviceControlStub(ch)
        # An unknown (say revoked) token is refused; it does not fall back to the certificate.
        for metadata in (bearer("revoked"), (("authorization", "Basic cm9ib3Q6Nw=="),)):
            with pytest.raises(grpc.RpcError) as unknown:
                stub.GetDevice(pb.GetDeviceRequest(name="devices/pen-1"), metadata=metadata,
                               timeout=10)
            assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert reason(unknown.value) == "UNAUTHENTICATED"
            assert "certificate is not consulted" in unknown.value.details()
        # A known token is the principal, whatever the certificate: a viewer may not configure.
        with pytest.raises(grpc.RpcError) as viewer:
            stub.AcquireLease(pb.AcquireLeaseRequest(name="devices/pen-1", holder="x", ttl_s=5),
                              metadata=bearer("viewer-token"), timeout=10)
        assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Without a token the certificate identifies the caller (operator).
        lease = stub.AcquireLease(pb.AcquireLeaseRequest(
            name="devices/pen-1", holder="robot-7", ttl_s=5), timeout=10).lease
        stub.ReleaseLease(pb.ReleaseLeaseRequest(name="devices/pen-1", lease_id=lease.lease_id),
                          timeout=10)


def test_clients_without_a_certificate_or_without_tls_are_rejected(pki, secure_dermad):
    port, _ = secure_dermad
    with channel(pki, port) as ch:  # TLS, but no client certificate under mTLS
        with pytest.raises(grpc.RpcError) as no_cert:
            pb_grpc.DeviceControlStub(ch).ListDevices(
                pb.ListDevicesRequest(), metadata=bearer("admin-token"), timeout=10)
        assert no_cert.value.code() == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:  # plaintext on the TLS port
        with pytest.raises(grpc.RpcError) as plain:
            pb_grpc.DeviceControlStub(ch).ListDevices(
                pb.ListDevicesRequest(), metadata=bearer("admin-token"), timeout=10)
        assert plain.value.code() == grpc.StatusCode.UNAVAILABLE


def start_with_tokens_file(tmp_path, text):
    """Starts dermad with a tokens file holding `text`; returns (the file, the finished run)."""
    tokens = tmp_path / "tokens"
    tokens.write_text(text)
    result = subprocess.run([os.environ["DERMAD"], "--config", FLEET, "--metrics_listen=",
                             "--listen", "127.0.0.1:0", f"--tokens_file={tokens}",
                             f"--state_dir={tmp_path}"],
                            capture_output=True, text=True, timeout=20)
    return tokens, result


def test_bad_tokens_file_exits_2_naming_the_line(tmp_path):
    tokens, result = start_with_tokens_file(tmp_path, "token plain-text-secret alice admin\n")
    assert result.returncode == 2
    assert f"tokens file {tokens}:1:" in result.stderr
    assert "bad config" not in result.stderr  # the fleet config is fine


def test_a_tokens_file_listing_one_hash_twice_exits_2_naming_both_lines(tmp_path):
    digest = hashlib.sha256(b"s3cret").hexdigest()
    tokens, result = start_with_tokens_file(
        tmp_path, f"token sha256:{digest} alice viewer\r\ntoken sha256:{digest} eve admin\r\n")
    assert result.returncode == 2
    assert f"tokens file {tokens}:2: this token hash is already listed on line 1" in result.stderr
