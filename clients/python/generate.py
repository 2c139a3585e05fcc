#!/usr/bin/env python3
"""Generates the protobuf and gRPC modules of the `derma` Python package from proto/.

With `-I proto` and the output in clients/python/, protoc writes `derma/v1/*_pb2.py`,
`derma/sim/v1/*_pb2.py` and `derma/config/v1/*_pb2.py` inside the hand-written `derma` package,
so the generated imports (`from derma.v1 import device_pb2`) resolve to it. The error model's
`google/rpc/{status,error_details,code}_pb2.py` go to clients/python/google/rpc/, a namespace
package portion beside Debian's `google.protobuf`. Type stubs (`*_pb2.pyi`) come too. None of
these files is committed (see .gitignore).

Why the system `protoc` and `grpc_python_plugin` rather than `python3 -m grpc_tools.protoc`:
Debian 12's python3-grpc-tools (1.14) bundles protoc 3.5.1, which rejects the proto3
`optional` fields of derma/v1/device.proto ("Explicit 'optional' labels are disallowed").
The system protoc (protobuf-compiler, 3.21) understands them, and protobuf-compiler-grpc ships
gRPC's Python plugin as /usr/bin/grpc_python_plugin.

Usage: generate.py [--force] [--protoc PATH] [--plugin PATH]
Nothing is done when every output is newer than every input (the protos and this script);
--force regenerates anyway. Exits non-zero, naming what is missing, when a tool is absent.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROTO_ROOT = REPO / "proto"
GOOGLEAPIS = Path("/usr/share/gocode/src/github.com/gogo/googleapis")
RPC_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto", "google/rpc/code.proto")
# Folders that hold generated files (and, in derma/, hand-written ones beside them).
GENERATED_DIRS = (HERE / "derma", HERE / "google")
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def derma_protos() -> list[str]:
    """Every .proto of the contract, relative to proto/."""
    return sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))


def expected_outputs(protos: list[str]) -> list[Path]:
    outputs = []
    for rel in [*protos, *RPC_PROTOS]:
        stem = HERE / rel.removesuffix(".proto")
        outputs += [Path(f"{stem}_pb2.py"), Path(f"{stem}_pb2.pyi")]
        if rel in protos:  # grpc_python_plugin writes one for every file, services or not
            outputs.append(Path(f"{stem}_pb2_grpc.py"))
    return outputs


def up_to_date(protos: list[str]) -> bool:
    inputs = [PROTO_ROOT / rel for rel in protos] + [GOOGLEAPIS / rel for rel in RPC_PROTOS]
    newest_input = max(p.stat().st_mtime for p in [*inputs, Path(__file__)])
    outputs = expected_outputs(protos)
    return all(p.exists() and p.stat().st_mtime >= newest_input for p in outputs)


def remove_generated() -> None:
    """Deletes earlier outputs, so a removed or renamed proto leaves no stale module."""
    for folder in GENERATED_DIRS:
        for path in folder.rglob("*"):
            if path.is_file() and path.name.endswith(SUFFIXES):
                path.unlink()


def run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"generate.py: {' '.join(command)} failed:\n{result.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="regenerate even when up to date")
    parser.add_argument("--protoc", default=shutil.which("protoc"), help="protoc (≥ 3.15)")
    parser.add_argument("--plugin", default=shutil.which("grpc_python_plugin"),
                        help="gRPC's Python protoc plugin")
    args = parser.parse_args()
    if not args.protoc:
        sys.exit("generate.py: protoc not found (apt-get install protobuf-compiler)")
    if not args.plugin:
        sys.exit("generate.py: grpc_python_plugin not found (apt-get install protobuf-compiler-grpc)")
    if not GOOGLEAPIS.is_dir():
        sys.exit(f"generate.py: {GOOGLEAPIS} not found (apt-get install golang-github-gogo-googleapis-dev)")

    protos = derma_protos()
    if not args.force and up_to_date(protos):
        return
    remove_generated()
    out = str(HERE)
    run([args.protoc, f"-I{PROTO_ROOT}", f"--plugin=protoc-gen-grpc_python={args.plugin}",
         f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *protos])
    run([args.protoc, f"-I{GOOGLEAPIS}", f"--python_out={out}", f"--pyi_out={out}", *RPC_PROTOS])
    print(f"generate.py: {len(protos) + len(RPC_PROTOS)} protos -> {HERE}")


if __name__ == "__main__":
    main()
