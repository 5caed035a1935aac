"""An RFM run (Mallinar et al. 2024, Alg. 1; the maths in grok_tui/models/rfm.py), iteration by iteration.

The run directory gets, per iteration t = 0..steps (t = 0 is M₀ = I): a metrics row, a fourier row
(spectrum of the off-diagonal block), ``progress.jsonl`` (replaced: alignment of every M_s with the latest
AGOP^s, final once the run ends), and at checkpoints ``M`` and ``M_next`` (the AGOP^s of M's predictor).
Exact on resume on the CPU: an iteration is a deterministic function of M_t.

With fixed features (``model.features = "random_circulant"``, their Fig. 4) M never changes: M₀ is the
seeded random circulant matrix (:mod:`grok_tui.models.circulant`) and the loader gives such a run one
solve (steps 0). The AGOP of its predictor is still computed, for the alignment measure and ``M_next``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import runs
from ..analysis import agop as agop_mod
from ..models.circulant import random_circulant_features
from ..models.rfm import Fit, KernelRFM, one_hot_layout
from ..recorder import Recorder
from ..tasks import Task, build_dataset, is_prime
from .common import diverged, limit_blas_threads, pick_device, stops_on_nan


def _split_metrics(preds: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """MSE over all outputs, accuracy (argmax), correct-logit loss mean (f(x)_y - 1)² (reference eval)."""
    if preds.shape[0] == 0:
        return {"loss": math.nan, "acc": math.nan, "correct_loss": math.nan}
    Y = torch.nn.functional.one_hot(labels, preds.shape[1]).to(preds.dtype)
    right = preds.gather(1, labels[:, None])[:, 0]
    return {
        "loss": float((preds - Y).square().mean()),
        "acc": float((preds.argmax(1) == labels).double().mean()),
        "correct_loss": float((right - 1.0).square().mean()),
    }


@contextlib.contextmanager
def _flush_denormals(on: bool) -> Iterator[None]:
    """Tiny kernel entries (exp of large distances) must not drop the CPU into denormal slow paths."""
    if on:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if on:
            torch.set_flush_denormal(False)


#: Below this many multiply-adds per kernel product (n·n·p) one CPU thread is always faster: thread start-up
#: and barriers dominate (measured at load 8: a p = 17 run took 0.23 s on one thread, 9.7 s on two).
SMALL_WORK = 30_000_000


def _cpu_idle() -> tuple[float, float] | None:
    """(idle, total) jiffies of the whole machine from /proc/stat; None where there is no such file."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields)


class _Threads:
    """torch threads for each iteration: every core on a quiet machine, fewer when others compete.

    OpenMP threads that must share cores spin at every barrier: on this 2-core box at load 5-9 an RFM
    iteration (p = 61) took 16 s with two threads and 1.4 s with one. Before each iteration, the machine's
    busy cores over the previous iteration (/proc/stat) minus this process's own CPU use say how many
    cores others hold; torch gets the rest (and the Gram matrix as many Python threads, each on
    one-thread OpenBLAS). The 1-minute load average lags too much for this (it kept one thread for a
    minute after a neighbour had finished).
    """

    def __init__(self, spec: dict[str, Any], dev: torch.device) -> None:
        self.before = torch.get_num_threads()
        self.blas_before: int | None = None
        p = int(spec["p"])
        n = int(float(spec["train_frac"]) * p * p * max(1, len(spec.get("tasks") or [])))
        self.active = dev.type == "cpu"
        self.most = 1 if n * n * p < SMALL_WORK else self.before
        self.cpus = os.cpu_count() or 1
        self.mark = (time.perf_counter(), time.process_time(), _cpu_idle())

    def pick(self) -> None:
        if not self.active:
            return
        if self.blas_before is None:  # numpy's OpenBLAS: one thread (see KernelRFM._syrk)
            self.blas_before = limit_blas_threads(1)
        now = (time.perf_counter(), time.process_time(), _cpu_idle())
        (w0, c0, s0), (w1, c1, s1) = self.mark, now
        self.mark = now
        if s0 is None or s1 is None or s1[1] <= s0[1]:
            torch.set_num_threads(self.most)
            return
        busy = self.cpus * (1.0 - (s1[0] - s0[0]) / (s1[1] - s0[1]))
        others = max(0.0, busy - (c1 - c0) / max(w1 - w0, 1e-9))
        torch.set_num_threads(max(1, min(self.most, int(self.cpus - others + 0.5))))

    def restore(self) -> None:
        if self.active:
            torch.set_num_threads(self.before)
            if self.blas_before is not None:
                limit_blas_threads(self.blas_before)


