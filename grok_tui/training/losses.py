"""Per-pair training losses (float64) and the softmax-collapse measure.

The losses are computed in float64: in float32 the softmax of a memorised pair saturates, its loss and
gradient become exactly 0 and learning stops ("softmax collapse", Prieto et al. 2025). StableMax, their
replacement, normalises s(x) = x + 1 (x ≥ 0), 1/(1 − x) (x < 0) instead of exp(x): it grows only linearly,
so it cannot saturate the same way.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """s(x); each branch sees only its own half of the line, so neither yields inf (or a NaN gradient)."""
    return torch.where(x >= 0, x.clamp_min(0) + 1, 1 / (1 - x.clamp_max(0)))


def stablemax_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log StableMax(z)_i = log s(z_i) − log Σ_j s(z_j), in float64."""
    s = stablemax_s(logits.double())
    return s.log() - s.sum(-1, keepdim=True).log()


def per_pair(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """The loss of each pair, float64: ``ce`` (softmax cross-entropy), ``stablemax`` (StableMax
    cross-entropy) or ``mse`` (squared distance to the one-hot label, summed over classes)."""
    if kind == "mse":
        target = F.one_hot(labels, logits.shape[-1]).double()
        return (logits.double() - target).pow(2).sum(-1)
    logp = stablemax_log_probs(logits) if kind == "stablemax" else logits.double().log_softmax(-1)
    return -logp.gather(-1, labels[:, None]).squeeze(-1)


@torch.no_grad()
def softmax_collapse(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of pairs whose float32 softmax gives the correct class probability exactly 1: their float32
    cross-entropy and its gradient are exactly 0 (Prieto et al.'s softmax collapse)."""
    if not len(labels):
        return float("nan")
    p = torch.softmax(logits.float(), -1).gather(-1, labels[:, None]).squeeze(-1)
    return float((p == 1).double().mean())
