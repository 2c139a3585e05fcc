"""The channel credentials derma.connect builds: TLS, mTLS and bearer tokens.

As the README's Security section describes for the server:
- TLS is on with `tls_ca` (the lab CA's PEM file, trusted for the server's certificate) or
  `tls=True` (the system's trusted CAs). `tls_server_name` checks the server's certificate for
  that name instead of the target's host (for an IP address or a tunnel).
- mTLS: `tls_cert` and `tls_key` (PEM files, together) are the client's certificate and key;
  a server with --tls_client_ca maps its common name to a principal.
- A bearer token (`token`, or the first line of `token_file`) goes with every call as
  `authorization: Bearer <token>`. gRPC sends call credentials only over a protected channel:
  over TLS, or plaintext to a loopback address (127.0.0.0/8, ::1, localhost), which dermad
  serves without TLS. A token to any other plaintext target is refused here, before it
  could cross a network in the clear.
- Given a token and a certificate, the server identifies the caller by the token alone: an
  unknown or revoked token is refused even though the certificate is known.
Bad arguments raise ValueError naming the argument; unreadable files raise it naming the file.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Optional, Union

import grpc

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class ChannelSettings:
    """What grpc needs for the channel: credentials (None: plaintext) and extra options."""

    credentials: Optional[grpc.ChannelCredentials]
    options: list[tuple[str, object]] = field(default_factory=list)
    tls: bool = False


def _read(argument: str, path: PathLike) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise ValueError(f"{argument}: cannot read {os.fspath(path)}: {error.strerror}") from None


def read_token_file(path: PathLike) -> str:
    """The token in a file: its first line, without surrounding whitespace."""
    lines = _read("token_file", path).decode("utf-8", errors="strict").splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ValueError(f"token_file: {os.fspath(path)} holds no token (its first line is "
                         "empty)")
    return token


def target_host(target: str) -> str:
    """The host of a gRPC target: "127.0.0.1:50051" → "127.0.0.1", "[::1]:50051" → "::1",
    "dns:///station-7.lab:50051" → "station-7.lab", "ipv4:10.0.0.7:50051" → "10.0.0.7"."""
    rest = target
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if rest.startswith(scheme):
            rest = rest[len(scheme):]
            break
    if rest.startswith("["):
        return rest[1:rest.find("]")] if "]" in rest else rest
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest


def is_loopback(target: str) -> bool:
    host = target_host(target)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def channel_settings(target: str, *, tls: bool = False, tls_ca: Optional[PathLike] = None,
                     tls_cert: Optional[PathLike] = None, tls_key: Optional[PathLike] = None,
                     tls_server_name: Optional[str] = None, token: Optional[str] = None,
                     token_file: Optional[PathLike] = None) -> ChannelSettings:
    """The credentials and options for a channel to target (see the module's docstring)."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key: give both (the client certificate and its "
                         "key, for mTLS) or neither")
    if token is not None and token_file is not None:
        raise ValueError("token and token_file: give one or neither")
    if token_file is not None:
        token = read_token_file(token_file)
    if token is not None and (not token or any(c.isspace() for c in token)):
        raise ValueError("token: must be non-empty, without whitespace")
    use_tls = tls or tls_ca is not None or tls_cert is not None
    if tls_server_name is not None and not use_tls:
        raise ValueError("tls_server_name: only with TLS (tls_ca, tls_cert or tls=True)")
    settings = ChannelSettings(credentials=None, tls=use_tls)
    if use_tls:
        settings.credentials = grpc.ssl_channel_credentials(
            root_certificates=_read("tls_ca", tls_ca) if tls_ca is not None else None,
            private_key=_read("tls_key", tls_key) if tls_key is not None else None,
            certificate_chain=_read("tls_cert", tls_cert) if tls_cert is not None else None)
        if tls_server_name:
            settings.options.append(("grpc.ssl_target_name_override", tls_server_name))
    elif token is not None:
        if not is_loopback(target):
            raise ValueError(f"token: refusing to send a token in plaintext to {target}; use "
                             "TLS (tls_ca=...) or a loopback address")
        settings.credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    if token is not None:
        settings.credentials = grpc.composite_channel_credentials(
            settings.credentials, grpc.access_token_call_credentials(token))
    return settings
