"""``grok``: the headless commands. Heavy modules (torch, textual) are imported inside commands only."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    help="Run, watch and take apart grokking experiments (Nanda 2023, Furuta 2024, Mallinar 2024).",
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

RunsDirOpt = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Runs directory (default: runs_dir of ./experiments.toml, else ./runs)."),
]


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise: no traceback for a user's mistake."""
    typer.echo(f"grok: error: {message}", err=True)
    return typer.Exit(code)


def load(file: Path):
    from .config import ConfigError, load_config

    try:
        return load_config(file)
    except ConfigError as e:
        raise fail(str(e)) from None


def default_runs_dir(runs_dir: Path | None) -> Path:
    """--runs-dir, else $GROK_RUNS_DIR, else [defaults].runs_dir of ./experiments.toml, else ./runs."""
    if runs_dir is not None:
        return runs_dir
    if env := os.environ.get("GROK_RUNS_DIR"):
        return Path(env)
    toml = Path("experiments.toml")
    if toml.exists():
        import tomllib

        try:
            rd = tomllib.loads(toml.read_text()).get("defaults", {}).get("runs_dir")
        except (OSError, ValueError):
            rd = None
        if isinstance(rd, str) and rd:
            return Path(rd)
    return Path("runs")


def get_run(runs_dir: Path | None, ref: str):
    from .runs import find_run

    root = default_runs_dir(runs_dir)
    try:
        return find_run(root, ref)
    except LookupError as e:
        raise fail(str(e)) from None


def _fmt_acc(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "-"


def _fmt_step(v: Any) -> str:
    return str(v) if v is not None else "-"


def summary_table(summaries, title: str | None = None):
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for col in (
        "run",
        "task",
        "state",
        "step",
        "train acc",
        "test acc",
        "memorised at",
        "grokked at",
        "device",
    ):
        table.add_column(col, justify="right" if col not in ("run", "task", "state") else "left")
    colors = {"done": "green", "running": "cyan", "failed": "red", "stopped": "yellow", "queued": "dim"}
    for s in summaries:
        state = f"[{colors.get(s.state, 'white')}]{s.state}[/]"
        if s.error and s.state == "failed":
            state += f" [dim]({s.error[:40]})[/]"
        table.add_row(
            s.run_id,
            s.task,
            state,
            f"{s.step}/{s.total_steps}",
            _fmt_acc(s.train_acc),
            _fmt_acc(s.test_acc),
            _fmt_step(s.memorised_at),
            _fmt_step(s.grokked_at),
            s.device,
        )
    return table


# --------------------------------------------------------------------------- validate


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="experiments.toml")]) -> None:
    """Check an experiments file and print the runs it expands to."""
    from rich.console import Console
    from rich.table import Table

    cfg = load(file)
    table = Table(title=f"{file}: {len(cfg.runs)} runs → {cfg.runs_dir}", header_style="bold")
    for col in ("run", "task", "p", "frac", "seed", "model", "steps", "eval/ckpt", "device"):
        table.add_column(col)
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
    Console().print(table)


