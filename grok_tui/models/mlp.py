"""MLPs on one-hot inputs: Mallinar et al.'s quadratic net (f(x) = σ(xW₁)W₂, σ(z) = z², no biases) and
Prieto et al.'s ReLU net (two hidden layers of 200). The input is one-hot(a) ⊕ one-hot(b) (⊕ one-hot(task)
for mixtures), so the first layer is a sum of gathered rows rather than a dense product.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, p: int, task_tokens: list[int], n_out: int, cfg: dict, layout: str = "nanda") -> None:
        super().__init__()
        self.p, self.n_tasks = p, len(task_tokens) if len(task_tokens) > 1 else 0
        # task token id → index of its one-hot input
        lookup = torch.zeros(max(task_tokens) + 1, dtype=torch.long)
        lookup[torch.tensor(task_tokens)] = torch.arange(len(task_tokens))
        self.register_buffer("task_index", lookup, persistent=False)
        # token positions of a, b and the task token in the sequence layout
        self.pos_a, self.pos_b, self.pos_t = (0, 1, 2) if layout == "nanda" else (0, 2, 1)
        widths = [2 * p + self.n_tasks, *cfg["hidden"], n_out]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList() if cfg["bias"] else None
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            bound = 1 / math.sqrt(fan_in)  # PyTorch's default nn.Linear init
            self.weights.append(nn.Parameter(torch.empty(fan_in, fan_out).uniform_(-bound, bound)))
            if self.biases is not None:
                self.biases.append(nn.Parameter(torch.empty(fan_out).uniform_(-bound, bound)))
        self.quadratic = cfg["act"] == "quadratic"

    def act(self, z: torch.Tensor) -> torch.Tensor:
        return z * z if self.quadratic else torch.relu(z)

    def forward(self, tokens: torch.Tensor, return_acts: bool = False):
        """tokens (B, 3) in either layout → outputs (B, n_out) [, last hidden activations]."""
        W1 = self.weights[0]
        x = W1[tokens[:, self.pos_a]] + W1[self.p + tokens[:, self.pos_b]]
        if self.n_tasks:
            x = x + W1[2 * self.p + self.task_index[tokens[:, self.pos_t]]]
        h = None
        for i in range(len(self.weights)):
            if i:
                x = x @ self.weights[i]
            if self.biases is not None:
                x = x + self.biases[i]
            if i < len(self.weights) - 1:
                x = h = self.act(x)
        return (x, h) if return_acts else x

    def export_arrays(self) -> dict[str, np.ndarray]:
        out = {f"mlp.{i}.W": w for i, w in enumerate(self.weights)}
        if self.biases is not None:
            out.update({f"mlp.{i}.b": b for i, b in enumerate(self.biases)})
        return {k: v.detach().float().cpu().numpy() for k, v in out.items()}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for i, w in enumerate(self.weights):
                w.copy_(torch.from_numpy(np.asarray(arrays[f"mlp.{i}.W"])))
            for i, b in enumerate(self.biases or []):
                b.copy_(torch.from_numpy(np.asarray(arrays[f"mlp.{i}.b"])))
