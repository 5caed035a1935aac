"""`grok ls`, `grok show`, `grok export`, `grok inspect`: what a run directory records, headless."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import exitcodes
from ..runs import STATES, UNKNOWN, finite
from .common import RunsDirOpt, ask_slurm, default_runs_dir, fail, get_run, say, strict_json, table_console
from .tables import SUMMARY_COLUMNS, summary_table

RunArg = Annotated[
    str,
    typer.Argument(
        metavar="RUN", help="experiment/run, a unique run or experiment name, or a run directory."
    ),
]
WidthOpt = Annotated[int, typer.Option("--width", min=20, metavar="COLS", help="Chart width in columns.")]
#: What `grok ls --json` gives per run.
LS_KEYS = (
    "run_id",
    "state",
    "step",
    "total_steps",
    "train_acc",
    "test_acc",
    "memorised_at",
    "grokked_at",
    "device",
    "error",
    "orphaned",
    "backend",
    "job",
    "host",
    "reason",
)
#: What `grok ls --state` takes: a run's state, or that it cannot be known.
LS_STATES = (*STATES, UNKNOWN)


ExperimentOpt = Annotated[
    list[str] | None,
    typer.Option("--experiment", metavar="NAME", help="Only this experiment's runs (repeatable)."),
]
StateOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--state", metavar="STATE", help="Only runs in this state (repeatable): " + ", ".join(LS_STATES) + "."
    ),
]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        metavar="KEY=VALUE",
        help="Only runs with this setting (repeatable; all must hold): train_frac=0.3, or a key's last "
        "part, weight_decay=1; numbers match by value.",
    ),
]


def ls(
    runs_dir: RunsDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    experiments: ExperimentOpt = None,
    states: StateOpt = None,
    where: WhereOpt = None,
) -> None:
    """Table of runs: state, step, accuracies, memorised at and grokked at.

    When the runs listed all belong to one experiment, the settings its runs vary (seed too) are columns
    of the table (the first to go in a narrow terminal) and a "settings" object of each --json row.
    """
    from ..runs import list_runs

    root = default_runs_dir(runs_dir)
    if not root.is_dir():
        raise fail(f"no runs directory '{root}' (start runs with `grok run experiments.toml`)")
    if bad := [s for s in states or () if s not in LS_STATES]:
        raise fail(f"--state '{bad[0]}' is not one of {', '.join(LS_STATES)}")
    everything = list_runs(root)
    chosen = _of_experiments(everything, experiments or [], root)
    ask_slurm(chosen)
    listed = _where(chosen, where) if where else [r.summary() for r in chosen]
    summaries = [s for s in listed if not states or s.state in states]
    varying = _varying(everything, summaries)
    if as_json:
        rows = [{k: getattr(s, k) for k in LS_KEYS} for s in summaries]
        if varying is not None:
            for i, row in enumerate(rows):
                row["settings"] = {k: _setting(vals[i]) for k, vals in varying.items()}
        typer.echo(json.dumps(strict_json(rows), indent=1, allow_nan=False))
        return
    console = table_console()
    extra = _setting_columns(varying or {})
    console.print(summary_table(summaries, title=str(root), width=console.width, extra=extra))


def _of_experiments(runs: list[Any], names: list[str], root: Path) -> list[Any]:
    """The runs of the experiments ``names`` (all runs when none), or exit 2 for a name with no runs."""
    if not names:
        return runs
    known = sorted({r.experiment for r in runs})
    for name in names:
        if name not in known:
            raise fail(f"no experiment '{name}' in {root} (experiments: {', '.join(known) or 'none'})")
    return [r for r in runs if r.experiment in names]


def _where(runs: list[Any], conditions: list[str]) -> list[Any]:
    """The summaries of the runs whose settings match every KEY=VALUE (sweeps.Sweep.where), read once
    for both; or exit 2 for a bad condition."""
    from ..sweeps import Sweep, SweepError, result

    try:
        return [r.summary for r in Sweep([result(r) for r in runs]).where(conditions).runs]
    except SweepError as e:
        raise fail(str(e)) from None


def _varying(everything: list[Any], summaries: list[Any]) -> dict[str, list[Any]] | None:
    """When the listed runs are all of one experiment: the settings its runs (listed or not) vary, each
    with the listed runs' values; None otherwise."""
    if len({s.experiment for s in summaries}) != 1:
        return None
    from ..sweeps import differing, settings

    exp = summaries[0].experiment
    keys = differing(settings(r.spec()) for r in everything if r.experiment == exp)
    listed = [settings(s.spec) for s in summaries]
    return {k: [st.get(k) for st in listed] for k in keys}


