"""The tables `grok` prints: the run summary (`ls`, `run`, `resume`, `show`) and `validate`'s run list.

A run id is never cut: when the console is too narrow, whole columns go first (least useful first), then
long error notes are shortened; the numbers are formatted exactly as the TUI's table shows them.
"""

from __future__ import annotations

from typing import Any

from ..tui import format as fmt

#: Summary columns: (header, right-aligned, drop rank: higher goes first when the console is narrow).
SUMMARY_COLUMNS = (
    ("run", False, 0),
    ("state", False, 0),
    ("step", True, 3),
    ("train acc", True, 4),
    ("test acc", True, 1),
    ("memorised at", True, 5),
    ("grokked at", True, 2),
    ("task", False, 6),
    ("device", True, 7),
)
STATE_STYLE = {"done": "green", "running": "cyan", "failed": "red", "stopped": "yellow", "queued": "dim"}
NOTE_STYLE = {"no scheduler)": "yellow"}
ERROR_NOTE = 40


def _cells(s: Any) -> dict[str, str]:
    return {
        "run": s.run_id,
        "state": s.label,
        "step": fmt.progress(s.step, s.total_steps),
        "train acc": fmt.acc(s.train_acc),
        "test acc": fmt.acc(s.test_acc),
        "memorised at": fmt.step(s.memorised_at),
        "grokked at": fmt.step(s.grokked_at),
        "task": s.task,
        "device": s.device,
    }


def _width(cols: list[str], rows: list[dict[str, str]]) -> int:
    """Width of a rich table (default box) of ``cols``: each column its widest cell + 2 padding + 1 rule,
    plus the closing rule."""
    return 1 + sum(max([len(c)] + [len(r[c]) for r in rows]) + 3 for c in cols)


def _fit(rows: list[dict[str, str]], width: int) -> tuple[list[str], int]:
    """The columns to show at ``width`` (whole columns go by rank, never the run or its state) and the
    columns to spare for error notes."""
    keep = [c for c, _, _ in SUMMARY_COLUMNS]
    ranks = {c: r for c, _, r in SUMMARY_COLUMNS}
    for col in sorted(keep, key=lambda c: -ranks[c]):
        if _width(keep, rows) <= width or ranks[col] == 0:
            break
        keep.remove(col)
    return keep, width - _width(keep, rows)


def summary_table(summaries: list[Any], title: str | None = None, width: int | None = None):
    """A rich Table of run summaries that fits ``width`` columns without cutting a run id."""
    from rich.table import Table
    from rich.text import Text

    rows = [_cells(s) for s in summaries]
    notes = [f" ({s.error[:ERROR_NOTE]})" if s.error and s.state == "failed" else "" for s in summaries]
    keep, spare = (
        _fit(rows, width) if width else ([c for c, _, _ in SUMMARY_COLUMNS], len(max(notes, key=len)))
    )
    state_w = max([len("state")] + [len(r["state"]) for r in rows])
    table = Table(title=title, header_style="bold")
    for col, right, _ in SUMMARY_COLUMNS:
        if col in keep:
            longest = max([len(col)] + [len(r[col]) for r in rows])
            table.add_column(
                col,
                justify="right" if right else "left",
                no_wrap=col in ("run", "state"),
                min_width=longest if col == "run" else None,
            )
    for s, cells, note in zip(summaries, rows, notes, strict=True):
        out = []
        for col in keep:
            if col == "state":
                state, _, extra = cells[col].partition(" (")
                text = Text(state, style=STATE_STYLE.get(s.state, "white"))
                if extra:
                    text.append(f" ({extra}", style=NOTE_STYLE.get(extra, "yellow"))
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
        task = " | ".join(r["task"]) if isinstance(r["task"], list) else r["task"]
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
