"""A peer's checkpoints written as one of our run directories, as the worker would have written it.

Each imported state dict becomes a checkpoint (our weight names plus the worker's checkpoint analysis),
a metrics row (train/test loss and accuracy from a forward pass over every pair, softmax collapse,
weight norm, the weight-only and checkpoint measures) and a fourier row at its step; then the final pass
(restricted/excluded loss of every checkpoint with the final key frequencies, Nanda et al. 2023 §5)
fills progress.jsonl. The numbers come from the worker's own functions (``analysis.live``, the torch
model, its losses), never from the peer's file; the peer's own loss curves, where the file has them,
go to ``peer_losses.jsonl``, apart.

spec.json says the run is imported (source file, its sha256, the format and layout read, and the
settings the user asserted): the launcher, the scheduler and the worker refuse to train it. The run is
built in the runs directory's staging area and renamed into place whole: a failure leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, runs
from ..config import ANALYSIS_DEFAULTS
from ..config.limits import MAX_P
from ..recorder import Recorder, eval_line, open_log, refusal, rewrite_jsonl, write_json_atomic
from .layouts import LayoutError, Mapped, map_state_dict
from .peer import PeerFile, PeerFileError

EXPERIMENT = "imported"
PEER_LOSSES = "peer_losses.jsonl"
#: What the user must say when the file does not: our key → the option.
SETTINGS = {"task": "--task", "p": "--p", "train_frac": "--train-frac", "seed": "--seed"}


class ImportRefused(ValueError):
    """An import that cannot be done: the one line (without the file name) the user sees."""


def settle(pf: PeerFile, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The run's task, p, train fraction and seed: the user's where given, else the file's config.
    Returns (settings, notes): a note for each value the user gave that the file says otherwise."""
    out, notes = {}, []
    for key, opt in SETTINGS.items():
        mine, theirs = given.get(key), pf.config.get(key)
        if mine is None and theirs is None:
            raise ImportRefused(f"the file does not say the {key.replace('_', ' ')}: give {opt}")
        if mine is not None and theirs is not None and mine != theirs:
            notes.append(f"{opt} {mine} overrides the file's config ({key} = {theirs!r})")
        out[key] = mine if mine is not None else theirs
    p = out["p"]
    if isinstance(p, bool) or not isinstance(p, int) or not 2 <= p <= MAX_P:
        raise ImportRefused(f"p must be an integer from 2 to {MAX_P}, got {p!r}")
    return out, notes


def build_spec(
    name: str,
    source: Path,
    digest: str,
    pf: PeerFile,
    mapped: Mapped,
    settings: dict[str, Any],
    given: dict[str, Any],
) -> dict[str, Any]:
    """spec.json of the imported run, checked as every spec is (config.check_resolved)."""
    from ..config import ConfigError, check_resolved
    from ..tasks import Task, TaskError

    p = settings["p"]
    try:
        task = Task.parse(str(settings["task"]), p)
    except (TaskError, ValueError) as e:
        raise ImportRefused(f"task: {e}") from None
    steps = [s for s, _, _ in pf.states]
    spec = {
        "experiment": EXPERIMENT,
        "name": name,
        "description": f"imported from {source.name} ({pf.format}, {mapped.layout} layout)",
        "task": settings["task"],
        "tasks": [task.expr],
        "p": p,
        "train_frac": settings["train_frac"],
        "seed": settings["seed"],
        "split_seed": settings["seed"],
        "batch_size": 0,
        "layout": "nanda",
        "loss": "ce",
        "device": "cpu",
        "model": mapped.model,
        "analysis": dict(ANALYSIS_DEFAULTS),
        **({"steps": max(steps)} if max(steps) >= 1 else {}),  # 'steps' is ≥ 1: a lone step-0 state has none
        "version": __version__,
        "imported": {
            "source": str(source.resolve()),
            "sha256": digest,
            "format": pf.format,
            "layout": mapped.layout,
            "asserted": {k: v for k, v in given.items() if v is not None},
            "from_file": dict(pf.config),
            "file_config": pf.raw_config or None,
            "file_optimizer": pf.optimizer,
            "steps": steps,
            "step_rule": pf.step_rule,
            "dropped_zero_biases": mapped.dropped,
            "split": "Nanda's gen_train_test: (a, b) pairs a-major, random.seed(seed) shuffle, first "
            "int(train_frac·N) train",
        },
    }
    try:
        check_resolved(spec, "the run's settings", ("p", "tasks", "train_frac", "split_seed"))
    except ConfigError as e:
        raise ImportRefused(str(e).replace("the run's settings: ", "", 1)) from None
    return spec


