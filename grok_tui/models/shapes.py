"""Every parameter of the networks by its checkpoint name and shape, without torch.

One declaration for what a spec builds: the config checks its size before anything is allocated, the
checkpoint view checks a ``step_N.npz`` against it, and a test holds it equal to the torch models'
``export_arrays``. Conventions as in the models: activations are rows (``x @ W``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Sequence length of both layouts: [a, b, =] (Nanda) and [a, op, b] (Furuta).
N_CTX = 3

Shapes = dict[str, tuple[int, ...]]


def transformer_shapes(
    vocab: int, n_out: int, d_model: int, d_mlp: int, layers: int, pos_embed: bool, mlp_biases: bool
) -> Shapes:
    d, m = d_model, d_mlp
    out: Shapes = {"W_E": (vocab, d), "W_U": (d, n_out)}
    if pos_embed:
        out["W_pos"] = (N_CTX, d)
    for i in range(layers):
        b = f"blocks.{i}."
        out.update({b + n: (d, d) for n in ("W_Q", "W_K", "W_V", "W_O")})
        out.update({b + "W_in": (d, m), b + "W_out": (m, d)})
        if mlp_biases:
            out.update({b + "b_in": (m,), b + "b_out": (d,)})
    return out


def mlp_input_width(p: int, n_tasks: int) -> int:
    """one-hot(a) ⊕ one-hot(b), plus one-hot(task) for a mixture."""
    return 2 * p + (n_tasks if n_tasks > 1 else 0)


def mlp_shapes(p: int, n_tasks: int, hidden: list[int], n_out: int, bias: bool) -> Shapes:
    widths = [mlp_input_width(p, n_tasks), *hidden, n_out]
    out: Shapes = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        out[f"mlp.{i}.W"] = (a, b)
        if bias:
            out[f"mlp.{i}.b"] = (b,)
    return out


def spec_shapes(spec: Mapping[str, Any]) -> Shapes | None:
    """Weight name → shape of the network a resolved spec builds (None for an RFM or no model): what a
    checkpoint of it must hold, and what an ``init_from`` source must match."""
    from ..tasks import Task, task_tokens

    model, p = spec.get("model"), spec["p"]
    if model is None or model["kind"] == "rfm":
        return None
    t = spec.get("tasks") or spec.get("task") or ()  # an older spec has only ``task``
    tasks = [Task.parse(x, p) for x in ([t] if isinstance(t, str) else list(t)) or ["add"]]
    tokens, vocab = task_tokens(tasks, p, spec.get("layout", "nanda"))
    if model["kind"] == "mlp":
        return mlp_shapes(p, len(tokens), model["hidden"], p, model["bias"])
    biases = model["biases"] == "mlp"
    return transformer_shapes(
        vocab, vocab, model["d_model"], model["d_mlp"], model["layers"], model["pos_embed"], biases
    )


def n_params(shapes: Mapping[str, tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in shapes.values())


#: The parts ``init_from`` names, in the order they are listed; "all" is every one of them.
PARTS = ("embed", "pos", "block", "unembed")


def part_of(name: str) -> str | None:
    """Which part of a transformer a checkpoint array belongs to (None: not a transformer weight)."""
    if name == "W_E":
        return "embed"
    if name == "W_pos":
        return "pos"
    if name == "W_U":
        return "unembed"
    if name.startswith("blocks."):
        return "block"
    return None


def expand_parts(parts: list[str]) -> list[str]:
    """``parts`` with "all" spelled out, deduplicated, in PARTS order."""
    chosen = set(PARTS) if "all" in parts else set(parts)
    return [p for p in PARTS if p in chosen]


def part_shapes(shapes: Mapping[str, tuple[int, ...]], parts: list[str]) -> Shapes:
    """The arrays of ``shapes`` that belong to ``parts``."""
    chosen = set(expand_parts(parts))
    return {k: v for k, v in shapes.items() if part_of(k) in chosen}
