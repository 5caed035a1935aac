"""Test helpers: tiny specs that really train, and the real `grok` CLI run in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: A run that memorises by step ~60 and groks by step ~300 (seeds 0 and 1) on a 2-core CPU in seconds.
TINY_TOML = """
[defaults]
runs_dir = "runs"
device = "cpu"

[experiments.tiny]
task = "add"
p = 23
train_frac = 0.7
steps = {steps}
eval_every = 25
checkpoint_every = 100
model = {{ d_model = 32, heads = 4, d_mlp = 128 }}
optim = {{ lr = 1e-2, weight_decay = 1.0 }}
"""


#: A small RFM run (kernel ridge + AGOP): a few iterations take well under a second.
RFM_TOML = """
[defaults]
runs_dir = "runs"
device = "cpu"

[experiments.rfm-small]
task = "add"
p = {p}
train_frac = 0.8
steps = {steps}
checkpoint_every = {every}
model = {{ kind = "rfm", kernel = "gaussian" }}
"""


def grok(*args: str, cwd: Path | None = None, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would (``python -m grok_tui`` is the ``grok`` console script)."""
    # Output is piped, as in `grok ls | grep`: no COLUMNS, so tables take the width grok picks for a pipe.
    env = {**{k: v for k, v in os.environ.items() if k != "COLUMNS"}, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "grok_tui", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )


def wait_for(cond: Callable[[], Any], what: str = "condition", timeout: float = 10.0) -> Any:
    """Poll ``cond`` until it returns something truthy and return that: waits on other processes' effects
    with a deadline, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def processes_under(root: Path) -> list[tuple[int, str]]:
    """Live processes whose command line names a path under ``root`` (workers, schedulers, `grok`s)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if str(root) in cmd and not zombie:
            out.append((int(entry), cmd.strip()))
    return out


def end_leftovers(root: Path) -> None:
    """Whatever a test left running in the runs directory ``root``: its scheduler and its workers (also one
    still starting, before it holds its run's lock), by the paths in their command lines: only those
    processes. A test that starts `grok` on a tree with queued runs calls it: the command adopts them (a
    queue nobody serves is drained by the next command that schedules)."""
    import contextlib
    import signal

    root = Path(root).resolve()
    for _ in range(3):  # a scheduler killed mid-spawn may still have started one more worker
        left = processes_under(root)
        if not left:
            return
        for pid, _ in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def stop_queued_runs(root: Path) -> None:
    """Stop every queued run of the runs directory ``root`` (the fixtures hold one, add/seed3, queued with
    no scheduler): a command under test that schedules would adopt and train it, costing the suite its
    CPU for nothing that test asserts."""
    from grok_tui import recorder, runs

    for r in runs.list_runs(root):
        if r.raw_status().get("state") == "queued":
            recorder.update_status(r.path, state="stopped")


def like_a_terminal_job() -> None:
    """``preexec_fn`` for a command a test sends Ctrl-C (SIGINT) to: a shell gives its foreground jobs the
    default SIGINT, but a suite started in the background (``cmd &``, nohup) passes SIGINT on ignored,
    and Python keeps ignoring it (no KeyboardInterrupt ever)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_worker(run: Any) -> subprocess.Popen:
    """The worker on one run (a RunDir or its path) as the launcher starts it: one torch thread, its
    output appended to the run's worker.log."""
    run_dir = Path(getattr(run, "path", run))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(run_dir / "worker.log", "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "grok_tui.worker", str(run_dir)], stdout=log, stderr=log, env=env
    )