def _setting(v: Any) -> Any:
    from ..sweeps import show

    return show(v) if isinstance(v, tuple) else v


def _setting_columns(varying: dict[str, list[Any]]) -> list[tuple[str, list[str], bool]]:
    """The table's columns of the settings: short headers (``wd``), the full key where two would share
    one; a setting the summary already shows (task, device) is not repeated."""
    from ..sweeps import short, show

    heads = [short(k) for k in varying]
    shown = {c for c, _, _, _ in SUMMARY_COLUMNS}
    out = []
    for (key, vals), head in zip(varying.items(), heads, strict=True):
        if head in shown:
            continue
        numeric = all(v is None or finite(v) is not None for v in vals)
        out.append((head if heads.count(head) == 1 else key, [show(v) for v in vals], numeric))
    return out


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the rows where ``key`` is a finite number (NaN/inf points are not drawn)."""
    pts = [(r["step"], v) for r in rows if (v := finite(r.get(key))) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def show(run_ref: RunArg, runs_dir: RunsDirOpt = None, width: WidthOpt = 100) -> None:
    """Summary of one run and its curves: accuracy (log-x), loss (log-y), progress measures."""
    from .. import format as fmt
    from .. import plots
    from .progress import progress_curves

    r = get_run(runs_dir, run_ref)
    ask_slurm([r])
    s = r.summary()
    rows = r.metrics()
    console = table_console()
    console.print(summary_table([s], width=console.width))
    for line in fmt.slurm_lines(s):
        console.print(line, markup=False, highlight=False)
    _pack_line(console, r)
    if s.skipped_rows:
        say(f"note: {r.run_id}: skipped {s.skipped_rows} unreadable line(s) of metrics.jsonl", err=True)
    if not rows:
        console.print("no evaluations yet")
        return
    if len({r["step"] for r in rows}) == 1:  # a single solve (an RFM with fixed features): no curve
        _one_evaluation(console, rows[-1])
        return
    acc = {k.split("_")[0]: _series(rows, k) for k in ("train_acc", "test_acc")}
    print(plots.curves(acc, f"{s.run_id}: accuracy", width=width, ylim=(0, 1)))
    loss = {k.split("_")[0]: _series(rows, k) for k in ("train_loss", "test_loss")}
    print(plots.curves(loss, f"{s.run_id}: loss", width=width, log_y=True))
    for chart in progress_curves(r.path, width):
        print(chart)


def _pack_line(console: Any, r: Any) -> None:
    """Which pack a live run trains in: `grok stop` of it stops it alone, the pack's other runs go on."""
    from ..launch.local import live_pack

    st = r.raw_status()
    pack = live_pack(st) if r.alive() else None
    if pack:
        members = st["pack"].get("members")
        n = len(members) if isinstance(members, list) else 0
        others = f" with {n - 1} other run{'s' if n != 2 else ''}" if n > 1 else ""
        line = f"training in pack {pack}{others} (pid {st.get('pid')}): `grok stop` stops this run alone"
        console.print(line, markup=False, highlight=False)


def _one_evaluation(console: Any, row: dict[str, Any]) -> None:
    """The numbers of a run evaluated at one step only, where curves would be single invisible points."""
    from .. import format as fmt

    console.print(f"one evaluation, at step {fmt.step(row['step'])}: no curves to draw; its measures:")
    for key, value in row.items():
        if key not in ("step", "time") and finite(value) is not None:
            console.print(f"  {key:<24} {fmt.num(value)}")


RefsArg = Annotated[
    list[str],
    typer.Argument(
        metavar="RUN|EXPERIMENT",
        help="experiment/run, a unique run name or a run directory; an experiment name: all its runs.",
    ),
]


