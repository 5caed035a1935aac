"""`grok compare` and `grok grid`: many runs side by side, and a sweep as Furuta et al.'s Table A.5.

Both read the sweep model (grok_tui.sweeps), the one the app's sweep screen draws, so the numbers agree.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from .. import format as fmt
from .common import RunsDirOpt, default_runs_dir, fail, strict_json, table_console

RefsArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="RUN|EXPERIMENT", help="Runs, or experiments (all their runs); none: every run."),
]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where", metavar="KEY=VALUE", help="Only runs with this setting (repeatable), e.g. train_frac=0.3."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="CSV instead of a table.")]
#: Results `grok compare` shows in its table (--json and --csv carry every result and final measure).
TABLE_RESULTS = ("memorised_at", "grokked_at", "best_test_acc", "final_test_acc", "final_test_loss")
HEADERS = {
    "memorised_at": "memorised at",
    "grokked_at": "grokked at",
    "best_test_acc": "best test",
    "final_test_acc": "final test",
    "final_train_acc": "final train",
    "final_train_loss": "train loss",
    "final_test_loss": "test loss",
}


def _sweep(runs_dir, refs: list[str] | None, where: list[str] | None):
    """The selection as a Sweep, or exit 2 with the line that says what is wrong."""
    from ..sweeps import Sweep, SweepError

    root = default_runs_dir(runs_dir)
    if not root.is_dir():
        raise fail(f"no runs directory '{root}' (start runs with `grok run experiments.toml`)")
    try:
        sweep = Sweep.load(root, refs or [])
        sweep = sweep.where(where or []) if where else sweep
    except (LookupError, SweepError) as e:
        raise fail(str(e)) from None
    if not sweep.runs:
        what = f" matching {' '.join(where or [])}" if where else ""
        raise fail(f"no runs{what} in {root}")
    return sweep


def _emit(records: list[dict[str, Any]], as_json: bool, as_csv: bool) -> bool:
    """Write ``records`` as JSON or CSV when asked; True when done."""
    if as_json and as_csv:
        raise fail("--json and --csv exclude each other")
    if as_json:
        typer.echo(json.dumps(strict_json(records), indent=1, allow_nan=False))
        return True
    if as_csv:  # the export's CSV: nested tables as dotted columns (KEY.median), lists as JSON cells
        from .exporting import columns, flatten_row, render

        rows = [flatten_row(strict_json(r)) for r in records]
        sys.stdout.write(render(columns(rows), rows, "csv"))
        return True
    return False


def _plain(v: Any) -> Any:
    """A setting for JSON: a tuple (a task mixture, betas) as the list it was in spec.json."""
    return list(v) if isinstance(v, tuple) else v


def compare(
    refs: RefsArg = None,
    by: Annotated[
        str,
        typer.Option(
            "--by", metavar="HOW", help="run: a row per run; point: a row per sweep point (seeds aggregated)."
        ),
    ] = "run",
    sort: Annotated[
        str | None,
        typer.Option("--sort", metavar="KEY", help="Sort by a setting or a result (unknown last)."),
    ] = None,
    where: WhereOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Runs side by side: only the settings that differ among them, then what each reached."""
    from ..sweeps import MEASURES, RESULTS, SweepError, cell_text, show, sort_key

    if by not in ("run", "point"):
        raise fail(f"--by '{by}' is not run or point")
    sweep = _sweep(runs_dir, refs, where)
    try:
        key = sweep.key(sort) if sort else None
    except SweepError as e:
        raise fail(str(e)) from None
    measures = [m for m in MEASURES if any(m in r.measures for r in sweep.runs)]
    if by == "run":
        runs = list(sweep.runs)
        if key:
            runs.sort(key=lambda r: (r.value(key) is None, sort_key(r.value(key))))
        records = [
            {
                "run_id": r.run_id,
                "state": r.state,
                **{k: _plain(r.settings.get(k)) for k in sweep.keys},
                **{k: r.value(k) for k in (*RESULTS, *measures)},
            }
            for r in runs
        ]
        if _emit(records, as_json, as_csv):
            return
        cols = ["run", "state", *sweep.keys, *(HEADERS[k] for k in TABLE_RESULTS)]
        rows = [
            [r.run_id, r.state]
            + [show(r.settings.get(k)) for k in sweep.keys]
            + [cell_text(k, r.value(k)) for k in TABLE_RESULTS]
            for r in runs
        ]
        _table(cols, rows, right_from=2)
        return
    points = sweep.points()
    if key:

        def point_key(p) -> tuple:
            v = dict(p.key).get(key) if key in sweep.point_keys else p.spread(key).median
            return (v is None, sort_key(v))

        points.sort(key=point_key)
    records = []
    for p in points:
        rec: dict[str, Any] = {k: _plain(v) for k, v in p.key}
        rec.update(n=p.n, grokked=p.grokked, runs=[r.run_id for r in p.runs])
        for k in (*RESULTS, *measures):
            s = p.spread(k)
            rec[k] = {"median": s.median, "mean": s.mean, "std": s.std, "min": s.min, "max": s.max, "k": s.k}
        records.append(rec)
    if _emit(records, as_json, as_csv):
        return
    cols = [*sweep.point_keys, "runs", "grokked", "grokked at", "best test", "final test", "test loss"]
    rows = []
    for p in points:
        g, best, final, loss = (
            p.spread(k) for k in ("grokked_at", "best_test_acc", "final_test_acc", "final_test_loss")
        )
        rows.append(
            [show(v) for _, v in p.key]
            + [
                str(p.n),
                f"{p.grokked}/{p.n}",
                _median_range("grokked_at", g),
                _mean_std(best),
                _mean_std(final),
            ]
            + [cell_text("final_test_loss", loss.median)]
        )
    _table(cols, rows, right_from=len(sweep.point_keys))


