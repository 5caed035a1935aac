"""A peer's state dict of Nanda et al.'s 1-layer transformer, mapped onto our checkpoint names.

Two published layouts of the same model (no LayerNorm, learned positions, MLP biases only):

- Nanda et al. 2023's own code (progress-measures-paper, neelnanda-io/Grokking): weights stored
  (d_out, d_in) and applied as ``W @ x``; ``embed.W_E`` is (d_model, d_vocab); ``W_Q/W_K/W_V`` are
  (heads, d_head, d_model); ``W_O`` is (d_model, heads·d_head) over the heads' outputs concatenated
  head-major; ``mlp.W_in`` (d_mlp, d_model), ``mlp.W_out`` (d_model, d_mlp); ``unembed.W_U``
  (d_model, d_vocab); a causal ``attn.mask`` buffer.
- TransformerLens's ``HookedTransformer`` (``normalization_type=None``): ``x @ W`` with the heads split
  out, ``W_Q/W_K/W_V`` (heads, d_model, d_head), ``W_O`` (heads, d_head, d_model), attention and
  unembedding biases, ``IGNORE``/``mask`` buffers.

Ours (``models/transformer.py``) is ``x @ W`` with (d, d) attention matrices whose column blocks are the
heads. Every array is checked against the shapes the first one implies, so a wrong file is one line
naming its key; non-zero attention or unembedding biases (which our model lacks) are refused, zero ones
(as TransformerLens's grokking set-up freezes them) are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..models.shapes import N_CTX, transformer_shapes

NANDA, TL = "nanda", "transformerlens"
LAYOUTS = (NANDA, TL)

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")
#: Buffers of either layout: masks, never weights.
_BUFFERS = {"attn.mask", "attn.IGNORE"}
#: Biases our model has no place for: accepted only when they are all zero.
_ZERO_ONLY = {"attn.b_Q", "attn.b_K", "attn.b_V", "attn.b_O"}


class LayoutError(ValueError):
    """A state dict that is not this model in a known layout: the message names the key."""


@dataclass
class Mapped:
    """A state dict as our checkpoint arrays, with the model it is."""

    arrays: dict[str, np.ndarray]
    layout: str
    model: dict[str, Any]  # the spec's ``model`` table
    vocab: int
    #: Zero biases of the peer's layout that were dropped (our model has none).
    dropped: list[str]


def detect(sd: dict[str, np.ndarray], p: int) -> str:
    """NANDA or TL: from which axis of ``embed.W_E`` holds the p + 1 tokens, else (d_model = p + 1)
    from the rank of ``W_O`` and TransformerLens's own keys; LayoutError for anything else."""
    if "embed.W_E" not in sd or "unembed.W_U" not in sd:
        missing = "embed.W_E" if "embed.W_E" not in sd else "unembed.W_U"
        raise LayoutError(f"no '{missing}': not Nanda's or TransformerLens's layout of the transformer")
    ln = [k for k in sd if ".ln" in k or k.startswith("ln_final")]
    if ln:
        raise LayoutError(f"key '{ln[0]}': a LayerNorm, which Nanda's model (and ours) does not have")
    E = sd["embed.W_E"]
    if E.ndim == 2 and (E.shape[1] == p + 1) != (E.shape[0] == p + 1):
        return NANDA if E.shape[1] == p + 1 else TL
    w_o = sd.get("blocks.0.attn.W_O")
    if w_o is not None and w_o.ndim in (2, 3):
        return TL if w_o.ndim == 3 else NANDA
    tl_only = ("unembed.b_U", "blocks.0.attn.b_Q", "blocks.0.attn.IGNORE")
    return TL if any(k in sd for k in tl_only) else NANDA


def _shape(sd: dict[str, np.ndarray], key: str, want: tuple[int, ...], why: str) -> np.ndarray:
    if key not in sd:
        raise LayoutError(f"no '{key}' (the {why.split(';')[0].removesuffix(' layout')} layout has it)")
    a = sd[key]
    if tuple(a.shape) != want:
        raise LayoutError(f"key '{key}' has shape {tuple(a.shape)}, expected {want} ({why})")
    if a.dtype.kind != "f":
        raise LayoutError(f"key '{key}' holds {a.dtype}, not floating-point weights")
    if not np.isfinite(a).all():
        raise LayoutError(f"key '{key}' holds non-finite values")
    return a


