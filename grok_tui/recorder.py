"""The writer side of the run directory: every write into a run has one implementation, here.

Atomic JSON (status.json, spec.json), JSONL appends (metrics, fourier), whole-file JSONL rewrites
(progress.jsonl, a resume's truncation), checkpoints and the resume state. The trainers write through
:class:`Recorder`; the launcher and the scheduler call the functions. At import time this module loads the
standard library and runs.py only (the scheduler and the CLI import it): numpy where a row or a
checkpoint needs it, torch only inside the resume-state functions.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import runs

if TYPE_CHECKING:
    import numpy as np

#: Where a resume state that failed its integrity check is moved, so the next save cannot rotate it into
#: ``resume.prev.pt`` (the fallback must stay a good state); kept, not deleted, for whoever looks into it.
RESUME_DAMAGED = "resume.damaged.pt"


class RunFailure(RuntimeError):
    """A run cannot go on; the message is the one line that status.json and worker.log show."""


# --------------------------------------------------------------------------- files


def _replace_with(path: Path, write: Callable[[Any], None]) -> None:
    """Write a new file beside ``path``, then rename it over ``path``: a reader sees the old file or the
    new one, never half of one. The rename replaces a link at ``path`` itself, never its target. The
    temporary name is unique (the worker and the scheduler both update status.json) and the file gets the
    umask's permissions, as every other file of the run does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    try:
        with open(tmp, "x") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """One JSON object, replaced whole (status.json, spec.json, the scheduler's files)."""

    def write(f: Any) -> None:
        json.dump(obj, f, indent=1, sort_keys=True, allow_nan=True)
        f.write("\n")

    _replace_with(Path(path), write)


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=True) + "\n"


