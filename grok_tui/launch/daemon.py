"""The detached scheduler: ``python -m grok_tui.launch.daemon RUNS_DIR``, started by ``grok run --detach``
(and by a foreground ``grok run`` that leaves runs behind). It drains the queue, then gives the role back."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import inbox
from .gpus import NO_GPU_WORDS, split_ids
from .scheduler import POLL_S, Scheduler
from .slots import Slots, pack_value

DAEMON_MODULE = "grok_tui.launch.daemon"


def spawn_daemon(runs_dir: Path, slots: Slots) -> subprocess.Popen:
    """Start a detached scheduler for ``runs_dir`` (own session, no terminal; its output, a crash's
    traceback included, goes to the scheduler log). It exits at once when another scheduler holds the
    role (that one then drains the inbox)."""
    sd = inbox.state_dir(runs_dir)
    sd.mkdir(parents=True, exist_ok=True)
    with open(sd / inbox.LOG, "ab", buffering=0) as log:
        return subprocess.Popen(
            [sys.executable, "-m", DAEMON_MODULE, str(Path(runs_dir).resolve()), *slots.args()],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=str(sd),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def serve(runs_dir: Path, slots: Slots, poll: float = POLL_S) -> int:
    """The daemon's loop: drain the queue, then hand the role back (see the scheduler's docstring)."""
    stop = {"asked": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["asked"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sched = Scheduler.acquire(runs_dir, slots)
    if sched is None:
        inbox.log_line(runs_dir, "another scheduler holds this runs directory; it takes the queued requests")
        return 0
    sched.log(f"scheduling {runs_dir} on {slots.describe()}")
    if sched.adopted:
        sched.log(f"adopted {len(sched.adopted)} queued run(s)")
    while True:
        try:
            sched.step()
        except Exception as e:  # a bug or a file nobody foresaw: say so and keep serving the others
            sched.log(f"scheduler error ({e.__class__.__name__}: {e}); carrying on")
        if stop["asked"]:
            sched.log("signalled: stopping every run of this scheduler")
            sched.shutdown()
            sched.release()
            return 0
        if not sched.busy():
            sched.release()
            if not inbox.pending(runs_dir):
                inbox.log_line(runs_dir, "queue empty: exiting")
                return 0
            again = Scheduler.acquire(runs_dir, slots)
            if again is None:
                return 0  # a new scheduler took the role and the requests
            sched = again
        time.sleep(poll)


def parse(argv: list[str] | None = None) -> tuple[Path, Slots]:
    """The runs directory and slots of the daemon's command line (what Slots.args writes)."""
    ap = argparse.ArgumentParser(prog=f"python -m {DAEMON_MODULE}", description=serve.__doc__)
    ap.add_argument("runs_dir", type=Path)
    ap.add_argument("--gpus", default="none", help="comma-separated GPU ids, or none")
    ap.add_argument("--per-gpu", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=1, help="CPU slots")
    ap.add_argument("--pack", type=_pack, default=1, help="runs per worker: N, or auto")
    a = ap.parse_args(argv)
    gpus = () if a.gpus.strip().lower() in NO_GPU_WORDS else split_ids(a.gpus)
    return a.runs_dir.resolve(), Slots(gpus, max(1, a.per_gpu), max(1, a.parallel), a.pack)


def main(argv: list[str] | None = None) -> int:
    return serve(*parse(argv))


def _pack(text: str) -> int | str:
    try:
        return pack_value(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


if __name__ == "__main__":
    sys.exit(main())
