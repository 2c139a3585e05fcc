"""dermactl against a secured station (dermad with TLS, mTLS and a tokens file): every command
for each role as the roles table says (allowed: exit 0; too low: exit 7 naming the role), each
TLS and credential failure with its exit code (6 TLS, 7 access, 2 usage before any connection)
and no gRPC log line on stderr, and the config file."""
import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import Dermad
from security_rig import (FLEET, make_ca, make_certificate, make_pki, start_dermad, stop_dermad,
                          token_line)

DERMACTL = os.environ.get("DERMACTL", "")
ROLES = ("viewer", "operator", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}
# gRPC's own log lines: "E1207 11:58:22.743627565   23298 ssl_transport_security.cc:1501] ..."
GRPC_LOG = re.compile(r"^[DIWE]\d{4} |ssl_transport_security|\.cc:\d+\]", re.MULTILINE)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The lab PKI, a second CA the station does not know with a client certificate it signed
    (alien), and a token file per role (mode 600)."""
    d = make_pki(tmp_path_factory.mktemp("pki"))
    make_ca(d, "other-ca")
    make_certificate(d, "alien", ca="other-ca")
    for role in ROLES:
        (d / f"{role}.token").write_text(f"{role}-token\n")
        (d / f"{role}.token").chmod(0o600)
    return d


@pytest.fixture
def station(pki, tmp_path):
    """dermad with TLS, mTLS (clients need a certificate from ca.pem) and tokens; its port."""
    tokens = tmp_path / "tokens"
    tokens.write_text("".join(token_line(f"{role}-token", f"{role}-1", role) for role in ROLES) +
                      "cert robot-7 robot-7 operator\n")
    process, port = start_dermad(
        "--listen", "127.0.0.1:0", f"--tls_cert={pki / 'server.pem'}",
        f"--tls_key={pki / 'server.key'}", f"--tls_client_ca={pki / 'ca.pem'}",
        f"--tokens_file={tokens}")
    assert port is not None, process.stderr.read()
    yield port
    stop_dermad(process)


def environment(**overrides):
    """dermactl's environment: none of the caller's dermactl or gRPC settings, no config file."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DERMA_TOKEN", "DERMA_TARGET", "GRPC_VERBOSITY", "GRPC_TRACE",
                        "XDG_CONFIG_HOME")}
    env["DERMACTL_CONFIG"] = os.devnull
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def run(*args, env=None, cwd=None):
    result = subprocess.run([DERMACTL, *args], capture_output=True, text=True, timeout=60,
                            env=env or environment(), cwd=cwd)
    assert not GRPC_LOG.search(result.stderr), f"gRPC log lines on stderr:\n{result.stderr}"
    return result


def secure(pki, port, *args, role=None, cert="stranger"):
    """dermactl with TLS to `port`, a client certificate (stranger: unknown to the tokens file,
    so the token decides the role) and the role's token file."""
    flags = [f"--target=127.0.0.1:{port}", f"--tls_ca={pki / 'ca.pem'}"]
    if cert is not None:
        flags += [f"--tls_cert={pki / f'{cert}.pem'}", f"--tls_key={pki / f'{cert}.key'}"]
    if role is not None:
        flags.append(f"--token_file={pki / f'{role}.token'}")
    return run(*flags, *args)


@pytest.fixture(autouse=True)
def need_dermactl():
    assert DERMACTL and os.path.exists(DERMACTL), "DERMACTL must name the dermactl binary"


def program_file(directory):
    program = directory / "program.textproto"
    program.write_text("steps { settings { microneedling { needle_depth_mm: 1.0 "
                       "stroke_rate_hz: 100 } } duration_s: 0.2 }\n")
    return program


