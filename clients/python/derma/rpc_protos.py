"""The google.rpc error model (Status, ErrorInfo, BadRequest, Code) for derma.errors.

The `google.rpc` modules belong to googleapis-common-protos, which grpcio-status and most
Google client libraries install. derma never installs a `google/` package of its own: when
that package is importable its modules are used, so both register the same descriptors once
in protobuf's default pool; otherwise derma's own copy, generated into derma/_googleapis/,
is used. `SOURCE` says which ("googleapis-common-protos" or "derma").
"""
from __future__ import annotations

try:
    from google.rpc import code_pb2, error_details_pb2, status_pb2
    SOURCE = "googleapis-common-protos"
except ImportError:
    from derma._googleapis.google.rpc import code_pb2, error_details_pb2, status_pb2
    SOURCE = "derma"

__all__ = ["code_pb2", "error_details_pb2", "status_pb2", "SOURCE"]
