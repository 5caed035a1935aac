"""Sweeps: runs as points in hyperparameter space, their results, and seeds aggregated per point.

One model under `grok compare`, `grok grid`, `grok export` of many runs, `grok ls --where` and the app's
sweep screen, so that all of them show the same numbers. Which keys a sweep varies is *found* from the
runs' spec.json files, never assumed: a key is varying when the selected runs disagree on it, so runs of
different experiments compare as well as the points of one sweep (Furuta et al. 2024, Table A.5: 30
operations × 7 train fractions × 3 seeds is one such selection). numpy at most, no torch: the app imports
it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import format as fmt
from .runs import JsonlTail, RunDir, RunSummary, find_run, finite, fraction, is_step, list_runs

SEED = "seed"
#: Spec keys that name or describe a run rather than set it (``loaded_from``: what an init_from run loaded;
#: ``imported``: where an imported run came from).
IDENTITY = frozenset({"experiment", "name", "description", "version", "tasks", "loaded_from", "imported"})
#: Spec keys that follow the seed unless a file sets them apart (then they vary on their own).
FOLLOW_SEED = ("split_seed", "init_seed")
#: Results of a run, in the order tables show them.
RESULTS = (
    "memorised_at",
    "grokked_at",
    "best_test_acc",
    "final_test_acc",
    "final_train_acc",
    "final_train_loss",
    "final_test_loss",
)
#: Progress measures whose last recorded value is a result (transformer and RFM runs record their own).
MEASURES = (
    "restricted_loss",
    "excluded_loss",
    "gini_embed",
    "gini_logit",
    "ffd_embed",
    "fcr_embed",
    "weight_norm",
    "circulant_deviation",
    "agop_alignment",
)
#: Short names for legends and headers at 80 columns (`frac=0.3 wd=1`).
SHORT = {
    "train_frac": "frac",
    "optim.weight_decay": "wd",
    "optim.lr": "lr",
    "model.d_model": "d",
    "model.d_mlp": "mlp",
    "batch_size": "batch",
    "optim.kind": "optim",  # "kind" alone would not say whose (Grokfast's or the optimizer's)
    "grokfast.kind": "grokfast",
    "model.kind": "model",
    # where a transfer run starts (Furuta et al.'s PG-E/PG-T): "run" and "step" would read as results
    "init_from.run": "from",
    "init_from.step": "from_step",
    "init_from.load": "load",
    "init_from.freeze": "frozen",
}


class SweepError(ValueError):
    """A selection or key that cannot be answered: the message is the one line a user sees."""


def settings(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec.json flattened to ``TABLE.KEY`` settings (lists become tuples, so values compare and hash);
    identity keys dropped, and the seeds that merely follow ``seed``."""
    out: dict[str, Any] = {}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            key = f"{prefix}{k}"
            if not prefix and k in IDENTITY:
                continue
            if not prefix and k == "init_from":
                if not v:
                    continue  # a run from its own random init: no init_from.* settings ("-" beside others)
                if isinstance(v, dict):
                    load, freeze = v.get("load") or [], v.get("freeze") or []
                    # freeze = true (what is loaded) stays one value across parts, as the file says it
                    v = {**v, "freeze": True if load and freeze == load else (freeze or False)}
                    if not load:
                        v = {"freeze": v["freeze"]}  # loads nothing: the source and step say nothing
            if isinstance(v, dict):
                walk(v, key + ".")
            else:
                out[key] = _frozen(v)

    walk(spec if isinstance(spec, dict) else {}, "")
    for k in FOLLOW_SEED:
        if k in out and out[k] == out.get(SEED):
            del out[k]
    return out


def _frozen(v: Any) -> Any:
    return tuple(_frozen(x) for x in v) if isinstance(v, list) else v


def show(v: Any) -> str:
    """A setting as a cell reads: a task mixture joined, a number as short as it is exact."""
    if v is None:
        return fmt.DASH
    if isinstance(v, tuple):
        return fmt.task_label(list(v)) if all(isinstance(x, str) for x in v) else ", ".join(map(show, v))
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def short(key: str) -> str:
    """A key's name in a legend: ``optim.weight_decay`` is ``wd``, ``model.d_mlp`` ``mlp``."""
    return SHORT.get(key, key.rsplit(".", 1)[-1])