def map_all(pf: PeerFile, p: int, act: str) -> list[tuple[int, Mapped]]:
    """Every state dict of the file mapped; one architecture for the whole series."""
    out: list[tuple[int, Mapped]] = []
    for step, sd, where in pf.states:
        try:
            m = map_state_dict(sd, p, act)
        except LayoutError as e:
            raise ImportRefused(f"{where}: {e}" if len(pf.states) > 1 else str(e)) from None
        if out and (m.model != out[0][1].model or m.layout != out[0][1].layout):
            raise ImportRefused(f"{where}: a different model or layout from the first state dict")
        out.append((step, m))
    return out


class _Evaluator:
    """The worker's evaluation (training/neural.py Trainer.evaluate) of weights it did not train."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import torch

        from ..models.transformer import Transformer
        from ..tasks import Task, build_dataset

        self.spec = spec
        p = spec["p"]
        self.data = build_dataset(
            [Task.parse(t, p) for t in spec["tasks"]], p, spec["train_frac"], spec["split_seed"], "nanda"
        )
        self.model = Transformer(self.data.vocab, self.data.vocab, spec["model"]).eval()
        self.inputs = torch.from_numpy(self.data.inputs)
        self.labels = torch.from_numpy(self.data.labels)
        self.is_train = torch.from_numpy(self.data.is_train)

    def forward(self, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Logits (float64) and last-position MLP activations of every pair: live.final_pass's forward."""
        import torch

        with torch.no_grad():
            self.model.load_arrays(arrays)
            logits, acts = self.model(self.inputs, return_acts=True)
        return logits.double().numpy(), acts.float().numpy()

    def row(self, step: int, arrays: dict[str, np.ndarray]) -> tuple[dict, dict, dict[str, np.ndarray]]:
        """(metrics row, fourier row, checkpoint arrays with analysis) at ``step``."""
        import torch

        from ..analysis import live
        from ..analysis.fourier import freq_norms
        from ..training.losses import per_pair, softmax_collapse
        from ..training.neural import embed_rows, weight_norm

        with torch.no_grad():
            self.model.load_arrays(arrays)
            logits, acts = self.model(self.inputs, return_acts=True)
        correct = logits.argmax(-1) == self.labels
        row: dict[str, Any] = {"step": step}
        for split, mask in (("train", self.is_train), ("test", ~self.is_train)):
            row[f"{split}_loss"] = float(per_pair(logits[mask], self.labels[mask], "ce").mean())
            row[f"{split}_acc"] = float(correct[mask].double().mean()) if mask.any() else float("nan")
        row["softmax_collapse"] = softmax_collapse(logits[self.is_train], self.labels[self.is_train])
        row["weight_norm"] = weight_norm(self.model)
        scalars, spectra = live.eval_measures(arrays, self.spec)
        row.update(scalars)
        fourier = {"step": step, "embed": freq_norms(embed_rows(arrays, self.spec["p"])).tolist(), **spectra}
        ck_scalars, ck_arrays = live.checkpoint_measures(
            arrays, logits.double().numpy(), acts.float().numpy(), self.data, self.spec
        )
        row.update(ck_scalars)
        out = dict(arrays)
        out.update({f"analysis/{k}": v for k, v in ck_arrays.items()})
        return row, fourier, out


def _peer_rows(pf: PeerFile) -> list[dict[str, Any]]:
    """The peer's own loss curves by step (train_losses[s] is measured at step s, before step s + 1)."""
    rows: dict[int, dict[str, Any]] = {}
    for s, v in enumerate(pf.train_losses or []):
        rows.setdefault(s, {"step": s})["train_loss"] = v
    every = pf.test_every or 1
    for i, v in enumerate(pf.test_losses or []):
        rows.setdefault(i * every, {"step": i * every})["test_loss"] = v
    return [rows[s] for s in sorted(rows)]


def split_check(pf: PeerFile, last: dict[str, Any]) -> str | None:
    """A note when the peer's own last train/test loss disagrees with ours at the last step by more
    than a factor of 2: the asserted split (train fraction, seed) is then likely not the one it was
    trained on (the losses of the two splits of a grokked model differ by orders of magnitude).

    The peer's last losses are measured one step before its final weights (Nanda's loop), so only a
    gross disagreement is reported."""
    step = last.get("step")
    rows = {r["step"]: r for r in _peer_rows(pf)}
    theirs = rows.get(step) or rows.get(step - 1) if isinstance(step, int) else None
    if not theirs:
        return None
    off = []
    for split in ("train", "test"):
        a, b = theirs.get(f"{split}_loss"), last.get(f"{split}_loss")
        if a is None or b is None or not (a > 0 and b > 0):
            continue
        if max(a / b, b / a) > 2:
            off.append(f"{split} loss {b:.4g} here, {a:.4g} in the file at step {theirs['step']}")
    if not off:
        return None
    return "; ".join(off) + ": the file was probably trained on another split (check --train-frac and --seed)"


