"""The models' forward pass in numpy, from checkpoint weights: what readers need to recompute the
measures a checkpoint lacks (the neuron rule's activations over every (a, b) pair, restricted and
excluded loss) without torch.

The same functions as ``grok_tui.models.transformer.Transformer`` and ``grok_tui.models.mlp.MLP``
(checkpoint names and the x @ W convention), written the plain way: every block computes every
position except the last block, which only needs the last one (the loss reads the last position).
Computed in float32 when the weights are float32, as the worker's torch models are.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

#: Rows per chunk: bounds the attention and MLP temporaries whatever p is.
CHUNK = 4096
#: Model kinds and activations this module computes (the torch models' own choices).
KINDS = ("transformer", "mlp")
TRANSFORMER_ACTS = ("relu", "gelu")
MLP_ACTS = ("quadratic", "relu")

_BLOCK = re.compile(r"^blocks\.(\d+)\.W_Q$")
_MLP_W = re.compile(r"^mlp\.(\d+)\.W$")

#: math.erf per element: exact (torch's GELU is the erf one), and only ``act = "gelu"`` runs need it.
_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x: np.ndarray) -> np.ndarray:
    """0.5·x·(1 + erf(x/√2)), torch's default (not the tanh approximation)."""
    e = _erf(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)).astype(np.float64)
    return (0.5 * x * (1.0 + e)).astype(x.dtype, copy=False)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def _dtype(arrays: dict[str, np.ndarray]) -> type:
    kinds = {np.asarray(v).dtype for v in arrays.values() if np.asarray(v).dtype.kind == "f"}
    return np.float32 if kinds <= {np.dtype(np.float32)} else np.float64


def n_layers(arrays: dict[str, np.ndarray]) -> int:
    """Transformer blocks in a checkpoint (``blocks.<i>.W_Q``)."""
    return len({int(m.group(1)) for k in arrays if (m := _BLOCK.match(k))})


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, W_O: np.ndarray, heads: int) -> np.ndarray:
    """q (B, Tq, d), k/v (B, T, d); causal with the queries at the last Tq positions → (B, Tq, d)."""
    B, Tq, d = q.shape
    T, dh = k.shape[1], d // heads
    qh = q.reshape(B, Tq, heads, dh).transpose(0, 2, 1, 3)
    kh = k.reshape(B, T, heads, dh).transpose(0, 2, 3, 1)
    vh = v.reshape(B, T, heads, dh).transpose(0, 2, 1, 3)
    scores = (qh @ kh) / np.asarray(math.sqrt(dh), dtype=q.dtype)  # (B, H, Tq, T)
    if T > 1:
        mask = np.tril(np.ones((Tq, T), dtype=bool), T - Tq)
        scores = np.where(mask, scores, np.asarray(-np.inf, dtype=q.dtype))
    z = _softmax(scores) @ vh  # (B, H, Tq, dh)
    return z.transpose(0, 2, 1, 3).reshape(B, Tq, d) @ W_O


def transformer(
    arrays: dict[str, np.ndarray], tokens: np.ndarray, *, heads: int, act: str
) -> tuple[np.ndarray, np.ndarray]:
    """tokens (N, 3) → logits (N, n_out) and the last block's MLP activations at the last position
    (N, d_mlp). Blocks, positional embedding and MLP biases are the ones the checkpoint holds."""
    dt = _dtype(arrays)
    w = {k: np.asarray(v, dtype=dt) for k, v in arrays.items()}
    fn = relu if act == "relu" else gelu
    L = n_layers(w)
    x = w["W_E"][tokens]
    if "W_pos" in w:
        x = x + w["W_pos"][: tokens.shape[1]]
    h = x[:, -1:, :0]
    for i in range(L):
        b = f"blocks.{i}."
        q_in = x[:, -1:] if i == L - 1 else x
        x = q_in + _attend(q_in @ w[b + "W_Q"], x @ w[b + "W_K"], x @ w[b + "W_V"], w[b + "W_O"], heads)
        pre = x @ w[b + "W_in"]
        if b + "b_in" in w:
            pre = pre + w[b + "b_in"]
        h = fn(pre)
        out = h @ w[b + "W_out"]
        if b + "b_out" in w:
            out = out + w[b + "b_out"]
        x = x + out
    return x[:, -1] @ w["W_U"], h[:, -1]


def mlp(
    arrays: dict[str, np.ndarray],
    tokens: np.ndarray,
    *,
    p: int,
    act: str,
    task_tokens: list[int],
    layout: str,
) -> tuple[np.ndarray, np.ndarray]:
    """tokens (N, 3) in either layout → outputs (N, n_out) and the last hidden layer's activations.

    The input is one-hot(a) ⊕ one-hot(b) (⊕ one-hot(task) for mixtures), so the first layer is a sum
    of three rows of ``mlp.0.W``.
    """
    dt = _dtype(arrays)
    layers = sorted(int(m.group(1)) for k in arrays if (m := _MLP_W.match(k)))
    W = [np.asarray(arrays[f"mlp.{i}.W"], dtype=dt) for i in layers]
    bias = [np.asarray(arrays[f"mlp.{i}.b"], dtype=dt) for i in layers] if "mlp.0.b" in arrays else None
    pos_a, pos_b, pos_t = (0, 1, 2) if layout == "nanda" else (0, 2, 1)
    x = W[0][tokens[:, pos_a]] + W[0][p + tokens[:, pos_b]]
    if len(task_tokens) > 1:
        lookup = np.zeros(max(task_tokens) + 1, dtype=np.int64)
        lookup[np.asarray(task_tokens)] = np.arange(len(task_tokens))
        x = x + W[0][2 * p + lookup[tokens[:, pos_t]]]
    h = x[:, :0]
    for i in range(len(W)):
        if i:
            x = x @ W[i]
        if bias is not None:
            x = x + bias[i]
        if i < len(W) - 1:
            x = h = x * x if act == "quadratic" else relu(x)
    return x, h


def forward(
    arrays: dict[str, np.ndarray], model: dict[str, Any], dataset: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (float64) and activations of every ``dataset`` row (a ``tasks.Dataset``) under the
    weights of a ``model`` spec (kind transformer or mlp), in chunks of :data:`CHUNK` rows."""
    from ..tasks import task_tokens

    kind = model.get("kind")
    if kind == "transformer":

        def run(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return transformer(arrays, t, heads=int(model["heads"]), act=str(model["act"]))
    elif kind == "mlp":
        toks = task_tokens(dataset.tasks, dataset.p, dataset.layout)[0]

        def run(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return mlp(arrays, t, p=dataset.p, act=str(model["act"]), task_tokens=toks, layout=dataset.layout)
    else:
        raise ValueError(f"no numpy forward pass for model kind {kind!r}")
    tokens = np.asarray(dataset.inputs, dtype=np.int64)
    parts = [run(tokens[i : i + CHUNK]) for i in range(0, max(len(tokens), 1), CHUNK)]
    logits = np.concatenate([lg for lg, _ in parts]).astype(np.float64)
    acts = np.concatenate([a for _, a in parts])
    return logits, acts
