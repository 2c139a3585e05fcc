"""The README's "Drive it from Python" snippet, run as pasted (from the repository root) against
a spawned dermad with the shipped fleet; only the port, the venv's folder and (when ctest says
where the build put it) the wheel's path differ."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parent.parent
REPO = CLIENT_DIR.parent.parent


def snippet() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Drive it from Python"):]
    return re.search(r"```\n(.*?)```", section, re.S).group(1)


def test_the_snippet_is_eleven_lines() -> None:
    assert len(snippet().splitlines()) == 11


def test_the_readme_snippet_runs_as_pasted(real_dermad, tmp_path) -> None:
    script = (snippet().replace("127.0.0.1:50051", real_dermad.target)
              .replace("~/derma-venv", str(tmp_path / "derma-venv")))
    if "DERMA_WHEEL" in os.environ:
        script = script.replace("build/python-dist/derma-*.whl", os.environ["DERMA_WHEEL"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()[-4:]  # after what pip prints
    assert lines[0].startswith("[('pen-1', 'IDLE'), ('pen-2', 'IDLE')")
    assert lines[1] == ("{'needle_depth_mm': 1.05, 'stroke_rate_hz': 120.0, "
                        "'session_limit_s': 1200.0}")
    assert lines[2] == ("[('settings.microneedling.needle_depth_mm', "
                        "'7 mm is outside 0–2.5 mm')]")
    assert lines[3].startswith("Ledger(strokes_delivered=") and "output_on_s=4.0" in lines[3]
