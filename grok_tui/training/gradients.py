"""What happens to the gradients between ``backward`` and the optimizer step: Grokfast's filters and ⊥Grad.

Grokfast (Lee et al. 2024, "Accelerated Grokking by Amplifying Slow Gradients") reads grokking as a slow
component of the gradient that generalises under a fast one that memorises, and adds λ × a low-pass
filter of the gradient to it: an exponential moving average (EMA) or the mean of the last N gradients
(MA). ⊥Grad (Prieto et al. 2025, "Grokking at the edge of numerical stability") removes the part of each
parameter's gradient along the parameter itself, which after memorisation only scales the logits up
("naive loss minimisation") until float32 softmax saturates, and keeps the gradient's norm.

The filters' state is part of a run's exact-resume state (``state_dict``/``load_state_dict``), so a
resumed run applies the very same filter it would have without the interruption.
"""

from __future__ import annotations

from typing import Any

import torch

#: Prieto et al.'s guard against 0/0 for an all-zero weight or gradient.
TINY = 1e-30


class EmaFilter:
    """h ← α·h + (1−α)·g, then g ← g + λ·h; h starts at the first gradient (as in Grokfast's code)."""

    def __init__(self, params: list[torch.nn.Parameter], alpha: float, lamb: float) -> None:
        self.params, self.alpha, self.lamb = params, float(alpha), float(lamb)
        self.h: list[torch.Tensor] | None = None

    @torch.no_grad()
    def apply(self) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.h is None:
            self.h = [g.detach().clone() for g in grads]
        else:
            torch._foreach_mul_(self.h, self.alpha)
            torch._foreach_add_(self.h, grads, alpha=1 - self.alpha)
        torch._foreach_add_(grads, self.h, alpha=self.lamb)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "ema", "h": self.h}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _expect(state, "ema")
        h = state["h"]
        self.h = None if h is None else _matching(h, self.params)


class MaFilter:
    """g ← g + λ·mean(last ``window`` gradients), from the step the window is first full (Grokfast's
    warm-up); the window is a ring buffer per parameter, so its memory is window × parameters."""

    def __init__(self, params: list[torch.nn.Parameter], window: int, lamb: float) -> None:
        self.params, self.window, self.lamb = params, int(window), float(lamb)
        self.ring = [torch.zeros((self.window, *p.shape), dtype=p.dtype, device=p.device) for p in params]
        self.count = 0  # gradients seen, capped at window
        self.pos = 0  # the ring slot the next gradient goes to

    @torch.no_grad()
    def apply(self) -> None:
        for ring, p in zip(self.ring, self.params, strict=True):
            ring[self.pos].copy_(p.grad)
        self.pos = (self.pos + 1) % self.window
        self.count = min(self.count + 1, self.window)
        if self.count < self.window:
            return
        for ring, p in zip(self.ring, self.params, strict=True):
            p.grad.add_(ring.mean(0), alpha=self.lamb)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "ma", "ring": self.ring, "count": self.count, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _expect(state, "ma")
        ring = _matching(state["ring"], self.ring)
        count, pos = int(state["count"]), int(state["pos"])
        if not (0 <= count <= self.window and 0 <= pos < self.window):
            raise ValueError(f"Grokfast-MA state: count {count}, pos {pos} for a window of {self.window}")
        self.ring, self.count, self.pos = ring, count, pos


GradFilter = EmaFilter | MaFilter


def make_filter(cfg: dict[str, Any] | None, params: list[torch.nn.Parameter]) -> GradFilter | None:
    """The spec's ``grokfast`` table as a filter; None for ``kind = "none"`` (and specs older than it)."""
    kind = (cfg or {}).get("kind", "none")
    if kind == "ema":
        return EmaFilter(params, cfg["alpha"], cfg["lamb"])
    if kind == "ma":
        return MaFilter(params, cfg["window"], cfg["lamb"])
    return None


@torch.no_grad()
def orthogonalise_(params: list[torch.nn.Parameter]) -> None:
    """⊥Grad in place: g ← g − (w·g / w·w)·w, rescaled to ‖g‖, for each parameter tensor as one vector."""
    for p in params:
        if p.grad is None:
            continue
        w, g = p.detach().reshape(-1), p.grad.reshape(-1)
        ortho = g - (torch.dot(w, g) / (torch.dot(w, w) + TINY)) * w
        ortho.mul_(g.norm() / (ortho.norm() + TINY))
        p.grad.copy_(ortho.view_as(p.grad))


def _expect(state: Any, kind: str) -> None:
    if not isinstance(state, dict) or state.get("kind") != kind:
        got = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"the resume state holds a Grokfast filter of kind {got!r}, the spec {kind!r}")


def _matching(saved: Any, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """``saved`` as tensors of ``like``'s shapes, dtypes and devices, or ValueError."""
    if not isinstance(saved, list) or len(saved) != len(like):
        raise ValueError("the resume state's Grokfast filter does not fit this model")
    out = []
    for s, t in zip(saved, like, strict=True):
        if not isinstance(s, torch.Tensor) or s.shape != t.shape or s.dtype != t.dtype:
            raise ValueError("the resume state's Grokfast filter does not fit this model")
        out.append(s.to(t.device))
    return out
