"""derma.connect against a secured dermad, as the README's Security section sets one up: TLS
with --tls_cert/--tls_key, mTLS with --tls_client_ca, bearer tokens from --tokens_file, roles."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

import derma
from conftest import dermad_binary
from derma import errors
from derma.testing import Station, start_dermad

TOKENS = {"viewer": "v-3f9a", "operator": "o-77c1", "admin": "a-12bb"}


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab CA, a server certificate for 127.0.0.1 and localhost, a client certificate
    robot-7, and a CA nobody trusts with a certificate of its own."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN={ca}", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ca, ext in (("server", "ca", ["-extfile", "server.ext"]), ("robot-7", "ca", []),
                          ("alien", "other-ca", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *ext, cwd=d)
    lines = [f"token sha256:{hashlib.sha256(t.encode()).hexdigest()} {role}-user {role}"
             for role, t in TOKENS.items()]
    (d / "tokens").write_text("\n".join([*lines, "cert robot-7 robot-7 operator"]) + "\n")
    (d / "admin.token").write_text(TOKENS["admin"] + "\n")
    return d


@pytest.fixture(scope="module")
def mtls_station(pki: Path) -> Iterator[Station]:
    args = [f"--tls_cert={pki / 'server.pem'}", f"--tls_key={pki / 'server.key'}",
            f"--tls_client_ca={pki / 'ca.pem'}", f"--tokens_file={pki / 'tokens'}"]
    client = mtls(pki, token_file=pki / "admin.token")
    with start_dermad(dermad=dermad_binary(), args=args, client_settings=client) as station:
        yield station


def mtls(pki: Path, **extra: object) -> dict[str, object]:
    return {"tls_ca": pki / "ca.pem", "tls_cert": pki / "robot-7.pem",
            "tls_key": pki / "robot-7.key", **extra}


def test_mtls_with_a_token_file_acts_as_the_tokens_principal(pki: Path, mtls_station: Station):
    with derma.connect(mtls_station.target, timeout_s=5,
                       **mtls(pki, token_file=pki / "admin.token")) as c:
        assert len(c.devices()) == 4
        c.sim.advance_clock(0.1)  # admin only
        assert next(iter(c.audit_events(principal="admin-user"))).principal == "admin-user"


def test_each_role_sees_what_the_roles_table_says(pki: Path, mtls_station: Station):
    with derma.connect(mtls_station.target, timeout_s=5,
                       **mtls(pki, token=TOKENS["viewer"])) as viewer:
        assert viewer.device("pen-1").id == "pen-1"
        with pytest.raises(errors.PermissionDenied):
            viewer.lease("pen-1")
    with derma.connect(mtls_station.target, timeout_s=5,
                       **mtls(pki, token=TOKENS["operator"])) as operator:
        with operator.lease("pen-1") as pen:
            pen.configure(needle_depth_mm=0.5)
        with pytest.raises(errors.PermissionDenied):
            operator.sim.advance_clock(0.1)
    # The certificate alone (no token): robot-7, an operator.
    with derma.connect(mtls_station.target, timeout_s=5, **mtls(pki)) as robot:
        with robot.lease("pen-2") as pen:
            pen.configure(needle_depth_mm=0.5)


@pytest.mark.parametrize("case, settings, words", [
    ("untrusted server", {"tls_ca": "other-ca.pem", "tls_cert": "robot-7.pem",
                          "tls_key": "robot-7.key"}, "not signed by a CA in tls_ca"),
    ("no client certificate", {"tls_ca": "ca.pem"}, "requires a client certificate"),
    ("untrusted client", {"tls_ca": "ca.pem", "tls_cert": "alien.pem", "tls_key": "alien.key"},
     "requires a client certificate (tls_cert, tls_key) signed by a CA it trusts"),
    ("name mismatch", {"tls_ca": "ca.pem", "tls_cert": "robot-7.pem", "tls_key": "robot-7.key",
                       "tls_server_name": "station-9.lab"}, "does not carry the target's host"),
    ("plaintext client", {}, "it serves TLS"),
])
def test_tls_failures_say_what_went_wrong(pki: Path, mtls_station: Station, case: str,
                                          settings: dict[str, str], words: str):
    paths = {k: (v if k == "tls_server_name" else pki / v) for k, v in settings.items()}
    with pytest.raises(errors.TlsError) as failure:
        with derma.connect(mtls_station.target, timeout_s=5, **paths):
            pass
    assert words in str(failure.value)
    assert isinstance(failure.value, derma.errors.ConnectionError)


def test_tls_to_a_plaintext_server_is_named(pki: Path, dermad):
    with pytest.raises(errors.TlsError, match="does not speak TLS"):
        with derma.connect(dermad.target, tls_ca=pki / "ca.pem", timeout_s=5):
            pass


def test_a_token_goes_in_plaintext_only_to_loopback(pki: Path):
    args = [f"--tokens_file={pki / 'tokens'}"]
    with start_dermad(dermad=dermad_binary(), args=args,
                      client_settings={"token": TOKENS["admin"]}) as station:
        assert station.client is not None and len(station.client.devices()) == 4
        with derma.connect(station.target, token=TOKENS["viewer"], timeout_s=5) as viewer:
            assert len(viewer.devices()) == 4
        with pytest.raises(errors.Unauthenticated):  # no token
            with derma.connect(station.target, timeout_s=5):
                pass
        with pytest.raises(errors.Unauthenticated):  # a token the station does not know
            with derma.connect(station.target, token="not-a-token", timeout_s=5):
                pass
    with pytest.raises(ValueError, match="refusing to send a token in plaintext to 10.0.0.7"):
        with derma.connect("10.0.0.7:50051", token="x"):
            pass


def test_bad_arguments_are_named(pki: Path):
    with pytest.raises(ValueError, match="tls_cert and tls_key: give both"):
        with derma.connect("127.0.0.1:1", tls_ca=pki / "ca.pem", tls_cert=pki / "robot-7.pem"):
            pass
    with pytest.raises(ValueError, match="tls_ca: cannot read /nonexistent.pem"):
        with derma.connect("127.0.0.1:1", tls_ca="/nonexistent.pem"):
            pass
    (pki / "empty.token").write_text("\n")
    with pytest.raises(ValueError, match="token_file: .*empty.token holds no token"):
        with derma.connect("127.0.0.1:1", token_file=pki / "empty.token"):
            pass
    with pytest.raises(ValueError, match="tls_server_name: only with TLS"):
        with derma.connect("127.0.0.1:1", tls_server_name="x"):
            pass
