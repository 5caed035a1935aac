"""The papers' 1-layer transformer (Nanda et al. §3.2, Furuta et al. §4.3); layers and widths configurable.

Only the last position feeds the loss, so the last block computes queries, the MLP and the unembedding for
that position alone. For the papers' single block, keys and values depend on one token each, so they are
computed once per *vocabulary entry* and gathered (a (vocab × d) product instead of (batch·3 × d)): the same
function, a fraction of the work. Convention: activations are rows, ``x @ W``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .shapes import N_CTX


def _randn(*shape: int, std: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * std)


class Block(nn.Module):
    def __init__(self, d_model: int, heads: int, d_mlp: int, act: str, biases: str) -> None:
        super().__init__()
        s = 1 / math.sqrt(d_model)
        self.heads, self.d_head = heads, d_model // heads
        self.W_Q = _randn(d_model, d_model, std=s)
        self.W_K = _randn(d_model, d_model, std=s)
        self.W_V = _randn(d_model, d_model, std=s)
        self.W_O = _randn(d_model, d_model, std=s)
        self.W_in = _randn(d_model, d_mlp, std=s)
        self.W_out = _randn(d_mlp, d_model, std=s)
        self.mlp_bias = biases == "mlp"
        if self.mlp_bias:
            self.b_in = nn.Parameter(torch.zeros(d_mlp))
            self.b_out = nn.Parameter(torch.zeros(d_model))
        self.act = F.relu if act == "relu" else F.gelu

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (..., d_model) → (..., H, d_head)
        return x.unflatten(-1, (self.heads, self.d_head))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Tq, d), k/v (B, T, d); causal with queries at the last Tq positions → (B, Tq, d)."""
        q, k, v = (self._heads(t).transpose(1, 2) for t in (q, k, v))  # (B, H, T, dh)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
        Tq, T = q.shape[-2], k.shape[-2]
        if T > 1:
            mask = torch.ones(Tq, T, dtype=torch.bool, device=q.device).tril(T - Tq)
            scores = scores.masked_fill(~mask, float("-inf"))
        z = scores.softmax(-1) @ v  # (B, H, Tq, dh)
        return z.transpose(1, 2).flatten(-2) @ self.W_O

    def mlp(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre = x @ self.W_in
        if self.mlp_bias:
            pre = pre + self.b_in
        h = self.act(pre)
        out = h @ self.W_out
        if self.mlp_bias:
            out = out + self.b_out
        return out, h

    def forward(self, x: torch.Tensor, last_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
        q_in = x[:, -1:] if last_only else x
        x = q_in + self.attend(q_in @ self.W_Q, x @ self.W_K, x @ self.W_V)
        out, h = self.mlp(x)
        return x + out, h


class Transformer(nn.Module):
    """Logits at the last position, over ``n_out`` classes (= vocab, as in both papers' code)."""

    def __init__(self, vocab: int, n_out: int, cfg: dict) -> None:
        super().__init__()
        d, L = cfg["d_model"], cfg["layers"]
        furuta_init = cfg["init"] == "furuta"
        self.W_E = _randn(vocab, d, std=1 / math.sqrt(vocab if furuta_init else d))
        self.W_pos = _randn(N_CTX, d, std=1 / math.sqrt(d)) if cfg["pos_embed"] else None
        self.blocks = nn.ModuleList(
            Block(d, cfg["heads"], cfg["d_mlp"], cfg["act"], cfg["biases"]) for _ in range(L)
        )
        self.W_U = _randn(d, n_out, std=1 / math.sqrt(d if furuta_init else vocab))

    def forward(self, tokens: torch.Tensor, return_acts: bool = False):
        """tokens (B, 3) → logits (B, n_out) [, MLP activations (B, d_mlp) at the last position]."""
        if len(self.blocks) == 1:
            logits, h = self._single_block(tokens)
        else:
            x = self.W_E[tokens]
            if self.W_pos is not None:
                x = x + self.W_pos
            for i, block in enumerate(self.blocks):
                x, h = block(x, last_only=i == len(self.blocks) - 1)
            logits, h = x[:, -1] @ self.W_U, h[:, -1]
        return (logits, h) if return_acts else logits

    def _single_block(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The papers' single block, computed from per-vocabulary tables: the same function as
        ``Block.forward`` followed by the unembedding, with fewer multiply-adds.

        - Every input to attention depends on one token, so keys, values and queries are projected once
          per vocabulary entry, and the attention scores come from a (position, query token, key token,
          head) table; rows are gathered with ``index_select`` (its backward, ``index_add_``, is far
          faster on CPU than advanced indexing's ``index_put_``).
        - Only the last position feeds the loss; there the residual stream is read only through W_in and
          W_U, so W_O is folded into both and W_out into W_U (13% fewer multiply-adds per step for
          nanda-add, measured faster on 2 CPU cores).
        """
        blk = self.blocks[0]
        B, T = tokens.shape
        V, d = self.W_E.shape
        H, dh = blk.heads, blk.d_head
        if self.W_pos is not None:
            E = self.W_E.unsqueeze(0) + self.W_pos.unsqueeze(1)  # (T, V, d): token v at position t
        else:
            E = self.W_E.unsqueeze(0).expand(T, -1, -1)
        E_last = E[T - 1]
        last = tokens[:, -1]
        pos = torch.arange(T, device=tokens.device)
        Q = (E_last @ blk.W_Q).view(V, H, dh)
        K = (E @ blk.W_K).view(T, V, H, dh)
        scores = torch.einsum("qhe,tkhe->tqkh", Q, K) / math.sqrt(dh)  # (T, V, V, H)
        s_idx = (pos * V * V + last.unsqueeze(1) * V + tokens).reshape(-1)
        att = scores.reshape(T * V * V, H).index_select(0, s_idx).view(B, T, H).softmax(1)
        v_idx = (tokens + pos * V).reshape(-1)
        v = (E.reshape(T * V, d) @ blk.W_V).index_select(0, v_idx).view(B, T, H, dh)
        z = (att.unsqueeze(-1) * v).sum(1).reshape(B, d)
        pre = (E_last @ blk.W_in).index_select(0, last) + z @ (blk.W_O @ blk.W_in)
        if blk.mlp_bias:
            pre = pre + blk.b_in
        h = blk.act(pre)
        logits = (
            (E_last @ self.W_U).index_select(0, last) + z @ (blk.W_O @ self.W_U) + h @ (blk.W_out @ self.W_U)
        )
        if blk.mlp_bias:
            logits = logits + blk.b_out @ self.W_U
        return logits, h

    # ------------------------------------------------------------------ run-directory view
    def export_arrays(self) -> dict[str, np.ndarray]:
        """Weights by their checkpoint names (see the run-directory contract), as float32 numpy."""
        out = {"W_E": self.W_E, "W_U": self.W_U}
        if self.W_pos is not None:
            out["W_pos"] = self.W_pos
        for i, blk in enumerate(self.blocks):
            for name, param in blk.named_parameters():
                out[f"blocks.{i}.{name}"] = param
        return {k: v.detach().float().cpu().numpy() for k, v in out.items()}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name, param in self.named_parameters():
                # parameter names are the checkpoint names (W_E, blocks.0.W_in, ...)
                param.copy_(torch.from_numpy(np.asarray(arrays[name])))
