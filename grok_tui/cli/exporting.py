"""The tables `grok export` writes: one run's metrics as they were, or a selection's as one long table.

One run exports its metrics.jsonl rows flattened, the columns scripts already read. Several runs make one
tidy table: every row starts with ``run_id`` and the settings the selection varies (sweeps.differing), so
a dataframe groups by them without parsing run names. ``--fourier`` makes the same kind of table of the
spectra, one row per (step, spectrum, frequency). Every number is finite or empty (null in JSON lines).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import sweeps
from ..runs import FOURIER, METRICS, PROGRESS, JsonlTail, RunDir, finite, is_step
from .common import strict_json

#: Columns --measures adds from progress.jsonl: measures against the *final* model (its key frequencies,
#: its feature matrix). The metrics rows' own restricted_loss etc. use each checkpoint's key frequencies.
PROGRESS_PREFIX = "progress."
#: The columns of a spectra table after the run's own.
FOURIER_COLUMNS = ("step", "which", "freq", "norm")


@dataclass
class Part:
    """One run's rows of the table, and the lines of its files that were skipped reading them."""

    run: RunDir
    what: str  # what the rows are, for "has no evaluations yet"
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def why_empty(self) -> str:
        """Why a run gave no rows, as the single-run export has always said it."""
        if self.skipped:
            return f"no readable {self.what} ({'; '.join(self.skipped)})"
        return f"no {self.what} yet"


def flatten_row(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables become dotted columns (``tasks.a + b.test_acc``), lists a JSON cell."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(flatten_row(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out[prefix + k] = json.dumps(v)
        else:
            out[prefix + k] = v
    return out


def _read(part: Part, run: RunDir, name: str) -> list[dict[str, Any]]:
    tail = JsonlTail(run.path / name)
    rows = tail.read_new()
    if tail.skipped:
        part.skipped.append(f"{tail.skipped} unreadable line(s) of {name} skipped")
    return rows


def metrics_part(run: RunDir, measures: bool = False) -> Part:
    """Every evaluation of a run, flattened; ``measures``: progress.jsonl's columns on the rows of their
    step (a step no evaluation has gets a row of its own)."""
    part = Part(run, "evaluations")
    part.rows = [flatten_row(strict_json(row)) for row in _read(part, run, METRICS)]
    if measures:
        part.rows = _with_progress(part.rows, _read(part, run, PROGRESS))
    return part


def _with_progress(rows: list[dict[str, Any]], progress: list[dict[str, Any]]) -> list[dict[str, Any]]:
    at: dict[int, dict[str, Any]] = {}
    for row in rows:
        at.setdefault(row["step"], row)
    alone = []
    for p in progress:
        cols = {PROGRESS_PREFIX + k: v for k, v in flatten_row(strict_json(p)).items() if k != "step"}
        if p["step"] in at:
            at[p["step"]].update(cols)
        else:
            alone.append({"step": p["step"], **cols})
            at[p["step"]] = alone[-1]
    return sorted(rows + alone, key=lambda r: r["step"]) if alone else rows


def fourier_part(run: RunDir) -> Part:
    """fourier.jsonl in long form: one row per step, spectrum (``embed``, ``logit``, ...) and frequency."""
    part = Part(run, "Fourier spectra")
    for row in _read(part, run, FOURIER):
        part.rows.extend(spectra_rows(row))
    return part


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(map(_number, v))


def _number(x: Any) -> bool:
    """A JSON number, finite or not (NaN, 1e400 and a 400-digit int are numbers, with no value)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def spectra_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A fourier row's spectra, each list of norms one row per frequency: k = 1, 2, ... unless the row
    names its frequencies (``freqs``); a norm that is no finite number is empty."""
    freqs = row.get("freqs")
    out = []
    for which, norms in row.items():
        if which in ("step", "freqs") or not _numbers(norms):
            continue
        named = isinstance(freqs, list) and len(freqs) == len(norms) and all(map(is_step, freqs))
        labels = freqs if named else range(1, len(norms) + 1)
        out.extend(
            {"step": row["step"], "which": which, "freq": k, "norm": finite(x)}
            for k, x in zip(labels, norms, strict=True)
        )
    return out


def columns(rows: Sequence[dict[str, Any]], first: Sequence[str] = ()) -> list[str]:
    """``first``, then every key of the rows in the order they appear."""
    cols = list(first)
    seen = set(cols)
    for row in rows:
        for k in row:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    return cols


def tidy(parts: Sequence[Part], fourier: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Several runs as one table: ``run_id``, the settings that vary among all of ``parts`` (also those
    without rows, so the columns stay put while a sweep fills in), then each run's own rows."""
    specs = [sweeps.settings(p.run.spec()) for p in parts]
    keys = sweeps.differing(specs)
    own = columns([r for p in parts for r in p.rows], ["step"] if not fourier else FOURIER_COLUMNS)
    taken = {"run_id", *own}
    names = {k: f"spec.{k}" if k in taken else k for k in keys}  # a setting never hides a metric
    out = []
    for part, spec in zip(parts, specs, strict=True):
        head = {"run_id": part.run.run_id, **{names[k]: _cell(spec.get(k)) for k in keys}}
        out.extend({**head, **row} for row in part.rows)
    return ["run_id", *names.values(), *own], strict_json(out)


def _cell(v: Any) -> Any:
    return sweeps.show(v) if isinstance(v, tuple) else v


def render(cols: Sequence[str], rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """The table as CSV (a header, every column) or strict JSON lines (each row its own keys)."""
    buf = io.StringIO(newline="")
    if fmt == "jsonl":
        for row in rows:
            buf.write(json.dumps(row, allow_nan=False) + "\n")
        return buf.getvalue()
    writer = csv.DictWriter(buf, fieldnames=list(cols))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
