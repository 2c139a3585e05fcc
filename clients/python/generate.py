#!/usr/bin/env python3
"""Generates the protobuf and gRPC modules of the `derma` Python package from proto/.

With `-I proto` and the output in clients/python/, protoc writes `derma/v1/*_pb2.py`,
`derma/sim/v1/*_pb2.py` and `derma/config/v1/*_pb2.py` inside the hand-written `derma` package,
so the generated imports (`from derma.v1 import device_pb2`) resolve to it. The error model's
`google/rpc/{status,error_details,code}_pb2.py` go to derma/_googleapis/google/rpc/: derma's
own copy, used only when the `google.rpc` of googleapis-common-protos is not installed (see
derma/rpc_protos.py), and never a top-level `google/` that would clash with that package.
Type stubs (`*_pb2.pyi`) come too. None of these files is committed (see .gitignore).

--out DIR writes the same tree under DIR instead of clients/python (the wheel build stages
the package there); --version V also writes derma/_version.py (`__version__ = "V"`), which
the CMake build passes from its project version, the one source of both.

Why the system `protoc` and `grpc_python_plugin` rather than `python3 -m grpc_tools.protoc`:
Debian 12's python3-grpc-tools (1.14) bundles protoc 3.5.1, which rejects the proto3
`optional` fields of derma/v1/device.proto ("Explicit 'optional' labels are disallowed").
The system protoc (protobuf-compiler, 3.21) understands them, and protobuf-compiler-grpc ships
gRPC's Python plugin as /usr/bin/grpc_python_plugin.

Usage: generate.py [--force] [--out DIR] [--version V] [--protoc PATH] [--plugin PATH]
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
# Where derma's copy of the google.rpc modules goes, relative to the output root.
VENDORED_RPC = Path("derma/_googleapis")
# Folders that hold generated files (and, in derma/, hand-written ones beside them); google/
# is where earlier versions wrote the google.rpc modules, cleaned so none is left behind.
GENERATED_DIRS = ("derma", "google")
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def derma_protos() -> list[str]:
    """Every .proto of the contract, relative to proto/."""
    return sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))


def expected_outputs(out: Path, protos: list[str]) -> list[Path]:
    outputs = []
    for rel in [*protos, *RPC_PROTOS]:
        root = out if rel in protos else out / VENDORED_RPC
        stem = root / rel.removesuffix(".proto")
        outputs += [Path(f"{stem}_pb2.py"), Path(f"{stem}_pb2.pyi")]
        if rel in protos:  # grpc_python_plugin writes one for every file, services or not
            outputs.append(Path(f"{stem}_pb2_grpc.py"))
    return outputs


def up_to_date(out: Path, protos: list[str]) -> bool:
    inputs = [PROTO_ROOT / rel for rel in protos] + [GOOGLEAPIS / rel for rel in RPC_PROTOS]
    newest_input = max(p.stat().st_mtime for p in [*inputs, Path(__file__)])
    outputs = expected_outputs(out, protos)
    return all(p.exists() and p.stat().st_mtime >= newest_input for p in outputs)


def remove_generated(out: Path) -> None:
    """Deletes earlier outputs, so a removed or renamed proto leaves no stale module."""
    for folder in GENERATED_DIRS:
        for path in (out / folder).rglob("*"):
            if path.is_file() and path.name.endswith(SUFFIXES):
                path.unlink()
    legacy = out / "google"
    if legacy.is_dir() and not any(p.is_file() for p in legacy.rglob("*")):
        shutil.rmtree(legacy)


def mark_packages(root: Path) -> None:
    """Makes every folder from root down to google/rpc a regular package (an empty
    __init__.py), so derma._googleapis.google.rpc imports the same way everywhere."""
    for folder in (root, root / "google", root / "google" / "rpc"):
        (folder / "__init__.py").touch()


def write_version(out: Path, version: str) -> None:
    """derma/_version.py, rewritten only when the version changed (its mtime stays)."""
    path = out / "derma" / "_version.py"
    text = f'"""Written by generate.py from the CMake project version."""\n__version__ = "{version}"\n'
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


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
    parser.add_argument("--out", type=Path, default=HERE,
                        help="root of the package tree to write into (default: clients/python)")
    parser.add_argument("--version", help="also write derma/_version.py with this version")
    args = parser.parse_args()
    if not args.protoc:
        sys.exit("generate.py: protoc not found (apt-get install protobuf-compiler)")
    if not args.plugin:
        sys.exit("generate.py: grpc_python_plugin not found (apt-get install protobuf-compiler-grpc)")
    if not GOOGLEAPIS.is_dir():
        sys.exit(f"generate.py: {GOOGLEAPIS} not found (apt-get install golang-github-gogo-googleapis-dev)")

    out_root: Path = args.out.resolve()
    (out_root / "derma").mkdir(parents=True, exist_ok=True)
    if args.version:
        write_version(out_root, args.version)
    protos = derma_protos()
    if not args.force and up_to_date(out_root, protos):
        return
    remove_generated(out_root)
    out = str(out_root)
    rpc_out = out_root / VENDORED_RPC
    rpc_out.mkdir(parents=True, exist_ok=True)
    run([args.protoc, f"-I{PROTO_ROOT}", f"--plugin=protoc-gen-grpc_python={args.plugin}",
         f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *protos])
    run([args.protoc, f"-I{GOOGLEAPIS}", f"--python_out={rpc_out}", f"--pyi_out={rpc_out}",
         *RPC_PROTOS])
    mark_packages(rpc_out)
    print(f"generate.py: {len(protos) + len(RPC_PROTOS)} protos -> {out_root}")


if __name__ == "__main__":
    main()
