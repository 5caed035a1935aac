"""The run directory: the one contract between the worker that writes a run and everything that reads it.

Layout of ``<runs_dir>/<experiment>/<run>/``:

- ``spec.json``      resolved run spec, written once by the launcher; immutable but for ``loaded_from``, which
  the worker of an ``init_from`` run adds before its first evaluation (source run, step, digest)
- ``status.json``    state + bookkeeping, replaced atomically by the worker (or launcher for ``queued``)
- ``metrics.jsonl``  one object per evaluation, append-only; readers skip a torn last line
- ``fourier.jsonl``  one object per evaluation: ``{"step", "freqs": [k...], "embed": [norm per k]}``
- ``progress.jsonl``  measures taken against the final model (restricted/excluded loss with the final key
  frequencies; RFM: alignment with the final feature matrix), one row per checkpoint; replaced whole
- ``checkpoints/step_NNNNNNN.npz``  weights + precomputed analysis, loadable with numpy alone
- ``checkpoints/resume.pt``          full training state for exact resume (torch); the state it replaced is
  kept as ``resume.prev.pt``, so a damaged one has a fallback (and is moved to ``resume.damaged.pt``)
- ``worker.log``     the worker's stdout/stderr (in Slurm too; the job's own output file, which status.json
  names as ``slurm.output``, keeps Slurm's lines and what the job printed before the worker started)
- ``.lock``          flock held by the live worker: liveness without pids
- ``stop.request``   asks the packed worker training this run to stop it alone (recorder.request_stop)

Readers never crash on a missing, half-written or older file; this module imports numpy at most. The
writer side (every function that writes into a run directory) is grok_tui/recorder.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC = "spec.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
FOURIER = "fourier.jsonl"
PROGRESS = "progress.jsonl"
LOG = "worker.log"
LOCK = ".lock"
#: A member of a pack stops (checkpoint, state stopped) when this file appears; the pack goes on.
STOP_REQUEST = "stop.request"
CKPT_DIR = "checkpoints"
RESUME = "resume.pt"
RESUME_PREV = "resume.prev.pt"
#: Per-runs-directory bookkeeping of the launcher (scheduler lock, inbox, log, staging); never a run.
STATE_DIR = ".grok"

STATES = ("queued", "running", "done", "failed", "stopped")
ACTIVE_STATES = ("queued", "running")
#: What a reader shows for a state it cannot know: status.json missing, unreadable or not one of STATES.
UNKNOWN = "unknown"
#: The label of a queued run whose runs directory has no live scheduler to start it.
NO_SCHEDULER = "queued (no scheduler)"
#: Accuracy a split must reach to count as fitted (train: memorised, test: grokked).
FIT_THRESHOLD = 0.99
VANISHED = "worker vanished"
#: ``backend`` of a run submitted to Slurm (a local run has no ``backend``, or "local").
SLURM = "slurm"
#: Longest word a reader takes from status.json for a job id, node, Slurm state or reason: anything
#: longer is damage, not a name.
MAX_WORD = 200
#: Longest path a reader takes from status.json (Linux's PATH_MAX).
PATH_MAX = 4096

_CKPT_RE = re.compile(r"^step_(\d+)\.npz$")


def ckpt_name(step: int) -> str:
    return f"step_{step:07d}.npz"


# --------------------------------------------------------------------------- reading


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when the file is missing, unreadable or not an object."""
    try:
        with open(path) as f:
            obj = json.load(f)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete rows with a valid step; a torn, corrupt or step-less line is skipped, never fatal."""
    return JsonlTail(path).read_new()


class LineTail:
    """Incremental reader of an append-only text file: the complete lines added since the last call.

    A torn last line waits for the next call. A replaced file (a resume rewrites metrics under a new
    inode) or a truncated one is read again from the start, and ``reset_seen`` tells the caller to drop
    what it had. ``start_back`` starts that many bytes before the end (a log's last lines), skipping the
    line the cut falls into.
    """

    def __init__(self, path: Path, start_back: int | None = None) -> None:
        self.path = Path(path)
        self.start_back = start_back
        self.offset: int | None = None
        self._buf = b""
        self._ino: int | None = None
        self._skip_first = False
        self.reset_seen = False

    def read_lines(self) -> list[bytes]:
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if not stat.S_ISREG(st.st_mode):  # a FIFO or a device (that status.json names) blocks or never ends
            return []
        if self.offset is None or st.st_ino != self._ino or st.st_size < self.offset:
            self.reset_seen = self.offset is not None
            self.offset = max(0, st.st_size - self.start_back) if self.start_back else 0
            self._buf, self._ino, self._skip_first = b"", st.st_ino, self.offset > 0
        if st.st_size == self.offset:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read(st.st_size - self.offset)
        except OSError:
            return []
        self.offset += len(chunk)
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        if self._skip_first and lines:
            lines, self._skip_first = lines[1:], False
        return lines

    def rest(self) -> bytes:
        """The torn last line waiting for its newline (a finished log may end without one)."""
        rest, self._buf = self._buf, b""
        return rest


#: Steps beyond this are not steps (a 400-digit integer is valid JSON, and no float holds it).
MAX_STEP = 2**63 - 1


def is_step(v: Any) -> bool:
    """A step is a non-negative int below 2**63 (JSON's true/false, 1e400 and a 400-digit int are not)."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_STEP


def finite(v: Any) -> float | None:
    """A finite number as float, else None (strings, bools, NaN, ±inf and ints too big for a float:
    unknown, never a wrong number)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            f = float(v)
        except OverflowError:
            return None
        return f if math.isfinite(f) else None
    return None


def fraction(v: Any) -> float | None:
    """An accuracy: a finite number in [0, 1], else None."""
    f = finite(v)
    return f if f is not None and 0.0 <= f <= 1.0 else None


class JsonlTail(LineTail):
    """A LineTail of rows: JSON objects with a valid ``step``. Anything else (a garbled line, a row without
    a step or with ``"step": "abc"``) is skipped and counted in ``skipped``, never fatal."""

    def __init__(self, path: Path, start_back: int | None = None) -> None:
        super().__init__(path, start_back)
        self.skipped = 0

    def read_new(self) -> list[dict[str, Any]]:
        out = []
        lines = self.read_lines()
        if self.reset_seen:  # the file was replaced: what it held before no longer counts
            self.skipped = 0
        for raw in lines:
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (ValueError, RecursionError):
                obj = None
            if isinstance(obj, dict):
                step = obj.get("step")
                if isinstance(step, float) and step.is_integer() and step >= 0:
                    obj["step"] = step = int(step)  # 100.0 from another writer is step 100
                if is_step(step):
                    out.append(obj)
                    continue
            self.skipped += 1
        return out


def untrainable(spec: dict[str, Any], run_id: str) -> str | None:
    """The one line refusing to train a run that `grok import` made (its spec.json says ``imported``):
    it holds a peer's weights and no training state, so nothing may resume, rerun or overwrite it."""
    imp = spec.get("imported")
    if imp is None:
        return None
    source = imp.get("source") if isinstance(imp, dict) else None
    return (
        f"run {run_id} was imported from {source or 'a peer file'} by `grok import`: it has no training "
        "state and is never trained (import it again with --force to replace it)"
    )


def lock_held(run_dir: Path) -> bool:
    """True while some process holds the run's flock, i.e. its worker is alive."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


#: Seconds a Slurm run's last RUNNING (seen by launch.slurm.reconcile) stands in for its lock.
SLURM_SEEN_S = 60.0


def slurm_running(status: dict[str, Any]) -> bool:
    """Whether Slurm said, within SLURM_SEEN_S, that a running run's job runs: its liveness where this host
    cannot see the worker's lock (a filesystem without cluster-wide flock). Never true of a local run."""
    seen = finite(status.get("slurm_seen"))
    return (
        status.get("backend") == "slurm"
        and status.get("slurm_state") == "RUNNING"
        and seen is not None
        and 0 <= time.time() - seen <= SLURM_SEEN_S
    )


def state_dir(runs_dir: Path | str) -> Path:
    return Path(runs_dir) / STATE_DIR


def scheduler_alive(runs_dir: Path | str) -> bool:
    """True while a scheduler holds the runs directory's role: queued runs there will be started."""
    return lock_held(state_dir(runs_dir))


@contextlib.contextmanager
def hold_lock(run_dir: Path) -> Iterator[int]:
    """Held by the worker for its whole life; raises BlockingIOError if another worker owns the run."""
    path = Path(run_dir) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield fd
    finally:
        os.close(fd)  # closing the last fd releases the flock


def symlinks(run_dir: Path | str) -> list[Path]:
    """Symbolic links where a run directory holds only plain files and directories: the run directory
    itself, its experiment directory, and every entry of the run directory and of ``checkpoints/``.

    Writers refuse a run that has any: through a link, resuming would write and delete files outside
    the runs directory. A linked runs directory itself is fine (a runs tree kept on another disk).
    """
    run_dir = Path(run_dir)
    found = [p for p in (run_dir.parent, run_dir) if p.is_symlink()]
    for d in (run_dir, run_dir / CKPT_DIR):
        if d.is_symlink():
            continue  # already named; never listed through
        try:
            with os.scandir(d) as it:
                found.extend(sorted(Path(e.path) for e in it if e.is_symlink()))
        except OSError:
            continue
    return found


# --------------------------------------------------------------------------- the run


def first_step_at(rows: list[dict[str, Any]], key: str, threshold: float = FIT_THRESHOLD) -> int | None:
    """Step of the first evaluation whose ``key`` reached ``threshold`` (memorised/grokked at)."""
    for row in rows:
        v = fraction(row.get(key))
        if v is not None and v >= threshold and is_step(row.get("step")):
            return int(row["step"])
    return None


def word(v: Any, longest: int = MAX_WORD) -> str | None:
    """A short printable string (a job id, node, state, reason), else None: a number, an object or a
    string with control characters in a damaged status.json reads as unknown, never garbles a table."""
    if not isinstance(v, str):
        return None
    v = v.strip()
    return v if v and len(v) <= longest and v.isprintable() else None


@dataclass(frozen=True)
class SlurmJob:
    """The Slurm job of a run, as status.json records it: ``slurm`` (written at submission),
    ``slurm_state``/``slurm_reason``/``slurm_seen`` (Slurm's word as last seen). A field a damaged file
    gets wrong is None."""

    #: Slurm's id of the array task (``123_4``): what squeue and scancel name.
    job: str | None = None
    array: str | None = None
    task: int | None = None
    #: The job's output file (the worker's stdout and stderr, and Slurm's own lines); absolute.
    output: Path | None = None
    submitted: float | None = None
    pack: str | None = None
    #: PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT, ... as Slurm said last.
    state: str | None = None
    #: Why Slurm keeps it pending ("Resources", "Priority").
    reason: str | None = None
    seen: float | None = None


def slurm_job(st: dict[str, Any]) -> SlurmJob | None:
    """The Slurm job of a run's status.json, or None for a local run. Read tolerantly: a ``slurm`` that
    is not an object, a job id that is a number, a relative output path all read as unknown fields."""
    if st.get("backend") != SLURM:
        return None
    sl = st.get("slurm")
    sl = sl if isinstance(sl, dict) else {}
    out = word(sl.get("output"), longest=PATH_MAX)
    task = sl.get("task")
    return SlurmJob(
        job=word(sl.get("job")),
        array=word(sl.get("array")),
        task=task if is_step(task) else None,
        # a relative path would be read against wherever the reader runs: not the job's file
        output=Path(out) if out and os.path.isabs(out) else None,
        submitted=finite(sl.get("submitted")),
        pack=word(sl.get("pack")),
        state=word(st.get("slurm_state")),
        reason=word(st.get("slurm_reason")),
        seen=finite(st.get("slurm_seen")),
    )


@dataclass
class RunSummary:
    """What `grok ls` prints and the TUI's table shows: one reader for both, every value validated
    (a value a damaged file gets wrong is None or "?", never a traceback or a wrong number)."""

    run_id: str
    path: Path
    experiment: str
    name: str
    #: One of STATES, or UNKNOWN.
    state: str
    step: int
    total_steps: int
    train_acc: float | None
    test_acc: float | None
    memorised_at: int | None
    grokked_at: int | None
    device: str
    error: str | None
    spec: dict[str, Any] = field(repr=False)
    #: Queued, but no scheduler holds the runs directory: nothing will start it until a command schedules.
    orphaned: bool = False
    #: Lines of metrics.jsonl that were not valid rows (garbled, or without a valid step).
    skipped_rows: int = 0
    #: "local" or SLURM.
    backend: str = "local"
    #: The machine (a Slurm run: the node) the worker runs or ran on, as it wrote it.
    host: str | None = None
    #: Why a run stopped or failed when it was not the user's stop ("time limit", "preempted").
    reason: str | None = None
    #: The Slurm job of a Slurm run (None for a local one).
    slurm: SlurmJob | None = None

    @property
    def job(self) -> str | None:
        """The Slurm job id, or None (a local run, or a status.json that lost it)."""
        return self.slurm.job if self.slurm else None


class RunDir:
    """Read-side view of one run directory. Cheap to construct; every accessor tolerates damage."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    # identity -------------------------------------------------------------
    @property
    def experiment(self) -> str:
        return self.path.parent.name

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def run_id(self) -> str:
        return f"{self.experiment}/{self.name}"

    # files ----------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return read_json(self.path / SPEC) or {}

    def raw_status(self) -> dict[str, Any]:
        return read_json(self.path / STATUS) or {}

    def status(self) -> dict[str, Any]:
        """status.json with liveness applied: 'running' without a held lock means the worker died.

        A Slurm run's worker holds the lock on its node; where this machine cannot see that node's flocks
        (NFS mounted with local locks, Lustre without flock) Slurm's recent RUNNING stands in for it
        (:func:`slurm_running`, kept fresh by ``grok_tui.launch.slurm.reconcile``)."""
        st = self.raw_status()
        if st.get("state") == "running" and not lock_held(self.path) and not slurm_running(st):
            # Re-read: the worker may have finished between the two reads.
            st = self.raw_status()
            if st.get("state") == "running":
                st = {**st, "state": "failed", "error": VANISHED}
        if st.get("state") not in STATES:
            # status.json lost, unreadable or garbled: the state cannot be known (a run directory is
            # created with its status, so a missing one is damage, not a queued run).
            st = {**st, "state": UNKNOWN}
        return st

    def alive(self) -> bool:
        return lock_held(self.path)

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / METRICS)

    def fourier(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / FOURIER)

    def progress(self) -> list[dict[str, Any]]:
        """Rows of progress.jsonl: restricted/excluded loss with the final key frequencies (transformers),
        or each iterate's alignment with the final feature matrix (RFM)."""
        return read_jsonl(self.path / PROGRESS)

    def checkpoint_steps(self) -> list[int]:
        try:
            names = os.listdir(self.path / CKPT_DIR)
        except OSError:
            return []
        return sorted(int(m.group(1)) for n in names if (m := _CKPT_RE.match(n)))

    def checkpoint_path(self, step: int) -> Path:
        return self.path / CKPT_DIR / ckpt_name(step)

    def log_path(self) -> Path:
        return self.path / LOG

    def job_output(self) -> Path | None:
        """A Slurm run's job output file: Slurm's own lines (the cancel, the time limit) and what the job
        printed before its worker took the run (a setup line that failed), or None (a local run)."""
        job = slurm_job(self.raw_status())
        return job.output if job and job.output else None

    def missing_log(self) -> str:
        """The one line saying the run has no output to print yet, naming the file (and the job)."""
        job = slurm_job(self.raw_status())
        if job is None:
            return f"{self.run_id} has no {LOG} yet"
        if job.output is None:
            return f"{self.run_id} has no {LOG}, nor an output file of Slurm job {job.job or '?'}"
        why = (
            "the job has not started, or this machine does not see the cluster's filesystem"
            if self.raw_status().get("state") == "queued"
            else "this machine does not see the cluster's filesystem, or the files were removed"
        )
        named = f"Slurm job {job.job or '?'}"
        return f"{self.run_id} has no {LOG} and no output file {job.output} of {named} ({why})"

    def summary(self, rows: list[dict[str, Any]] | None = None, skipped: int = 0) -> RunSummary:
        """The run at a glance; ``rows`` (valid metrics rows, default: all of them) decide the numbers."""
        spec = self.spec()
        st = self.status()
        if rows is None:
            tail = JsonlTail(self.path / METRICS)
            rows, skipped = tail.read_new(), tail.skipped
        last = rows[-1] if rows else {}
        state = str(st["state"])
        step = st.get("step") if is_step(st.get("step")) else last.get("step", 0)
        total = next((v for v in (st.get("total_steps"), spec.get("steps")) if is_step(v)), 0)
        device = next((v for v in (st.get("device"), spec.get("device")) if isinstance(v, str) and v), "?")
        error = st.get("error")
        slurm = slurm_job(st)
        return RunSummary(
            run_id=self.run_id,
            path=self.path,
            experiment=self.experiment,
            name=self.name,
            state=state,
            step=int(step),
            total_steps=int(total),
            train_acc=fraction(last.get("train_acc")),
            test_acc=fraction(last.get("test_acc")),
            memorised_at=first_step_at(rows, "train_acc"),
            grokked_at=first_step_at(rows, "test_acc"),
            device=device,
            error=error if isinstance(error, str) or error is None else str(error),
            spec=spec,
            # a worker holding the lock has taken the run over and will mark it running: not orphaned;
            # a Slurm run waits in Slurm's queue, not for a scheduler of this runs directory
            orphaned=state == "queued"
            and slurm is None
            and not scheduler_alive(self.path.parent.parent)
            and not self.alive(),
            skipped_rows=skipped,
            backend=SLURM if slurm else "local",
            host=word(st.get("host")),
            reason=word(st.get("reason")),
            slurm=slurm,
        )


def list_runs(runs_dir: Path | str) -> list[RunDir]:
    """Every run directory (one holding spec.json) two levels below ``runs_dir``, sorted by id."""
    root = Path(runs_dir)
    out = []
    try:
        experiments = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for exp in experiments:
        try:
            runs = sorted(p for p in exp.iterdir() if p.is_dir())
        except OSError:
            continue
        out.extend(RunDir(r) for r in runs if (r / SPEC).exists())
    return out


def find_run(runs_dir: Path | str, ref: str) -> RunDir:
    """Resolve ``experiment/run``, a unique run name, a unique experiment, or a path; else LookupError."""
    p = Path(ref)
    if (p / SPEC).exists():
        return RunDir(p)
    runs = list_runs(runs_dir)
    exact = [r for r in runs if r.run_id == ref]
    if exact:
        return exact[0]
    for key in (lambda r: r.name, lambda r: r.experiment):
        hits = [r for r in runs if key(r) == ref]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            ids = ", ".join(r.run_id for r in hits[:5])
            raise LookupError(f"run '{ref}' is ambiguous in {runs_dir}: {ids}")
    raise LookupError(f"no run '{ref}' in {runs_dir}")
