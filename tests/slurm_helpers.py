"""A run directory as a Slurm run has it, for the tests of the readers (tests/test_slurm_view.py,
tests/test_tui_slurm.py): status.json as the launcher writes it at submission, and what the worker and
Slurm's reconcile add (no Slurm needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grok_tui import runs
from grok_tui.recorder import write_json_atomic


def slurmify(run_dir: Path, task: int = 4, **status: Any) -> Path:
    """Make ``run_dir``'s status.json that of a run submitted to Slurm as array task ``task`` of job 123;
    returns the job's output file (not created)."""
    output = run_dir.parent.parent / ".grok" / "slurm" / f"123_{task}.out"
    old = runs.read_json(run_dir / runs.STATUS) or {}
    slurm = {"job": f"123_{task}", "array": "123", "task": task, "output": str(output), "submitted": 1e9}
    write_json_atomic(
        run_dir / runs.STATUS, {**old, "backend": "slurm", "slurm": {**slurm, "pack": None}, **status}
    )
    return output