def write_run(
    staging: Path,
    spec: dict[str, Any],
    mapped: list[tuple[int, Mapped]],
    pf: PeerFile,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Fill ``staging`` with the run; returns the last metrics row."""
    from ..analysis import live
    from ..training.common import limit_blas_threads
    from ..training.neural import saved_checkpoints

    limit_blas_threads(1)  # as the worker: numpy's BLAS threads would fight torch's
    write_json_atomic(staging / runs.SPEC, spec)
    rec = Recorder(staging)
    started = time.time()
    total = max(s for s, _ in mapped)
    ev = _Evaluator(spec)
    imp = spec["imported"]
    with os.fdopen(open_log(staging), "a") as log:  # worker.log, as the recorder opens it
        log.write(
            f"grok import: {imp['source']} (sha256 {imp['sha256']}), {imp['format']}, "
            f"{imp['layout']} layout, {len(mapped)} state dict(s); steps: {imp['step_rule']}\n"
        )
        last: dict[str, Any] = {}
        for step, m in mapped:
            row, fourier, arrays = ev.row(step, m.arrays)
            rec.checkpoint(step, arrays, dict(row))
            rec.metrics(row)
            rec.fourier(fourier)
            line = eval_line(row, total)
            log.write(line + "\n")
            say(line)
            last = row
        final = mapped[-1][1].arrays
        rows = live.final_pass(final, saved_checkpoints(staging), spec, ev.forward, ev.data)
        if rows:
            rec.progress(rows)
        if pf.train_losses or pf.test_losses:
            rewrite_jsonl(staging / PEER_LOSSES, _peer_rows(pf))
        log.write(f"grok import: {spec['experiment']}/{spec['name']} done\n")
    status = {"state": "done", "step": total, "total_steps": total, "device": "cpu", "returncode": 0}
    status.update(host=socket.gethostname(), started=started, ended=time.time(), error=None, imported=True)
    write_json_atomic(staging / runs.STATUS, status)
    return last


def place(root: Path, name: str, force: bool, build: Callable[[Path], Any]) -> tuple[Path, Any]:
    """Build the run in the runs directory's staging area (``build(staging)``) and rename it to
    ``root/imported/name``; an existing run is replaced only with ``force``, and only once the new one
    is whole. Nothing is left behind on failure."""
    dest = root / EXPERIMENT / name
    if line := refusal(dest):  # a linked experiment directory too: never written through
        raise ImportRefused(line)
    if dest.exists() or dest.is_symlink():
        if runs.lock_held(dest):
            raise ImportRefused(f"run {EXPERIMENT}/{name} in {root} has a live worker; not replacing it")
        if not force:
            raise ImportRefused(
                f"run {EXPERIMENT}/{name} already exists in {root}: --force replaces it, or --name"
            )
    staging_root = runs.state_dir(root) / "staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}.{os.urandom(4).hex()}"
    staging = staging_root / f"{name}.import.{tag}"
    staging.mkdir()
    try:
        result = build(staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if line := refusal(dest):
            raise ImportRefused(line)
        old = staging_root / f"{name}.replaced.{tag}"
        if dest.exists():
            os.rename(dest, old)
        try:
            os.rename(staging, dest)
        except OSError:
            if old.exists():
                os.rename(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return dest, result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def import_file(
    path: Path,
    root: Path,
    *,
    name: str,
    given: dict[str, Any],
    trust: bool = False,
    every: int | None = None,
    first: int = 0,
    step: int | None = None,
    act: str = "relu",
    force: bool = False,
    say: Callable[[str], None] = print,
) -> tuple[Path, dict[str, Any], list[str]]:
    """Import ``path`` as run ``imported/<name>`` of ``root``; returns (run directory, last metrics row,
    notes). ImportRefused/PeerFileError carry the one line for a file that cannot be imported."""
    from . import peer

    obj = peer.load(path, trust)
    pf = peer.read(obj, every=every, first=first, step=step)
    del obj
    settings, notes = settle(pf, given)
    mapped = map_all(pf, settings["p"], act)
    spec = build_spec(name, path, peer.sha256(path), pf, mapped[-1][1], settings, given)
    notes += [f"dropped zero biases {', '.join(mapped[-1][1].dropped)}"] if mapped[-1][1].dropped else []
    dest, last = place(root, name, force, lambda staging: write_run(staging, spec, mapped, pf, say))
    if line := split_check(pf, last):
        notes.append(line)
    return dest, last, notes


__all__ = ["EXPERIMENT", "ImportRefused", "PeerFileError", "import_file"]
