"""The optimizer and gradient filters of a pack: N runs trained as one model with stacked parameters.

A pack's parameters have a leading run dimension, shape (N, *solo_shape); after ``backward`` on the sum of
the N losses, ``p.grad[i]`` is run i's gradient exactly as its solo run would have it. What differs per run
is every hyperparameter (learning rate, betas, eps, weight decay, warm-up, Grokfast's α and λ) and the
step count (a resumed run can share a pack with a fresh one), so each is an (N,) tensor broadcast against
the stacked tensors. torch's AdamW takes one lr per parameter group and one step count per parameter,
which is why the update is written out here.

Run i's arithmetic is the solo run's, operation for operation: torch's foreach AdamW (Loshchilov & Hutter
2019, decoupled decay) under the solo trainer's linear warm-up, and the Grokfast filters (Lee et al.
2024) and ⊥Grad (Prieto et al. 2025) of ``gradients``. Per-run scalars are worked out in float64, as torch
works out its Python-float scalars, and cast to the parameters' dtype where torch's kernels cast theirs;
where torch adds a scalar multiple with one fused multiply-add, this uses ``addcmul``, which fuses the
same way. The step never reads a tensor value on the host, so it can be captured in a CUDA graph.

Each run's state converts to and from the solo format (``member_state``/``load_member_state``): a
member's resume state is a solo run's, and a solo run's resumes inside a pack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .gradients import TINY, _expect, _matching

#: Per-parameter AdamW state as torch keeps it: {param index: {"step", "exp_avg", "exp_avg_sq"}}.
MemberState = dict[int, dict[str, torch.Tensor]]


def _runs(params: Sequence[torch.Tensor]) -> int:
    """The pack size, after checking every parameter has the same leading run dimension."""
    if not params:
        raise ValueError("a pack needs at least one parameter")
    n = params[0].shape[0] if params[0].dim() else 0
    if n < 1 or any(p.dim() == 0 or p.shape[0] != n for p in params):
        raise ValueError("every parameter of a pack must have the same leading run dimension")
    return n


def _per_run(values: Sequence[float], n: int, name: str, device: torch.device) -> torch.Tensor:
    if len(values) != n:
        raise ValueError(f"{name}: {len(values)} values for a pack of {n} runs")
    return torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)


class _PerRun:
    """K per-run scalars, a (K, N) float64 tensor, cast once per dtype (one kernel, not one per parameter
    and scalar) and viewed as K tensors of shape (N, 1, ..., 1) that scale each run's slice."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows
        self.cast: dict[torch.dtype, torch.Tensor] = {}

    def like(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c = self.cast.get(t.dtype)
        if c is None:
            c = self.cast[t.dtype] = self.rows.to(t.dtype)
        return c.view(*c.shape, *([1] * (t.dim() - 1))).unbind(0)


class BatchedAdamW:
    """AdamW over stacked parameters: run i has its own lr, betas, eps, weight decay and warm-up.

    Step k of run i (k = 0, 1, ... counted per run) uses lr_i · min(k / warmup_i, 1) (1 without warm-up),
    the solo trainer's LambdaLR: with warm-up the first step has lr 0 but still moves the moments and the
    count. A parameter whose ``.grad`` is None is skipped, but the run's step count still advances: in a
    pack every parameter gets a gradient, since the loss sums over all runs.
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: Sequence[float],
        betas: Sequence[tuple[float, float]],
        eps: Sequence[float],
        weight_decay: Sequence[float],
        warmup: Sequence[int],
    ) -> None:
        self.params = list(params)
        n = self.n = _runs(self.params)
        dev = self.params[0].device
        if len(betas) != n:
            raise ValueError(f"betas: {len(betas)} values for a pack of {n} runs")
        self.lr = _per_run(lr, n, "lr", dev)
        self.beta1 = _per_run([b[0] for b in betas], n, "betas", dev)
        self.beta2 = _per_run([b[1] for b in betas], n, "betas", dev)
        self.eps = _per_run(eps, n, "eps", dev)
        self.weight_decay = _per_run(weight_decay, n, "weight_decay", dev)
        self.warmup = _per_run(warmup, n, "warmup", dev)
        self.steps = torch.zeros(n, dtype=torch.int64, device=dev)
        self._fixed = torch.stack([1 - self.beta1, self.beta2, 1 - self.beta2, self.eps])
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in self.params]

    def _lr_at(self, k: torch.Tensor) -> torch.Tensor:
        """LambdaLR's ``base_lr * min(k / warmup, 1.0)`` (or ``base_lr * 1.0``), in float64 like Python."""
        ramp = torch.minimum(k / self.warmup.clamp_min(1), torch.ones_like(k))
        return self.lr * torch.where(self.warmup > 0, ramp, torch.ones_like(k))

    @torch.no_grad()
    def step(self) -> None:
        k = self.steps.to(torch.float64)  # steps taken before this one: the schedule's epoch
        lr = self._lr_at(k)
        self.steps.add_(1)
        t = k + 1  # torch's state "step" after its increment: what the bias corrections use
        decay = 1 - lr * self.weight_decay
        step_size = -(lr / (1 - self.beta1**t))
        bc2_sqrt = torch.sqrt(1 - self.beta2**t)
        scalars = _PerRun(torch.cat([torch.stack([decay, step_size, bc2_sqrt]), self._fixed]))
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            g = p.grad
            if g is None:
                continue
            decay_, step_size_, bc2_sqrt_, one_minus_beta1, beta2, one_minus_beta2, eps = scalars.like(p)
            p.mul_(decay_)  # torch skips this at weight decay 0; × 1.0 changes nothing
            m.lerp_(g, one_minus_beta1)
            v.mul_(beta2)
            v.addcmul_(g * one_minus_beta2, g)
            denom = v.sqrt().div_(bc2_sqrt_).add_(eps)
            p.addcdiv_(m * step_size_, denom)

    def lr_now(self) -> list[float]:
        """Each run's lr as solo's ``sched.get_last_lr()[0]`` reports it after ``sched.step()``: the
        schedule's value at the steps taken so far (the lr its next step uses); what a metrics row says."""
        return self._lr_at(self.steps.to(torch.float64)).tolist()

    def member_state(self, i: int) -> MemberState:
        """Run i's state as torch AdamW's ``opt.state[param]`` per parameter index, or {} before its first
        step (torch keeps no state then)."""
        k = int(self.steps[i])
        if k == 0:
            return {}
        return {
            j: {
                "step": torch.tensor(float(k), dtype=torch.float32),
                "exp_avg": m[i].clone(),
                "exp_avg_sq": v[i].clone(),
            }
            for j, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True))
        }

    @torch.no_grad()
    def load_member_state(self, i: int, state: MemberState) -> None:
        """Set run i from torch AdamW per-parameter state ({} = fresh); ValueError on one that does not
        fit, leaving run i as it was."""
        if not isinstance(state, dict):
            raise ValueError("the resume state's optimizer state is not a table of parameters")
        if not state:
            self.steps[i] = 0
            for m, v in zip(self.exp_avg, self.exp_avg_sq, strict=True):
                m[i].zero_()
                v[i].zero_()
            return
        if set(state) != set(range(len(self.params))):
            shown = ", ".join(sorted(map(str, state), key=lambda k: (len(k), k)))
            raise ValueError(
                f"the resume state's optimizer state covers parameters [{shown}], "
                f"this model has {len(self.params)}"
            )
        steps = set()
        for j, p in enumerate(self.params):
            s = state[j]
            for key in ("step", "exp_avg", "exp_avg_sq"):
                if not isinstance(s, dict) or not isinstance(s.get(key), torch.Tensor):
                    raise ValueError(f"the resume state's optimizer state of parameter {j} has no {key!r}")
            for key in ("exp_avg", "exp_avg_sq"):
                if s[key].shape != p.shape[1:]:
                    raise ValueError(
                        f"the resume state's optimizer state of parameter {j} has {key!r} of shape "
                        f"{tuple(s[key].shape)}, the model {tuple(p.shape[1:])}"
                    )
            step = s["step"]
            if step.numel() != 1 or not torch.isfinite(step).all() or step < 0 or step != step.round():
                raise ValueError(f"the resume state's optimizer step of parameter {j} is not a step count")
            steps.add(int(step))
        if len(steps) != 1:
            raise ValueError(f"the resume state's optimizer steps differ between parameters: {sorted(steps)}")
        for j, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True)):
            m[i].copy_(state[j]["exp_avg"])
            v[i].copy_(state[j]["exp_avg_sq"])
        self.steps[i] = steps.pop()