def map_state_dict(sd: dict[str, np.ndarray], p: int, act: str = "relu") -> Mapped:
    """Our arrays (float32, checkpoint names) for a peer's state dict over p numbers and '=' (the
    nanda token layout: vocabulary p + 1, logits over the same p + 1 classes, as in Nanda's code)."""
    layout = detect(sd, p)
    blocks = sorted({int(m.group(1)) for k in sd if (m := _BLOCK_KEY.match(k))})
    if blocks != list(range(len(blocks))):
        raise LayoutError(f"blocks numbered {blocks}, not 0..{len(blocks) - 1}")
    known = {"embed.W_E", "pos_embed.W_pos", "unembed.W_U", "unembed.b_U"}
    for k in sd:
        m = _BLOCK_KEY.match(k)
        part = m.group(2) if m else None
        if k in known or part in _BUFFERS or part in _ZERO_ONLY:
            continue
        if part in (
            "attn.W_Q",
            "attn.W_K",
            "attn.W_V",
            "attn.W_O",
            "mlp.W_in",
            "mlp.W_out",
            "mlp.b_in",
            "mlp.b_out",
        ):
            continue
        raise LayoutError(f"key '{k}' is not part of Nanda's transformer ({layout} layout)")
    E = sd["embed.W_E"]
    if E.ndim != 2:
        raise LayoutError(f"key 'embed.W_E' has shape {tuple(E.shape)}, not a matrix")
    vocab, d = (E.shape[1], E.shape[0]) if layout == NANDA else E.shape
    if vocab != p + 1:
        raise LayoutError(
            f"key 'embed.W_E' embeds {vocab} tokens; p = {p} needs {p + 1} (the numbers and '=')"
        )
    why = "Nanda's" if layout == NANDA else "TransformerLens's"
    q = sd.get("blocks.0.attn.W_Q")
    if q is None or q.ndim != 3:
        raise LayoutError(f"key 'blocks.0.attn.W_Q' must be (heads, ·, ·) in {why} layout")
    heads = q.shape[0]
    dh = q.shape[1] if layout == NANDA else q.shape[2]
    if heads * dh != d:
        raise LayoutError(
            f"key 'blocks.0.attn.W_Q': {heads} heads of {dh} do not make d_model = {d} (from embed.W_E)"
        )
    w_in = sd.get("blocks.0.mlp.W_in")
    if w_in is None or w_in.ndim != 2:
        raise LayoutError(f"no matrix 'blocks.0.mlp.W_in' ({why} layout has it)")
    d_mlp = w_in.shape[0] if layout == NANDA else w_in.shape[1]
    # every expected shape says where its sizes came from, so the key named may be the one that set them
    why += (
        f" layout; d_model {d} and {vocab} tokens from embed.W_E, {heads} heads of {dh} from"
        f" blocks.0.attn.W_Q, d_mlp {d_mlp} from blocks.0.mlp.W_in"
    )
    out: dict[str, np.ndarray] = {}
    dropped: list[str] = []
    if layout == NANDA:
        out["W_E"] = _shape(sd, "embed.W_E", (d, vocab), why).T
        out["W_U"] = _shape(sd, "unembed.W_U", (d, vocab), why)
    else:
        out["W_E"] = _shape(sd, "embed.W_E", (vocab, d), why)
        U = sd["unembed.W_U"]
        if U.ndim == 2 and U.shape == (d, p):
            raise LayoutError(
                f"key 'unembed.W_U' reads out {p} classes (d_vocab_out = p); our model reads out all "
                f"{vocab} tokens, '=' included, as Nanda's code does (d_vocab_out = p is not supported)"
            )
        out["W_U"] = _shape(sd, "unembed.W_U", (d, vocab), why)
        if "unembed.b_U" in sd:
            _zero(sd, "unembed.b_U", (vocab,), why, dropped)
    out["W_pos"] = _shape(sd, "pos_embed.W_pos", (N_CTX, d), why)
    for i in blocks:
        b = f"blocks.{i}."
        for n in ("Q", "K", "V"):
            key = f"{b}attn.W_{n}"
            if layout == NANDA:  # (H, dh, d) applied as W x: column block h of ours is W[h].T
                out[f"{b}W_{n}"] = _shape(sd, key, (heads, dh, d), why).transpose(2, 0, 1).reshape(d, d)
            else:  # (H, d, dh) applied as x W[h]
                out[f"{b}W_{n}"] = _shape(sd, key, (heads, d, dh), why).transpose(1, 0, 2).reshape(d, d)
        if layout == NANDA:  # (d, H·dh) applied to the heads' outputs concatenated head-major
            out[f"{b}W_O"] = _shape(sd, f"{b}attn.W_O", (d, d), why).T
            out[f"{b}W_in"] = _shape(sd, f"{b}mlp.W_in", (d_mlp, d), why).T
            out[f"{b}W_out"] = _shape(sd, f"{b}mlp.W_out", (d, d_mlp), why).T
        else:
            out[f"{b}W_O"] = _shape(sd, f"{b}attn.W_O", (heads, dh, d), why).reshape(d, d)
            out[f"{b}W_in"] = _shape(sd, f"{b}mlp.W_in", (d, d_mlp), why)
            out[f"{b}W_out"] = _shape(sd, f"{b}mlp.W_out", (d_mlp, d), why)
            for n, shape in (("Q", (heads, dh)), ("K", (heads, dh)), ("V", (heads, dh)), ("O", (d,))):
                if f"{b}attn.b_{n}" in sd:
                    _zero(sd, f"{b}attn.b_{n}", shape, why, dropped)
        out[f"{b}b_in"] = _shape(sd, f"{b}mlp.b_in", (d_mlp,), why)
        out[f"{b}b_out"] = _shape(sd, f"{b}mlp.b_out", (d,), why)
        _check_mask(sd, f"{b}attn.mask")
    for k in sd:  # biases our model lacks, in any layout: zero or refused, never silently dropped
        m = _BLOCK_KEY.match(k)
        if (k == "unembed.b_U" or (m and m.group(2) in _ZERO_ONLY)) and k not in dropped:
            a = sd[k]
            if a.dtype.kind != "f" or not np.isfinite(a).all() or np.any(a != 0):
                raise LayoutError(
                    f"key '{k}' is a non-zero or non-numeric bias; Nanda's model, and ours, has no "
                    "attention or unembedding biases"
                )
            dropped.append(k)
    model = {
        "kind": "transformer", "layers": len(blocks), "d_model": int(d), "heads": int(heads),
        "d_mlp": int(d_mlp), "act": act, "pos_embed": True, "biases": "mlp", "init": "nanda",
    }  # fmt: skip
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}
    expected = transformer_shapes(vocab, vocab, d, d_mlp, len(blocks), True, True)
    assert {k: a.shape for k, a in arrays.items()} == expected, "mapping out of step with models/shapes.py"
    return Mapped(arrays, layout, model, int(vocab), dropped)


def _zero(sd: dict[str, np.ndarray], key: str, shape: tuple[int, ...], why: str, dropped: list[str]) -> None:
    a = _shape(sd, key, shape, why)
    if np.any(a != 0):
        raise LayoutError(
            f"key '{key}' is a non-zero bias (max |b| = {float(np.abs(a).max()):.3g}); "
            "Nanda's model, and ours, has no attention or unembedding biases"
        )
    dropped.append(key)


def _check_mask(sd: dict[str, np.ndarray], key: str) -> None:
    """A stored attention mask must be the causal one our attention applies."""
    if key not in sd:
        return
    m = sd[key]
    if m.ndim != 2 or m.shape[0] < N_CTX or m.shape[1] < N_CTX:
        raise LayoutError(f"key '{key}' has shape {tuple(m.shape)}, not a causal mask over {N_CTX} positions")
    if not np.array_equal(np.asarray(m[:N_CTX, :N_CTX]) != 0, np.tril(np.ones((N_CTX, N_CTX), dtype=bool))):
        raise LayoutError(f"key '{key}' is not a causal (lower-triangular) mask")
