"""Many runs in one process: a pack trains N runs as one model with a leading run dimension.

A grokking model is tiny, so on a GPU one run's step is a few hundred small kernel launches and leaves the
device nearly idle; N runs stacked into one model (``torch.func.stack_module_state``) and trained through
``vmap(functional_call)`` do N runs' work per launch. Each member is a full solo :class:`Trainer` that is
not stepped itself: it builds its dataset and model (seeded as a solo run), resumes or starts (init_from,
the step-0 evaluation), evaluates, checkpoints, writes its resume state and runs the final pass exactly as
a solo worker does, so every reader sees an ordinary run directory. The pack owns the training state while
it trains (the stacked parameters, a per-run AdamW, Grokfast, ⊥Grad) and copies a member's slice back into
the member before the member evaluates or saves.

Members may differ in every number (seed, train fraction, lr, weight decay, betas, eps, warm-up, Grokfast's
α and λ, steps, evaluation cadence, on_nan): per-run values are tensors along the run dimension, and a
member ends (done, stopped, failed) on its own while the others train on; the pack is rebuilt from the
members that are left. Train sets of different sizes are padded to one index tensor with zero weights.
The loss stays float64 per member, as in a solo run.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call, vmap

from .. import packing
from ..recorder import Recorder, RunFailure
from .batched import BatchedAdamW, make_batched_filter, orthogonalise_batched_
from .common import diverged, stops_on_nan
from .losses import per_pair
from .neural import Trainer

#: Seconds between looks for members' stop requests (a file each): often enough for a prompt stop,
#: rarely enough to cost nothing per step.
STOP_POLL_S = 0.2

#: Eager steps before a pack's step is captured as a CUDA graph: cuBLAS, autograd and the caching
#: allocator settle on a side stream first, as PyTorch's capture recipe asks.
GRAPH_WARMUP = 3
#: Set to 0 to train packs on a GPU without CUDA graphs.
GRAPHS_ENV = "GROK_CUDA_GRAPHS"

#: ``ended(run_dir, state, error)``: a member finished ("done"), stopped or failed (``error`` set).
Ended = Callable[[Path, str, BaseException | None], None]


@dataclass
class Member:
    trainer: Trainer
    dir: Path
    #: perf_counter() at which this member's elapsed training time would have been 0.
    t0: float = 0.0


class PackWatch:
    """The members' training losses gathered on the device (one row per step) and inspected before any
    member evaluates or saves: the first NaN or infinite loss of a member with ``on_nan = "fail"``
    fails that member at that step, as a solo run's LossWatch would, without a sync per step."""

    def __init__(self, size: int, watched: list[bool], device: torch.device) -> None:
        self.buf = torch.empty((max(1, size), len(watched)), dtype=torch.float64, device=device)
        self.watched = watched
        self.first: list[int] = []  # each member's step of buf[0]
        self.n = 0

    def full(self) -> bool:
        return self.n == len(self.buf)

    def record(self, steps: list[int], losses: torch.Tensor) -> None:
        if self.n == 0:
            self.first = steps
        self.buf[self.n] = losses.detach()
        self.n += 1

    def check(self) -> dict[int, RunFailure]:
        """Members whose loss diverged since the last check (index → the Diverged failure); forgets."""
        out: dict[int, RunFailure] = {}
        if self.n:
            rows = self.buf[: self.n]
            bad = ~torch.isfinite(rows)
            if bool(bad.any()):
                for i in torch.nonzero(bad.any(0)).flatten().tolist():
                    if self.watched[i]:
                        r = int(torch.nonzero(bad[:, i])[0, 0])
                        out[i] = diverged(float(rows[r, i]), self.first[i] + r)
        self.n = 0
        return out


