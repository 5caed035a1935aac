"""What the TUI knows about runs: one poll over the runs directory, incremental, thread-safe.

No Textual here (testable on its own) and no numpy until a run's curves are asked for, so the first
paint does not wait for numpy. Every number in the table comes from ``RunDir.summary`` (the reader
``grok ls`` uses): the store only feeds it the rows that decide the summary instead of the whole
history, so polling a long run stays O(new rows) and memory stays flat.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grok_tui import runs
from grok_tui.runs import (
    ACTIVE_STATES,
    VANISHED,
    JsonlTail,
    LineTail,
    RunDir,
    RunSummary,
    first_step_at,
)

if TYPE_CHECKING:
    import numpy as np

NEW = "new"  # a run experiments.toml describes that has no run directory yet
LOG_TAIL_BYTES = 64 * 1024
LOG_MAX_LINES = 2000
#: Seconds between two looks at Slurm's queue (squeue/scontrol) for the listed queued/running Slurm runs.
RECONCILE_EVERY_S = 5.0


@dataclass(frozen=True)
class Row:
    """One line of the experiments table: a run's summary (the reader `grok ls` uses, so every field it
    gains reaches the table) and where the run comes from."""

    summary: RunSummary
    in_config: bool  # experiments.toml describes it (``r`` can launch it)
    on_disk: bool  # it has a run directory (a ``new`` run does not yet)

    @property
    def run_id(self) -> str:
        return self.summary.run_id

    @property
    def experiment(self) -> str:
        return self.summary.experiment

    @property
    def state(self) -> str:
        return self.summary.state


def planned_summary(spec: dict[str, Any], runs_dir: Path) -> RunSummary:
    """The summary of a run experiments.toml describes but nobody has launched yet (state ``new``)."""
    exp, name = str(spec["experiment"]), str(spec["name"])
    return RunSummary(
        run_id=f"{exp}/{name}",
        path=runs_dir / exp / name,
        experiment=exp,
        name=name,
        state=NEW,
        step=0,
        total_steps=int(spec.get("steps") or 0),
        train_acc=None,
        test_acc=None,
        memorised_at=None,
        grokked_at=None,
        device=str(spec.get("device", "?")),
        error=None,
        spec=spec,
    )


def _file_runs_dir(config_path: Path | None) -> Path:
    """Where the experiments file keeps its runs, read before the file is parsed (the first frame lists the
    right directory): its [defaults].runs_dir, else ``runs`` beside it."""
    if config_path is None:
        return Path("runs")
    from grok_tui.config import read_runs_dir

    return config_path.parent / (read_runs_dir(config_path) or "runs")


def _value(v: float) -> float:
    """A number as the curves hold it: NaN where it is not a finite float (they draw nothing there)."""
    f = runs.finite(v)
    return math.nan if f is None else f


def _file_sig(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class RunWatch:
    """Keeps one run's summary current, reading only what was appended since the last poll."""

    def __init__(self, rd: RunDir) -> None:
        self.rd = rd
        self._tail = JsonlTail(rd.path / runs.METRICS)
        self._index = 0  # rows seen so far: orders the decisive rows
        self._mem: tuple[int, dict] | None = None
        self._grok: tuple[int, dict] | None = None
        self._last: tuple[int, dict] | None = None
        self._status_sig: tuple[int, int, int] | None = None
        self.summary: RunSummary | None = None

    def _decisive_rows(self) -> list[dict[str, Any]]:
        """The rows ``RunDir.summary`` needs: first memorised, first grokked, last (in file order)."""
        keep = dict(t for t in (self._mem, self._grok, self._last) if t is not None)
        return [keep[i] for i in sorted(keep)]

    def _take(self, rows: list[dict[str, Any]]) -> None:
        for key, attr in (("train_acc", "_mem"), ("test_acc", "_grok")):
            if getattr(self, attr) is None and (step := first_step_at(rows, key)) is not None:
                i = next(i for i, r in enumerate(rows) if r.get("step") == step)
                setattr(self, attr, (self._index + i, rows[i]))
        self._index += len(rows)
        self._last = (self._index - 1, rows[-1])

    def poll(self) -> bool:
        new = self._tail.read_new()
        reset = self._tail.reset_seen
        if reset:  # the file was rewritten (resume): forget what it said before
            self._tail.reset_seen = False
            self._index, self._mem, self._grok, self._last = 0, None, None, None
        if new:
            self._take(new)
        sig = _file_sig(self.rd.path / runs.STATUS)
        active = self.summary is None or self.summary.state in ACTIVE_STATES
        skipped = self.summary is not None and self._tail.skipped != self.summary.skipped_rows
        if not (new or reset or skipped or sig != self._status_sig or active):
            return False
        self._status_sig = sig
        summary = self.rd.summary(rows=self._decisive_rows(), skipped=self._tail.skipped)
        changed = summary != self.summary
        self.summary = summary
        return changed