def export(
    refs: RefsArg,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help="csv or jsonl.")] = "csv",
    output: Annotated[
        str | None, typer.Option("-o", "--output", metavar="FILE", help="File to write (default: stdout).")
    ] = None,
    measures: Annotated[
        bool,
        typer.Option(
            "--measures",
            help="Also the measures against the final model (progress.jsonl: restricted/excluded loss with "
            "the final key frequencies; RFM: alignment with the final feature matrix) as progress.* "
            "columns on the rows of their checkpoint. Each checkpoint's own restricted/excluded loss, "
            "Gini, FFD/FCR are metrics columns anyway.",
        ),
    ] = False,
    fourier: Annotated[
        bool,
        typer.Option(
            "--fourier",
            help="The Fourier spectra instead (fourier.jsonl): one row per step, spectrum (which: embed, "
            "logit, ...), frequency k and its norm.",
        ),
    ] = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Export metrics (every evaluation, every measure) as CSV or JSON lines.

    One run: its metrics rows, flattened. Several runs: one long table whose rows start with run_id and
    the settings that vary among them (seed too), then step and the metrics. A run without rows is left
    out with a note; exit 1 when no run has any.
    """
    from . import exporting

    if fmt not in ("csv", "jsonl"):
        raise fail(f"--format '{fmt}' is not csv or jsonl")
    if fourier and measures:
        raise fail("--fourier and --measures exclude each other")
    target = _output_file(output) if output is not None else None
    selected = _select(runs_dir, refs)
    parts = [exporting.fourier_part(r) if fourier else exporting.metrics_part(r, measures) for r in selected]
    if len(parts) == 1:
        part = parts[0]
        if not part.rows:
            raise fail(f"{part.run.run_id} has {part.why_empty()}: nothing to export", exitcodes.FAILED)
        first = exporting.FOURIER_COLUMNS if fourier else ()
        cols, rows = exporting.columns(part.rows, first), part.rows
    else:
        if not any(p.rows for p in parts):
            what = parts[0].what
            raise fail(f"none of the {len(parts)} runs has {what}: nothing to export", exitcodes.FAILED)
        for p in parts:
            if not p.rows:
                say(f"note: {p.run.run_id} has {p.why_empty()}: left out", err=True)
        cols, rows = exporting.tidy(parts, fourier)
    for p in parts:
        if p.rows and p.skipped:
            say(f"note: {p.run.run_id}: {'; '.join(p.skipped)}", err=True)
    _write(exporting.render(cols, rows, fmt), target, output)


def _select(runs_dir: Path | None, refs: list[str]) -> list[Any]:
    """The runs ``refs`` name (an experiment: all its runs), or exit 2 naming the ref that names none."""
    from ..sweeps import select

    try:
        return select(default_runs_dir(runs_dir), refs)
    except LookupError as e:
        raise fail(str(e)) from None


def _write(text: str, target: Path | None, output: str | None) -> None:
    """To stdout, or all or nothing to ``target``: an existing file is replaced only by a whole new one."""
    if target is None:
        sys.stdout.write(text)
        return
    try:
        with tempfile.NamedTemporaryFile(
            "w", dir=target.parent, prefix=f".{target.name}.", delete=False, newline=""
        ) as f:
            f.write(text)
        os.replace(f.name, target)
    except OSError as e:
        with contextlib.suppress(OSError, NameError):
            os.unlink(f.name)
        raise fail(f"-o {output}: cannot write: {e.strerror or e}") from None


def _output_file(output: str) -> Path:
    """``-o`` as a file to create or replace, or exit 2 naming what is wrong with it."""
    path = Path(output)
    if not output or output.endswith(os.sep) or path.is_dir():
        raise fail(f"-o {output}: is a directory; name a file to write (e.g. {path / 'metrics.csv'})")
    if not path.parent.is_dir():
        raise fail(f"-o {output}: no directory {path.parent}")
    return path


def inspect(
    run_ref: RunArg,
    step: Annotated[
        int | None, typer.Option("--step", metavar="N", help="Checkpoint step (default: the last).")
    ] = None,
    last: Annotated[bool, typer.Option("--last", help="The last checkpoint (the default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text and charts.")] = False,
    runs_dir: RunsDirOpt = None,
    width: WidthOpt = 100,
) -> None:
    """Key frequencies, W_E/W_L spectra, restricted/excluded loss, Fourier ablations and neuron clusters,
    Gini, FFD/FCR and phase of a checkpoint."""
    from .inspecting import inspect as inspect_run

    if step is not None and last:
        raise fail("--step and --last exclude each other")
    r = get_run(runs_dir, run_ref)
    code = inspect_run(r.path, None if last else step, as_json, width)
    if code:
        raise typer.Exit(code)
