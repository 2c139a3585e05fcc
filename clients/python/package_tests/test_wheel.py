"""The wheel as a lab installs it (ctest python_wheel).

Each venv is made with `/usr/bin/python3 -m venv --system-site-packages` (Debian's grpcio and
protobuf, nothing downloaded) and gets the wheel with `pip install --no-index`. Everything the
venv runs starts in a scratch folder outside the repository, without PYTHONPATH, so only the
installed package can be imported.

Environment (set by ctest): DERMA_WHEEL, DERMAD, DERMA_VERSION, DERMA_REPO.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

WHEEL = Path(os.environ["DERMA_WHEEL"])
DERMAD = os.environ["DERMAD"]
VERSION = os.environ["DERMA_VERSION"]
REPO = Path(os.environ["DERMA_REPO"])
EXAMPLES = REPO / "clients" / "python" / "examples"
GOOGLEAPIS = Path("/usr/share/gocode/src/github.com/gogo/googleapis")
RPC_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto", "google/rpc/code.proto")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without PYTHONPATH (nothing from the checkout can be imported)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DERMA_DERMAD")}
    return {**env, **extra}


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=clean_env(**env), capture_output=True,
                          text=True, timeout=240)


def check(command: list[str], cwd: Path, **env: str) -> str:
    result = run(command, cwd, **env)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def make_venv(folder: Path, *wheels: Path) -> Path:
    """A venv over Debian's site packages with the wheels installed; returns its python."""
    check(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(folder)], folder.parent)
    python = folder / "bin" / "python"
    check([str(python), "-m", "pip", "install", "--no-index", "--disable-pip-version-check",
           "-q", *map(str, wheels)], folder.parent)
    return python


def build_googleapis_stand_in(folder: Path) -> Path:
    """A wheel named googleapis-common-protos holding google/rpc/*_pb2.py (no google/__init__),
    as the real package lays them out: a stand-in, since no package index is reachable."""
    src = folder / "src"
    (src / "google" / "rpc").mkdir(parents=True)
    (src / "google" / "rpc" / "__init__.py").write_text("")
    check(["protoc", f"-I{GOOGLEAPIS}", f"--python_out={src}", *RPC_PROTOS], folder)
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "googleapis-common-protos"\nversion = "1.56.4"\n'
        '[tool.setuptools.packages.find]\ninclude = ["google.rpc"]\n')
    code = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    name = check([sys.executable, "-c", code, str(folder)], src).strip().splitlines()[-1]
    return folder / name


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wheel")


@pytest.fixture(scope="module")
def python(scratch: Path) -> Path:
    """A venv with only the derma wheel."""
    return make_venv(scratch / "venv", WHEEL)


def test_the_wheel_installs_only_the_derma_package():
    names = zipfile.ZipFile(WHEEL).namelist()
    assert names, "empty wheel"
    strays = [n for n in names if not (n.startswith("derma/") or
                                       n.startswith(f"derma-{VERSION}.dist-info/"))]
    assert strays == []  # in particular no google/ and no google/__init__.py
    for module in ("derma/v1/device_control_pb2.py", "derma/v1/device_control_pb2_grpc.py",
                   "derma/sim/v1/simulator_pb2.py", "derma/_googleapis/google/rpc/status_pb2.py",
                   "derma/testing/pytest_plugin.py", "derma/testing/default_fleet.textproto"):
        assert module in names
    metadata = zipfile.ZipFile(WHEEL).read(f"derma-{VERSION}.dist-info/METADATA").decode()
    assert f"Version: {VERSION}" in metadata
    assert re.search(r"^Requires-Dist: grpcio \(?>=1\.51\)?$", metadata, re.M)
    assert re.search(r"^Requires-Dist: protobuf \(?>=3\.20\)?$", metadata, re.M)
    entry_points = zipfile.ZipFile(WHEEL).read(f"derma-{VERSION}.dist-info/entry_points.txt")
    assert b"[pytest11]\nderma = derma.testing.pytest_plugin" in entry_points


def test_the_installed_package_imports_from_outside_the_repository(python: Path, scratch: Path):
    out = check([str(python), "-c",
                 "import derma, derma.rpc_protos, derma.testing, importlib.util\n"
                 "print(derma.__file__); print(derma.__version__)\n"
                 "print(derma.rpc_protos.SOURCE); print(importlib.util.find_spec('google.rpc'))"],
                scratch)
    file, version, source, google_rpc = out.split("\n")[:4]
    assert file.startswith(str(scratch / "venv"))
    assert version == VERSION
    assert source == "derma"          # no googleapis-common-protos here: derma's own copy
    assert google_rpc == "None"       # and it adds no google.rpc to the environment


