"""Starting workers on this machine: run directories prepared from specs, workers spawned detached.

A worker is started in its own session with stdin from /dev/null and output to ``worker.log`` (never a
pipe): it survives the launching terminal, an SSH hang-up and the TUI quitting (TUI.md §4.5).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .. import runs

# Keys whose change does not make an existing run a different experiment.
_IGNORED_SPEC_KEYS = {"version", "description"}


class LaunchError(RuntimeError):
    """A run that cannot be (re)started as asked; the message is one line naming the run."""


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = (set(old) | set(new)) - _IGNORED_SPEC_KEYS
    return sorted(k for k in keys if old.get(k) != new.get(k))


def prepare_run(spec: dict[str, Any], runs_dir: Path, force: bool = False) -> tuple[runs.RunDir, str]:
    """Create or reuse ``runs_dir/<experiment>/<name>``; returns (run, action) with action one of
    ``new`` (fresh), ``resume`` (stopped/failed/queued: continue), ``done`` (finished, skip), ``live``
    (a worker already owns it, skip). ``force`` discards an existing run that no worker owns."""
    run = runs.RunDir(Path(runs_dir) / spec["experiment"] / spec["name"])
    if (run.path / runs.SPEC).exists():
        if run.alive():
            return run, "live"
        old = run.spec()
        if force:
            shutil.rmtree(run.path)
        else:
            changed = spec_changes(old, spec)
            if changed:
                raise LaunchError(
                    f"{run.path}: spec.json differs from the experiments file in {', '.join(changed)}; "
                    "use --force to start this run over"
                )
            state = run.status().get("state")
            return run, "done" if state == "done" else "resume"
    run.path.mkdir(parents=True, exist_ok=True)
    runs.write_json_atomic(run.path / runs.SPEC, spec)
    runs.write_json_atomic(
        run.path / runs.STATUS, {"state": "queued", "step": 0, "total_steps": spec["steps"]}
    )
    return run, "new"


def worker_env(
    device: str | None = None, threads: int | None = None, gpu: str | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if device:
        env["GROK_DEVICE"] = device
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


def spawn_worker(run_dir: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m grok_tui.worker RUN_DIR`` detached from this process's terminal and session."""
    run_dir = Path(run_dir)
    with open(run_dir / runs.LOG, "ab", buffering=0) as log:
        return subprocess.Popen(
            [sys.executable, "-m", "grok_tui.worker", str(run_dir.resolve())],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env if env is not None else worker_env(),
        )