def _median_range(key: str, s) -> str:
    """``1,200 (900–1,500)``: the median and the range over the seeds that have it."""
    from ..sweeps import cell_text

    if s.median is None:
        return fmt.DASH
    text = cell_text(key, s.median)
    return text if s.k == 1 or s.min == s.max else f"{text} ({cell_text(key, s.min)}–{cell_text(key, s.max)})"


def _mean_std(s) -> str:
    if s.mean is None:
        return fmt.DASH
    return fmt.acc(s.mean) if s.k == 1 else f"{fmt.acc(s.mean)} ± {fmt.acc(s.std)}"


def _table(cols: list[str], rows: list[list[str]], right_from: int, title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for i, c in enumerate(cols):
        table.add_column(c, justify="right" if i >= right_from else "left", no_wrap=i == 0)
    for r in rows:
        table.add_row(*r)
    table_console().print(table)


def grid(
    refs: RefsArg = None,
    rows: Annotated[
        str, typer.Option("--rows", metavar="KEY", help="The setting down the side, e.g. task.")
    ] = "",
    cols: Annotated[
        str, typer.Option("--cols", metavar="KEY", help="The setting across, e.g. train_frac.")
    ] = "",
    value: Annotated[
        str,
        typer.Option(
            "--value",
            metavar="RESULT",
            help="What a cell shows: grokked_at (default), memorised_at, best_test_acc, final_test_acc, ...",
        ),
    ] = "grokked_at",
    where: WhereOpt = None,
    plot: Annotated[
        bool, typer.Option("--plot", help="Draw the grid as a coloured heatmap (a phase diagram).")
    ] = False,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """A sweep as a table (Furuta et al. 2024, Table A.5): a cell is the median step at which its seeds
    grokked, or, where none did, `no (ACC)` with the median of their best test accuracy; `k/n` when
    seeds disagree."""
    from ..sweeps import SweepError

    if not rows or not cols:
        raise fail("grok grid needs --rows KEY and --cols KEY (e.g. --rows task --cols train_frac)")
    sweep = _sweep(runs_dir, refs, where)
    try:
        g = sweep.grid(rows, cols, value)
    except SweepError as e:
        raise fail(str(e)) from None
    if _emit(g.records(), as_json, as_csv):
        return
    console = table_console()
    title = g.value
    if g.value.startswith("gini_"):  # which Gini: the papers leave the constant component open
        in_out = {r.settings.get("analysis.gini_constant", False) for r in sweep.runs}
        words = [fmt.gini_convention(v if isinstance(v, bool) else None) for v in sorted(in_out, key=str)]
        title += f" ({' / '.join(words)})"
    console.print(f"{title}: {g.rows} down, {g.cols} across", style="bold", highlight=False)
    console.print(grid_table(g, plot))
    if g.value == "grokked_at":
        console.print(
            "cell: median step at which its seeds grokked (test acc ≥ 0.99); no (ACC): none did, median of "
            "their best test accuracy; k/n: k of n seeds",
            style="dim",
            highlight=False,
        )


def grid_table(g, plot: bool):
    """The grid as a rich Table; with ``plot`` every cell is coloured by its place on the scale."""
    from rich.table import Table
    from rich.text import Text

    from ..sweeps import short, show

    table = Table(header_style="bold")
    table.add_column(f"{short(g.rows)} \\ {short(g.cols)}", no_wrap=True)
    for cv in g.col_values:
        table.add_column(show(cv), justify="right")
    shades = g.shades()
    for rv, line, shade in zip(g.row_values, g.cells, shades, strict=True):
        cells = []
        for c, t in zip(line, shade, strict=True):
            if not plot:
                cells.append(Text(c.text))
            else:
                cells.append(Text(f" {c.text} ", style=_style(t, bool(c.n))))
        table.add_row(show(rv), *cells)
    return table


#: A sequential scale (viridis' ends and middle), worst to best.
_STOPS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def _style(t: float | None, filled: bool) -> str:
    if not filled:
        return ""
    if t is None:
        return "bold white on rgb(120,30,30)"  # reached nothing: did not grok
    x = min(max(t, 0.0), 1.0) * (len(_STOPS) - 1)
    i = min(int(x), len(_STOPS) - 2)
    f = x - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(_STOPS[i], _STOPS[i + 1], strict=True))
    ink = "black" if (0.299 * r + 0.587 * g + 0.114 * b) > 140 else "white"
    return f"{ink} on rgb({r},{g},{b})"
