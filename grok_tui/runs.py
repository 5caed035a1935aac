"""The run directory: the one contract between the worker that writes a run and everything that reads it.

Layout of ``<runs_dir>/<experiment>/<run>/``:

- ``spec.json``      resolved run spec, written once by the launcher, immutable
- ``status.json``    state + bookkeeping, replaced atomically by the worker (or launcher for ``queued``)
- ``metrics.jsonl``  one object per evaluation, append-only; readers skip a torn last line
- ``fourier.jsonl``  one object per evaluation: ``{"step", "freqs": [k...], "embed": [norm per k]}``
- ``progress.jsonl``  measures taken against the final model (restricted/excluded loss with the final key
  frequencies; RFM: alignment with the final feature matrix), one row per checkpoint; replaced whole
- ``checkpoints/step_NNNNNNN.npz``  weights + precomputed analysis, loadable with numpy alone
- ``checkpoints/resume.pt``          full training state for exact resume (torch); the state it replaced is
  kept as ``resume.prev.pt``, so a damaged one has a fallback (and is moved to ``resume.damaged.pt``)
- ``worker.log``     the worker's stdout/stderr
- ``.lock``          flock held by the live worker: liveness without pids

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
CKPT_DIR = "checkpoints"
RESUME = "resume.pt"
RESUME_PREV = "resume.prev.pt"

STATES = ("queued", "running", "done", "failed", "stopped")
ACTIVE_STATES = ("queued", "running")
#: Accuracy a split must reach to count as fitted (train: memorised, test: grokked).
FIT_THRESHOLD = 0.99
VANISHED = "worker vanished"

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
    """All complete, parseable lines; a torn or corrupt line is skipped, never fatal."""
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


class JsonlTail(LineTail):
    """A LineTail of JSON objects; a corrupt line is skipped, never fatal."""

    def read_new(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.read_lines():
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out


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
        v = row.get(key)
        if isinstance(v, (int, float)) and not math.isnan(v) and v >= threshold:
            return int(row["step"])
    return None


@dataclass
class RunSummary:
    """What `grok ls` prints and the TUI's table shows: one reader for both."""

    run_id: str
    path: Path
    experiment: str
    name: str
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

    @property
    def task(self) -> str:
        t = self.spec.get("task", "?")
        return " | ".join(t) if isinstance(t, list) else str(t)

    @property
    def model_kind(self) -> str:
        return str(self.spec.get("model", {}).get("kind", "?"))


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
        """status.json with liveness applied: 'running' without a held lock means the worker died."""
        st = self.raw_status()
        if st.get("state") == "running" and not lock_held(self.path):
            # Re-read: the worker may have finished between the two reads.
            st = self.raw_status()
            if st.get("state") == "running":
                st = {**st, "state": "failed", "error": VANISHED}
        st.setdefault("state", "queued" if (self.path / SPEC).exists() else "failed")
        return st

    def alive(self) -> bool:
        return lock_held(self.path)

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / METRICS)

    def fourier(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / FOURIER)

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

    def summary(self, rows: list[dict[str, Any]] | None = None) -> RunSummary:
        spec = self.spec()
        st = self.status()
        rows = self.metrics() if rows is None else rows
        last = rows[-1] if rows else {}
        return RunSummary(
            run_id=self.run_id,
            path=self.path,
            experiment=self.experiment,
            name=self.name,
            state=str(st.get("state")),
            step=int(st.get("step") or last.get("step") or 0),
            total_steps=int(st.get("total_steps") or spec.get("steps") or 0),
            train_acc=last.get("train_acc"),
            test_acc=last.get("test_acc"),
            memorised_at=first_step_at(rows, "train_acc"),
            grokked_at=first_step_at(rows, "test_acc"),
            device=str(st.get("device") or spec.get("device") or "?"),
            error=st.get("error"),
            spec=spec,
        )


def list_runs(runs_dir: Path | str) -> list[RunDir]:
    """Every run directory (one holding spec.json) two levels below ``runs_dir``, sorted by id."""
    root = Path(runs_dir)
    out = []
    try:
        experiments = sorted(p for p in root.iterdir() if p.is_dir())
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
