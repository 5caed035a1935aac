"""The tables `grok` prints: the run summary (`ls`, `run`, `resume`, `show`) and `validate`'s run list.

A run id is never cut: when the console is too narrow, whole columns go first (least useful first), then
long error notes are shortened; the numbers are formatted exactly as the TUI's table shows them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import format as fmt

#: Summary columns: (header, key in format.cells, right-aligned, drop rank: higher goes first when narrow).
SUMMARY_COLUMNS = (
    ("run", "run", False, 0),
    ("state", "state", False, 0),
    ("step", "step", True, 3),
    ("train acc", "train_acc", True, 4),
    ("test acc", "test_acc", True, 1),
    ("memorised at", "memorised_at", True, 5),
    ("grokked at", "grokked_at", True, 2),
    ("task", "task", False, 6),
    ("device", "device", True, 7),
)
#: Right after the state when some listed run is a Slurm run (a local-only listing is not widened):
#: its job id, and the node its worker runs on (every listed run's host). When narrow the node goes
#: first; the job (what scancel and squeue name) stays longer than train acc, less than the step.
SLURM_COLUMNS = (
    ("job", "job", False, 3.5),
    ("node", "node", False, 8),
)


#: An extra column: (header, one cell per run, right-aligned).
Extra = tuple[str, Sequence[str], bool]


def _cells(s: Any) -> dict[str, str]:
    """The summary's cells by header: exactly the TUI's text (grok_tui.format)."""
    c = fmt.cells(s)
    return {header: c[key] for header, key, _, _ in SUMMARY_COLUMNS + SLURM_COLUMNS}


def _columns(extra: Sequence[Extra], slurm: bool = False) -> list[tuple[str, bool, float]]:
    """(header, right-aligned, drop rank) of every column: the extra ones right after the run id, and the
    first to go when narrow (the last of them first); the Slurm ones after the state."""
    base = [(c, right, rank) for c, _, right, rank in SUMMARY_COLUMNS]
    more = [(h, right, 100 + i) for i, (h, _, right) in enumerate(extra)]
    jobs = [(c, right, rank) for c, _, right, rank in SLURM_COLUMNS] if slurm else []
    return base[:1] + more + base[1:2] + jobs + base[2:]


def _width(cols: list[str], rows: list[dict[str, str]]) -> int:
    """Width of a rich table (default box) of ``cols``: each column its widest cell + 2 padding + 1 rule,
    plus the closing rule."""
    return 1 + sum(max([len(c)] + [len(r[c]) for r in rows]) + 3 for c in cols)


def _fit(
    rows: list[dict[str, str]], width: int, columns: list[tuple[str, bool, float]]
) -> tuple[list[str], int]:
    """The columns to show at ``width`` (whole columns go by rank, never the run or its state) and the
    columns to spare for error notes."""
    keep = [c for c, _, _ in columns]
    ranks = {c: r for c, _, r in columns}
    for col in sorted(keep, key=lambda c: -ranks[c]):
        if _width(keep, rows) <= width or ranks[col] == 0:
            break
        keep.remove(col)
    return keep, width - _width(keep, rows)


def summary_table(
    summaries: list[Any], title: str | None = None, width: int | None = None, extra: Sequence[Extra] = ()
):
    """A rich Table of run summaries that fits ``width`` columns without cutting a run id; ``extra``
    columns (a sweep's settings) go first when it does not fit. Slurm runs among them add the job and
    node columns."""
    from rich.table import Table
    from rich.text import Text

    columns = _columns(extra, slurm=any(s.slurm is not None for s in summaries))
    rows = [_cells(s) | {h: cells[i] for h, cells, _ in extra} for i, s in enumerate(summaries)]
    notes = [f" ({fmt.short_error(s.error)})" if s.error and s.state == "failed" else "" for s in summaries]
    everything = [c for c, _, _ in columns]
    keep, spare = _fit(rows, width, columns) if width else (everything, max(map(len, notes), default=0))
    state_w = max([len("state")] + [len(r["state"]) for r in rows])
    table = Table(title=title, header_style="bold")
    for col, right, _ in columns:
        if col in keep:
            longest = max([len(col)] + [len(r[col]) for r in rows])
            table.add_column(
                col,
                justify="right" if right else "left",
                no_wrap=col in ("run", "state", "job"),
                min_width=longest if col == "run" else None,
            )
    for s, cells, note in zip(summaries, rows, notes, strict=True):
        out = []
        for col in keep:
            if col == "state":
                text = Text(cells[col], style=fmt.RICH_STYLES[fmt.state_label(s).tone])
                room = state_w + spare - len(cells[col])  # a note may widen the state column that far
                if note and room > 4:
                    text.append(note if len(note) <= room else note[: room - 1] + "…", style="dim")
                out.append(text)
            else:
                out.append(Text(cells[col]))
        table.add_row(*out)
    return table


def runs_table(cfg: Any, title: str):
    """``grok validate``: the runs an experiments file expands to."""
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for col in ("run", "task", "p", "frac", "seed", "model", "steps", "eval/ckpt", "device"):
        table.add_column(col, no_wrap=col == "run")
    for r in cfg.runs:
        m = r["model"]
        model = m["kind"] + (f" L{m['layers']} d{m['d_model']}" if m["kind"] == "transformer" else "")
        if init := fmt.init_from_label(r.get("init_from")):
            model += f", {init}"
        task = fmt.task_label(r["task"])
        table.add_row(
            f"{r['experiment']}/{r['name']}",
            task,
            str(r["p"]),
            f"{r['train_frac']:g}",
            str(r["seed"]),
            model,
            str(r["steps"]),
            f"{r['eval_every']}/{r['checkpoint_every']}",
            r["device"],
        )
    return table