class Pack:
    """The stacked training state of the members it was built from (rebuilt when one leaves)."""

    def __init__(self, members: list[Member], device: torch.device) -> None:
        self.members, self.device = members, device
        first = members[0].trainer
        self.base = copy.deepcopy(first.model).to("meta")  # the function; the weights come stacked
        self.buffers = {n: b for n, b in first.model.named_buffers()}
        self.inputs, self.labels, self.task_ids = first.inputs, first.labels, first.task_ids
        self.n_tasks, self.loss_kind = first.n_tasks, first.spec["loss"]
        if self.n_tasks > 1:
            self.task_onehot = torch.nn.functional.one_hot(first.task_ids, self.n_tasks).double()
        named = [dict(m.trainer.model.named_parameters()) for m in members]
        self.names = list(named[0])
        self.trainable = [n for n in self.names if named[0][n].requires_grad]
        self.params = {
            n: torch.stack([nm[n].detach() for nm in named]).requires_grad_(n in self.trainable)
            for n in self.names
        }
        grad_params = [self.params[n] for n in self.trainable]
        opts = [m.trainer.spec["optim"] for m in members]
        self.opt = BatchedAdamW(
            grad_params,
            lr=[o["lr"] for o in opts],
            betas=[tuple(o["betas"]) for o in opts],
            eps=[o["eps"] for o in opts],
            weight_decay=[o["weight_decay"] for o in opts],
            warmup=[o["warmup"] for o in opts],
        )
        self.filter = make_batched_filter([m.trainer.spec.get("grokfast") for m in members], grad_params)
        self.orthograd = grad_params if opts[0]["kind"] == "orthograd" else None
        for i, m in enumerate(members):
            t = m.trainer
            own = [q for q in t.model.parameters() if q.requires_grad]
            self.opt.load_member_state(i, {j: t.opt.state[q] for j, q in enumerate(own) if q in t.opt.state})
            if self.filter is not None and t.grad_filter is not None:
                self.filter.load_member_state(i, t.grad_filter.state_dict())
        watched = [stops_on_nan(m.trainer.spec) for m in members]
        size = min(m.trainer.spec["eval_every"] for m in members)
        self.watch = PackWatch(size, watched, device) if any(watched) else None
        self._full_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        # CUDA graphs: a step of tiny models is launch-bound, and replaying a captured graph launches it
        # as one. Not for MSE (one_hot checks its input on the host, which capture forbids).
        self.graphed = (
            device.type == "cuda" and os.environ.get(GRAPHS_ENV, "1") != "0" and self.loss_kind != "mse"
        )
        self._graph: Any = None
        self._static: tuple[torch.Tensor, torch.Tensor] = (self.inputs, self.inputs)
        self._static_losses = torch.empty(0)
        self._eager = 0
        self._vloss = vmap(self._member_loss, in_dims=(0, 0, 0))
        self._vout = vmap(self._member_outputs, in_dims=(0,))

    # ------------------------------------------------------------------ the function, per member
    def _member_loss(
        self, params: dict[str, torch.Tensor], idx: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        """A member's training loss on its batch ``idx`` (``w``: 1, or 0 for padding), float64: the mean
        per task summed over tasks, as the solo Trainer.loss."""
        logits = functional_call(self.base, (params, self.buffers), (self.inputs[idx],))
        per = per_pair(logits, self.labels[idx], self.loss_kind) * w
        if self.n_tasks == 1:
            return per.sum() / w.sum()
        onehot = self.task_onehot[idx] * w[:, None]
        return (per @ onehot / onehot.sum(0).clamp_min(1)).sum()

    def _member_outputs(self, params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return functional_call(self.base, (params, self.buffers), (self.inputs,), {"return_acts": True})

    # ------------------------------------------------------------------ training
    def _batches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(index, weight) rows of every member's batch this step, padded to one length."""
        if self._full_batch is not None:
            return self._full_batch
        trainers = [m.trainer for m in self.members]
        rows = [t._batch() for t in trainers]
        width = max(len(r) for r in rows)
        idx = torch.zeros((len(rows), width), dtype=torch.long, device=self.device)
        w = torch.zeros((len(rows), width), dtype=torch.float64, device=self.device)
        for i, r in enumerate(rows):
            idx[i, : len(r)] = r
            w[i, : len(r)] = 1
        if all(not t.batch_size for t in trainers):
            self._full_batch = (idx, w)  # a full batch is the same every step
        return idx, w

    def _train(self, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """One training step of every member: the members' losses, then their updates."""
        losses = self._vloss(self.params, idx, w)
        losses.sum().backward()
        if self.filter is not None:
            self.filter.apply()
        if self.orthograd is not None:
            orthogonalise_batched_(self.orthograd)
        self.opt.step()
        return losses

    def step(self) -> None:
        idx, w = self._batches()
        if self._graph is not None:
            static_idx, static_w = self._static
            if idx is not static_idx:  # a minibatch: this step's rows into the captured inputs
                static_idx.copy_(idx)
                static_w.copy_(w)
            self._graph.replay()
            losses = self._static_losses
        else:
            for n in self.trainable:
                self.params[n].grad = None
            if self.graphed:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    losses = self._train(idx, w)
                torch.cuda.current_stream().wait_stream(side)
                self._eager += 1
                if self._eager == GRAPH_WARMUP:
                    self._capture(idx, w)
            else:
                losses = self._train(idx, w)
        if self.watch is not None:
            self.watch.record([m.trainer.step for m in self.members], losses)
        for m in self.members:
            m.trainer.step += 1

    def _capture(self, idx: torch.Tensor, w: torch.Tensor) -> None:
        """Record the training step as a CUDA graph (PyTorch's whole-network capture: gradients set to
        None first, so backward writes them into the graph's own memory on every replay). Capturing
        runs nothing, so no step is taken here; a step that cannot be captured trains eagerly."""
        static = (idx, w) if idx is self._full_batch_idx() else (idx.clone(), w.clone())
        for n in self.trainable:
            self.params[n].grad = None
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._static_losses = self._train(*static)
        except RuntimeError as e:
            self.graphed = False
            print(
                f"grok worker: the pack's step trains without a CUDA graph ({e})".splitlines()[0], flush=True
            )
            return
        self._graph, self._static = graph, static

    def _full_batch_idx(self) -> torch.Tensor | None:
        return self._full_batch[0] if self._full_batch is not None else None

    @torch.no_grad()
    def outputs(self, which: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, activations) on the whole dataset of the members ``which``, in one batched pass."""
        if len(which) == len(self.members):
            return self._vout({n: t.detach() for n, t in self.params.items()})
        index = torch.tensor(which, device=self.device)
        return self._vout({n: t.detach().index_select(0, index) for n, t in self.params.items()})

    # ------------------------------------------------------------------ back into the members
    @torch.no_grad()
    def sync_weights(self, i: int) -> None:
        for name, q in self.members[i].trainer.model.named_parameters():
            q.copy_(self.params[name][i])

    def sync_state(self, i: int) -> None:
        """Member ``i``'s whole training state back into its Trainer: what save_resume writes."""
        m = self.members[i]
        t = m.trainer
        self.sync_weights(i)
        own = [q for q in t.model.parameters() if q.requires_grad]
        state = self.opt.member_state(i)
        t.opt.state.clear()
        for j, q in enumerate(own):
            if j in state:
                t.opt.state[q] = state[j]
        if self.filter is not None and t.grad_filter is not None:
            t.grad_filter.load_state_dict(self.filter.member_state(i))
        self.sync_clock(i)

    def sync_clock(self, i: int) -> None:
        """Member ``i``'s learning-rate schedule and elapsed time: what an evaluation row records."""
        m = self.members[i]
        _set_schedule(m.trainer)
        m.trainer.elapsed = time.perf_counter() - m.t0


def _set_schedule(t: Trainer) -> None:
    """The member's LambdaLR (and its optimizer's lr) as they would be after ``t.step`` solo steps, so
    its resume state and its evaluation rows' ``lr`` are a solo run's."""
    state = t.sched.state_dict()
    lrs = [base * t.sched.lr_lambdas[0](t.step) for base in state["base_lrs"]]
    t.sched.load_state_dict({**state, "last_epoch": t.step, "_last_lr": lrs})
    for group, lr in zip(t.opt.param_groups, lrs, strict=True):
        group["lr"] = lr


# --------------------------------------------------------------------------- the loop


class PackRun:
    """Trains the members to their ends; ``ended`` is told of each member the moment it ends."""

    def __init__(
        self,
        members: list[Member],
        device: torch.device,
        stop_all: Callable[[], bool],
        stop_one: Callable[[Path], bool],
        ended: Ended,
    ) -> None:
        self.members, self.device = members, device
        self.stop_all, self.stop_one, self.ended = stop_all, stop_one, ended
        self.pack: Pack | None = None
        self._polled = 0.0

    def _leave(self, gone: dict[int, tuple[str, BaseException | None]]) -> None:
        """Members ``gone`` (index → state, error) leave; the pack is rebuilt from those left (built
        the first time, when there is none yet)."""
        if not gone and self.pack is not None:
            return
        if self.pack is not None:
            for i in range(len(self.members)):
                if i not in gone:
                    self.pack.sync_state(i)
        for i in sorted(gone):
            m = self.members[i]
            m.trainer.rec.close()
            self.ended(m.dir, *gone[i])
        self.members = [m for i, m in enumerate(self.members) if i not in gone]
        self.pack = Pack(self.members, self.device) if self.members else None

    def _stop_requests(self) -> dict[int, tuple[str, BaseException | None]]:
        now = time.perf_counter()
        every = self.stop_all()
        if not every and now - self._polled < STOP_POLL_S:
            return {}
        self._polled = now
        out: dict[int, tuple[str, BaseException | None]] = {}
        assert self.pack is not None
        for i, m in enumerate(self.members):
            if every or self.stop_one(m.dir):
                try:
                    self.pack.sync_state(i)
                    m.trainer.save_resume()
                    out[i] = ("stopped", None)
                except Exception as e:  # noqa: BLE001 - this member fails, the others stop cleanly
                    out[i] = ("failed", e)
        return out

    def _after_step(self) -> dict[int, tuple[str, BaseException | None]]:
        """Evaluations, checkpoints and ends due after the step just taken (the pack's watch first)."""
        pack = self.pack
        assert pack is not None
        due = [(i, *m.trainer.due()) for i, m in enumerate(self.members)]
        due = [(i, ev, ck) for i, ev, ck in due if ev or ck]
        if not due and not (pack.watch is not None and pack.watch.full()):
            return {}
        gone: dict[int, tuple[str, BaseException | None]] = {}
        if pack.watch is not None:
            gone.update({i: ("failed", e) for i, e in pack.watch.check().items()})
        due = [d for d in due if d[0] not in gone]
        if not due:
            return gone
        which = [i for i, ev, _ in due if ev]
        logits, acts = pack.outputs(which) if which else (None, None)
        for i, ev, ck in due:
            t = self.members[i].trainer
            try:
                if ck:
                    pack.sync_state(i)
                else:
                    pack.sync_weights(i)
                    pack.sync_clock(i)
                if ev:
                    k = which.index(i)
                    t.evaluate(checkpoint=ck, outputs=(logits[k], acts[k]))
                if ck:
                    t.save_resume()
                if t.step >= t.spec["steps"]:
                    gone[i] = (t.finish(), None)
            except Exception as e:  # noqa: BLE001 - one member's failure is not the others'
                gone[i] = ("failed", e)
        return gone

    def run(self) -> None:
        now = time.perf_counter()
        for m in self.members:
            m.t0 = now - m.trainer.elapsed
        self._leave(self._finished_already())
        while self.members:
            assert self.pack is not None
            gone = self._stop_requests()
            if gone:
                self._leave(gone)
                continue
            self.pack.step()
            self._leave(self._after_step())

    def _finished_already(self) -> dict[int, tuple[str, BaseException | None]]:
        """Members already at their last step (resumed at the very end): they only run the final pass."""
        done: dict[int, tuple[str, BaseException | None]] = {}
        for i, m in enumerate(self.members):
            if m.trainer.step >= m.trainer.spec["steps"]:
                try:
                    done[i] = (m.trainer.finish(), None)
                except Exception as e:  # noqa: BLE001 - one member's failure is not the others'
                    done[i] = ("failed", e)
        return done


def run(
    specs: list[dict[str, Any]],
    run_dirs: list[Path],
    device: torch.device,
    stop_all: Callable[[], bool],
    stop_one: Callable[[Path], bool],
    ended: Ended,
) -> None:
    """Train ``run_dirs`` as one pack on ``device``. Each member that cannot start (its spec does not fit
    the pack, a damaged resume state, an init_from source that fails) ends failed on its own; an error of
    the pack's own step (out of memory) raises, and the caller fails the members still in it."""
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # as a solo run: float32 denormals are ~100x slower on x86
    members: list[Member] = []
    key = None
    for spec, run_dir in zip(specs, run_dirs, strict=True):
        try:
            why = packing.solo_reason(spec)
            if why is None and key is not None and packing.pack_key(spec) != key:
                differs = packing.difference(members[0].trainer.spec, spec)
                why = f"differs from the pack's first member in {differs}"
            if why is not None:
                raise RunFailure(f"cannot train in a pack: {why}")
            trainer = Trainer(spec, run_dir, device, rec=Recorder(run_dir, own_log=True))
            trainer.watch = None  # the pack watches every member's loss (PackWatch)
            trainer.start()
        except Exception as e:  # noqa: BLE001 - this member fails; the others train on
            ended(run_dir, "failed", e)
            continue
        key = key or packing.pack_key(spec)
        members.append(Member(trainer, Path(run_dir)))
    if members:
        PackRun(members, device, stop_all, stop_one, ended).run()
