"""The models are the papers' models (parameter counts); the fast single-block path is the same function."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grok_tui.config import parse_config
from grok_tui.training import neural


def build(toml: str):
    return neural.build(parse_config(toml, Path("x.toml")).runs[0])


def test_parameter_counts_match_the_papers() -> None:
    _, nanda = build("[experiments.n]\np = 113\n")
    _, furuta = build('[experiments.f]\np = 97\nlayout = "furuta"\n')
    assert sum(p.numel() for p in nanda.parameters()) == 226_816  # Nanda et al. §3.2
    assert sum(p.numel() for p in furuta.parameters()) == 222_720  # Furuta et al. §4.3


@pytest.mark.parametrize("layout", ["nanda", "furuta"])
def test_single_block_fast_path_equals_the_plain_block(layout: str) -> None:
    data, model = build(f'[experiments.x]\np = 31\nlayout = "{layout}"\ntask = ["add", "x2_y2"]\n')
    tokens = torch.from_numpy(data.inputs)
    labels = torch.from_numpy(data.labels)

    def plain() -> torch.Tensor:
        x = model.W_E[tokens] + (model.W_pos if model.W_pos is not None else 0)
        y, _ = model.blocks[0](x, last_only=True)
        return y[:, -1] @ model.W_U

    grads = []
    for forward in (lambda: model(tokens), plain):
        model.zero_grad()
        logits = forward()
        torch.nn.functional.cross_entropy(logits, labels).backward()
        grads.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    (fast, g_fast), (slow, g_slow) = grads
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_deeper_transformer_and_mlp_run() -> None:
    data, deep = build("[experiments.d]\np = 7\nmodel = { layers = 2, d_model = 16, heads = 2, d_mlp = 8 }\n")
    assert deep(torch.from_numpy(data.inputs)).shape == (49, 8)
    data, mlp = build('[experiments.m]\np = 7\nmodel = { kind = "mlp", hidden = [20, 20], act = "relu" }\n')
    logits, h = mlp(torch.from_numpy(data.inputs), return_acts=True)
    assert logits.shape == (49, 7) and h.shape == (49, 20)


@pytest.mark.parametrize(
    "cfg",
    [
        {"kind": "transformer", "layers": 1, "d_model": 16, "heads": 2, "d_mlp": 24, "act": "relu",
         "pos_embed": True, "biases": "mlp", "init": "nanda"},
        {"kind": "transformer", "layers": 3, "d_model": 12, "heads": 3, "d_mlp": 20, "act": "gelu",
         "pos_embed": False, "biases": "none", "init": "furuta"},
        {"kind": "mlp", "hidden": [30], "act": "quadratic", "bias": False},
        {"kind": "mlp", "hidden": [20, 10], "act": "relu", "bias": True},
    ],
)  # fmt: skip
@pytest.mark.parametrize("n_tasks", [1, 3])
def test_declared_shapes_are_the_models_parameters(cfg: dict, n_tasks: int) -> None:
    """models/shapes.py (what config and the checkpoint view count on) holds every parameter the torch
    models export, with its shape."""
    from grok_tui.models.mlp import MLP
    from grok_tui.models.shapes import mlp_shapes, transformer_shapes
    from grok_tui.models.transformer import Transformer

    p = 7
    tokens = [p + 1 + i for i in range(n_tasks)] if n_tasks > 1 else [p]
    vocab = max(tokens) + 1
    if cfg["kind"] == "transformer":
        model = Transformer(vocab, vocab, cfg)
        want = transformer_shapes(
            vocab,
            vocab,
            cfg["d_model"],
            cfg["d_mlp"],
            cfg["layers"],
            cfg["pos_embed"],
            cfg["biases"] == "mlp",
        )
    else:
        model = MLP(p, tokens, p, cfg)
        want = mlp_shapes(p, n_tasks, cfg["hidden"], p, cfg["bias"])
    assert {k: v.shape for k, v in model.export_arrays().items()} == want
