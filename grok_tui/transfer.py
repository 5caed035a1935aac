"""What ``init_from`` means, without torch: a run that starts from parts of another run's checkpoint.

Furuta et al. 2024 §5 (their ``train_emb_ft.py``) transfer a pre-grokked embedding (PG-E) or the
pre-grokked attention and MLP (PG-T) into a run on another task and freeze it; their App. F freezes a
random embedding as the control. A spec's resolved ``init_from`` is ``{"run": "EXPERIMENT/NAME" or "",
"step": N or "last", "load": [parts], "freeze": [parts]}`` (parts: :data:`grok_tui.models.shapes.PARTS`),
or None for a run that starts from its own random init.

One reading of the rules for the three places that need it: the experiments file (shapes checked at
validate time when the source is in the same file), the scheduler (a run waits while its source is queued
or running) and the worker (the source's checkpoint checked and loaded at start, with a digest of the
arrays it loaded written to spec.json as ``loaded_from``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import runs
from .models.shapes import Shapes, part_of, spec_shapes

if TYPE_CHECKING:
    import numpy as np

#: Run states a source may be in while the run that loads from it waits.
WAITING_STATES = ("queued", "running")


def source_id(spec: dict[str, Any]) -> str | None:
    """``EXPERIMENT/NAME`` of the run this spec loads from, or None when it loads nothing."""
    f = spec.get("init_from")
    if not isinstance(f, dict) or not f.get("load"):
        return None
    run = f.get("run")
    return run if isinstance(run, str) and run else None


def frozen_parts(spec: dict[str, Any]) -> list[str]:
    f = spec.get("init_from")
    return list(f.get("freeze") or []) if isinstance(f, dict) else []


def loaded_parts(spec: dict[str, Any]) -> list[str]:
    f = spec.get("init_from")
    return list(f.get("load") or []) if isinstance(f, dict) else []


def array_shapes(spec: dict[str, Any]) -> Shapes | None:
    """Checkpoint names and shapes of the transformer a spec builds (None for other models)."""
    return spec_shapes(spec) if (spec.get("model") or {}).get("kind") == "transformer" else None


def _shown(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)


def mismatch(source: Shapes | None, target: Shapes, parts: list[str], source_name: str) -> str | None:
    """Why ``parts`` of a model with ``source`` shapes cannot be loaded into one with ``target`` shapes
    (None when they can): the first array that is missing or differs, named with both shapes."""
    if source is None:
        return f"run '{source_name}' is not a transformer: there are no parts to load"
    chosen = set(parts)
    for name, shape in target.items():
        if part_of(name) not in chosen:
            continue
        if name not in source:
            return f"run '{source_name}' has no {name} (part '{part_of(name)}')"
        if source[name] != shape:
            return (
                f"run '{source_name}' has {name} of {_shown(source[name])}, this run's is {_shown(shape)} "
                "(another p, vocabulary or width)"
            )
    return None


def source_dir(run_dir: Path, spec: dict[str, Any]) -> Path | None:
    """The source's run directory: a sibling experiment in the same runs directory."""
    sid = source_id(spec)
    return None if sid is None else Path(run_dir).parent.parent / sid


def wanted_step(spec: dict[str, Any], steps: list[int], state: Any) -> int | None:
    """The checkpoint step to load, given the source's checkpoint ``steps`` and ``state``: a number as
    given; "last" = its last checkpoint once it is done (None before: its final step is not written yet)."""
    step = spec["init_from"]["step"]
    if step != "last":
        return int(step)
    return steps[-1] if steps and state == "done" else None


def readiness(run_dir: Path, spec: dict[str, Any]) -> tuple[str, str]:
    """("ready" | "wait" | "fail", why) for starting the run at ``run_dir`` now.

    Ready when it loads nothing, or the source has the checkpoint (for "last": the source is done).
    Wait while the source is queued or running. Fail when the source is missing, or ended without
    that checkpoint. The scheduler asks at every poll: the source's directory is read once.
    """
    src = source_dir(run_dir, spec)
    if src is None:
        return "ready", ""
    sid = source_id(spec)
    source = runs.RunDir(src)
    if not (src / runs.SPEC).exists():
        return "fail", f"init_from run '{sid}' does not exist in {src.parent.parent}: run it first"
    steps, state = source.checkpoint_steps(), source.status().get("state")
    step = wanted_step(spec, steps, state)
    if step is not None and step in steps:
        return "ready", ""
    asked = spec["init_from"]["step"]
    at = f"step {asked}" if asked != "last" else "its last step"
    if state in WAITING_STATES:
        return "wait", f"waits for init_from run '{sid}' ({state}) to reach {at}"
    if state == "done":
        return "fail", f"init_from run '{sid}' has no checkpoint at {at} ({_listed(steps)})"
    return "fail", f"init_from run '{sid}' is {state} without a checkpoint at {at}: resume it first"


def _listed(steps: list[int]) -> str:
    if not steps:
        return "it has none"
    return f"its checkpoints: {', '.join(map(str, steps[:8]))}{', …' if len(steps) > 8 else ''}"


def digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the arrays' names, dtypes, shapes and bytes: equal digests, equal weights."""
    import numpy as np

    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()