@dataclass(frozen=True)
class RunResult:
    """One run's settings and what it reached, every number validated (None when unknown)."""

    run_id: str
    path: Path
    experiment: str
    state: str
    settings: dict[str, Any] = field(repr=False)
    last_step: int = 0
    memorised_at: int | None = None
    grokked_at: int | None = None
    best_test_acc: float | None = None
    final_test_acc: float | None = None
    final_train_acc: float | None = None
    final_train_loss: float | None = None
    final_test_loss: float | None = None
    measures: dict[str, float] = field(default_factory=dict)
    skipped_rows: int = 0
    #: What `grok ls` shows of the run, read with the same rows (a filter needs no second read).
    summary: RunSummary | None = field(default=None, repr=False, compare=False)

    @property
    def seed(self) -> Any:
        return self.settings.get(SEED)

    def value(self, key: str) -> Any:
        """A result, a final measure or a setting by name (None when the run has none)."""
        if key in RESULTS or key in ("state", "last_step", "run_id", "experiment"):
            return getattr(self, key)
        if key in MEASURES:
            return self.measures.get(key)
        return self.settings.get(key)


def result(run: RunDir) -> RunResult:
    """Read one run directory into a RunResult (damaged rows skipped and counted, as `grok ls` does)."""
    tail = JsonlTail(run.path / "metrics.jsonl")
    rows = tail.read_new()
    s = run.summary(rows, tail.skipped)
    last: dict[str, float] = {}
    best: float | None = None
    for row in rows:
        for k, v in row.items():
            if (f := finite(v)) is not None:
                last[k] = f
        if (t := fraction(row.get("test_acc"))) is not None and (best is None or t > best):
            best = t
    final = rows[-1] if rows else {}
    return RunResult(
        run_id=run.run_id,
        path=run.path,
        experiment=run.experiment,
        state=s.state,
        settings=settings(s.spec),
        last_step=int(final["step"]) if is_step(final.get("step")) else 0,
        memorised_at=s.memorised_at,
        grokked_at=s.grokked_at,
        best_test_acc=best,
        final_test_acc=fraction(final.get("test_acc")),
        final_train_acc=fraction(final.get("train_acc")),
        final_train_loss=finite(final.get("train_loss")),
        final_test_loss=finite(final.get("test_loss")),
        measures={k: last[k] for k in MEASURES if k in last},
        skipped_rows=tail.skipped,
        summary=s,
    )


def select(runs_dir: Path | str, refs: Sequence[str]) -> list[RunDir]:
    """The runs ``refs`` name, in order, each once: an experiment name stands for all of its runs, a run
    for itself (``experiment/run``, a unique run name or a run directory). No refs: every run.
    LookupError, naming the ref, for one that names nothing."""
    everything = list_runs(runs_dir)
    if not refs:
        return everything
    out: list[RunDir] = []
    for ref in refs:
        hits = [r for r in everything if r.experiment == ref]
        if not hits:
            hits = [find_run(runs_dir, ref)]
        out.extend(r for r in hits if r.path not in {o.path for o in out})
    return out


def varying(results: Iterable[RunResult]) -> list[str]:
    """The settings the runs disagree on (a key one run lacks counts): top-level ones first, ``seed`` last."""
    return differing([r.settings for r in results])


def differing(settings_of: Iterable[dict[str, Any]]) -> list[str]:
    """``varying`` of bare settings (``settings(spec)`` per run): `grok ls` and `grok export` need only
    the specs, not every run's metrics read."""
    settings_of = list(settings_of)
    keys: list[str] = []
    for s in settings_of:
        keys.extend(k for k in s if k not in keys)
    out = [k for k in keys if k != SEED and len({_hashable(s.get(k)) for s in settings_of}) > 1]
    out.sort(key=lambda k: "." in k)  # top-level settings (task, train_frac) before TABLE.KEY ones
    return out + ([SEED] if len({_hashable(s.get(SEED)) for s in settings_of}) > 1 else [])


def _hashable(v: Any) -> Any:
    return (type(v).__name__, v) if not isinstance(v, (int, float)) or isinstance(v, bool) else float(v)


