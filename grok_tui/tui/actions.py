"""Steering from the TUI: launch, stop, resume. The one place the TUI starts or signals processes.

Everything goes through the launcher's ``grok`` CLI (``python -m grok_tui run|resume|stop``), so the
queue, GPU slots and stop's grace period live in one place (grok_tui/launch). Each command is spawned
detached: own session, stdin from /dev/null, output to ``<runs>/tui-launch.log`` and
never a pipe, so nothing the TUI starts depends on the TUI (or the terminal) staying alive. The
screens only call these functions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from grok_tui import runs

LAUNCH_LOG = "tui-launch.log"

_children: list[subprocess.Popen] = []


class ActionError(RuntimeError):
    """A steering request that cannot be carried out; ``str()`` is the one line the user sees."""


def grok_argv(*args: str) -> list[str]:
    """The ``grok`` CLI as a subprocess argv, with the interpreter running the TUI."""
    return [sys.executable, "-m", "grok_tui", *args]


def launch_argv(config: Path, experiments: list[str], runs_dir: Path) -> list[str]:
    """``grok run FILE --only NAME... --runs-dir DIR --detach``: queue them; the scheduler drains."""
    only = [a for e in experiments for a in ("--only", e)]
    return grok_argv("run", str(config), *only, "--runs-dir", str(runs_dir), "--detach")


def resume_argv(run_ids: list[str], runs_dir: Path) -> list[str]:
    """``grok resume RUN... --runs-dir DIR --detach``: back into the queue from the last checkpoint."""
    return grok_argv("resume", *run_ids, "--runs-dir", str(runs_dir), "--detach")


def stop_argv(run_ids: list[str], runs_dir: Path) -> list[str]:
    """``grok stop RUN... --runs-dir DIR``: leave the queue or SIGTERM the worker (SIGKILL after a grace)."""
    return grok_argv("stop", *run_ids, "--runs-dir", str(runs_dir))


def spawn_detached(argv: list[str], log_path: Path, cwd: Path | None = None) -> int:
    """Start ``argv`` in its own session writing to ``log_path``; returns its pid (reaped by ``reap``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    _children.append(proc)
    return proc.pid


def reap() -> list[tuple[list[str], int]]:
    """Collect finished children (no zombies); returns (argv, returncode) of those that ended."""
    done = []
    for proc in list(_children):
        rc = proc.poll()
        if rc is not None:
            _children.remove(proc)
            done.append((list(proc.args), rc))
    return done


def launch(config: Path | None, experiments: list[str], runs_dir: Path) -> int:
    """Queue the named experiments of ``config`` with the launcher, detached; returns the pid."""
    if config is None:
        raise ActionError("no experiments file: start grok-tui with FILE to launch experiments")
    if not experiments:
        raise ActionError("nothing selected to launch")
    runs_dir.mkdir(parents=True, exist_ok=True)
    return spawn_detached(
        launch_argv(config.resolve(), experiments, runs_dir.resolve()),
        runs_dir / LAUNCH_LOG,
        cwd=config.parent,
    )


def resume(run_dirs: list[Path], runs_dir: Path) -> int:
    """Continue stopped or failed runs from their last checkpoint, through the launcher's queue."""
    if not run_dirs:
        raise ActionError("nothing selected to resume")
    for d in run_dirs:
        rid = runs.RunDir(d).run_id
        if runs.lock_held(d):
            raise ActionError(f"{rid}: already running")
        if not (d / runs.SPEC).exists():
            raise ActionError(f"{d}: not a run directory (no {runs.SPEC})")
    ids = [runs.RunDir(d).run_id for d in run_dirs]
    return spawn_detached(resume_argv(ids, runs_dir.resolve()), runs_dir / LAUNCH_LOG)


def stop(run_dirs: list[Path], runs_dir: Path) -> int:
    """Stop runs with ``grok stop`` (in the background: it waits for the checkpoint, SIGKILL after
    its grace period). Only runs with a live worker or a place in the queue qualify."""
    if not run_dirs:
        raise ActionError("nothing selected to stop")
    for d in run_dirs:
        rd = runs.RunDir(d)
        if not rd.alive() and rd.status().get("state") not in runs.ACTIVE_STATES:
            raise ActionError(f"{rd.run_id}: not running (no live worker holds its lock)")
    ids = [runs.RunDir(d).run_id for d in run_dirs]
    return spawn_detached(stop_argv(ids, runs_dir.resolve()), runs_dir / LAUNCH_LOG)
