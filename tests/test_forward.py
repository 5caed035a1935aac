"""The numpy forward pass (what readers recompute with) equals the torch models the worker trains with,
for every architecture variant the config allows, to float32 tolerance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from grok_tui.analysis import forward
from grok_tui.models.mlp import MLP
from grok_tui.models.transformer import Transformer
from grok_tui.tasks import Task, build_dataset, task_tokens

P = 11
TASKS = {"one task": ["add"], "mixture": ["add", "a * b"]}


def perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter away from its init (biases start at zero: a forward that ignored them would pass)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=gen))
    return model.eval()


def torch_forward(model: torch.nn.Module, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        logits, acts = model(torch.from_numpy(inputs), return_acts=True)
    return logits.double().numpy(), acts.double().numpy()


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """float32 tolerance: a few ulps of the largest value (sums of ~100 float32 products)."""
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * max(1.0, float(np.abs(want).max())))


TRANSFORMERS = list(
    itertools.product([1, 2], [True, False], ["mlp", "none"], ["relu", "gelu"], ["nanda", "furuta"], TASKS)
)


@pytest.mark.parametrize(("layers", "pos_embed", "biases", "act", "layout", "tasks"), TRANSFORMERS)
def test_transformer_forward_equals_torch(layers, pos_embed, biases, act, layout, tasks) -> None:
    data = build_dataset([Task.parse(t, P) for t in TASKS[tasks]], P, 0.5, 0, layout)
    cfg = dict(d_model=16, layers=layers, heads=4, d_mlp=24, act=act, pos_embed=pos_embed, biases=biases)
    torch.manual_seed(len(TRANSFORMERS))
    model = perturbed(Transformer(data.vocab, data.vocab, {**cfg, "init": layout}), seed=layers)
    want_logits, want_acts = torch_forward(model, data.inputs)
    logits, acts = forward.forward(model.export_arrays(), {"kind": "transformer", **cfg}, data)
    assert logits.dtype == np.float64 and logits.shape == (len(data.labels), data.vocab)
    assert_close(logits, want_logits)
    assert_close(acts.astype(np.float64), want_acts)


MLPS = list(
    itertools.product([[24], [16, 12]], ["quadratic", "relu"], [False, True], ["nanda", "furuta"], TASKS)
)


@pytest.mark.parametrize(("hidden", "act", "bias", "layout", "tasks"), MLPS)
def test_mlp_forward_equals_torch(hidden, act, bias, layout, tasks) -> None:
    parsed = [Task.parse(t, P) for t in TASKS[tasks]]
    data = build_dataset(parsed, P, 0.5, 0, layout)
    cfg = dict(hidden=hidden, act=act, bias=bias)
    torch.manual_seed(1)
    model = perturbed(MLP(P, task_tokens(parsed, P, layout)[0], P, cfg, layout), seed=2)
    want_logits, want_acts = torch_forward(model, data.inputs)
    logits, acts = forward.forward(model.export_arrays(), {"kind": "mlp", **cfg}, data)
    assert logits.shape == (len(data.labels), P) and acts.shape == (len(data.labels), hidden[-1])
    assert_close(logits, want_logits)
    assert_close(acts.astype(np.float64), want_acts)


def test_forward_works_in_chunks_and_refuses_other_models(monkeypatch: pytest.MonkeyPatch) -> None:
    data = build_dataset([Task.parse("add", P)], P, 0.5, 0, "nanda")
    cfg = dict(d_model=16, layers=1, heads=2, d_mlp=8, act="relu", pos_embed=True, biases="mlp")
    torch.manual_seed(0)
    model = perturbed(Transformer(data.vocab, data.vocab, {**cfg, "init": "nanda"}), seed=0)
    arrays = model.export_arrays()
    whole = forward.forward(arrays, {"kind": "transformer", **cfg}, data)
    monkeypatch.setattr(forward, "CHUNK", 7)  # 121 rows in 18 chunks
    chunked = forward.forward(arrays, {"kind": "transformer", **cfg}, data)
    assert np.array_equal(whole[0], chunked[0]) and np.array_equal(whole[1], chunked[1])
    with pytest.raises(ValueError, match="rfm"):
        forward.forward(arrays, {"kind": "rfm"}, data)


def test_gelu_is_the_erf_one() -> None:
    x = np.linspace(-6, 6, 1001, dtype=np.float32)
    want = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    assert np.allclose(forward.gelu(x), want, rtol=1e-6, atol=1e-6)
    tanh = torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy()
    assert not np.allclose(forward.gelu(x), tanh, rtol=1e-6, atol=1e-6)