class BatchedEma:
    """Grokfast-EMA per run: h ← α·h + (1−α)·g, then g ← g + λ·h; a run's h starts at its first gradient
    (``started``), so runs at different steps share one filter."""

    def __init__(self, params: list[torch.Tensor], alpha: Sequence[float], lamb: Sequence[float]) -> None:
        self.params = list(params)
        n = self.n = _runs(self.params)
        dev = self.params[0].device
        self.alpha = _per_run(alpha, n, "Grokfast alpha", dev)
        self.lamb = _per_run(lamb, n, "Grokfast lamb", dev)
        self.h = [torch.zeros_like(p, memory_format=torch.contiguous_format) for p in self.params]
        self.started = torch.zeros(n, dtype=torch.bool, device=dev)
        self._scalars = _PerRun(torch.stack([self.alpha, 1 - self.alpha, self.lamb]))

    @torch.no_grad()
    def apply(self) -> None:
        for p, h in zip(self.params, self.h, strict=True):
            g = p.grad
            if g is None:
                continue
            alpha, one_minus_alpha, lamb = self._scalars.like(g)
            started = self.started.view(-1, *([1] * (g.dim() - 1)))
            h.copy_(torch.where(started, (h * alpha).addcmul_(g, one_minus_alpha), g))
            g.addcmul_(h, lamb)
        self.started.fill_(True)

    def member_state(self, i: int) -> dict[str, Any]:
        """Run i's filter as ``EmaFilter.state_dict()`` gives it."""
        if not bool(self.started[i]):
            return {"kind": "ema", "h": None}
        return {"kind": "ema", "h": [h[i].clone() for h in self.h]}

    @torch.no_grad()
    def load_member_state(self, i: int, state: dict[str, Any]) -> None:
        """Run i from an ``EmaFilter`` state; ValueError (the solo filter's) on one that does not fit."""
        _expect(state, "ema")
        saved = state["h"]
        if saved is None:
            for h in self.h:
                h[i].zero_()
            self.started[i] = False
            return
        for h, s in zip(self.h, _matching(saved, [h[i] for h in self.h]), strict=True):
            h[i].copy_(s)
        self.started[i] = True