def append_jsonl(path: Path, obj: dict[str, Any]) -> None:
    """Append one line in one write: a crash loses at most that line. Never through a symbolic link."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, _line(obj).encode())
    finally:
        os.close(fd)


def open_log(run_dir: Path) -> int:
    """worker.log opened for appending (the worker's stdout and stderr), never through a link."""
    return os.open(Path(run_dir) / runs.LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)


def append_log_line(run_dir: Path, line: str) -> None:
    """One line at the end of the run's worker.log (a packed worker speaking for one member)."""
    fd = open_log(run_dir)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def rewrite_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Replace a JSONL file whole (rows whose meaning changed, or a resume's truncation)."""

    def write(f: Any) -> None:
        for row in rows:
            f.write(_line(row))

    _replace_with(Path(path), write)


def update_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into status.json (atomic replace) and stamp ``updated``."""
    path = Path(run_dir) / runs.STATUS
    status = runs.read_json(path) or {}
    status.update(fields)
    status["updated"] = time.time()
    write_json_atomic(path, status)
    return status


def queued_fields(device: str | None, now: float) -> dict[str, Any]:
    """What status.json says of a run put in a queue (this machine's or Slurm's): the last run's end,
    error and reason wiped, the device asked for kept for whoever starts it."""
    return {
        "state": "queued",
        "queued": now,
        "request": {"device": device} if device else None,
        "error": None,
        "traceback": None,
        "returncode": None,
        "ended": None,
        "reason": None,
    }


def request_stop(run_dir: Path | str) -> None:
    """Ask the packed worker that trains this run to stop it alone (a signal would stop the whole pack):
    the worker checkpoints the run, marks it stopped, deletes the file and trains the others on."""
    path = Path(run_dir) / runs.STOP_REQUEST
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))


def refusal(run_dir: Path | str) -> str | None:
    """The one line refusing to write into a run directory that holds a symbolic link (runs.symlinks),
    or None when it holds none."""
    run_dir = Path(run_dir)
    links = runs.symlinks(run_dir)
    if not links:
        return None
    first = links[0]
    if first == run_dir:
        what = "the run directory is a symbolic link"
    elif first == run_dir.parent:
        what = f"the experiment directory of run {run_dir.name} is a symbolic link"
    else:
        what = f"a symbolic link in run directory {run_dir}"
    more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
    return f"{first}: {what}{more}; refusing to write through it"


# --------------------------------------------------------------------------- resume state


def _why(e: BaseException) -> str:
    """An exception as a fragment of one line: its type and the first line of its message."""
    text = str(e).strip()
    return f"{e.__class__.__name__}: {text.splitlines()[0]}" if text else e.__class__.__name__


def has_resume_state(run_dir: Path) -> bool:
    ckpts = Path(run_dir) / runs.CKPT_DIR
    return (ckpts / runs.RESUME).exists() or (ckpts / runs.RESUME_PREV).exists()


def verify_state(path: Path) -> str | None:
    """Why a resume state cannot be trusted, or None when it is intact.

    torch.save writes a zip archive with a CRC-32 per member; torch.load does not check them, so an
    overwritten byte inside a tensor loads as a wrong number. Reading every member through zipfile
    checks each CRC and the archive's structure (a truncated file has no central directory).
    """
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except Exception as e:  # BadZipFile, EOFError, NotImplementedError (a flipped method), OSError
        return _why(e)
    return None if bad is None else f"CRC mismatch in {bad}"


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``path`` (resume.pt) whole, keeping the state it replaces as resume.prev.pt: a damaged
    resume.pt then has a fallback one save older."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    if path.exists():
        os.replace(path, path.with_name(runs.RESUME_PREV))
    os.replace(tmp, path)


def load_state(path: Path, map_location: Any) -> dict[str, Any]:
    """A verified resume state (verify_state); RunFailure naming the file when it is damaged."""
    import torch

    why = verify_state(path)
    if why is None:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:
            why = _why(e)
        else:
            if isinstance(state, dict):
                return state
            why = f"a {type(state).__name__}, not a state dict"
    raise RunFailure(f"{path}: damaged resume state ({why})")


# --------------------------------------------------------------------------- the trainers' writer


def _clean(v: Any) -> Any:
    """JSON-safe values: numpy → Python, NaN/inf kept as floats (json allows them with allow_nan)."""
    import numpy as np

    return _clean_value(v, np)


def _clean_value(v: Any, np: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, np.ndarray):
        return [_clean_value(x, np) for x in v.tolist()]
    if isinstance(v, dict):
        return {k: _clean_value(x, np) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean_value(x, np) for x in v]
    if isinstance(v, float) and math.isfinite(v):
        return float(f"{v:.9g}")  # stable, compact, and identical across identical runs
    return v


def eval_line(row: dict[str, Any], total: int) -> str:
    """One evaluation as worker.log shows it (what `grok logs RUN` prints), in the tables' formats."""
    from . import format as fmt

    return (
        f"step {fmt.progress(row.get('step'), total)}"
        f"  train loss {fmt.num(row.get('train_loss'))} acc {fmt.acc(row.get('train_acc'))}"
        f"  test loss {fmt.num(row.get('test_loss'))} acc {fmt.acc(row.get('test_acc'))}"
    )


class Recorder:
    """Everything a trainer writes into its run directory, and the lines it adds to worker.log (the
    worker's stdout)."""

    def __init__(self, run_dir: Path | str, own_log: bool = False) -> None:
        """``own_log``: lines go to the run's worker.log itself rather than to stdout (a packed worker's
        stdout is the pack's log, shared by its members)."""
        self.dir = Path(run_dir)
        (self.dir / runs.CKPT_DIR).mkdir(parents=True, exist_ok=True)
        self._log_fd = open_log(self.dir) if own_log else None

    # rows -----------------------------------------------------------------
    def metrics(self, row: dict[str, Any]) -> None:
        append_jsonl(self.dir / runs.METRICS, _clean(row))

    def fourier(self, row: dict[str, Any]) -> None:
        append_jsonl(self.dir / runs.FOURIER, _clean(row))

    def progress(self, rows: Iterable[dict[str, Any]]) -> None:
        """progress.jsonl, replaced whole: its rows are measured against a reference that changes."""
        rewrite_jsonl(self.dir / runs.PROGRESS, [_clean(r) for r in rows])

    def status(self, **fields: Any) -> None:
        update_status(self.dir, **_clean(fields))

    def evaluated(self, row: dict[str, Any], fourier: dict[str, Any], total: int) -> None:
        """One evaluation: its metrics and fourier rows, status.json's step, a line in worker.log."""
        self.metrics(row)
        self.fourier(fourier)
        self.status(step=row["step"], total_steps=total)
        self.log(eval_line(row, total))

    def loaded_from(self, record: dict[str, Any]) -> None:
        """spec.json gains ``loaded_from`` (the source run, step and digest an ``init_from`` run started
        from): the one addition to a spec after the launcher wrote it, made before the first evaluation."""
        spec = runs.read_json(self.dir / runs.SPEC)
        if spec is None:
            raise RunFailure(f"{self.dir / runs.SPEC}: unreadable, so the loaded source cannot be recorded")
        write_json_atomic(self.dir / runs.SPEC, {**spec, "loaded_from": record})

    # worker.log -----------------------------------------------------------
    def log(self, line: str) -> None:
        if self._log_fd is None:
            print(line, flush=True)
        else:
            os.write(self._log_fd, (line + "\n").encode())

    def close(self) -> None:
        """Close the run's own worker.log (``own_log``)."""
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def warn(self, line: str) -> None:
        """Something the user must know that did not stop the run: worker.log and status.json."""
        self.log(f"grok worker: warning: {line}")
        self.status(warning=line)

    # checkpoints ----------------------------------------------------------
    def checkpoint(self, step: int, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """``step_NNNNNNN.npz``: weights and analysis as plain arrays (no pickle), plus ``meta`` as JSON."""
        import numpy as np

        path = self.dir / runs.CKPT_DIR / runs.ckpt_name(step)
        tmp = path.with_name(path.name + ".tmp.npz")
        payload = {k: np.asarray(v) for k, v in arrays.items()}
        payload["meta_json"] = np.asarray(json.dumps(_clean({"step": step, **meta})))
        np.savez(tmp, **payload)
        os.replace(tmp, path)
        return path

    def truncate_after(self, step: int) -> None:
        """Drop rows and checkpoints past ``step`` (a resume replays them; a row without a usable step
        is dropped too): rewrite-then-rename, never in place."""
        for name in (runs.METRICS, runs.FOURIER):
            path = self.dir / name
            if not path.exists():
                continue
            # the reader keeps only rows with a valid step: a row no reader could place goes too
            rewrite_jsonl(path, [r for r in runs.read_jsonl(path) if r["step"] <= step])
        ckpts = self.dir / runs.CKPT_DIR
        for s in runs.RunDir(self.dir).checkpoint_steps():
            if s > step:
                (ckpts / runs.ckpt_name(s)).unlink(missing_ok=True)

    # resume state ---------------------------------------------------------
    @property
    def resume_path(self) -> Path:
        return self.dir / runs.CKPT_DIR / runs.RESUME

    def save_resume(self, state: dict[str, Any]) -> None:
        save_state(self.resume_path, state)

    def resume(self, apply: Callable[[dict[str, Any]], int], map_location: Any = "cpu") -> int | None:
        """Load the resume state into the trainer: ``apply`` sets it and returns its step, raising on a
        state that does not fit the run. A damaged resume.pt (or one ``apply`` rejects) falls back to
        resume.prev.pt, with a warning; the damaged file is moved to resume.damaged.pt. Returns the step
        resumed from, None without any state; RunFailure naming the files when none is good."""
        current = self.resume_path
        problems: list[str] = []
        for path in (current, current.with_name(runs.RESUME_PREV)):
            if not path.exists():
                continue
            try:
                step = apply(load_state(path, map_location))
            except RunFailure as e:
                problems.append(str(e))
                continue
            except Exception as e:
                problems.append(f"{path}: resume state does not fit this run ({_why(e)})")
                continue
            if problems:
                with contextlib.suppress(OSError):
                    os.replace(current, current.with_name(RESUME_DAMAGED))
                self.warn(f"{problems[0]}; resumed from step {step} ({path.name}) instead")
            else:
                source = f" ({path.name})" if path != current else ""
                self.log(f"grok worker: resumed from step {step}{source}")
            return step
        if not problems:
            return None
        if len(problems) == 1:
            raise RunFailure(f"{problems[0]}; no earlier resume state to fall back to")
        raise RunFailure(f"{problems[0]}; and the fallback: {problems[1]}")
