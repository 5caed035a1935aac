"""GPU/CPU slots and the queue: exactly one scheduler per runs directory starts every worker.

Why one: two schedulers would each count only their own workers and could start the same run twice. The
role is a flock on ``<runs_dir>/.grok/.lock`` held for the scheduler's life (liveness without pids, as for
workers). The process holding it may be a foreground ``grok run`` or the detached daemon
``python -m grok_tui.launch.daemon RUNS_DIR`` that ``grok run --detach`` starts (``daemon.py``).

The queue lives on disk: a queued run is a run directory whose status.json says ``queued``. Other
processes talk to the scheduler through ``.grok/inbox/`` (``inbox.py``): one JSON file per request (``queue``
a run, ``stop`` a run), answered by an ``.ack`` file when asked. A new scheduler adopts what it finds: queued
run directories (the queue of one that died or was killed: every command that schedules takes the role when
it is free, so an orphaned queue is drained by the next ``grok run``, ``grok resume`` or launch from the app)
and live workers it did not start (they keep their slots).

Packs (``Slots.pack`` above 1, or "auto"): when a slot is free, the first startable queued run takes the
other startable queued runs with its packing.pack_key (same slot need and device) up to the pack size, and
they start as one packed worker holding one slot. Each member keeps its own ``Active`` entry (sharing the
one Worker) and ends on its own; a member is stopped through its ``stop.request`` (a signal would stop the
pack), and SIGKILL, when the grace is over, kills the whole pack (the others stay resumable). A run that
starts alone while packing is on gets one log line saying why.

Hand-over without losing requests: a scheduler gives up the role by releasing the lock and *then* looking
at the inbox once more; a requester writes its request *before* trying the lock. So a request is always
seen by the old scheduler (which takes the role back) or by the requester/new scheduler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import packing, recorder, runs, transfer
from ..exitcodes import BUSY as EXIT_BUSY
from . import inbox, memory
from .base import Launcher, Slot, Worker
from .local import (
    LOCAL,
    LinkRefused,
    LocalLauncher,
    clear_stop_request,
    describe_exit,
    effective_device,
    live_pack,
    signal_run,
)
from .slots import AUTO, Slots
from .slurm import held_line
from .stopping import GRACE_S, Stopper

POLL_S = 0.25


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _device(value: Any) -> str | None:
    """A device override from a request or status.json: a string, else none (a damaged file's value)."""
    return value if isinstance(value, str) and value else None


@dataclass
class Queued:
    run: runs.RunDir
    device: str | None
    need: str  # "cpu", "gpu" (any) or "gpu:<id>"
    #: Its spec.json, read when first needed (the init_from source it may wait for).
    spec: dict[str, Any] | None = None
    #: Whether the scheduler log already says what it waits for.
    waiting: bool = False


@dataclass
class Active:
    run: runs.RunDir
    worker: Worker
    slot: Slot
    #: The pack id when ``worker`` trains other runs too (their entries share the one Worker), else None.
    pack: str | None = None


@dataclass
class Scheduler:
    """The one process allowed to start workers in ``runs_dir``; build it with ``Scheduler.acquire``."""

    runs_dir: Path
    slots: Slots
    launcher: Launcher
    #: Where this scheduler's messages go besides the scheduler log (a foreground terminal).
    echo: Callable[[str], None]
    _lock: contextlib.ExitStack
    queue: list[Queued] = field(default_factory=list)
    active: dict[Path, Active] = field(default_factory=dict)
    #: Stops in progress of the workers in ``active`` (SIGTERM sent, SIGKILL due after the grace).
    stopper: Stopper = field(default_factory=Stopper)
    #: Live workers this scheduler did not start (slot key each): they keep their slots until they end.
    foreign: dict[Path, str] = field(default_factory=dict)
    #: Final state of every run this scheduler saw end.
    outcomes: dict[Path, str] = field(default_factory=dict)
    #: Queued runs found on disk when the role was taken (another scheduler's queue, or a crash's).
    adopted: list[runs.RunDir] = field(default_factory=list)
    #: Free bytes for a pack on a slot and where the figure comes from (``pack = "auto"``).
    free_memory: Callable[[Slot], tuple[int | None, str]] = memory.free_bytes
    #: The size ``pack = "auto"`` last chose per (slot, pack key): said once in the log, again if it changes.
    _auto_sizes: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Packs SIGKILLed because a member outlived its stop's grace (said once per pack).
    _packs_killed: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------ role
    @classmethod
    def acquire(
        cls,
        runs_dir: Path,
        slots: Slots,
        launcher: Launcher | None = None,
        log: Callable[[str], None] | None = None,
    ) -> Scheduler | None:
        """Take the scheduler role for ``runs_dir`` (None when another process holds it) and adopt the
        queue and live workers left on disk. ``log`` also gets every line the scheduler log gets."""
        runs_dir = Path(runs_dir).resolve()
        sd = inbox.state_dir(runs_dir)
        sd.mkdir(parents=True, exist_ok=True)
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(runs.hold_lock(sd))
        except BlockingIOError:
            return None
        info = {
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "host": socket.gethostname(),
            "started": time.time(),
            "argv": sys.argv,
            **slots.as_dict(),
        }
        recorder.write_json_atomic(sd / inbox.INFO, info)
        sched = cls(runs_dir, slots, launcher or LocalLauncher(), log or (lambda m: None), stack)
        sched._adopt()
        inbox.drop_stale_acks(runs_dir)
        return sched

    def log(self, message: str) -> None:
        """One line in the scheduler log (``grok logs --scheduler``), and to ``echo``."""
        inbox.log_line(self.runs_dir, message)
        self.echo(message)

    def release(self) -> None:
        """Give up the role (info first, so a successor's info is never deleted). Workers keep running."""
        with contextlib.suppress(OSError):
            (inbox.state_dir(self.runs_dir) / inbox.INFO).unlink()
        self._lock.close()

    def _adopt(self) -> None:
        queued: list[tuple[float, runs.RunDir]] = []
        for run in runs.list_runs(self.runs_dir):
            st = run.raw_status()
            if run.alive():
                if st.get("backend") != runs.SLURM:  # a Slurm job holds no slot of this machine
                    self.foreign[run.path] = self._slot_key_of(st)
            elif st.get("state") == "queued" and st.get("backend") != runs.SLURM:  # Slurm is its queue
                queued.append((runs.finite(st.get("queued")) or 0.0, run))  # oldest first
        for _, run in sorted(queued, key=lambda x: x[0]):
            request = run.raw_status().get("request")
            device = _device(request.get("device") if isinstance(request, dict) else None)
            try:
                self.queue.append(Queued(run, device, self._need(run, device)))
            except ValueError as e:
                self._fail(run, str(e))
        self.adopted = [run for _, run in queued]

    def _slot_key_of(self, status: dict[str, Any]) -> str:
        gpu = status.get("gpu")
        return f"gpu:{gpu}" if isinstance(gpu, str) and gpu in self.slots.gpus else "cpu"

    # ------------------------------------------------------------------ requests
    def _need(self, run: runs.RunDir, device: str | None) -> str:
        """The slot kind the run needs; ValueError (the run's one-line failure) for a device that is
        not one, or a GPU this scheduler does not hand out."""
        from ..config import valid_device

        dev = effective_device(run, device)
        if not valid_device(dev):
            raise ValueError(
                f"{run.run_id}: device {dev!r} in its spec.json is not auto, cpu, cuda or cuda:N"
            )
        if dev == "cpu" or not self.slots.gpus:
            return "cpu"
        if dev.startswith("cuda:"):
            gpu = dev.split(":", 1)[1]
            if gpu not in self.slots.gpus:
                raise ValueError(
                    f"{run.run_id}: asks for device {dev} but this scheduler hands out GPU "
                    f"{','.join(self.slots.gpus)} (see --gpus)"
                )
            return f"gpu:{gpu}"
        return "gpu"

    def submit(self, path: Path, device: str | None = None) -> tuple[str, str]:
        """Queue the run at ``path`` unless it is live, queued or done. Returns (action, message) with
        action one of queued, live, done, error."""
        run = runs.RunDir(Path(path).resolve())
        rid = run.run_id
        if not (run.path / runs.SPEC).exists():
            return "error", f"{run.path}: not a run directory (no {runs.SPEC})"
        self._settle(run)
        if run.path in self.active or run.path in self.foreign or run.alive():
            return "live", f"{rid}: already has a live worker"
        if line := held_line(run):
            return "live", line
        if any(q.run.path == run.path for q in self.queue):
            return "queued", f"{rid}: already queued"
        if line := runs.untrainable(run.spec(), rid):
            return "error", line
        if run.status().get("state") == "done":
            return "done", f"{rid}: already done (use --force to rerun)"
        try:
            need = self._need(run, device)
        except ValueError as e:
            self._fail(run, str(e))
            return "error", str(e)
        recorder.update_status(
            run.path,
            **recorder.queued_fields(device, time.time()),
            **LOCAL,  # queued here, even if Slurm ran it before
        )
        self.queue.append(Queued(run, device, need))
        return "queued", ""

    def _settle(self, run: runs.RunDir) -> None:
        """Forget a worker of ``run`` that has said its last word (final state written, lock released)
        but is still exiting, so a request that follows its end (stop, then resume) is not mistaken
        for a request about a live run."""
        if run.path in self.foreign and not run.alive():
            del self.foreign[run.path]
        a = self.active.get(run.path)
        if a is None or run.alive() or run.raw_status().get("state") in runs.ACTIVE_STATES:
            return
        deadline = time.monotonic() + 10
        # A pack member's entry goes as soon as it has ended: the pack process trains the others on.
        while a.pack is None and a.worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        self._reap()

    def stop(self, path: Path, grace: float = GRACE_S) -> bool:
        """Stop a run: dequeue it (state stopped), or SIGTERM its worker and SIGKILL it after ``grace``."""
        path = Path(path).resolve()
        now = time.time()
        if path in self.active:
            a = self.active[path]
            if a.pack is not None:  # a signal would stop every member: ask the pack to stop this one
                self.stopper.request(path, lambda: self._request_stop(path), grace)
            else:
                self.stopper.request(path, lambda: a.worker.signal(signal.SIGTERM), grace)
            return True
        for q in self.queue:
            if q.run.path == path:
                self.queue.remove(q)
                recorder.update_status(path, state="stopped", ended=now)
                self.outcomes[path] = "stopped"
                return True
        run = runs.RunDir(path)
        if run.alive():  # someone else's worker: signal it the same way `grok stop` does
            return signal_run(run, signal.SIGTERM) is not None
        if run.raw_status().get("state") == "queued":
            recorder.update_status(path, state="stopped", ended=now)
            return True
        return False

    @staticmethod
    def _request_stop(path: Path) -> None:
        with contextlib.suppress(OSError):  # gone meanwhile: the reap says how it ended
            recorder.request_stop(path)

    def _fail(self, run: runs.RunDir, error: str) -> None:
        recorder.update_status(run.path, state="failed", ended=time.time(), error=error)
        self.outcomes[run.path] = "failed"

    # ------------------------------------------------------------------ the loop
    def busy(self, paths: Iterable[Path] | None = None) -> bool:
        """Whether any run (of ``paths``, or any at all) is still queued or running under this scheduler."""
        if paths is None:
            return bool(self.queue or self.active)
        ps = set(paths)
        return any(q.run.path in ps for q in self.queue) or any(p in ps for p in self.active)

    def step(self) -> None:
        """One poll: read requests, reap ended workers, enforce stop deadlines, start what fits."""
        self._read_inbox()  # first: a stop request explains a worker that is found dead below
        self._reap()
        self._kill_overdue()
        for path in [p for p in self.foreign if not runs.lock_held(p)]:
            del self.foreign[path]
        self._start_queued()

    def _read_inbox(self) -> None:
        for path in inbox.pending(self.runs_dir):
            req = runs.read_json(path)
            answer: tuple[str, str] = ("error", "unreadable request")
            if req is not None:
                op, target = req.get("op"), Path(str(req.get("path")))
                if op == "queue":
                    answer = self.submit(target, _device(req.get("device")))
                    if answer[0] == "error":
                        self.log(answer[1])
                elif op == "stop":
                    grace = req.get("grace")
                    stopped = self.stop(target, float(grace) if isinstance(grace, (int, float)) else GRACE_S)
                    answer = ("stopping" if stopped else "idle", "")
                else:
                    answer = ("error", f"unknown request {op!r}")
                if req.get("ack"):
                    inbox.answer(path, *answer)
            with contextlib.suppress(OSError):
                path.unlink()

    def _reap(self) -> None:
        for path, a in list(self.active.items()):
            rc = a.worker.poll()
            if rc is None:
                if a.pack is not None and self._member_ended(a):  # the pack trains the others on
                    del self.active[path]
                    self._ended(path, a, None)
                continue
            del self.active[path]
            if (rc == EXIT_BUSY and a.pack is None) or (a.pack is not None and a.run.alive()):
                # another worker won the run's lock: it was not started twice
                self.log(f"{a.run.run_id}: another worker holds it; not started twice")
                if a.run.alive():
                    self.foreign[path] = a.slot.key
                continue
            self._ended(path, a, rc)

    @staticmethod
    def _member_ended(a: Active) -> bool:
        """Whether a pack member has said its last word (final state written, then its lock released)."""
        return not a.run.alive() and a.run.raw_status().get("state") not in runs.ACTIVE_STATES

    def _ended(self, path: Path, a: Active, rc: int | None) -> None:
        """Record how ``a``'s run ended (``rc``: its worker's exit code, None while a pack lives on)."""
        st = a.run.raw_status()
        state = st.get("state")
        stopping = path in self.stopper
        self.stopper.forget(path)
        if rc is not None and state in ("queued", "running"):  # it died without its last word
            if stopping:
                state, error = "stopped", None if rc == 0 else describe_exit(rc)
            else:
                state, error = "failed", describe_exit(rc)
            recorder.update_status(path, state=state, ended=time.time(), returncode=rc, error=error)
        if a.pack is not None:  # a stop asked as the member ended (by `grok stop` and by us) is void
            clear_stop_request(path)
        self.outcomes[path] = str(state)
        err = runs.RunDir(path).raw_status().get("error")
        self.log(f"{a.run.run_id}: {state}" + (f": {err}" if state == "failed" and err else ""))

    def _free_slot(self, q: Queued, usage: Counter[str]) -> Slot | None:
        if q.need == "cpu":
            return Slot(None) if usage["cpu"] < self.slots.cpu else None
        if q.need.startswith("gpu:"):
            gpu = q.need[4:]
            return Slot(gpu) if usage[q.need] < self.slots.per_gpu else None
        load, _, gpu = min((usage[f"gpu:{g}"], i, g) for i, g in enumerate(self.slots.gpus))
        return Slot(gpu) if load < self.slots.per_gpu else None

    def _usage(self) -> Counter[str]:
        """Workers per slot key: a pack is one worker however many members it has (ours or foreign)."""
        workers = {id(a.worker): a.slot.key for a in self.active.values()}
        foreign = {live_pack(runs.RunDir(p).raw_status()) or p: key for p, key in self.foreign.items()}
        return Counter([*workers.values(), *foreign.values()])

    def _start_queued(self) -> None:
        usage = self._usage()
        polled = list(self.queue)  # what a run started solo is compared with, to say why
        for q in polled:
            if not any(x is q for x in self.queue):  # gone into a pack already, or failed
                continue
            if not self._source_ready(q):
                continue
            slot = self._free_slot(q, usage)
            if slot is None:
                continue  # a run that fits elsewhere may still start
            if not self._take(q):
                continue
            members = self._pack_for(q, slot, polled) if self.slots.packing else [q]
            if self._launch(members, slot):
                usage[slot.key] += 1

    def _take(self, q: Queued) -> bool:
        """Take ``q`` off the queue; whether it is still to be started (not stopped, no live worker)."""
        self.queue.remove(q)
        if q.run.raw_status().get("state") != "queued":
            return False  # stopped while it waited
        if q.run.alive():
            self.foreign[q.run.path] = self._slot_key_of(q.run.raw_status())
            return False
        return True

    def _launch(self, members: list[Queued], slot: Slot) -> bool:
        """Start ``members`` on ``slot``: one worker each alone, one packed worker for several."""
        ok = []
        for m in members:  # checked for each member, so one link does not cost the others their start
            if line := recorder.refusal(m.run.path):
                self.log(f"{m.run.run_id}: not started: {line}")
            else:
                ok.append(m)
        if not ok:
            return False
        first = ok[0]
        try:
            if len(ok) == 1:
                worker = self.launcher.start(first.run, slot, first.device, self.slots.threads)
            else:
                worker = self.launcher.start_pack([m.run for m in ok], slot, first.device, self.slots.threads)
        except LinkRefused as e:  # nothing may be written through the link: the log says why
            for m in ok:
                self.log(f"{m.run.run_id}: not started: {e}")
            return False
        except OSError as e:
            for m in ok:
                self._fail(m.run, f"could not start a worker: {e}")
                self.log(f"{m.run.run_id}: could not start a worker: {e}")
            return False
        pack = worker.pack if len(ok) > 1 else None
        for m in ok:
            self.active[m.run.path] = Active(m.run, worker, slot, pack)
            where = f"in pack {pack} ({len(ok)} runs, pid {worker.id})" if pack else f"(pid {worker.id})"
            self.log(f"{m.run.run_id}: started on {slot.describe()} {where}")
        return True

    # ------------------------------------------------------------------ packs
    def _pack_for(self, q: Queued, slot: Slot, polled: list[Queued]) -> list[Queued]:
        """``q`` and the startable queued runs that may share its pack (same packing.pack_key, slot
        need and device), up to the pack size; when there are none, one log line says why."""
        assert q.spec is not None  # read by _source_ready
        key, why = self._key(q.spec)
        if key is None:
            self.log(f"{q.run.run_id}: runs solo: {why}")
            return [q]
        size, why = self._pack_size(q.spec, key, slot)
        members = [q]
        for m in list(self.queue):
            if len(members) >= size:
                break
            if m.need != q.need or m.device != q.device:
                continue
            if m.spec is None:
                m.spec = m.run.spec()
            if self._key(m.spec)[0] != key or not self._source_ready(m) or not self._take(m):
                continue
            members.append(m)
        if len(members) == 1:
            self.log(f"{q.run.run_id}: runs solo: {why or self._alone(q, key, polled)}")
        return members

    @staticmethod
    def _key(spec: dict[str, Any]) -> tuple[str | None, str]:
        """The run's packing.pack_key, or None and why it never shares a pack."""
        try:
            if why := packing.solo_reason(spec):
                return None, why
            return packing.pack_key(spec), ""
        except (AttributeError, KeyError, TypeError, ValueError):
            return None, f"its {runs.SPEC} is damaged"

    def _pack_size(self, spec: dict[str, Any], key: str, slot: Slot) -> tuple[int, str]:
        """Members per pack on ``slot`` (``pack = "auto"``: packing.auto_size of its free memory, said in
        the log when it changes), and why a pack of one when it is."""
        if self.slots.pack != AUTO:
            return int(self.slots.pack), ""
        free, where = self.free_memory(slot)
        if free is None:
            return 1, f"pack = auto, but the free memory of the {slot.describe()} is unknown"
        size = packing.auto_size(spec, free)
        need = packing.member_bytes(spec)
        if self._auto_sizes.get((slot.key, key)) != size:
            self._auto_sizes[slot.key, key] = size
            cap = f", at most {packing.AUTO_MAX}" if size == packing.AUTO_MAX else ""
            self.log(
                f"pack = auto on {slot.describe()}: up to {size} runs per pack: {packing.AUTO_SHARE:g} × "
                f"{_size(free)} {where} over {_size(need)} per member{cap}"
            )
        if size > 1:
            return size, ""
        return 1, f"pack = auto fits one run in {_size(free)} {where}: {_size(need)} per member"

    def _alone(self, q: Queued, key: str, polled: list[Queued]) -> str:
        """Why no queued run joined ``q``'s pack, from the nearest of the runs queued at this poll."""
        best: tuple[int, Queued, list[str]] | None = None
        for m in polled:
            if m is q:
                continue
            try:
                spec = m.spec if m.spec is not None else m.run.spec()
                diffs = [] if self._key(spec)[0] == key else packing.differences(q.spec or {}, spec)
            except (AttributeError, KeyError, TypeError, ValueError):
                continue
            if best is None or len(diffs) < best[0]:
                best = (len(diffs), m, diffs)
        if best is None:
            return "no other run is queued"
        _, m, diffs = best
        rid = m.run.run_id
        if diffs:
            return f"no queued run shares its pack key (the nearest, {rid}, differs in {', '.join(diffs)})"
        if not any(x is m for x in self.queue):
            return f"the runs that share its pack key ({rid}, …) are in full packs already"
        if m.need != q.need or m.device != q.device:
            return f"{rid}, which shares its pack key, needs another device"
        return f"{rid}, which shares its pack key, cannot start yet (it waits for its init_from source)"

    def _source_ready(self, q: Queued) -> bool:
        """Whether ``q`` may start as far as its ``init_from`` source goes: it waits while the source is
        queued or running, and fails (leaving the queue) when the source can never serve it."""
        if q.spec is None:
            q.spec = q.run.spec()
        if transfer.source_id(q.spec) is None:
            return True
        try:
            verdict, why = transfer.readiness(q.run.path, q.spec)
        except (KeyError, TypeError, ValueError, AttributeError):
            verdict, why = "fail", f"{q.run.path / runs.SPEC}: init_from is damaged"
        if verdict == "ready":
            return True
        if verdict == "wait":
            if not q.waiting:
                q.waiting = True
                self.log(f"{q.run.run_id}: {why}")
            return False
        self.queue.remove(q)
        self._fail(q.run, why)
        self.log(f"{q.run.run_id}: failed: {why}")
        return False

    def shutdown(self, grace: float = GRACE_S) -> None:
        """Stop everything this scheduler owns (queued runs become stopped) and wait for the workers."""
        for q in list(self.queue):
            self.stop(q.run.path, grace)
        termed: set[int] = set()
        for path, a in list(self.active.items()):
            if a.pack is None:
                self.stop(path, grace)
            else:  # SIGTERM, once per pack: every member checkpoints and ends stopped
                self.stopper.request(path, lambda a=a: self._term_once(a.worker, termed), grace)
        while self.active:
            self._reap()
            self._kill_overdue()
            time.sleep(0.05)

    @staticmethod
    def _term_once(worker: Worker, termed: set[int]) -> None:
        if id(worker) not in termed:
            termed.add(id(worker))
            worker.signal(signal.SIGTERM)

    def _kill_overdue(self) -> None:
        """SIGKILL the workers still alive past their stop's grace period (the checkpoint is kept); for a
        pack member that is the whole pack, whose other members stay resumable from their checkpoints."""
        self.stopper.escalate(self._kill_for)

    def _kill_for(self, path: Path) -> None:
        a = self.active[path]
        if a.pack is not None and a.pack not in self._packs_killed:
            self._packs_killed.add(a.pack)
            others = [o.run.run_id for o in self.active.values() if o.worker is a.worker and o is not a]
            also = f"; its other members {', '.join(others)} were killed too and stay resumable"
            self.log(
                f"{a.run.run_id}: did not stop within its grace period: killed pack {a.pack} "
                f"(pid {a.worker.id}){also if others else ''}"
            )
        a.worker.signal(signal.SIGKILL)

    def kill(self, path: Path) -> bool:
        """SIGKILL the worker of ``path`` now (a second Ctrl-C); False if this scheduler did not start it."""
        a = self.active.get(Path(path).resolve())
        if a is None:
            return False
        self.stopper.kill_now(a.run.path, lambda: a.worker.signal(signal.SIGKILL))
        return True