class BatchedMa:
    """Grokfast-MA per run: g ← g + λ·mean(last ``window`` gradients) once the run's window is full.

    The window is shared by the pack (it sizes the ring), each run has its own ring slot and fill count.
    Rings are (N, window, *solo_shape): each run's (window, *solo_shape) block is then reduced in the
    solo ring's order (a (window, N, ...) ring is summed in another order wherever a row does not fill
    whole vector registers, which changes the last bit).
    """

    def __init__(self, params: list[torch.Tensor], window: int, lamb: Sequence[float]) -> None:
        self.params = list(params)
        n = self.n = _runs(self.params)
        dev = self.params[0].device
        self.window = int(window)
        if self.window < 1:
            raise ValueError(f"Grokfast-MA window {self.window}: it must be at least 1")
        self.lamb = _per_run(lamb, n, "Grokfast lamb", dev)
        self.ring = [
            torch.zeros((n, self.window, *p.shape[1:]), dtype=p.dtype, device=dev) for p in self.params
        ]
        self.count = torch.zeros(n, dtype=torch.int64, device=dev)
        self.pos = torch.zeros(n, dtype=torch.int64, device=dev)
        self._runs_index = torch.arange(n, device=dev)
        self._scalars = _PerRun(self.lamb[None])

    @torch.no_grad()
    def apply(self) -> None:
        for ring, p in zip(self.ring, self.params, strict=True):
            ring.index_put_((self._runs_index, self.pos), p.grad)
        self.pos.add_(1).remainder_(self.window)
        self.count.add_(1).clamp_(max=self.window)
        full = self.count == self.window
        for ring, p in zip(self.ring, self.params, strict=True):
            g = p.grad
            (lamb,) = self._scalars.like(g)
            added = g.addcmul(ring.mean(1), lamb)
            g.copy_(torch.where(full.view(-1, *([1] * (g.dim() - 1))), added, g))

    def member_state(self, i: int) -> dict[str, Any]:
        """Run i's filter as ``MaFilter.state_dict()`` gives it."""
        return {
            "kind": "ma",
            "ring": [r[i].clone() for r in self.ring],
            "count": int(self.count[i]),
            "pos": int(self.pos[i]),
        }

    @torch.no_grad()
    def load_member_state(self, i: int, state: dict[str, Any]) -> None:
        """Run i from a ``MaFilter`` state; ValueError (the solo filter's) on one that does not fit."""
        _expect(state, "ma")
        ring = _matching(state["ring"], [r[i] for r in self.ring])
        count, pos = int(state["count"]), int(state["pos"])
        if not (0 <= count <= self.window and 0 <= pos < self.window):
            raise ValueError(f"Grokfast-MA state: count {count}, pos {pos} for a window of {self.window}")
        for r, s in zip(self.ring, ring, strict=True):
            r[i].copy_(s)
        self.count[i], self.pos[i] = count, pos


