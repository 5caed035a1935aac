"""``grok``: the headless commands, one module per concern.

- ``launching``: validate, run, resume (experiments file → queued runs, watched or detached);
- ``control``: stop, logs;
- ``sweeping``: compare, grid (many runs through the sweep model);
- ``importing``: import (a peer's checkpoint as a run);
- ``reading``: ls, show, export, inspect (``inspecting`` renders one checkpoint, ``progress`` the panels of
  ``show``);
- ``tui``: the app's entry (``grok tui`` and ``grok-tui`` share its parser);
- ``tables``, ``common``, ``help``: what the commands share.

Heavy modules (torch, textual, numpy) are imported inside commands only: ``grok --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from . import control, importing, launching, reading, sweeping, tui
from .help import GrokCommand, GrokGroup

app = typer.Typer(
    cls=GrokGroup,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    # Click wraps help at 80 columns unless told more; a wide terminal gets up to 110.
    context_settings={"max_content_width": 110},
    help="Run, watch and take apart grokking experiments (Nanda 2023, Furuta 2024, Mallinar 2024).",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"grok-tui {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Run, watch and take apart grokking experiments (Nanda 2023, Furuta 2024, Mallinar 2024)."""


for name, fn in (
    ("validate", launching.validate),
    ("run", launching.run),
    ("resume", launching.resume),
    ("stop", control.stop),
    ("logs", control.logs),
    ("ls", reading.ls),
    ("show", reading.show),
    ("export", reading.export),
    ("inspect", reading.inspect),
    ("import", importing.import_),
    ("compare", sweeping.compare),
    ("grid", sweeping.grid),
    ("tui", tui.tui),
):
    app.command(name, cls=GrokCommand)(fn)


def main() -> None:
    app(prog_name="grok")


__all__ = ["app", "main"]
