"""Which runs can train together as one pack, and how many fit: the rules, without torch.

A pack is one worker process training N runs as one model with a leading run dimension (``vmap`` over
stacked parameters): one kernel launch does N runs' work, which is what fills a GPU with models of this
size. Members must compute the same function of differently valued tensors: the same network shape, the
same dataset (p, tasks, layout), the same loss and the same kind of optimizer step. Everything that is only
a number may differ per member: seed (split and init), train fraction, learning rate, weight decay, betas,
eps, warm-up, Grokfast's α and λ, the source an ``init_from`` loads, ``on_nan``, and even steps and
evaluation cadence (each member evaluates, checkpoints and ends on its own schedule).

The scheduler groups queued runs by :func:`pack_key`; the packed worker checks the same key again, so a
run directory edited in between is refused there rather than trained wrong.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from .transfer import frozen_parts

#: Environment variable through which the launcher hands the packed worker its pack id (the id names the
#: pack's own log, ``<runs_dir>/.grok/packs/<id>.log``, and every member's status.json ``pack``).
PACK_ID_ENV = "GROK_PACK_ID"
#: Spec keys every member of a pack shares (grokfast and optim: their kind and MA window only).
SHARED_KEYS = ("p", "tasks", "layout", "batch_size", "loss", "model", "device", "tf32")
#: Upper bound on ``pack = "auto"``: past a few dozen members the gain per member is small (the step is
#: compute-bound by then) while a pack's evaluation pause grows with every member.
AUTO_MAX = 64
#: Share of the free memory ``auto`` plans to use: the estimate leaves room for the allocator's slack.
AUTO_SHARE = 0.5


def new_pack_id() -> str:
    """A pack id unique on this machine and sortable by start: time, the spawner's pid, a short uuid."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def solo_reason(spec: dict[str, Any]) -> str | None:
    """Why a run can never be packed, or None when it can."""
    kind = (spec.get("model") or {}).get("kind")
    if kind == "rfm":
        return "an RFM is solved by kernel ridge regression, not trained by gradient steps"
    if kind not in ("transformer", "mlp"):
        return f"model kind {kind!r} has no packed trainer"
    return None


def pack_key(spec: dict[str, Any]) -> str:
    """A string equal for exactly the runs that may share a pack (see the module docstring)."""
    shared: dict[str, Any] = {k: spec.get(k) for k in SHARED_KEYS}
    g = spec.get("grokfast") or {}
    shared["grokfast"] = {"kind": g.get("kind", "none"), "window": g.get("window")}
    shared["optim"] = (spec.get("optim") or {}).get("kind", "adamw")
    shared["frozen"] = sorted(frozen_parts(spec))
    return json.dumps(shared, sort_keys=True, default=str)


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Every shared key in which two specs differ (``model``, ``grokfast.kind``, …), sorted; the
    scheduler names the queued run nearest to one that must run solo (fewest differences)."""
    ka, kb = json.loads(pack_key(a)), json.loads(pack_key(b))
    out = []
    for key in sorted(ka):
        if ka[key] != kb[key]:
            if isinstance(ka[key], dict) and isinstance(kb[key], dict):
                sub = next(k for k in sorted(set(ka[key]) | set(kb[key])) if ka[key].get(k) != kb[key].get(k))
                out.append(f"{key}.{sub}")
            else:
                out.append("init_from.freeze" if key == "frozen" else key)
    return out


def difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first shared key in which two specs differ (``model``, ``grokfast.kind``, …), or None."""
    return next(iter(differences(a, b)), None)


def member_bytes(spec: dict[str, Any]) -> int:
    """Device memory one member needs, estimated from the spec (the rule ``pack = "auto"`` divides by).

    float32 parameters with their gradient and two AdamW moments (plus Grokfast's EMA or its MA window);
    the evaluation pass over every pair, which dominates: per pair the logits (float32, and float64 for the
    loss), the MLP activations and the residual stream, each counted three times for autograd's saved
    tensors and the softmax temporaries. Measured use is below this (the rule errs towards smaller packs).
    """
    from .models.shapes import n_params, spec_shapes

    shapes = spec_shapes(spec)
    params = n_params(shapes) if shapes else 0
    g = spec.get("grokfast") or {}
    copies = 4 + {"ema": 1, "ma": int(g.get("window") or 0)}.get(g.get("kind", "none"), 0)
    model = spec.get("model") or {}
    p = int(spec.get("p") or 0)
    n_tasks = max(1, len(spec.get("tasks") or []))
    pairs = p * p * n_tasks
    vocab = p + n_tasks + 1
    width = int(model.get("d_mlp") or 0) + int(model.get("d_model") or 0) + sum(model.get("hidden") or [])
    per_pair = 4 * vocab + 8 * vocab + 4 * width
    return 4 * params * copies + 3 * pairs * per_pair


def auto_size(spec: dict[str, Any], free_bytes: int, cap: int = AUTO_MAX) -> int:
    """Members per pack for ``pack = "auto"``: AUTO_SHARE of the free memory over :func:`member_bytes`,
    between 1 and ``cap``."""
    need = max(1, member_bytes(spec))
    return max(1, min(cap, int(free_bytes * AUTO_SHARE) // need))
