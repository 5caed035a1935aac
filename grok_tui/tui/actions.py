"""Steering from the TUI: launch, stop, resume. The one place the TUI starts or signals processes.

Everything goes through the launcher's ``grok`` CLI (``python -m grok_tui run|resume|stop``), so the
queue, GPU slots and stop's grace period live in one place (grok_tui/launch). Each command is spawned
detached: own session, stdin from /dev/null, output appended to ``<runs>/tui-launch.log`` and
never a pipe, so nothing the TUI starts depends on the TUI (or the terminal) staying alive. What a
command did is read back when it ends (``reap``): its exit code and the lines it added to the log
after the header line written for it, so the TUI says what really happened ("queued 1 run(s)",
"already done"), not merely that something was started. The screens only call these functions.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from grok_tui import runs

LAUNCH_LOG = "tui-launch.log"
#: Starts the block of the shared log written by one command (the next header ends it).
HEADER = "--- "
#: Lines of `grok run`'s output meant for a terminal user, not worth a notification.
HINTS = ("follow with ",)
PREFIX = "grok: "


@dataclass
class _Child:
    proc: subprocess.Popen
    log: Path
    offset: int  # where its block of the log starts


@dataclass(frozen=True)
class Outcome:
    """A finished steering command: what it was, its exit code, and the lines it logged."""

    argv: list[str]
    pid: int
    returncode: int
    lines: list[str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def command(self) -> str:
        """The ``grok`` subcommand it ran (run, stop, resume)."""
        return self.argv[3] if len(self.argv) > 3 else " ".join(self.argv)

    def report(self, max_lines: int = 4) -> str:
        """The notification: the command's own lines (``grok: `` dropped), or its exit code."""
        said = [ln.removeprefix(PREFIX) for ln in self.lines if not ln.removeprefix(PREFIX).startswith(HINTS)]
        if len(said) > max_lines:
            said = [*said[: max_lines - 1], f"... ({len(said) - max_lines + 1} more lines in {LAUNCH_LOG})"]
        if not said:
            said = ["done" if self.ok else f"exited with code {self.returncode} (nothing logged)"]
        elif not self.ok:
            said.append(f"(exit code {self.returncode})")
        return "\n".join(said)


_children: list[_Child] = []


class ActionError(RuntimeError):
    """A steering request that cannot be carried out; ``str()`` is the one line the user sees."""


def grok_argv(*args: str) -> list[str]:
    """The ``grok`` CLI as a subprocess argv, with the interpreter running the TUI."""
    return [sys.executable, "-m", "grok_tui", *args]


def launch_argv(config: Path, experiments: list[str], runs_dir: Path, force: bool = False) -> list[str]:
    """``grok run FILE --only NAME... --runs-dir DIR --detach [--force]``: queue them; the scheduler
    drains the queue."""
    only = [a for e in experiments for a in ("--only", e)]
    extra = ["--force"] if force else []
    return grok_argv("run", str(config), *only, "--runs-dir", str(runs_dir), "--detach", *extra)


def resume_argv(run_ids: list[str], runs_dir: Path) -> list[str]:
    """``grok resume RUN... --runs-dir DIR --detach``: back into the queue from the last checkpoint."""
    return grok_argv("resume", *run_ids, "--runs-dir", str(runs_dir), "--detach")


def stop_argv(run_ids: list[str], runs_dir: Path) -> list[str]:
    """``grok stop RUN... --runs-dir DIR``: leave the queue or SIGTERM the worker (SIGKILL after a grace)."""
    return grok_argv("stop", *run_ids, "--runs-dir", str(runs_dir))


def spawn_detached(argv: list[str], log_path: Path, cwd: Path | None = None) -> int:
    """Start ``argv`` in its own session appending to ``log_path`` after a header line naming it;
    returns its pid (``reap`` reports how it ended)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"{HEADER}{stamp} {shlex.join(argv)}\n".encode())
        offset = log.tell()
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
    _children.append(_Child(proc, log_path, offset))
    return proc.pid


def _logged(child: _Child) -> list[str]:
    """The lines ``child`` added to the shared log: from its header to the next command's header."""
    try:
        with open(child.log, "rb") as f:
            f.seek(child.offset)
            text = f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        if line.startswith(HEADER):
            break
        if line.strip():
            out.append(line.rstrip())
    return out


def pending() -> int:
    """Steering commands still running."""
    return len(_children)


def reap() -> list[Outcome]:
    """Collect finished children (no zombies) and say how each ended."""
    done = []
    for child in list(_children):
        rc = child.proc.poll()
        if rc is not None:
            _children.remove(child)
            done.append(Outcome(list(child.proc.args), child.proc.pid, rc, _logged(child)))
    return done


def launch(config: Path | None, experiments: list[str], runs_dir: Path, force: bool = False) -> int:
    """Queue the named experiments of ``config`` with the launcher, detached; returns the pid.
    ``force`` starts finished runs over (``grok run --force``: their run directories are deleted)."""
    if config is None:
        raise ActionError("no experiments file: start grok-tui with FILE to launch experiments")
    if not experiments:
        raise ActionError("nothing selected to launch")
    runs_dir.mkdir(parents=True, exist_ok=True)
    return spawn_detached(
        launch_argv(config.resolve(), experiments, runs_dir.resolve(), force),
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
        if line := runs.untrainable(runs.RunDir(d).spec(), rid):
            raise ActionError(line)
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
