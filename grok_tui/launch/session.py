"""One ``grok run`` / ``grok resume`` in the foreground: its runs, and the scheduler role while it holds it.

The session hands its runs to the scheduler of the runs directory: itself when the role is free (the
usual case), else the live scheduler through the inbox. Every poll it tries to take the role if nobody
holds it (the previous scheduler ended or died), so its runs never wait for a scheduler that is gone.
When its own runs are finished it leaves; runs it scheduled for others go to a detached successor.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import runs
from .daemon import spawn_daemon
from .inbox import pending, scheduler_info, send, take_ack
from .local import signal_run
from .scheduler import Scheduler
from .slots import Slots
from .stopping import GRACE_S, Stopper


@dataclass
class Mine:
    run: runs.RunDir
    rid: str | None = None  # inbox request id while unanswered
    action: str | None = None  # queued, live, done, error (None: not answered yet)
    message: str = ""


class Session:
    def __init__(self, runs_dir: Path, slots: Slots, log: Callable[[str], None]) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.slots = slots
        self.log = log
        self.sched: Scheduler | None = None
        self.mine: dict[Path, Mine] = {}
        #: Stops of these runs that go through another scheduler (a backstop if it does not act).
        self.stopper = Stopper()

    # ------------------------------------------------------------------ submit
    def submit(self, paths: list[Path], device: str | None = None) -> None:
        """Queue ``paths`` with the scheduler: this process's own when it can take the role, else the
        live one's (through the inbox)."""
        self.sched = Scheduler.acquire(self.runs_dir, self.slots, log=self.log)
        if self.sched is not None:
            self._note_adopted({Path(p).resolve() for p in paths})
        for p in paths:
            m = Mine(runs.RunDir(Path(p).resolve()))
            self.mine[m.run.path] = m
            if self.sched is not None:
                m.action, m.message = self.sched.submit(m.run.path, device)
                self._answered(m)
            else:
                m.rid = send(self.runs_dir, "queue", m.run.path, ack=True, device=device)

    def submitted_note(self) -> str:
        """What the foreground says once the runs are submitted: only when another scheduler took them."""
        if self.sched is not None:
            return ""
        info = scheduler_info(self.runs_dir) or {}
        return f"handed {len(self.mine)} run(s) to the scheduler already running here (pid {info.get('pid')})"

    def _note_adopted(self, own: set[Path]) -> None:
        assert self.sched is not None
        others = [r for r in self.sched.adopted if r.path not in own]
        if others:
            self.sched.log(f"also scheduling {len(others)} queued run(s) left by an earlier scheduler")

    def _answered(self, m: Mine) -> None:
        if m.action in ("live", "done", "error") and m.message:
            self.log(m.message)

    # ------------------------------------------------------------------ poll
    def tick(self) -> None:
        if self.sched is None:
            # The role is free (the live scheduler ended or died): take it, adopting the queue and inbox.
            self.sched = Scheduler.acquire(self.runs_dir, self.slots, log=self.log)
            if self.sched is not None:
                self.sched.log(f"the scheduler of {self.runs_dir} ended; this process took over")
                self._note_adopted(set())
        if self.sched is not None:
            self.sched.step()
        for m in self.mine.values():
            if m.rid is not None and (ack := take_ack(self.runs_dir, m.rid)) is not None:
                m.rid, m.action, m.message = None, str(ack.get("action")), str(ack.get("message") or "")
                self._answered(m)
        self.stopper.escalate(self._kill_unfinished)

    def _kill_unfinished(self, path: Path) -> None:
        m = self.mine[path]
        if not self.finished(m):
            signal_run(m.run, signal.SIGKILL)

    def finished(self, m: Mine) -> bool:
        if m.action is None:
            return False
        if m.action in ("done", "error"):
            return True
        if self.sched is not None and self.sched.busy([m.run.path]):
            return False
        return not m.run.alive() and m.run.status().get("state") not in runs.ACTIVE_STATES

    def done(self) -> bool:
        return all(self.finished(m) for m in self.mine.values())

    def unfinished(self) -> list[Mine]:
        """Runs of this session that did not end ``done`` (failed, or stopped by another command)."""
        return [m for m in self.mine.values() if m.action == "error" or m.run.status().get("state") != "done"]

    # ------------------------------------------------------------------ stop
    def interrupt(self, grace: float = GRACE_S) -> None:
        """Stop this session's runs (queued ones become stopped, workers checkpoint and exit)."""
        for m in self.mine.values():
            if self.finished(m):
                continue
            if self.sched is not None:
                self.sched.stop(m.run.path, grace)
            else:

                def term(m: Mine = m) -> None:
                    send(self.runs_dir, "stop", m.run.path, grace=grace)
                    signal_run(m.run, signal.SIGTERM)

                # the other scheduler kills after ``grace``; this is the backstop if it does not act
                self.stopper.request(m.run.path, term, grace + 5)

    def kill(self) -> None:
        """Second Ctrl-C: SIGKILL this session's workers now (their last checkpoint stays)."""
        for m in self.mine.values():
            if self.sched is None or not self.sched.kill(m.run.path):
                self.stopper.kill_now(m.run.path, lambda m=m: signal_run(m.run, signal.SIGKILL))

    # ------------------------------------------------------------------ leave
    def close(self) -> None:
        """Give up the scheduler role; runs still queued or running for others go to a detached successor."""
        if self.sched is None:
            return
        others = len(self.sched.queue) + len(self.sched.active)
        # A worker just started may not hold its run's lock yet; the successor must see it alive, or
        # it would start the run again (the worker's lock would still refuse the second one).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            a.worker.poll() is None
            and not a.run.alive()
            and a.run.raw_status().get("state") in runs.ACTIVE_STATES  # not a pack member that ended
            for a in self.sched.active.values()
        ):
            time.sleep(0.05)
        self.sched.release()
        self.sched = None
        if others or pending(self.runs_dir):
            proc = spawn_daemon(self.runs_dir, self.slots)
            self.log(f"handed {others} other run(s) to a detached scheduler (pid {proc.pid})")
