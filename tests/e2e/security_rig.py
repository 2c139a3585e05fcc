"""The secured-station rig for the end-to-end tests: a lab PKI made with openssl (a CA, a server
certificate for 127.0.0.1 and localhost, client certificates), tokens-file lines, and dermad
started with whatever TLS and tokens flags a test gives.

Environment (set by ctest): DERMAD (the binary), DERMA_REPO (for deploy/fleet.textproto).
"""
import hashlib
import os
import subprocess
import tempfile

from conftest import PORT_LINE

FLEET = os.path.join(os.environ["DERMA_REPO"], "deploy", "fleet.textproto")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory, name):
    """A self-signed CA: NAME.pem and NAME.key in `directory`."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}", cwd=directory)


def make_certificate(directory, name, ca="ca", san=None):
    """NAME.pem (CN=NAME, signed by CA) and NAME.key; `san` is a subjectAltName value."""
    ext = []
    if san is not None:
        (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        ext = ["-extfile", f"{name}.ext"]
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *ext, cwd=directory)


def make_pki(directory, clients=("robot-7", "stranger")):
    """A lab CA (ca.pem), a server certificate for 127.0.0.1 and localhost (server.pem), and a
    client certificate for each name in `clients` (NAME.pem, NAME.key); returns `directory`."""
    make_ca(directory, "ca")
    make_certificate(directory, "server", san="IP:127.0.0.1,DNS:localhost")
    for name in clients:
        make_certificate(directory, name)
    return directory


def token_line(token, principal, role):
    """The tokens-file line for `token` (only its SHA-256 hash is stored)."""
    return f"token sha256:{hashlib.sha256(token.encode()).hexdigest()} {principal} {role}\n"


def start_dermad(*args):
    """Starts dermad on the fleet config with `args`; returns (process, port or None)."""
    if not any(a.startswith("--metrics_listen") for a in args):
        args = ("--metrics_listen=", *args)
    args = (f"--state_dir={tempfile.mkdtemp(prefix='dermad-state-')}", *args)
    process = subprocess.Popen(
        [os.environ["DERMAD"], "--config", FLEET, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = PORT_LINE.search(line)
    return process, (int(match.group(1)) if match else None)


def stop_dermad(process):
    process.terminate()
    process.wait(timeout=10)
