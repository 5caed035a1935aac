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
ERROR_NOTE = 40


def _cells(s: Any) -> dict[str, str]:
    return {
        "run": s.run_id,
        "state": s.state,
        "step": fmt.progress(s.step, s.total_steps),
        "train acc": fmt.acc(s.train_acc),
        "test acc": fmt.acc(s.test_acc),
        "memorised at": fmt.step(s.memorised_at),
        "grokked at": fmt.step(s.grokked_at),
        "task": s.task,
        "device": s.device,
    }


def _fit(headers: list[str], rows: list[dict[str, str]], width: int, ranks: dict[str, int]) -> list[str]:
    """The columns to show at ``width``: drop by rank until the table fits (rich's default box: each
    column takes its widest cell + 2 padding + 1 rule, plus one closing rule)."""
    keep = list(headers)

    def need(cols: list[str]) -> int:
        return 1 + sum(max([len(c)] + [len(r[c]) for r in rows]) + 3 for c in cols)

    for col in sorted(headers, key=lambda c: -ranks[c]):
        if need(keep) <= width or ranks[col] == 0:
            break
        keep.remove(col)
    return keep


def summary_table(summaries: list[Any], title: str | None = None, width: int | None = None):
    """A rich Table of run summaries that fits ``width`` columns without cutting a run id."""
    from rich.table import Table
    from rich.text import Text

    rows = []
    for s in summaries:
        cells = _cells(s)
        if s.error and s.state == "failed":
            cells["state"] += f" ({s.error[:ERROR_NOTE]})"
        rows.append(cells)
    headers = [c for c, _, _ in SUMMARY_COLUMNS]
    ranks = {c: r for c, _, r in SUMMARY_COLUMNS}
    keep = _fit(headers, rows, width, ranks) if width else headers
    table = Table(title=title, header_style="bold")
    for col, right, _ in SUMMARY_COLUMNS:
        if col in keep:
            no_wrap = col in ("run", "state")
            table.add_column(col, justify="right" if right else "left", no_wrap=no_wrap, overflow="fold")
    for s, cells in zip(summaries, rows, strict=True):
        out = []
        for col in keep:
            if col == "state":
                state, _, note = cells[col].partition(" (")
                text = Text(state, style=STATE_STYLE.get(s.state, "white"))
                if note:
                    text.append(f" ({note}", style="dim")
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