class _Run:
    """One RFM run: the engine, the measures of each iterate, and what goes into the run directory."""

    def __init__(self, spec: dict[str, Any], run_dir: Path, device: torch.device) -> None:
        self.spec, self.dir = spec, Path(run_dir)
        self.p = p = int(spec["p"])
        tasks = [Task.parse(t, p) for t in spec["tasks"]]
        self.data = build_dataset(
            tasks, p, float(spec["train_frac"]), int(spec["split_seed"]), layout="nanda"
        )
        order, hot, ranges, self.d = one_hot_layout(self.data, p)
        self.n = int(self.data.is_train.sum())
        cfg = spec["model"]
        self.engine = KernelRFM(
            hot,
            self.data.labels[order],
            self.n,
            self.d,
            p,
            ranges,
            kernel=cfg.get("kernel", "gaussian"),
            bandwidth=cfg.get("bandwidth", 2.5),
            ridge=cfg.get("ridge", 0.0),
            agop_power=cfg.get("agop_power", 0.5),
            centering=cfg.get("centering", True),
            device=device,
        )
        self.labels = self.engine.labels
        self.task_ids = torch.as_tensor(self.data.task_ids[order], device=self.engine.dev)
        self.direction, self.use_dlog = agop_mod.task_geometry(
            list(spec["tasks"]), spec.get("analysis", {}).get("discrete_log", "auto")
        )
        if self.use_dlog and not is_prime(p):
            self.direction, self.use_dlog = None, False
        self.stop_on_nan = stops_on_nan(spec)
        self.rec = Recorder(self.dir)
        self.history: list[np.ndarray] = []  # M_0 .. M_{t-1}, for progress.jsonl
        self.deviations: list[float] = []
        self.fixed = cfg.get("features", "agop") != "agop"  # absent in spec.json files before the key
        if self.fixed:
            start = random_circulant_features(list(spec["tasks"]), p, int(spec["init_seed"]))
            self.M = torch.from_numpy(start).to(self.engine.dev)
        else:
            self.M = torch.eye(self.d, dtype=torch.float64, device=self.engine.dev)
        self.last_root: torch.Tensor | None = None  # AGOP^s of the latest predictor
        self.elapsed = 0.0

    # ------------------------------------------------------------------ measures
    def deviation(self, M: np.ndarray) -> float:
        return agop_mod.feature_circulant_deviation(M, self.p, self.direction, self.use_dlog)

    def spectrum(self, M: np.ndarray) -> np.ndarray:
        return agop_mod.block_spectrum(agop_mod.measured_block(M, self.p, self.use_dlog))

    def metrics_row(
        self, t: int, elapsed: float, fit: Fit, M: np.ndarray, root: np.ndarray
    ) -> dict[str, Any]:
        n = self.n
        row: dict[str, Any] = {"step": t, "time": elapsed}
        for split, sl in (("train", slice(0, n)), ("test", slice(n, None))):
            for k, v in _split_metrics(fit.preds[sl], self.labels[sl]).items():
                row[f"{split}_{k}"] = v
        if len(self.data.tasks) > 1:
            row["tasks"] = {}
            for i, task in enumerate(self.data.tasks):
                sel = self.task_ids == i
                entry = {}
                for split, mask in (("train", sel[:n]), ("test", sel[n:])):
                    base = 0 if split == "train" else n
                    idx = torch.nonzero(mask)[:, 0] + base
                    m = _split_metrics(fit.preds[idx], self.labels[idx])
                    entry[f"{split}_acc"], entry[f"{split}_loss"] = m["acc"], m["loss"]
                row["tasks"][task.name] = entry
        row["weight_norm"] = float(np.sum(M * M))
        row["agop_trace"] = float(np.trace(M))
        row["circulant_deviation"] = runs.finite(self.deviations[t])
        # Streamed alignment: the features M_t against the AGOP^s of the predictor they produced (M_{t+1}
        # unless the features are fixed). With the final matrix, this is progress.jsonl's last row.
        row["agop_alignment"] = runs.finite(agop_mod.agop_alignment(M, root))
        row["kernel_solver"] = fit.solver
        return row

    def write_progress(self, reference: np.ndarray, ref_step: int, final: bool) -> None:
        self.rec.progress(agop_mod.progress_rows(self.history, self.deviations, reference, ref_step, final))

    # ------------------------------------------------------------------ resume
    def save_resume(self, t: int, M: torch.Tensor, elapsed: float) -> None:
        hist = (
            torch.from_numpy(np.stack(self.history))
            if self.history
            else torch.zeros(0, self.d, self.d, dtype=torch.float64)
        )
        self.rec.save_resume(
            {"kind": "rfm", "step": t, "elapsed": elapsed, "M": M.detach().cpu(), "history": hist}
        )

    def apply_state(self, state: dict[str, Any]) -> int:
        """M_t, t and the earlier iterates from a resume state; raises on one that does not fit."""
        t, M, elapsed, hist = int(state["step"]), state["M"], float(state["elapsed"]), state["history"]
        if tuple(M.shape) != (self.d, self.d) or tuple(hist.shape) != (t, self.d, self.d):
            raise ValueError("its feature matrices do not match this run's spec")
        self.history = [h.numpy().copy() for h in hist]
        self.deviations = [self.deviation(h) for h in self.history]
        self.M = M.to(device=self.engine.dev, dtype=torch.float64)
        self.elapsed = elapsed
        return t

    # ------------------------------------------------------------------ loop
    def run(self, should_stop: Callable[[], bool], started: float) -> str:
        total, every = int(self.spec["steps"]), int(self.spec["checkpoint_every"])
        resumed = self.rec.resume(self.apply_state)
        if resumed is None:
            t = 0
            self.rec.truncate_after(-1)
        else:
            t = resumed
            self.rec.truncate_after(t - 1)
        M = self.M
        t0 = started - self.elapsed
        threads = _Threads(self.spec, self.engine.dev)
        try:
            while t <= total:
                if should_stop():
                    self.save_resume(t, M, time.perf_counter() - t0)
                    return "stopped"
                threads.pick()
                M, t = self._iteration(t, M, total, every, t0)
        finally:
            threads.restore()
        # M* = AGOP^s of the final predictor (the paper's "AGOP of the final trained model"): the final
        # iterate, unless the features are fixed (recomputed when a resume found the loop already over).
        root = self.last_root
        if root is None:
            root = self.engine.update(M, self.engine.fit(M)) if self.fixed else M
        self.write_progress(root.cpu().numpy(), t, final=True)
        return "done"

    def _iteration(
        self, t: int, M: torch.Tensor, total: int, every: int, t0: float
    ) -> tuple[torch.Tensor, int]:
        """Evaluate with M_t, record everything, return (M_{t+1}, t + 1)."""
        fit = self.engine.fit(M)
        if self.stop_on_nan:  # before the update (which cannot digest NaN) and before anything is written
            loss = _split_metrics(fit.preds[: self.n], self.labels[: self.n])["loss"]
            if not math.isfinite(loss):
                raise diverged(loss, t)
        self.last_root = root = self.engine.update(M, fit)
        M_next = M if self.fixed else root
        Mn, Mn_root = M.cpu().numpy(), root.cpu().numpy()
        self.history.append(Mn.copy())
        self.deviations.append(self.deviation(Mn))
        elapsed = time.perf_counter() - t0
        row = self.metrics_row(t, elapsed, fit, Mn, Mn_root)
        spectrum = self.spectrum(Mn)
        is_ckpt = t % every == 0 or t == total
        if is_ckpt:
            meta = {k: v for k, v in row.items() if k != "tasks"}
            meta.update(direction=self.direction, discrete_log=self.use_dlog)
            arrays = {"M": Mn, "M_next": Mn_root, "analysis/offdiag_spectrum": spectrum}
            self.rec.checkpoint(t, arrays, meta)
        self.write_progress(Mn_root, t + 1, final=False)
        self.rec.evaluated(row, {"step": t, "embed": spectrum.tolist()}, total)
        if is_ckpt:
            self.save_resume(t + 1, M_next, time.perf_counter() - t0)
        return M_next, t + 1


def run(spec: dict[str, Any], run_dir: Path, device: str, should_stop: Callable[[], bool]) -> str:
    """Worker entry point: RFM iterations t = 0..spec["steps"] into ``run_dir``; "done" or "stopped".

    A run with a resume state continues from it (M_t, t, the earlier iterates), dropping rows written
    after it; without one it starts at M₀ = I.
    """
    started = time.perf_counter()
    dev = pick_device(device)
    with _flush_denormals(dev.type == "cpu"):
        return _Run(spec, Path(run_dir), dev).run(should_stop, started)
