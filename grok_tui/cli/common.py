"""What every `grok` command shares: one-line errors, the runs directory, finding a run, wide tables."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import exitcodes

RunsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir",
        metavar="DIR",
        help="Runs directory (default: $GROK_RUNS_DIR, else the experiments file's runs_dir, else ./runs).",
    ),
]


def fail(message: str, code: int = exitcodes.USAGE) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise: no traceback for a user's mistake."""
    typer.echo(f"grok: error: {message}", err=True)
    return typer.Exit(code)


def say(message: str, err: bool = False) -> None:
    typer.echo(f"grok: {message}", err=err)


def load(file: Path):
    """The parsed experiments file, or exit 2 with its one-line error."""
    from ..config import ConfigError, load_config

    try:
        return load_config(file)
    except ConfigError as e:
        raise fail(str(e)) from None


def env_runs_dir() -> Path | None:
    """$GROK_RUNS_DIR, when set."""
    env = os.environ.get("GROK_RUNS_DIR")
    return Path(env) if env else None


def default_runs_dir(runs_dir: Path | None, config: Path | None = None) -> Path:
    """The runs directory, the same rule for every command and the app: --runs-dir, else $GROK_RUNS_DIR,
    else [defaults].runs_dir of the experiments file (``config``, or ./experiments.toml; relative to the
    file), else ./runs."""
    if runs_dir is not None:
        return runs_dir
    if env := env_runs_dir():
        return env
    toml = config if config is not None else Path("experiments.toml")
    if toml.is_file():
        from ..config import read_runs_dir

        if rd := read_runs_dir(toml):  # never raises: a broken file here is not this command's business
            return toml.parent / rd
    return Path("runs")


def get_run(runs_dir: Path | None, ref: str):
    """The run ``ref`` names (experiment/run, a unique run or experiment name, or a path), or exit 2."""
    from ..runs import find_run

    root = default_runs_dir(runs_dir)
    try:
        return find_run(root, ref)
    except LookupError as e:
        raise fail(str(e)) from None


def runs_root(run) -> Path:
    """The runs directory a run directory lives in."""
    return run.path.resolve().parents[1]


def table_console():
    """A rich console for tables. Piped output (grep, a log file) is drawn 200 columns wide instead of
    rich's default 80, so run ids are not cut; a terminal, or $COLUMNS, sets the width as usual."""
    from rich.console import Console

    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=200 if wide else None)


def strict_json(v):
    """JSON that every parser reads: NaN and ±inf become null (Python's json writes bare NaN)."""
    import math

    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): strict_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [strict_json(x) for x in v]
    return v


def ask_slurm(runs: list[Any]) -> None:
    """Bring Slurm's word into the status.json of queued or running Slurm runs among ``runs`` before they
    are shown (a job cancelled while pending, a node that died); nothing to do, and no Slurm command run,
    when none is such a run."""
    from ..launch import slurm

    slurm.reconcile(runs)