BatchedFilter = BatchedEma | BatchedMa


def make_batched_filter(
    cfgs: list[dict[str, Any] | None], params: list[torch.Tensor]
) -> BatchedFilter | None:
    """The pack's filter from its runs' ``grokfast`` tables (``gradients.make_filter`` per run); the runs
    must agree on the kind, and on the window for MA, which shapes the filter's state."""
    kinds = [(cfg or {}).get("kind", "none") for cfg in cfgs]
    if len(set(kinds)) > 1:
        raise ValueError(f"a pack's runs must share one Grokfast kind, these have {sorted(set(kinds))}")
    kind = kinds[0] if kinds else "none"
    if kind == "ema":
        return BatchedEma(params, [c["alpha"] for c in cfgs], [c["lamb"] for c in cfgs])  # type: ignore[index]
    if kind == "ma":
        windows = sorted({int(c["window"]) for c in cfgs})  # type: ignore[index]
        if len(windows) > 1:
            raise ValueError(f"a pack's runs must share one Grokfast-MA window, these have {windows}")
        return BatchedMa(params, windows[0], [c["lamb"] for c in cfgs])  # type: ignore[index]
    return None


@torch.no_grad()
def orthogonalise_batched_(params: list[torch.Tensor]) -> None:
    """⊥Grad in place for each run's slice of each parameter as one vector, as ``gradients.orthogonalise_``
    does run by run: g ← g − (w·g / w·w)·w, rescaled to ‖g‖."""
    for p in params:
        if p.grad is None:
            continue
        n = p.shape[0]
        w, g = p.detach().reshape(n, -1), p.grad.reshape(n, -1)
        wg = torch.linalg.vecdot(w, g).unsqueeze(1)
        ww = torch.linalg.vecdot(w, w).unsqueeze(1)
        ortho = g - (wg / (ww + TINY)) * w
        ortho.mul_(
            torch.linalg.vector_norm(g, dim=1, keepdim=True)
            / (torch.linalg.vector_norm(ortho, dim=1, keepdim=True) + TINY)
        )
        p.grad.copy_(ortho.view_as(p.grad))