# --------------------------------------------------------------------------- run


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="experiments.toml")],
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this experiment (repeatable).")
    ] = None,
    runs_dir: RunsDirOpt = None,
    device: Annotated[
        str | None, typer.Option(help="Override every run's device: auto, cpu, cuda, cuda:N.")
    ] = None,
    parallel: Annotated[int, typer.Option(min=1, help="Workers at once.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Start finished or changed runs over.")] = False,
) -> None:
    """Run experiments as worker processes, with a progress bar per run. Ctrl-C stops them cleanly."""
    from .config import ConfigError
    from .launch.local import LaunchError, prepare_run, spawn_worker, worker_env
    from .runs import RunDir

    cfg = load(file)
    try:
        specs = cfg.select(only)
    except ConfigError as e:
        raise fail(str(e)) from None
    if device is not None:
        from .config import _DEVICE_RE

        if not _DEVICE_RE.match(device):
            raise fail(f"--device '{device}' is not auto, cpu, cuda or cuda:N")
    root = runs_dir or cfg.runs_dir
    todo: list[RunDir] = []
    skipped: list[RunDir] = []
    for spec in specs:
        try:
            r, action = prepare_run(spec, root, force)
        except LaunchError as e:
            raise fail(str(e)) from None
        if action in ("new", "resume"):
            todo.append(r)
        else:
            why = "already done (use --force to rerun)" if action == "done" else "already has a live worker"
            typer.echo(f"grok: {r.run_id}: {why}")
            skipped.append(r)
    threads = max(1, (os.cpu_count() or 1) // min(parallel, max(len(todo), 1)))
    code = _drive(todo, parallel, lambda r: spawn_worker(r.path, worker_env(device, threads)))
    from rich.console import Console

    all_runs = todo + skipped
    if all_runs:
        Console().print(summary_table([r.summary() for r in all_runs]))
    raise typer.Exit(code)


def _drive(todo, parallel: int, spawn) -> int:
    """Foreground scheduler: at most ``parallel`` workers, progress bars, Ctrl-C → SIGTERM + wait."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .runs import METRICS, JsonlTail

    pending = list(todo)
    active: dict[str, tuple[Any, Any, Any, int]] = {}
    failed = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[acc]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, refresh_per_second=4, transient=False) as progress:
        bars = {r.run_id: progress.add_task(r.run_id, total=None, acc="queued") for r in todo}
        try:
            while pending or active:
                while pending and len(active) < parallel:
                    r = pending.pop(0)
                    active[r.run_id] = (r, spawn(r), JsonlTail(r.path / METRICS), bars[r.run_id])
                for rid, (r, proc, tail, bar) in list(active.items()):
                    rows = tail.read_new()
                    st = r.raw_status()
                    acc = ""
                    if rows:
                        last = rows[-1]
                        acc = (
                            f"train {_fmt_acc(last.get('train_acc'))}  test {_fmt_acc(last.get('test_acc'))}"
                        )
                    progress.update(
                        bar,
                        total=st.get("total_steps"),
                        completed=st.get("step") or 0,
                        **({"acc": acc} if acc else {}),
                    )
                    if proc.poll() is not None:
                        state = r.status().get("state")
                        if proc.returncode != 0 or state != "done":
                            failed += state != "stopped"
                            err = r.status().get("error") or f"exit code {proc.returncode}"
                            progress.update(bar, acc=f"[red]{state}: {err}[/]")
                        del active[rid]
                time.sleep(0.5)
        except KeyboardInterrupt:
            progress.console.print("grok: stopping runs (checkpoints are written)…")
            for _, proc, _, _ in active.values():
                _signal_group(proc.pid, signal.SIGTERM)
            for _, proc, _, _ in active.values():
                try:
                    proc.wait(timeout=60)
                except Exception:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            progress.console.print("grok: stopped; `grok run` again resumes from the last checkpoint")
            return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else 0


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# --------------------------------------------------------------------------- ls / show / export


@app.command("ls")
def ls(
    runs_dir: RunsDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Table of runs: state, step, accuracies, memorised at and grokked at."""
    from rich.console import Console

    from .runs import list_runs

    root = default_runs_dir(runs_dir)
    if not root.is_dir():
        raise fail(f"no runs directory '{root}' (start runs with `grok run experiments.toml`)")
    summaries = [r.summary() for r in list_runs(root)]
    if as_json:
        keys = (
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
        )
        typer.echo(json.dumps([{k: getattr(s, k) for k in keys} for s in summaries], indent=1))
        return
    Console().print(summary_table(summaries, title=str(root)))


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


@app.command()
def show(
    run_ref: Annotated[
        str, typer.Argument(metavar="RUN", help="experiment/run, a unique run or experiment name, or a path.")
    ],
    runs_dir: RunsDirOpt = None,
    width: Annotated[int, typer.Option(help="Plot width in columns.")] = 100,
) -> None:
    """Summary of one run and its curves: accuracy (log-x), loss (log-y), progress measures."""
    from rich.console import Console

    from . import plots

    r = get_run(runs_dir, run_ref)
    rows = r.metrics()
    s = r.summary(rows)
    console = Console()
    console.print(summary_table([s]))
    if not rows:
        console.print("no evaluations yet")
        return
    acc = {k.split("_")[0]: _series(rows, k) for k in ("train_acc", "test_acc")}
    print(plots.curves(acc, f"{s.run_id}: accuracy", width=width, ylim=(0, 1)))
    loss = {k.split("_")[0]: _series(rows, k) for k in ("train_loss", "test_loss")}
    print(plots.curves(loss, f"{s.run_id}: loss", width=width, log_y=True))
    for title, keys, log_y in PROGRESS_PANELS:
        series = {k: _series(rows, k) for k in keys if any(k in row for row in rows)}
        if series:
            print(plots.curves(series, f"{s.run_id}: {title}", width=width, log_y=log_y))


#: Progress-measure panels of `grok show`: (title, metric keys, log-y); drawn when the run has the keys.
PROGRESS_PANELS: list[tuple[str, tuple[str, ...], bool]] = [
    ("restricted / excluded loss", ("train_loss", "restricted_loss", "excluded_loss"), True),
    ("sum of squared weights", ("weight_norm",), False),
    ("Gini of Fourier norms", ("gini_embed", "gini_logit"), False),
    ("FFD / FCR", ("ffd_embed", "fcr_embed", "ffd_logit", "fcr_logit"), False),
    ("RFM progress", ("circulant_deviation", "agop_alignment"), False),
]


def flatten_row(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(flatten_row(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out[prefix + k] = json.dumps(v)
        else:
            out[prefix + k] = v
    return out


@app.command()
def export(
    run_ref: Annotated[str, typer.Argument(metavar="RUN")],
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")
    ] = None,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Export a run's metrics (every evaluation, every measure) as CSV or JSON lines."""
    if fmt not in ("csv", "jsonl"):
        raise fail(f"--format '{fmt}' is not csv or jsonl")
    r = get_run(runs_dir, run_ref)
    rows = [flatten_row(row) for row in r.metrics()]
    out = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == "jsonl":
            for row in rows:
                out.write(json.dumps(row) + "\n")
        else:
            cols: list[str] = []
            for row in rows:
                cols.extend(k for k in row if k not in cols)
            writer = csv.DictWriter(out, fieldnames=cols)
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if output:
            out.close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