# Each command: its arguments, what an admin sets up first, and the roles its calls need in
# the order dermactl makes them (policy.cc). The first call above the caller's role is refused.
COMMANDS = {
    "list": (["list"], [], ["viewer"]),
    "get": (["get", "pen-1"], [], ["viewer"]),
    "watch": (["--duration_s=0.5", "watch", "pen-1"], [], ["viewer"]),
    "runs": (["runs"], [], ["viewer"]),
    "estop": (["estop", "pen-1"], [], ["viewer"]),
    "configure": (["configure", "pen-1", "needle_depth_mm=1.0"], [],
                  ["viewer", "operator", "operator"]),
    "start": (["start", "pen-1"], [], ["operator", "operator"]),
    "pause": (["pause", "pen-1"], [["start", "pen-1"]], ["operator", "operator"]),
    "resume": (["resume", "pen-1"], [["start", "pen-1"], ["pause", "pen-1"]],
               ["operator", "operator"]),
    "stop": (["stop", "pen-1"], [["start", "pen-1"]], ["operator"]),
    "reset": (["reset", "pen-1"], [["estop", "pen-1"]], ["viewer", "operator", "admin"]),
    "run": (["run", "pen-1", "PROGRAM"], [], ["operator", "operator", "viewer"]),
    "audit": (["audit"], [], ["admin"]),
    "audit verify": (["audit", "verify"], [], ["admin"]),
    "sim fault": (["sim", "fault", "stim-1", "overcurrent"], [], ["admin"]),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_for_each_role_follows_the_roles_table(pki, station, tmp_path, command,
                                                             role):
    args, setup, needs = COMMANDS[command]
    args = [str(program_file(tmp_path)) if a == "PROGRAM" else a for a in args]
    for step in setup:
        assert secure(pki, station, *step, role="admin").returncode == 0
    result = secure(pki, station, *args, role=role)
    refused = [need for need in needs if RANK[need] > RANK[role]]
    if not refused:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 7, (result.returncode, result.stderr)
    assert "PERMISSION_DENIED" in result.stderr
    assert f"this call needs the {refused[0]} role; {role}-1 has the {role} role" in result.stderr


def test_admin_output_of_audit_and_verify(pki, station):
    assert secure(pki, station, "configure", "pen-1", "needle_depth_mm=1.0",
                  role="operator").returncode == 0
    audit = secure(pki, station, "audit", "pen-1", role="admin")
    assert re.search(r"operator-1 .* Configure +OK ", audit.stdout), audit.stdout
    verified = secure(pki, station, "audit", "verify", role="admin")
    assert verified.stdout.startswith("audit trail intact"), verified.stdout


def test_a_known_client_certificate_is_its_own_credential(pki, station):
    assert secure(pki, station, "configure", "pen-1", "needle_depth_mm=1.0",
                  cert="robot-7").returncode == 0
    denied = secure(pki, station, "audit", cert="robot-7")
    assert denied.returncode == 7
    assert "needs the admin role; robot-7 has the operator role" in denied.stderr


def test_tls_server_name_overrides_the_name_checked(pki, station):
    result = secure(pki, station, "--tls_server_name=localhost", "list", role="viewer")
    assert result.returncode == 0, result.stderr


def test_untrusted_server_certificate_exits_6(pki, station):
    result = run(f"--target=127.0.0.1:{station}", f"--tls_ca={pki / 'other-ca.pem'}",
                 f"--tls_cert={pki / 'stranger.pem'}", f"--tls_key={pki / 'stranger.key'}",
                 f"--token_file={pki / 'viewer.token'}", "list")
    assert result.returncode == 6
    assert "the server's certificate is not trusted" in result.stderr
    assert "other-ca.pem" in result.stderr


def test_server_name_mismatch_exits_6(pki, station):
    result = secure(pki, station, "--tls_server_name=station-9.lab", "list", role="viewer")
    assert result.returncode == 6
    assert "the server's certificate is not for \"station-9.lab\"" in result.stderr


def test_no_client_certificate_under_mtls_exits_6(pki, station):
    result = secure(pki, station, "list", role="viewer", cert=None)
    assert result.returncode == 6
    assert "most likely it requires a client certificate (mTLS)" in result.stderr


def test_client_certificate_from_another_ca_exits_6(pki, station):
    result = secure(pki, station, "list", role="viewer", cert="alien")
    assert result.returncode == 6
    assert "most likely it does not trust the client certificate" in result.stderr
    assert "alien.pem" in result.stderr


def test_plaintext_client_to_a_tls_server_exits_6(station):
    result = run(f"--target=127.0.0.1:{station}", "list")
    assert result.returncode == 6
    assert "most likely it serves TLS only; pass --tls_ca=FILE" in result.stderr


def test_tls_client_to_a_plaintext_server_exits_6(pki, dermad):
    result = run(f"--target=127.0.0.1:{dermad.port}", f"--tls_ca={pki / 'ca.pem'}", "list")
    assert result.returncode == 6
    assert "does not speak TLS (it answered in plaintext)" in result.stderr


def test_nothing_listening_is_still_a_connection_error_4(pki):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        result = run(f"--target=127.0.0.1:{port}", f"--tls_ca={pki / 'ca.pem'}", "list")
    assert result.returncode == 4
    assert "cannot reach the derma service" in result.stderr


def test_unknown_token_exits_7(pki, station):
    env = environment(DERMA_TOKEN="guessed-token")
    result = run(f"--target=127.0.0.1:{station}", f"--tls_ca={pki / 'ca.pem'}",
                 f"--tls_cert={pki / 'stranger.pem'}", f"--tls_key={pki / 'stranger.key'}",
                 "list", env=env)
    assert result.returncode == 7
    assert "UNAUTHENTICATED" in result.stderr
    assert "the service does not accept the token from $DERMA_TOKEN" in result.stderr


def test_no_token_exits_7(pki, station):
    result = secure(pki, station, "list")
    assert result.returncode == 7
    assert "no token was sent" in result.stderr


def test_a_token_goes_in_plaintext_to_loopback(pki, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(token_line("admin-token", "ada", "admin"))
    server = Dermad(FLEET, f"--tokens_file={tokens}")
    try:
        target = f"--target=127.0.0.1:{server.port}"
        assert run(target, f"--token_file={pki / 'admin.token'}", "audit").returncode == 0
        assert run(target, "audit", env=environment(DERMA_TOKEN="admin-token")).returncode == 0
        assert run(target, "audit").returncode == 7
    finally:
        server.close()


@pytest.fixture
def listener():
    """A listening socket nobody should connect to: proves a usage error came first."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.setblocking(False)
        yield s
        with pytest.raises(BlockingIOError):
            s.accept()


def test_a_token_is_never_sent_in_plaintext_beyond_loopback(pki):
    for env, flags in ((environment(), [f"--token_file={pki / 'admin.token'}"]),
                       (environment(DERMA_TOKEN="admin-token"), [])):
        result = run("--target=192.0.2.7:50051", *flags, "list", env=env)
        assert result.returncode == 2
        assert "refusing to send the token" in result.stderr
        assert "in plaintext to 192.0.2.7:50051, which is not a loopback address" in result.stderr


def test_a_token_on_the_command_line_is_refused(listener):
    port = listener.getsockname()[1]
    for flag in ("--token=secret", "--token"):
        result = run(f"--target=127.0.0.1:{port}", flag, "list")
        assert result.returncode == 2
        assert "visible to every user of this machine (ps" in result.stderr


@pytest.mark.parametrize("setting,problem", [
    ("tls_ca", "No such file or directory"),
    ("tls_cert", "No such file or directory"),
    ("tls_key", "No such file or directory"),
    ("token_file", "No such file or directory"),
])
def test_a_missing_file_is_a_usage_error_before_any_connection(pki, tmp_path, listener, setting,
                                                              problem):
    flags = {"tls_ca": pki / "ca.pem", "tls_cert": pki / "stranger.pem",
             "tls_key": pki / "stranger.key", "token_file": pki / "viewer.token"}
    flags[setting] = tmp_path / "missing.pem"
    result = run(f"--target=127.0.0.1:{listener.getsockname()[1]}",
                 *[f"--{k}={v}" for k, v in flags.items()], "list")
    assert result.returncode == 2
    assert f"{tmp_path / 'missing.pem'} (set by --{setting}): {problem}" in result.stderr


def test_unfit_files_are_usage_errors_naming_them(pki, tmp_path, listener):
    target = f"--target=127.0.0.1:{listener.getsockname()[1]}"
    ca, cert, key = (f"--tls_ca={pki / 'ca.pem'}", f"--tls_cert={pki / 'stranger.pem'}",
                     f"--tls_key={pki / 'stranger.key'}")
    not_a_certificate = run(target, f"--tls_ca={pki / 'ca.key'}", "list")
    assert not_a_certificate.returncode == 2
    assert "holds no PEM certificate" in not_a_certificate.stderr
    not_a_key = run(target, ca, cert, f"--tls_key={pki / 'stranger.pem'}", "list")
    assert not_a_key.returncode == 2 and "holds no unencrypted PEM private key" in not_a_key.stderr
    mismatch = run(target, ca, cert, f"--tls_key={pki / 'robot-7.key'}", "list")
    assert mismatch.returncode == 2
    assert "is not the key of the certificate in" in mismatch.stderr
    half = run(target, ca, cert, "list")
    assert half.returncode == 2 and "needs tls_key too" in half.stderr
    no_ca = run(target, cert, key, "list")
    assert no_ca.returncode == 2 and "needs tls_ca" in no_ca.stderr
    shared = tmp_path / "shared.token"
    shared.write_text("viewer-token\n")
    shared.chmod(0o640)
    loose = run(target, ca, f"--token_file={shared}", "list")
    assert loose.returncode == 2
    assert f"other users may read or change it (mode 0640); chmod 600 {shared}" in loose.stderr
    empty = tmp_path / "empty.token"
    empty.write_text("  \n viewer-token\n")
    empty.chmod(0o600)
    blank = run(target, ca, f"--token_file={empty}", "list")
    assert blank.returncode == 2 and "its first line holds no token" in blank.stderr


# The config file.


def config_folder(pki, folder, text):
    """`folder`/dermactl.conf holding `text`, with the station's CA, the stranger's certificate
    and the tokens beside it (for relative paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ca.pem", "stranger.pem", "stranger.key", "viewer.token", "admin.token"):
        shutil.copy(pki / name, folder / name)
    (folder / "conf.d").mkdir(exist_ok=True)
    path = folder / "dermactl.conf"
    path.write_text(text)
    return path


def conf_text(port, token="viewer.token"):
    return ("# the station\n"
            f"target = 127.0.0.1:{port}\n"
            "\n"
            "tls_ca = ca.pem\n"
            "  tls_cert=stranger.pem  \n"
            "tls_key = stranger.key\n"
            f"token_file = {token}\n")


def test_config_file_in_xdg_config_home_with_paths_relative_to_it(pki, station, tmp_path):
    config_folder(pki, tmp_path / "xdg" / "derma", conf_text(station))
    env = environment(DERMACTL_CONFIG=None, XDG_CONFIG_HOME=str(tmp_path / "xdg"),
                      HOME=str(tmp_path / "home"))
    result = run("list", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "devices/pen-1" in result.stdout
    denied = run("audit", env=env, cwd=tmp_path)
    assert denied.returncode == 7 and "needs the admin role" in denied.stderr


def test_config_file_in_home_when_xdg_config_home_is_unset(pki, station, tmp_path):
    config_folder(pki, tmp_path / "home" / ".config" / "derma", conf_text(station))
    env = environment(DERMACTL_CONFIG=None, HOME=str(tmp_path / "home"))
    assert run("list", env=env).returncode == 0
    xdg = config_folder(pki, tmp_path / "xdg" / "derma", "bad line\n")
    first = run("list", env=environment(DERMACTL_CONFIG=None, HOME=str(tmp_path / "home"),
                                        XDG_CONFIG_HOME=str(tmp_path / "xdg")))
    assert first.returncode == 2 and f"{xdg}:1:" in first.stderr, "XDG_CONFIG_HOME comes first"


def test_dermactl_config_names_another_file(pki, station, tmp_path):
    path = config_folder(pki, tmp_path / "elsewhere", conf_text(station))
    config_folder(pki, tmp_path / "xdg" / "derma", "target = 127.0.0.1:1\n")
    env = environment(DERMACTL_CONFIG=str(path), XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    assert run("list", env=env).returncode == 0
    missing = run("list", env=environment(DERMACTL_CONFIG=str(tmp_path / "none.conf")))
    assert missing.returncode == 2
    assert f"cannot read the config file {tmp_path / 'none.conf'}" in missing.stderr


def test_flags_override_the_environment_which_overrides_the_file(pki, station, tmp_path):
    path = config_folder(pki, tmp_path / "c", conf_text(1))  # a target nobody serves
    env = environment(DERMACTL_CONFIG=str(path))
    assert run("list", env=env).returncode == 4
    target = f"--target=127.0.0.1:{station}"
    assert run(target, "audit", env=env).returncode == 7  # the file's viewer token
    assert run(target, f"--token_file={pki / 'admin.token'}", "audit", env=env).returncode == 0
    with_env = environment(DERMACTL_CONFIG=str(path), DERMA_TOKEN="admin-token",
                           DERMA_TARGET=f"127.0.0.1:{station}")
    assert run("audit", env=with_env).returncode == 0
    viewer_flag = run(f"--token_file={pki / 'viewer.token'}", "audit", env=with_env)
    assert viewer_flag.returncode == 7, "--token_file wins over $DERMA_TOKEN"


@pytest.mark.parametrize("line,problem", [
    ("tls_ca_file = ca.pem", 'unknown key "tls_ca_file"; known: target, tls_ca,'),
    ("target 127.0.0.1:1", 'expected `key = value`, got "target 127.0.0.1:1"'),
    ("target =", "target has no value"),
    ("tls_ca = ca.pem", "tls_ca is already set on line 4"),
])
def test_a_bad_config_line_is_a_usage_error_naming_file_and_line(pki, station, tmp_path,
                                                                line, problem):
    path = config_folder(pki, tmp_path / "c", conf_text(station) + line + "\n")
    result = run("list", env=environment(DERMACTL_CONFIG=str(path)))
    assert result.returncode == 2
    assert f"{path}:8: {problem}" in result.stderr


def test_a_file_named_in_the_config_file_is_named_with_its_line(pki, station, tmp_path):
    path = config_folder(pki, tmp_path / "c", conf_text(station, token="missing.token"))
    result = run("list", env=environment(DERMACTL_CONFIG=str(path)))
    assert result.returncode == 2
    assert f"token file {path.parent / 'missing.token'} (set by {path}:7)" in result.stderr
