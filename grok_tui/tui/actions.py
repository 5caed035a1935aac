"""Steering from the TUI: launch, stop, resume. The one place the TUI starts or signals processes.

Everything goes through the ``grok`` CLI (``python -m grok_tui ...``) or the worker, spawned detached
(TUI.md §4.5): own session, stdin from /dev/null, output to a file and never a pipe, so a run
survives the TUI quitting, the terminal closing and SSH dropping. Swap the argv builders below when
the launcher's interface changes; the screens only call these functions.
"""

from __future__ import annotations

import os
import signal
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
    only = [a for e in experiments for a in ("--only", e)]
    return grok_argv("run", str(config), *only, "--runs-dir", str(runs_dir))


def resume_argv(run_dir: Path) -> list[str]:
    # The worker resumes from checkpoints/resume.pt by itself (grok_tui.worker).
    return [sys.executable, "-m", "grok_tui.worker", str(run_dir)]


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
    """Run the named experiments of ``config`` (``grok run FILE --only NAME...``), detached."""
    if config is None:
        raise ActionError("no experiments file: start grok-tui with FILE to launch experiments")
    if not experiments:
        raise ActionError("nothing selected to launch")
    runs_dir.mkdir(parents=True, exist_ok=True)
    return spawn_detached(
        launch_argv(config, experiments, runs_dir), runs_dir / LAUNCH_LOG, cwd=config.parent
    )


def resume(run_dir: Path) -> int:
    """Continue a stopped or failed run from its last checkpoint, detached."""
    if runs.lock_held(run_dir):
        raise ActionError(f"{runs.RunDir(run_dir).run_id}: already running")
    if not (run_dir / runs.SPEC).exists():
        raise ActionError(f"{run_dir}: not a run directory (no {runs.SPEC})")
    return spawn_detached(resume_argv(run_dir), run_dir / runs.LOG)


def stop(run_dir: Path, sig: int = signal.SIGTERM) -> int:
    """SIGTERM the run's worker (it checkpoints and exits ``stopped``); returns the signalled id.

    Only while the run's lock is held (the worker is alive, so the pid in status.json is not a
    recycled one). The whole process group is signalled when the worker leads it; a worker that
    shares a group with its launcher gets the signal alone, so stopping one run never stops others.
    """
    rid = runs.RunDir(run_dir).run_id
    if not runs.lock_held(run_dir):
        raise ActionError(f"{rid}: not running (no live worker holds its lock)")
    st = runs.read_json(run_dir / runs.STATUS) or {}
    pid, pgid = st.get("pid"), st.get("pgid")
    if not isinstance(pid, int) or pid <= 1:
        raise ActionError(f"{rid}: status.json has no usable pid")
    try:
        if isinstance(pgid, int) and pgid == pid and pgid != os.getpgid(0):
            os.killpg(pgid, sig)
            return pgid
        os.kill(pid, sig)
        return pid
    except ProcessLookupError:
        raise ActionError(f"{rid}: worker {pid} is gone") from None
    except PermissionError:
        raise ActionError(f"{rid}: not allowed to signal worker {pid}") from None
