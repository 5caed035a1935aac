"""One ``grok run --backend slurm`` in the foreground: its runs submitted as a job array, then followed.

The foreground only watches: Slurm is the queue, the workers write the run directories. Every
RECONCILE_S it asks Slurm about runs whose worker is not alive (:func:`slurm.reconcile`), so a job
cancelled while pending or killed by Slurm ends here too. Ctrl-C stops its runs as ``grok stop`` does; a
hang-up or a ``--detach`` leaves them to Slurm.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import runs
from . import slurm
from .local import signal_run
from .session import Mine
from .stopping import GRACE_S, Stopper

#: Seconds between two looks at Slurm (each is an squeue, or an sacct where accounting exists).
RECONCILE_S = 2.0


class SlurmSession:
    """The interface of session.Session that the foreground needs, for runs Slurm schedules."""

    def __init__(
        self,
        runs_dir: Path,
        opts: dict[str, Any],
        pack: int,
        log: Callable[[str], None],
        name: str = "grok",
    ) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.opts, self.pack, self.log, self.name = opts, pack, log, name
        self.mine: dict[Path, Mine] = {}
        self.stopper = Stopper()
        self._looked = 0.0
        self.note = ""

    def submit(self, paths: list[Path], device: str | None = None) -> None:
        todo = [runs.RunDir(Path(p).resolve()) for p in paths]
        self.mine = {r.path: Mine(r, action="queued") for r in todo}
        array, tasks = slurm.submit(self.runs_dir, todo, self.opts, self.pack, device, self.name)
        self.note = f"submitted {len(todo)} run(s) to Slurm: job array {array} ({tasks} task(s))"

    def submitted_note(self) -> str:
        return self.note

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._looked >= RECONCILE_S:
            self._looked = now
            for line in slurm.reconcile([m.run for m in self.mine.values() if not self.finished(m)]):
                self.log(line)
        self.stopper.escalate(lambda path: signal_run(self.mine[path].run, signal.SIGKILL))

    def finished(self, m: Mine) -> bool:
        """Its status.json has its final state: written by its worker, or by the reconcile from Slurm's
        word (not inferred from a lock this machine may not see)."""
        return not m.run.alive() and m.run.raw_status().get("state") not in runs.ACTIVE_STATES

    def done(self) -> bool:
        return all(self.finished(m) for m in self.mine.values())

    def unfinished(self) -> list[Mine]:
        return [m for m in self.mine.values() if m.run.status().get("state") != "done"]

    def interrupt(self, grace: float = GRACE_S) -> None:
        """Ctrl-C: every unfinished run is stopped (a pending one leaves the queue, a running one
        checkpoints); the job is cancelled outright once ``grace`` is over."""
        for m in self.mine.values():
            if not self.finished(m):
                self.stopper.request(m.run.path, lambda m=m: signal_run(m.run, signal.SIGTERM), grace)

    def kill(self) -> None:
        for m in self.mine.values():
            if not self.finished(m):
                self.stopper.kill_now(m.run.path, lambda m=m: signal_run(m.run, signal.SIGKILL))

    def close(self) -> None:
        """Nothing to hand over: Slurm keeps every job this session submitted."""
