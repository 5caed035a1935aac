"""The training loop for the neural models: plain, full-batch by default, exactly resumable.

One evaluation = one forward pass over every sequence of the dataset (train and test together, split by
mask, as in Nanda et al.), so train and test numbers describe the same weights. The loss is computed in
float64 (float32 softmax saturates: Prieto et al. 2025). Checkpoints are dicts: ``step_N.npz`` for readers
(numpy), ``resume.pt`` for resume (verified, with the previous one to fall back to: recorder.py). A NaN or
infinite training loss fails the run at that step unless the spec says ``on_nan = "continue"``.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import runs
from ..analysis import agop, live
from ..analysis.fourier import freq_norms
from ..checkpoints import load_checkpoint
from ..models.mlp import MLP
from ..models.transformer import Transformer
from ..recorder import Recorder
from ..tasks import Dataset, Task, build_dataset, task_tokens
from . import init_from
from .common import diverged, limit_blas_threads, pick_device, set_matmul_precision, stops_on_nan
from .gradients import make_filter, orthogonalise_
from .losses import per_pair, softmax_collapse


def build(spec: dict[str, Any]) -> tuple[Dataset, torch.nn.Module]:
    """Dataset and freshly initialised model (init seeded by ``init_seed``, split by ``split_seed``)."""
    tasks = [Task.parse(t, spec["p"]) for t in spec["tasks"]]
    data = build_dataset(tasks, spec["p"], spec["train_frac"], spec["split_seed"], spec["layout"])
    torch.manual_seed(spec["init_seed"])
    cfg = spec["model"]
    if cfg["kind"] == "transformer":
        model = Transformer(data.vocab, data.vocab, cfg)
    elif cfg["kind"] == "mlp":
        model = MLP(
            spec["p"], task_tokens(tasks, spec["p"], spec["layout"])[0], spec["p"], cfg, spec["layout"]
        )
    else:
        raise ValueError(f"model kind '{cfg['kind']}' is not trained by this loop")
    return data, model


def embed_rows(arrays: dict[str, np.ndarray], p: int) -> np.ndarray:
    """The (p, d) matrix whose rows embed the numbers 0..p-1: what the Fourier heatmap shows."""
    if "W_E" in arrays:
        return arrays["W_E"][:p]
    return arrays["mlp.0.W"][:p]


def weight_norm(model: torch.nn.Module) -> float:
    """Total sum of squared weights (Nanda et al.'s progress measure)."""
    with torch.no_grad():
        return float(sum(p.double().pow(2).sum() for p in model.parameters()))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def saved_checkpoints(
    run_dir: Path, log: Callable[[str], None] = _stderr
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(step, arrays) of every checkpoint on disk, oldest first, for the final pass; an unreadable one
    is skipped with a line in worker.log (``log``)."""
    run = runs.RunDir(run_dir)
    for step in run.checkpoint_steps():
        try:
            arrays, _ = load_checkpoint(run.checkpoint_path(step))
        except ValueError as e:
            log(f"grok analysis: final pass at step {step} skipped ({e})")
            continue
        yield step, arrays


class LossWatch:
    """Finds the first step whose training loss is NaN or ±inf without a device sync per step: the
    losses gather on the device and are inspected (``check``) before every evaluation and every save,
    so no evaluation row, checkpoint or resume state is written from a diverged model."""

    def __init__(self, size: int, device: torch.device) -> None:
        self.buf = torch.empty(max(1, size), dtype=torch.float64, device=device)
        self.start = 0  # the step of buf[0]
        self.n = 0

    def record(self, step: int, loss: torch.Tensor) -> None:
        if self.n == len(self.buf):
            self.check()
        if self.n == 0:
            self.start = step
        self.buf[self.n] = loss.detach()
        self.n += 1

    def check(self) -> None:
        """Diverged naming the first bad step, else forget the losses seen."""
        if not self.n:
            return
        losses = self.buf[: self.n]
        bad = torch.nonzero(~torch.isfinite(losses))
        if len(bad):
            i = int(bad[0, 0])
            raise diverged(float(losses[i]), self.start + i)
        self.n = 0


class Trainer:
    def __init__(
        self, spec: dict[str, Any], run_dir: Path, device: torch.device, rec: Recorder | None = None
    ) -> None:
        self.spec, self.dir, self.device = spec, Path(run_dir), device
        if device.type == "cpu":
            # Once the train loss is ~0, gradients underflow into float32 denormals, which x86 CPUs
            # handle ~100x slower; flushing them to zero changes nothing measurable.
            torch.set_flush_denormal(True)
        set_matmul_precision(spec)
        self.data, model = build(spec)
        self.model = model.to(device)
        self.frozen = init_from.freeze(self.model, spec)
        self.rec = rec if rec is not None else Recorder(run_dir)
        d = self.data
        self.inputs = torch.from_numpy(d.inputs).to(device)
        self.labels = torch.from_numpy(d.labels).to(device)
        self.task_ids = torch.from_numpy(d.task_ids).to(device)
        self.train_idx = torch.from_numpy(np.flatnonzero(d.is_train)).to(device)
        self.is_train = torch.from_numpy(d.is_train).to(device)
        self.n_tasks = len(d.tasks)
        self.n_out = d.vocab if spec["model"]["kind"] == "transformer" else spec["p"]
        o = spec["optim"]
        fused = device.type == "cuda"
        params = [q for q in self.model.parameters() if q.requires_grad]
        self.opt = torch.optim.AdamW(
            params,
            lr=o["lr"],
            betas=tuple(o["betas"]),
            eps=o["eps"],
            weight_decay=o["weight_decay"],
            fused=fused or None,
            foreach=None if fused else True,
        )
        self.grad_filter = make_filter(spec.get("grokfast"), params)
        self.orthograd = params if o["kind"] == "orthograd" else None
        warmup = o["warmup"]
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(s / warmup, 1.0) if warmup else 1.0
        )
        self.step = 0
        self.elapsed = 0.0
        bs = spec["batch_size"]
        self.batch_size = bs if 0 < bs < len(self.train_idx) else 0
        self.gen = torch.Generator().manual_seed(spec["init_seed"] + 1)
        self.perm: torch.Tensor | None = None
        self.pos = 0
        self._scratch: torch.nn.Module | None = None
        self.watch = LossWatch(spec["eval_every"], device) if stops_on_nan(spec) else None

    # ------------------------------------------------------------------ loss
    def loss(self, logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Mean loss per task, summed over tasks (Furuta et al.'s mixtures); float64."""
        per = per_pair(logits, labels, self.spec["loss"])
        if self.n_tasks == 1:
            return per.mean()
        sums = torch.zeros(self.n_tasks, dtype=per.dtype, device=per.device).index_add_(0, task_ids, per)
        counts = torch.bincount(task_ids, minlength=self.n_tasks).clamp_min(1)
        return (sums / counts).sum()

    def _batch(self) -> torch.Tensor:
        if not self.batch_size:
            return self.train_idx
        n = len(self.train_idx)
        if self.perm is None or self.pos + self.batch_size > n:
            self.perm, self.pos = torch.randperm(n, generator=self.gen), 0
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.train_idx[idx.to(self.device)]

    def train_step(self) -> None:
        idx = self._batch()
        logits = self.model(self.inputs[idx])
        loss = self.loss(logits, self.labels[idx], self.task_ids[idx])
        if self.watch is not None:
            self.watch.record(self.step, loss)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_filter is not None:
            self.grad_filter.apply()
        if self.orthograd is not None:
            orthogonalise_(self.orthograd)
        self.opt.step()
        self.sched.step()
        self.step += 1

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, checkpoint: bool, outputs: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        if outputs is None:
            self.model.eval()
            logits, acts = self.model(self.inputs, return_acts=True)
            self.model.train()
        else:
            logits, acts = outputs
        row: dict[str, Any] = {"step": self.step, "time": round(self.elapsed, 3)}
        correct = logits.argmax(-1) == self.labels

        def split_stats(select: torch.Tensor) -> dict[str, float]:
            """Loss and accuracy on the train and test parts of ``select`` (all rows, or one task's)."""
            out = {}
            for split, mask in (("train", self.is_train & select), ("test", ~self.is_train & select)):
                out[f"{split}_loss"] = float(self.loss(logits[mask], self.labels[mask], self.task_ids[mask]))
                out[f"{split}_acc"] = float(correct[mask].double().mean()) if mask.any() else float("nan")
            return out

        row.update(split_stats(torch.ones_like(self.is_train)))
        if self.n_tasks > 1:
            tasks = enumerate(self.data.tasks)
            row["tasks"] = {task.name: split_stats(self.task_ids == i) for i, task in tasks}
        if self.spec["loss"] != "mse":
            row["softmax_collapse"] = softmax_collapse(logits[self.is_train], self.labels[self.is_train])
        row["weight_norm"] = weight_norm(self.model)
        row["lr"] = self.sched.get_last_lr()[0]
        arrays = self.model.export_arrays()
        scalars, spectra = live.eval_measures(arrays, self.spec)
        row.update(scalars)
        fourier = {
            "step": self.step,
            "embed": freq_norms(embed_rows(arrays, self.spec["p"])).tolist(),
            **spectra,
        }
        meta: dict[str, Any] = {}
        if checkpoint:
            logits_np = logits.double().cpu().numpy()
            acts_np = acts.float().cpu().numpy() if isinstance(self.model, Transformer) else None
            ck_scalars, ck_arrays = live.checkpoint_measures(arrays, logits_np, acts_np, self.data, self.spec)
            row.update(ck_scalars)
            if isinstance(self.model, MLP):
                # Mallinar et al.'s feature measures (AGOP, NFM): ~0.1 s at p = 61, so per checkpoint
                row.update(agop.mlp_measures(arrays, self.data, self.spec))
            meta = {**{k: v for k, v in row.items() if k != "tasks"}}
            arrays.update({f"analysis/{k}": v for k, v in ck_arrays.items()})
            self.rec.checkpoint(self.step, arrays, meta)
        self.rec.evaluated(row, fourier, self.spec["steps"])

    # ------------------------------------------------------------------ resume
    def save_resume(self) -> None:
        if self.watch is not None:
            self.watch.check()  # never a resume state of a diverged model
        self.rec.save_resume(
            {
                "step": self.step,
                "elapsed": self.elapsed,
                "model": self.model.state_dict(),
                "optim": self.opt.state_dict(),
                "sched": self.sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "gen": self.gen.get_state(),
                "perm": self.perm,
                "pos": self.pos,
                **({"grokfast": self.grad_filter.state_dict()} if self.grad_filter is not None else {}),
            }
        )

    def apply_state(self, state: dict[str, Any]) -> int:
        """Set the whole training state from a resume state; raises on one that does not fit."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optim"])
        self.sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["torch_rng"])
        self.gen.set_state(state["gen"])
        self.perm, self.pos = state["perm"], int(state["pos"])
        if self.grad_filter is not None:
            if "grokfast" not in state:
                raise ValueError("the resume state has no Grokfast filter state, and the spec asks for one")
            self.grad_filter.load_state_dict(state["grokfast"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        return self.step

    # ------------------------------------------------------------------ loop
    def start(self) -> None:
        """Resume from the resume state, or start fresh: load init_from's parts, evaluate step 0."""
        if self.rec.resume(self.apply_state, self.device) is not None:
            self.rec.truncate_after(self.step)
        else:
            self.rec.truncate_after(-1)
            self._init_from()
            self.evaluate(checkpoint=True)

    def due(self) -> tuple[bool, bool]:
        """(evaluate, checkpoint) after the step just taken."""
        spec = self.spec
        is_ckpt = self.step % spec["checkpoint_every"] == 0 or self.step == spec["steps"]
        return self.step % spec["eval_every"] == 0 or is_ckpt, is_ckpt

    def after_step(self, outputs: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Evaluate and checkpoint when the step just taken calls for it (``outputs``: the model's
        (logits, activations) on the whole dataset, when a pack computed them for every member)."""
        evaluate, is_ckpt = self.due()
        if evaluate:
            if self.watch is not None:
                self.watch.check()
            self.evaluate(checkpoint=is_ckpt, outputs=outputs)
        if is_ckpt:
            self.save_resume()

    def finish(self) -> str:
        """The final pass (measures against the final model, one row per checkpoint): "done"."""
        rows = live.final_pass(
            self.model.export_arrays(),
            saved_checkpoints(self.dir, self.rec.log),
            self.spec,
            self.forward_arrays,
            self.data,
        )
        if rows:
            self.rec.progress(rows)
        return "done"

    def run(self, should_stop: Callable[[], bool]) -> str:
        self.start()
        t0 = time.perf_counter() - self.elapsed
        while self.step < self.spec["steps"]:
            if should_stop():
                self.elapsed = time.perf_counter() - t0
                self.save_resume()
                return "stopped"
            self.train_step()
            self.elapsed = time.perf_counter() - t0
            self.after_step()
        return self.finish()

    def _init_from(self) -> None:
        """Load the source run's parts (a fresh start only) and say what was loaded and frozen."""
        record = init_from.load_source(self.model, self.spec, self.dir)
        if record is not None:
            self.rec.loaded_from(record)
            arrays, digest = ", ".join(record["arrays"]), record["sha256"][:12]
            self.rec.log(f"init_from: {arrays} from {record['run']} step {record['step']} (sha256 {digest})")
        if self.frozen:
            self.rec.log(f"init_from: frozen (no gradient, no weight decay): {', '.join(self.frozen)}")

    @torch.no_grad()
    def forward_arrays(self, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits (and last-position MLP activations) of the whole dataset under checkpoint weights."""
        if self._scratch is None:  # a second model, so the trained one is never overwritten
            self._scratch = copy.deepcopy(self.model).eval()
        model = self._scratch
        model.load_arrays(arrays)
        logits, acts = model(self.inputs, return_acts=True)
        acts_np = acts.float().cpu().numpy() if isinstance(model, Transformer) else None
        return logits.double().cpu().numpy(), acts_np


def run(spec: dict[str, Any], run_dir: Path, device: str, should_stop: Callable[[], bool]) -> str:
    """Worker entry point for the neural models: "done" or "stopped"; a run with a resume state resumes."""
    # numpy's own BLAS threads (analysis) would fight torch's for the same cores
    limit_blas_threads(1)
    trainer = Trainer(spec, run_dir, pick_device(device))
    return trainer.run(should_stop)