class Columns:
    """Metrics rows as growable float64 columns (nested ``tasks`` flattened to ``tasks/<name>/<key>``)."""

    def __init__(self) -> None:
        self.n = 0
        self._cap = 0
        self._cols: dict[str, np.ndarray] = {}

    @staticmethod
    def _flat(row: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for k, v in row.items():
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                out[k] = _value(v)
            elif k == "tasks" and isinstance(v, dict):
                for name, sub in v.items():
                    if isinstance(sub, dict):
                        for kk, vv in sub.items():
                            if isinstance(vv, (int, float)) and not isinstance(vv, bool):
                                out[f"tasks/{name}/{kk}"] = _value(vv)
        return out

    def extend(self, rows: list[dict[str, Any]]) -> None:
        import numpy as np

        flat = [self._flat(r) for r in rows if "step" in r]
        if not flat:
            return
        need = self.n + len(flat)
        if need > self._cap:
            cap = max(64, self._cap)
            while cap < need:
                cap *= 2
            for k, col in self._cols.items():
                grown = np.full(cap, np.nan)
                grown[: self.n] = col[: self.n]
                self._cols[k] = grown
            self._cap = cap
        for i, row in enumerate(flat, start=self.n):
            for k, v in row.items():
                col = self._cols.get(k)
                if col is None:
                    col = self._cols[k] = np.full(self._cap, np.nan)
                col[i] = v
        self.n = need

    def names(self) -> list[str]:
        return list(self._cols)

    def row_at(self, step: int) -> dict[str, float]:
        """The (last) evaluation row at ``step``, finite values only; {} when there is none."""
        import numpy as np

        steps = self.get("step")
        if steps is None:
            return {}
        hits = np.flatnonzero(steps == step)
        if not hits.size:
            return {}
        i = int(hits[-1])
        return {k: float(c[i]) for k, c in self._cols.items() if np.isfinite(c[i])}

    def phases(self):
        """The phase boundaries of these rows (grok_tui.analysis.phase, as `grok show` draws them), or
        None before the first evaluation."""
        from grok_tui.analysis.phase import phase_boundaries

        steps = self.get("step")
        if steps is None or not steps.size:
            return None
        cols = [self.get(k) for k in ("train_acc", "test_acc")]
        vals = [c.tolist() if c is not None else [None] * steps.size for c in cols]
        triples = zip(steps.tolist(), *vals, strict=True)
        rows = [{"step": int(s), "train_acc": a, "test_acc": b} for s, a, b in triples]
        return phase_boundaries(rows)

    def get(self, key: str) -> np.ndarray | None:
        """A read-only view of the first ``n`` values (later appends never change it)."""
        col = self._cols.get(key)
        if col is None:
            return None
        view = col[: self.n]
        view.flags.writeable = False
        return view


class Matrix:
    """fourier.jsonl as (steps, rows × K) per spectrum name ("embed", "logit", ...)."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.data: dict[str, list[list[float]]] = {}

    def extend(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            if "step" not in r:
                continue
            self.steps.append(int(r["step"]))
            for k, v in r.items():
                if isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
                    self.data.setdefault(k, [])
                    col = self.data[k]
                    col.extend([[]] * (len(self.steps) - 1 - len(col)))  # a spectrum that appears late
                    col.append([_value(x) for x in v])

    def array(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(steps, matrix) for spectrum ``name``; rows of another length than the last are dropped."""
        import numpy as np

        col = self.data.get(name)
        if not col:
            return None
        k = len(col[-1])
        keep = [i for i, r in enumerate(col) if len(r) == k]
        return np.asarray([self.steps[i] for i in keep]), np.asarray([col[i] for i in keep])


class LogTail(LineTail):
    """The last lines of worker.log, read incrementally (starts near the end of a big log)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, start_back=LOG_TAIL_BYTES)

    def read_new(self) -> list[str]:
        return [ln.decode("utf-8", "replace").rstrip("\r") for ln in self.read_lines()]


class RunSeries:
    """Full curves of one run the user is looking at (its metrics, spectra and log)."""

    def __init__(self, rd: RunDir) -> None:
        self.rd = rd
        self.metrics = Columns()
        self.fourier = Matrix()
        self.progress = Columns()  # the final pass: restricted/excluded loss with the final key freqs
        self.log: deque[str] = deque(maxlen=LOG_MAX_LINES)
        self.log_total = 0  # lines ever read: a screen writes the ones it has not shown yet
        self.version = 0
        self._mt = JsonlTail(rd.path / runs.METRICS)
        self._ft = JsonlTail(rd.path / runs.FOURIER)
        self._pt = JsonlTail(rd.path / runs.PROGRESS)
        self._lt = LogTail(rd.log_path())
        self._ckpt_sig: tuple[int, int, int] | None = None
        self.checkpoints: list[int] = []

    def _follow(self, tail: JsonlTail, attr: str, fresh: type) -> bool:
        """Append a file's new rows to ``attr``; a rewritten file (resume) starts it over."""
        rows = tail.read_new()
        changed = tail.reset_seen
        if tail.reset_seen:
            tail.reset_seen = False
            setattr(self, attr, fresh())
        if rows:
            getattr(self, attr).extend(rows)
            changed = True
        return changed

    def poll(self) -> bool:
        changed = self._follow(self._mt, "metrics", Columns)
        changed |= self._follow(self._ft, "fourier", Matrix)
        changed |= self._follow(self._pt, "progress", Columns)
        sig = _file_sig(self.rd.path / runs.CKPT_DIR)
        if sig != self._ckpt_sig:
            self._ckpt_sig = sig
            steps = self.rd.checkpoint_steps()
            if steps != self.checkpoints:
                self.checkpoints = steps
                changed = True
        lines = self._lt.read_new()
        if lines:
            self.log.extend(lines)
            self.log_total += len(lines)
        if changed:
            self.version += 1
        return changed or bool(lines)


def reconcile_with_slurm(rds: list[RunDir]) -> None:
    """Slurm's word on these runs' jobs, written into their status.json (a job that ended without the
    worker's last word: time limit, cancel, node failure). Imported on the first look: a session with
    no Slurm run never loads the launcher."""
    from grok_tui.launch.slurm import reconcile

    reconcile(rds)


class SlurmWatch:
    """Asks Slurm about the listed Slurm runs that are queued or running, at most every ``every`` seconds
    and in a thread of its own: squeue may take seconds (or hang until its timeout), and the poll that
    keeps every other run current must not wait for it. One look at a time; what it writes into
    status.json the next poll reads like any other change."""

    def __init__(
        self,
        reconcile: Callable[[list[RunDir]], None] = reconcile_with_slurm,
        every: float = RECONCILE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reconcile, self.every, self.clock = reconcile, every, clock
        self._last: float | None = None
        self._thread: threading.Thread | None = None
        #: The last look's failure, one line (None when it went well).
        self.error: str | None = None

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def maybe_start(self, summaries: list[RunSummary]) -> bool:
        """Start a look if one is due and some run in ``summaries`` is a queued or running Slurm run."""
        # A "vanished" Slurm run may only have a lock this machine cannot see: Slurm's word decides.
        rds = [
            RunDir(s.path)
            for s in summaries
            if s.slurm is not None and (s.state in ACTIVE_STATES or s.error == VANISHED)
        ]
        now = self.clock()
        if not rds or self.busy() or (self._last is not None and now - self._last < self.every):
            return False
        self._last = now
        self._thread = threading.Thread(target=self._look, args=(rds,), name="grok-tui-slurm", daemon=True)
        self._thread.start()
        return True

    def _look(self, rds: list[RunDir]) -> None:
        try:
            self.reconcile(rds)
        except Exception as e:  # Slurm's tools missing or broken: say so, keep showing what the files say
            self.error = f"Slurm: {e.__class__.__name__}: {e}"
        else:
            self.error = None


class Store:
    """All runs of one experiments file and runs directory; ``poll()`` is the only writer."""

    def __init__(self, config_path: Path | None, runs_dir: Path | None) -> None:
        self.config_path = config_path
        self._runs_dir_override = runs_dir
        self.runs_dir: Path = runs_dir or _file_runs_dir(config_path)
        self.config_error: str | None = None
        self.config_experiments: list[str] = []
        self._config_specs: list[dict[str, Any]] = []
        self._config_sig: tuple[int, int, int] | None | bool = False  # False: never loaded
        self._watches: dict[str, RunWatch] = {}
        self._series: dict[str, RunSeries] = {}
        self._series_refs: dict[str, int] = {}
        self.lock = threading.RLock()
        #: Runs the last poll could not read, one line each (the app shows the first).
        self.errors: list[str] = []
        self.generation = 0  # bumped whenever the table's rows change
        self.slurm = SlurmWatch()

    # config ------------------------------------------------------------------------------------
    def load_config(self) -> bool:
        """(Re)read experiments.toml; a broken file keeps the last good runs and sets config_error."""
        if self.config_path is None:
            return False
        from grok_tui.config import ConfigError, load_config

        sig = _file_sig(self.config_path)
        try:
            cfg = load_config(self.config_path)
        except ConfigError as e:
            err, specs, exps = str(e), None, None
        except Exception as e:  # a config bug must not take the TUI down
            err, specs, exps = f"{self.config_path}: {e.__class__.__name__}: {e}", None, None
        else:
            err, specs, exps = None, cfg.runs, list(cfg.experiments)
            if self._runs_dir_override is None:
                self.runs_dir = cfg.runs_dir
        with self.lock:
            self._config_sig = sig
            self.config_error = err
            if specs is not None:
                self._config_specs, self.config_experiments = specs, exps
            self.generation += 1
        return True

    # polling -------------------------------------------------------------------------------------
    def poll(self, config: bool = True) -> bool:
        """One pass: config changes, new run directories, appended rows, status changes.

        ``config=False`` skips experiments.toml (parsing it imports numpy): the app's first pass,
        so the first frame shows the runs on disk without waiting for it.
        """
        changed = False
        if config and self.config_path is not None and _file_sig(self.config_path) != self._config_sig:
            changed |= self.load_config()
        found = {rd.run_id: rd for rd in runs.list_runs(self.runs_dir)}
        with self.lock:
            for rid in list(self._watches):
                if rid not in found:
                    del self._watches[rid]
                    changed = True
            for rid, rd in found.items():
                if rid not in self._watches:
                    self._watches[rid] = RunWatch(rd)
                    changed = True
            watches = list(self._watches.values())
            series = list(self._series.values())
        errors: list[str] = []
        for w in watches:
            with self.lock:
                changed |= self._guarded(w.rd, w.poll, errors)
        series_changed = False
        for s in series:
            with self.lock:
                series_changed |= self._guarded(s.rd, s.poll, errors)
        self.slurm.maybe_start([w.summary for w in watches if w.summary is not None])
        if self.slurm.error:
            errors.append(self.slurm.error)
        self.errors = errors
        if changed:
            with self.lock:
                self.generation += 1
        return changed or series_changed

    @staticmethod
    def _guarded(rd: RunDir, poll, errors: list[str]) -> bool:
        """One run's poll; a run that cannot be read (a reader bug on a file nobody foresaw) is one
        error line, and every other run is still read."""
        try:
            return bool(poll())
        except Exception as e:
            errors.append(f"{rd.run_id}: unreadable ({e.__class__.__name__}: {e})")
            return False

    # reading -------------------------------------------------------------------------------------
    def rows(self) -> list[Row]:
        """Config runs in file order (on disk or not), then runs only on disk, by id."""
        with self.lock:
            out: list[Row] = []
            seen: set[str] = set()
            for spec in self._config_specs:
                rid = f"{spec['experiment']}/{spec['name']}"
                w = self._watches.get(rid)
                if w is not None and w.summary is not None:
                    out.append(Row(w.summary, in_config=True, on_disk=True))
                else:
                    out.append(Row(planned_summary(spec, self.runs_dir), in_config=True, on_disk=False))
                seen.add(rid)
            for rid in sorted(self._watches):
                w = self._watches[rid]
                if rid not in seen and w.summary is not None:
                    out.append(Row(w.summary, in_config=False, on_disk=True))
            return out

    def row(self, run_id: str) -> Row | None:
        return next((r for r in self.rows() if r.run_id == run_id), None)

    def run_dir(self, run_id: str) -> RunDir:
        with self.lock:
            w = self._watches.get(run_id)
        return w.rd if w else RunDir(self.runs_dir / run_id)

    def series(self, run_id: str) -> RunSeries:
        """The curves of ``run_id``, read now and kept current by ``poll`` until ``release``."""
        with self.lock:
            s = self._series.get(run_id)
            if s is None:
                s = self._series[run_id] = RunSeries(self.run_dir(run_id))
                s.poll()
            self._series_refs[run_id] = self._series_refs.get(run_id, 0) + 1
            return s

    def release(self, run_id: str) -> None:
        """Stop following ``run_id`` once nobody looks at it (frees its curves)."""
        with self.lock:
            n = self._series_refs.get(run_id, 0) - 1
            if n > 0:
                self._series_refs[run_id] = n
            else:
                self._series_refs.pop(run_id, None)
                self._series.pop(run_id, None)

    def watched(self) -> list[str]:
        with self.lock:
            return list(self._series)
