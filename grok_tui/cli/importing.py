"""`grok import FILE`: a peer's checkpoint brought in as a run directory (grok_tui/importing)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from .common import RunsDirOpt, default_runs_dir, fail, say

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*")
_MAX_NAME = 200


def _default_name(file: Path) -> str:
    """The file's stem as a run name: characters a run name may not hold become '_'."""
    stem = re.sub(r"[^A-Za-z0-9_.+=-]", "_", file.stem).lstrip("._+=-") or "peer"
    return stem[:_MAX_NAME]


def import_(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="A peer's torch checkpoint (.pth/.pt) of Nanda's transformer."),
    ],
    task: Annotated[
        str | None,
        typer.Option("--task", metavar="TASK", help="The task it was trained on (add, sub, an expression)."),
    ] = None,
    p: Annotated[int | None, typer.Option("--p", min=2, max=1024, metavar="P", help="The modulus.")] = None,
    train_frac: Annotated[
        float | None,
        typer.Option("--train-frac", metavar="FRAC", help="Its train fraction (Nanda's split rule)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, metavar="SEED", help="Its split seed (Nanda's `seed`).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Run name under imported/ (default: the file's stem)."),
    ] = None,
    runs_dir: RunsDirOpt = None,
    every: Annotated[
        int | None,
        typer.Option("--every", min=1, metavar="N", help="A list of state dicts: steps between entries."),
    ] = None,
    first: Annotated[
        int,
        typer.Option("--first", min=0, metavar="S", help="A list of state dicts: the first entry's step."),
    ] = 0,
    step: Annotated[
        int | None,
        typer.Option(
            "--step", min=0, metavar="N", help="The step of a single state dict (else from the file)."
        ),
    ] = None,
    act: Annotated[
        str, typer.Option("--act", metavar="ACT", help="The MLP activation: relu (Nanda's) or gelu.")
    ] = "relu",
    trust: Annotated[
        bool, typer.Option("--trust", help="Allow full unpickling (can run code from the file).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an imported run of the same name.")] = False,
) -> None:
    """Bring a peer's checkpoint in as a run: inspectable with `grok inspect`, `grok show` and the app.

    Reads Nanda et al.'s state dicts (progress-measures-paper, neelnanda-io/Grokking: a saved run, or
    full_run_data's state_dicts over training), TransformerLens's HookedTransformer state dict of the
    same model, or a list of state dicts (--every). The file is read with torch.load(weights_only=True).

    Give what the file does not say (--task add --p 113 --train-frac 0.3 --seed 1). Every measure is
    recomputed from the weights; the run can be inspected, never trained.
    """
    from ..importing.peer import PeerFileError
    from ..importing.run import EXPERIMENT, ImportRefused, import_file

    if act not in ("relu", "gelu"):
        raise fail(f"--act '{act}' is not relu or gelu")
    if train_frac is not None and not 0 < train_frac < 1:
        raise fail(f"--train-frac {train_frac} is not in (0, 1)")
    run_name = name if name is not None else _default_name(file)
    if not _NAME_RE.fullmatch(run_name) or len(run_name) > _MAX_NAME:
        raise fail(
            f"--name '{run_name[:60]}' is not a run name (letters, digits and _ . + = -, "
            f"at most {_MAX_NAME} characters, starting with a letter or digit)"
        )
    if not file.exists():
        raise fail(f"{file}: no such file")
    if not file.is_file():
        raise fail(f"{file}: not a file")
    root = default_runs_dir(runs_dir)
    given = {"task": task, "p": p, "train_frac": train_frac, "seed": seed}
    try:
        dest, last, notes = import_file(
            file, root, name=run_name, given=given, trust=trust, every=every, first=first, step=step,
            act=act, force=force, say=lambda line: say(line),
        )  # fmt: skip
    except (PeerFileError, ImportRefused) as e:
        raise fail(f"{file}: {e}") from None
    except OSError as e:
        raise fail(f"{file}: {e.strerror or e.__class__.__name__} ({e.filename or root})") from None
    for n in notes:
        say(f"note: {n}", err=True)
    say(
        f"imported {file} as {EXPERIMENT}/{run_name} in {root} (step {last.get('step')}); "
        f"see `grok inspect {EXPERIMENT}/{run_name}` and `grok show {EXPERIMENT}/{run_name}`"
    )