def test_an_example_runs_against_dermad_from_the_installed_package(python: Path, scratch: Path):
    work = scratch / "example"
    work.mkdir()
    shutil.copy(EXAMPLES / "lab_protocol" / "protocol.py", work)
    server = subprocess.Popen(
        [DERMAD, f"--config={REPO / 'deploy' / 'fleet.textproto'}", "--listen=127.0.0.1:0",
         "--metrics_listen=", "--speed_factor=20", f"--state_dir={work / 'state'}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = re.search(r"port (\d+)", server.stdout.readline()).group(1)
        out = check([str(python), "protocol.py", f"--target=127.0.0.1:{port}"], work)
        assert re.search(r"COMPLETED, \d+ strokes", out), out
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0


def test_a_lab_pytest_file_passes_through_the_installed_plugin(python: Path, scratch: Path):
    work = scratch / "lab"
    shutil.copytree(EXAMPLES / "lab_protocol", work)
    # No -p option and no conftest: the plugin comes from the package's pytest11 entry point.
    out = check([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "--durations=0", "--durations-min=0"], work, DERMA_DERMAD=DERMAD)
    assert "3 passed" in out
    print(out)  # the per-test setup/teardown times, for the README's figures


def test_a_failing_test_carries_the_dermad_log(python: Path, scratch: Path):
    work = scratch / "failing"
    work.mkdir()
    (work / "test_fails.py").write_text(
        "def test_pen_2_is_a_stimulator(derma_client):\n"
        "    assert derma_client.device('pen-2').kind == 'MICROCURRENT'\n")
    result = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], work,
                 DERMA_DERMAD=DERMAD)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"-+ dermad log -+", result.stdout), result.stdout
    assert "dermad: serving 4 devices" in result.stdout


def test_a_missing_dermad_is_named_at_setup(python: Path, scratch: Path):
    work = scratch / "no-dermad"
    work.mkdir()
    (work / "test_any.py").write_text("def test_any(derma_station):\n    pass\n")
    result = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  "--derma-dermad=/nonexistent/dermad"], work)
    assert result.returncode == 1
    assert "the dermad argument names /nonexistent/dermad, which is not an executable file" \
        in result.stdout


@pytest.fixture(scope="module")
def googleapis_python(scratch: Path) -> Path:
    """A venv with a stand-in googleapis-common-protos and then the derma wheel."""
    stand_in = build_googleapis_stand_in(scratch / "googleapis")
    return make_venv(scratch / "venv-googleapis", stand_in, WHEEL)


@pytest.mark.parametrize("venv", ["derma only", "with googleapis-common-protos"])
def test_typed_errors_work_with_either_google_rpc(venv: str, python: Path,
                                                  googleapis_python: Path, scratch: Path):
    """A refused call's ErrorInfo and BadRequest are read through whichever google.rpc the
    package uses."""
    interpreter = python if venv == "derma only" else googleapis_python
    code = ("import derma, derma.errors as e\n"
            "from derma.testing import start_dermad\n"
            "with start_dermad() as station:\n"
            "    with station.client.lease('pen-1') as pen:\n"
            "        try: pen.configure(needle_depth_mm=7)\n"
            "        except e.SettingOutOfRange as error: print(error.violations)\n")
    out = check([str(interpreter), "-c", code], scratch, DERMA_DERMAD=DERMAD)
    assert "settings.microneedling.needle_depth_mm" in out


# Last in the file: it uninstalls derma from the googleapis venv.
def test_beside_googleapis_common_protos_derma_uses_its_google_rpc(googleapis_python: Path,
                                                                     scratch: Path):
    python = googleapis_python
    out = check([str(python), "-c",
                 "import google.rpc.status_pb2 as s, derma, derma.rpc_protos as r\n"
                 "print(r.SOURCE); print(r.status_pb2 is s); print(s.__file__)"], scratch)
    source, same, file = out.split("\n")[:3]
    assert source == "googleapis-common-protos"
    assert same == "True"
    assert file.startswith(str(scratch / "venv-googleapis"))
    # Uninstalling derma leaves the other package's google.rpc whole.
    check([str(python), "-m", "pip", "uninstall", "-y", "-q", "derma"], scratch)
    check([str(python), "-c", "import google.rpc.status_pb2, google.rpc.error_details_pb2"],
          scratch)
