#!/usr/bin/env python3
"""Builds the `derma` wheel from a checkout, without touching the checkout or the network.

Steps: copy the package's hand-written files (pyproject.toml, README.md, derma/**/*.py and
data, never a generated module or a __pycache__) into STAGE; run generate.py --out STAGE
--version VERSION, which writes the protobuf/gRPC modules and derma/_version.py there; then
build the wheel with setuptools' PEP 517 backend in STAGE, straight from Debian's setuptools
and wheel (no pip, no build isolation, nothing downloaded). Prints the wheel's path.

Usage: build_wheel.py --version V --stage DIR --dist DIR
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
GENERATED_NAMES = ("_version.py",)
DATA_SUFFIXES = (".py", ".pyi", ".textproto", ".typed")


def hand_written(path: Path) -> bool:
    """True for a file of derma/ that belongs in the stage as it is."""
    rel = path.relative_to(HERE)
    if "__pycache__" in rel.parts or "_googleapis" in rel.parts:
        return False
    if path.name.endswith(GENERATED_SUFFIXES) or path.name in GENERATED_NAMES:
        return False
    return path.is_file() and path.name.endswith(DATA_SUFFIXES)


def stage_sources(stage: Path) -> None:
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(HERE / name, stage / name)
    for path in sorted((HERE / "derma").rglob("*")):
        if hand_written(path):
            target = stage / path.relative_to(HERE)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def build(stage: Path, dist: Path) -> Path:
    """Runs setuptools' build_wheel in the stage (in a child, so its cwd and sys.path are the
    stage's) and returns the wheel."""
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.glob("derma-*.whl"):
        old.unlink()
    code = ("import sys; from setuptools import build_meta; "
            "print(build_meta.build_wheel(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", code, str(dist)], cwd=stage,
                            capture_output=True, text=True,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    if result.returncode != 0:
        sys.exit(f"build_wheel.py: setuptools failed:\n{result.stdout}\n{result.stderr}")
    return dist / result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the package version (CMake's)")
    parser.add_argument("--stage", type=Path, required=True, help="scratch folder (replaced)")
    parser.add_argument("--dist", type=Path, required=True, help="where the wheel goes")
    args = parser.parse_args()
    stage = args.stage.resolve()
    stage_sources(stage)
    subprocess.run([sys.executable, str(HERE / "generate.py"), "--force", "--out", str(stage),
                    "--version", args.version], check=True, stdout=subprocess.DEVNULL)
    print(build(stage, args.dist.resolve()))


if __name__ == "__main__":
    main()
