"""`grok tui` and `grok-tui`: one parser for both ways of starting the app (the app itself is Textual's,
imported only once the options are known, so `grok --help` never loads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import RunsDirOpt, default_runs_dir, env_runs_dir, fail

PALETTES = ("auto", "truecolor", "256")


def tui(
    file: Annotated[
        Path | None,
        typer.Argument(metavar="FILE", help="The experiments file (default: ./experiments.toml if present)."),
    ] = None,
    runs_dir: RunsDirOpt = None,
    no_mouse: Annotated[
        bool, typer.Option("--no-mouse", help="Leave the mouse to the terminal (SSH, copy and paste).")
    ] = False,
    palette: Annotated[
        str,
        typer.Option(
            "--palette", metavar="MODE", help="Heatmap colours: auto (from $COLORTERM), truecolor or 256."
        ),
    ] = "auto",
    interval: Annotated[
        float,
        typer.Option("--interval", metavar="S", help="Seconds between polls of the runs directory."),
    ] = 1.0,
) -> None:
    """Watch, steer and take apart runs in the terminal UI; quitting never stops a run.

    `grok tui` and `grok-tui` are the same command.
    """
    if palette not in PALETTES:
        raise fail(f"--palette '{palette}' is not one of {', '.join(PALETTES)}")
    if not interval > 0:
        raise fail(f"--interval must be positive, got {interval:g}")
    if file is None and Path("experiments.toml").is_file():
        file = Path("experiments.toml")
    if file is not None and not file.is_file():
        raise fail(f"{file}: no such file")
    # the runs directory as every `grok` command finds it; left to the file's runs_dir (which the app
    # follows when experiments.toml is edited) unless the option or $GROK_RUNS_DIR names one
    runs_dir = runs_dir or env_runs_dir() or (None if file is not None else default_runs_dir(None))
    if runs_dir is not None and runs_dir.exists() and not runs_dir.is_dir():
        raise fail(f"{runs_dir}: not a directory")
    from ..tui.app import run_app

    raise typer.Exit(run_app(file, runs_dir, mouse=not no_mouse, palette=palette, interval=interval))


def main() -> None:
    """The `grok-tui` console script: the same command as `grok tui`."""
    from .help import GrokCommand

    app = typer.Typer(
        add_completion=False, rich_markup_mode=None, context_settings={"max_content_width": 110}
    )
    app.command(cls=GrokCommand)(tui)
    app(prog_name="grok-tui")