@dataclass(frozen=True)
class Spread:
    """A result over the seeds of one point: every statistic of the runs that have it."""

    values: tuple[float, ...]
    n: int  # runs in the point, with or without the value

    @property
    def k(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.pstdev(self.values) if self.values else None

    @property
    def min(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def max(self) -> float | None:
        return max(self.values) if self.values else None


@dataclass(frozen=True)
class Point:
    """One sweep point: the runs that share every varying setting but the seed."""

    key: tuple[tuple[str, Any], ...]
    runs: tuple[RunResult, ...]

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def grokked(self) -> int:
        """How many of its seeds grokked ("k of n grokked")."""
        return sum(r.grokked_at is not None for r in self.runs)

    def spread(self, name: str) -> Spread:
        vals = tuple(f for r in self.runs if (f := finite(r.value(name))) is not None)
        return Spread(vals, self.n)

    def label(self) -> str:
        """``frac=0.3 wd=1``: only the keys that differ between points."""
        return " ".join(f"{short(k)}={show(v)}" for k, v in self.key) or "all runs"


class Sweep:
    """Selected runs, the keys that vary among them, and their points (seeds aggregated)."""

    def __init__(self, results: Sequence[RunResult]) -> None:
        self.runs = list(results)
        self.keys = varying(self.runs)
        #: Varying keys that tell points apart (all but the seed).
        self.point_keys = [k for k in self.keys if k != SEED]

    @classmethod
    def load(cls, runs_dir: Path | str, refs: Sequence[str] = ()) -> Sweep:
        return cls([result(r) for r in select(runs_dir, refs)])

    def key(self, name: str) -> str:
        """A key as the user wrote it: a setting, a result or a measure; ``weight_decay`` for
        ``optim.weight_decay`` when only one setting ends so. SweepError naming the choices otherwise."""
        known = self.known_keys()
        if name in known:
            return name
        hits = [k for k in known if k.endswith("." + name) or short(k) == name]
        if len(hits) == 1:
            return hits[0]
        choices = ", ".join(self.keys + list(RESULTS)) or "(no runs)"
        if hits:
            raise SweepError(f"key '{name}' is ambiguous: {', '.join(hits)}")
        raise SweepError(f"no key '{name}' in these runs; keys that vary and results: {choices}")

    def known_keys(self) -> list[str]:
        keys: list[str] = []
        for r in self.runs:
            keys.extend(k for k in r.settings if k not in keys)
        return keys + [k for k in (*RESULTS, *MEASURES, "state", "last_step") if k not in keys]

    def where(self, conditions: Sequence[str]) -> Sweep:
        """Only the runs whose settings match every ``KEY=VALUE`` (a number matches its value: ``1`` is
        ``1.0``). SweepError for a condition without ``=`` or with a key no run has."""
        keep = self.runs
        for cond in conditions:
            name, eq, text = cond.partition("=")
            if not eq or not name.strip():
                raise SweepError(f"--where '{cond}': write KEY=VALUE, e.g. train_frac=0.3")
            key = self.key(name.strip())
            keep = [r for r in keep if matches(r.value(key), text.strip())]
        return Sweep(keep)

    def points(self) -> list[Point]:
        """Points in order of their settings (numbers by value), each with its runs by seed."""
        groups: dict[tuple, list[RunResult]] = {}
        for r in self.runs:
            groups.setdefault(tuple((k, r.settings.get(k)) for k in self.point_keys), []).append(r)
        ordered = sorted(groups.items(), key=lambda kv: tuple(sort_key(v) for _, v in kv[0]))
        return [Point(k, tuple(sorted(rs, key=lambda r: sort_key(r.seed)))) for k, rs in ordered]

    def values(self, key: str) -> list[Any]:
        """The distinct values the runs have for ``key`` (1 and 1.0 are one), in sort order."""
        return sorted({_hashable(r.value(key)): r.value(key) for r in self.runs}.values(), key=sort_key)

    def grid(self, rows: str, cols: str, value: str = "grokked_at") -> Grid:
        """Furuta et al.'s Table A.5 layout: one cell per (rows, cols) value pair, seeds aggregated.
        SweepError when another setting also varies (a cell would mix its values)."""
        rows, cols, value = self.key(rows), self.key(cols), self.key(value)
        for flag, k in (("--rows", rows), ("--cols", cols)):
            if finite_kind(k) is not None:
                raise SweepError(f"{flag} '{k}' is a result, not a setting; it can be --value")
        if rows == cols:
            raise SweepError(f"--rows and --cols are both '{rows}'")
        if finite_kind(value) is None:
            raise SweepError(
                f"--value '{value}' is not a number a run reaches; use one of {', '.join(RESULTS)}"
            )
        others = [k for k in self.keys if k not in (rows, cols, SEED)]
        if others:
            k = others[0]
            vals = ", ".join(sorted({show(r.settings.get(k)) for r in self.runs}))
            raise SweepError(
                f"'{k}' also varies ({vals}): pick one value with --where {k}=VALUE, or make it --rows/--cols"
            )
        row_vals, col_vals = self.values(rows), self.values(cols)
        cells = [
            [
                Cell.of(
                    [r for r in self.runs if _same(r.value(rows), rv) and _same(r.value(cols), cv)], value
                )
                for cv in col_vals
            ]
            for rv in row_vals
        ]
        return Grid(rows, cols, value, row_vals, col_vals, cells)


def _same(a: Any, b: Any) -> bool:
    return _hashable(a) == _hashable(b)


def sort_key(v: Any) -> tuple:
    """Numbers by value before anything else, by its text: 0.3 < 0.5 < 1, then `add` < `mul`."""
    f = finite(v)
    return (0, f, "") if f is not None else (1, 0.0, show(v))


def matches(v: Any, text: str) -> bool:
    """``--where`` equality: numbers by value, a mixture by its label, anything else by its text."""
    f, t = finite(v), _number(text)
    if f is not None and t is not None:
        return math.isclose(f, t, rel_tol=1e-9, abs_tol=0.0) or f == t
    return show(v) == text or (isinstance(v, bool) and str(v).lower() == text.lower())


def _number(text: str) -> float | None:
    try:
        return finite(float(text.replace("_", "")))
    except ValueError:
        return None


def finite_kind(key: str) -> str | None:
    """How a numeric result reads: ``step`` (memorised/grokked at), ``acc`` or ``num``; None for a key
    that is no number a run reaches (a setting)."""
    if key.endswith("_at") or key == "last_step":
        return "step"
    if key.endswith("_acc"):
        return "acc"
    if key in RESULTS or key in MEASURES:
        return "num"
    return None


def cell_text(key: str, v: Any) -> str:
    kind = finite_kind(key)
    if v is None:
        return fmt.DASH
    if kind == "step":
        return fmt.step(round(v)) if finite(v) is not None else fmt.DASH
    if kind == "acc":
        return fmt.acc(v)
    return fmt.num(v)


@dataclass(frozen=True)
class Cell:
    """One grid cell. ``value`` is the median over its seeds of what the grid shows (None: none reached
    it); a grokked_at cell none of whose seeds grokked shows their (median) best test accuracy instead."""

    runs: tuple[RunResult, ...]
    value: float | None
    #: Seeds that have the value (for grokked_at: that grokked), and the seeds in the cell.
    k: int
    n: int
    #: The median over its seeds of the best test accuracy each reached (what a cell that did not grok
    #: shows: the same number a best_test_acc grid has there).
    best_test_acc: float | None
    text: str

    @classmethod
    def of(cls, runs: Sequence[RunResult], value: str) -> Cell:
        runs = tuple(sorted(runs, key=lambda r: sort_key(r.seed)))
        vals = [f for r in runs if (f := finite(r.value(value))) is not None]
        median = statistics.median(vals) if vals else None
        bests = [r.best_test_acc for r in runs if r.best_test_acc is not None]
        best = statistics.median(bests) if bests else None
        if not runs:
            text = ""
        elif median is None and value == "grokked_at":
            text = f"no ({fmt.acc(best)})" if best is not None else "no"
        else:
            text = cell_text(value, median)
            if len(vals) != len(runs):
                text = f"{text} {len(vals)}/{len(runs)}"
        return cls(runs, median, len(vals), len(runs), best, text)

    @property
    def grokked(self) -> int:
        return sum(r.grokked_at is not None for r in self.runs)


@dataclass(frozen=True)
class Grid:
    """A results table over two keys: what `grok grid` prints and the sweep screen colours."""

    rows: str
    cols: str
    value: str
    row_values: list[Any]
    col_values: list[Any]
    cells: list[list[Cell]]

    def records(self) -> list[dict[str, Any]]:
        """One flat record per non-empty cell (the --json and --csv rows)."""
        out = []
        for rv, line in zip(self.row_values, self.cells, strict=True):
            for cv, c in zip(self.col_values, line, strict=True):
                if c.n:
                    out.append(
                        {
                            self.rows: show(rv) if isinstance(rv, tuple) else rv,
                            self.cols: show(cv) if isinstance(cv, tuple) else cv,
                            self.value: c.value,
                            "k": c.k,
                            "n": c.n,
                            "grokked": c.grokked,
                            "best_test_acc": c.best_test_acc,
                            "text": c.text,
                            "runs": [r.run_id for r in c.runs],
                        }
                    )
        return out

    def shades(self) -> list[list[float | None]]:
        """Each cell's place on the colour scale, 0 (worst) to 1 (best), None where nothing was reached:
        earlier steps and lower losses are better (both on a log scale), higher accuracies are."""
        kind = finite_kind(self.value)
        lower_better = kind == "step" or (kind == "num" and "loss" in self.value)
        log = kind == "step" or "loss" in self.value

        def t(v: float) -> float:
            return math.log10(max(v, 1e-12)) if log else v

        vals = [t(c.value) for line in self.cells for c in line if c.value is not None]
        lo, hi = (min(vals), max(vals)) if vals else (0.0, 0.0)
        out = []
        for line in self.cells:
            row = []
            for c in line:
                if c.value is None:
                    row.append(None)
                    continue
                if hi == lo:  # one value: nothing to rank it against
                    row.append(1.0)
                    continue
                x = (t(c.value) - lo) / (hi - lo)
                row.append(1.0 - x if lower_better else x)
            out.append(row)
        return out
