"""``init_from`` in the trainer: freeze parts before the optimizer sees them, load parts of a source run.

Frozen parameters are left out of the optimizer altogether, so they get no gradient step and no weight
decay (AdamW's decoupled decay would otherwise shrink them): they stay bit-identical for the whole run, as
in Furuta et al. 2024's PG-E/PG-T runs. Loading happens once, at a fresh start (a resume restores every
weight from its own state), from the source's ``step_N.npz`` checked against this run's shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import runs, transfer
from ..checkpoints import CheckpointError, load_checkpoint, read_spec
from ..models.shapes import part_of
from ..recorder import RunFailure


def freeze(model: torch.nn.Module, spec: dict[str, Any]) -> list[str]:
    """Turn off the gradient of the frozen parts' parameters; their names."""
    parts = set(transfer.frozen_parts(spec))
    names = []
    for name, param in model.named_parameters():
        if part_of(name) in parts:
            param.requires_grad_(False)
            names.append(name)
    return names


def load_source(model: torch.nn.Module, spec: dict[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """Copy the loaded parts from the source run's checkpoint into ``model``; the record for spec.json's
    ``loaded_from`` (None when nothing is loaded). RunFailure, one line, when the source cannot serve."""
    sid = transfer.source_id(spec)
    if sid is None:
        return None
    verdict, why = transfer.readiness(run_dir, spec)
    if verdict != "ready":
        raise RunFailure(why if verdict == "fail" else f"{why}; start it with grok run, which waits for it")
    src = transfer.source_dir(run_dir, spec)
    assert src is not None
    source = runs.RunDir(src)
    step = transfer.wanted_step(spec, source.checkpoint_steps(), source.status().get("state"))
    assert step is not None  # ready
    try:
        read_spec(src)  # a damaged source spec.json is named as such
        arrays, _ = load_checkpoint(source.checkpoint_path(step))
    except CheckpointError as e:
        raise RunFailure(f"init_from run '{sid}': {e}") from None
    parts = transfer.loaded_parts(spec)
    found = {k: tuple(np.shape(v)) for k, v in arrays.items() if part_of(k)}
    target = {name: tuple(p.shape) for name, p in model.named_parameters()}
    why = transfer.mismatch(found, target, parts, sid)
    if why:
        raise RunFailure(f"init_from: {why}")
    chosen = {k: np.asarray(arrays[k]) for k in target if part_of(k) in set(parts)}
    bad = [k for k, v in chosen.items() if v.dtype.kind != "f" or not np.isfinite(v).all()]
    if bad:
        raise RunFailure(f"init_from run '{sid}': step {step} holds non-finite or non-float {', '.join(bad)}")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in chosen.items():
            params[name].copy_(torch.from_numpy(value))
    return {"run": sid, "step": step, "arrays": sorted(chosen), "sha256": transfer.digest(chosen)}
