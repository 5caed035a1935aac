"""Import hygiene (harlequin-style): the headless CLI and the package stay light, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = "from grok_tui.cli import app\ntry:\n    app({argv})\nexcept SystemExit:\n    pass"


@pytest.mark.parametrize(
    "body",
    ["import grok_tui", CLI.format(argv=["--help"]), CLI.format(argv=["validate", "experiments.toml"])],
    ids=["import grok_tui", "grok --help", "grok validate"],
)
def test_no_torch_no_textual(body: str) -> None:
    heavy = "','.join(m for m in ('torch', 'textual') if m in sys.modules)"
    probe = f"import sys\n{body}\nprint('LOADED=' + {heavy})"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "LOADED=", out.stdout[-500:]
