"""``grok inspect RUN``: the mechanistic picture of one checkpoint, from the run directory alone.

The checkpoint itself is read by :mod:`grok_tui.checkpoints` (the same view the TUI inspector draws:
what the worker stored, else recomputed from the weights, saying which); this module adds what belongs
to the run: the phase at that step (``metrics.jsonl``) and, once the run has finished, restricted and
excluded loss with the FINAL key frequencies (``progress.jsonl``). Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .. import checkpoints
from .. import format as fmt
from ..analysis import live
from ..analysis.phase import phase_boundaries
from ..exitcodes import FAILED as EXIT_CORRUPT
from ..exitcodes import USAGE as EXIT_USAGE
from ..runs import SPEC, RunDir, finite
from .common import strict_json


class InspectError(Exception):
    """A user-facing failure: one line, and the exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def read_progress(run_dir: Path | str) -> list[dict[str, Any]]:
    """Rows of ``progress.jsonl`` written by the final pass (restricted/excluded with final K)."""
    return [r for r in RunDir(run_dir).progress() if "restricted_loss" in r]


def _pick_step(run: RunDir, step: int | None) -> int:
    steps = run.checkpoint_steps()
    if not steps:
        raise InspectError(f"run {run.run_id} has no checkpoints yet")
    if step is None:
        return steps[-1]
    if step not in steps:
        near = min(steps, key=lambda s: abs(s - step))
        raise InspectError(
            f"run {run.run_id} has no checkpoint at step {step} (nearest: {near}; "
            f"{len(steps)} checkpoints from {steps[0]} to {steps[-1]})"
        )
    return step


def _final(run_dir: Path, step: int, p: int) -> dict[str, Any] | None:
    """The final pass's row at ``step``, when its key frequencies are a list of frequencies."""
    row = next((r for r in read_progress(run_dir) if r["step"] == step), None)
    if row is None:
        return None
    ks = row.get("key_freqs")
    if not isinstance(ks, list) or not all(isinstance(k, int) and 1 <= k <= p // 2 for k in ks):
        return None
    return row


def collect(run_dir: Path, step: int | None) -> dict[str, Any]:
    """Everything ``grok inspect`` shows, as a JSON-able dict. Raises InspectError for a damaged
    input that leaves nothing to show; one that leaves something (non-finite weights) is ``error``."""
    run_dir = Path(run_dir)
    if not (run_dir / SPEC).exists():
        raise InspectError(f"no run at {run_dir} (no {SPEC})")
    run = RunDir(run_dir)
    try:
        spec = checkpoints.read_spec(run_dir)
    except checkpoints.CheckpointError as e:
        raise InspectError(str(e), EXIT_CORRUPT) from None
    step = _pick_step(run, step)
    rows = run.metrics()
    row = checkpoints.metrics_row(rows, step)
    view = checkpoints.view(run.checkpoint_path(step), spec, row, spec_path=run_dir / SPEC)
    if view.error and not view.readable:
        raise InspectError(view.error, EXIT_CORRUPT)
    # the phase in hindsight (the whole run); an RFM interpolates from iteration 0: no phases to tell
    rfm = fmt.model_label(spec.get("model")) == "rfm"
    bounds = phase_boundaries(rows)
    final = _final(run_dir, step, spec["p"])
    return {
        "run": run.run_id,
        "path": str(run_dir),
        "task": spec.get("task"),
        "p": spec["p"],
        "step": step,
        "phase": None if rfm else bounds.phase_at(step),
        "phase_boundaries": None
        if rfm
        else {
            "circuit_formation": bounds.circuit_formation,
            "cleanup": bounds.cleanup,
            "generalised": bounds.generalised,
        },
        **view.to_json(),
        "restricted_split": live.options(spec)["restricted_split"],
        "final_key_freqs": final.get("key_freqs") if final else None,
        "final": (
            {
                k: finite(final.get(k))
                for k in ("restricted_loss", "restricted_acc", "excluded_loss", "excluded_acc")
            }
            if final
            else None
        ),
    }


# --------------------------------------------------------------------------- rendering


def spectrum_bars(per_freq: list[float], key_freqs: list[int], title: str, width: int = 100) -> str:
    """Bar chart of the norm per frequency k = 1..⌊p/2⌋; the x ticks mark the key frequencies
    (readable without colour), or every 5th/10th k when there are none."""
    import plotext as plt

    ks = list(range(1, len(per_freq) + 1))
    plt.clear_figure()
    plt.plotsize(width, 12)
    plt.theme("clear")
    plt.bar(ks, [float(v) if v is not None else 0.0 for v in per_freq], width=0.5, marker="sd")
    keys = sorted(k for k in set(key_freqs) if 1 <= k <= len(ks))
    if keys:
        plt.xticks(keys)
        plt.xlabel("frequency k (ticks: key frequencies)")
    else:
        step = 10 if len(ks) > 30 else 5
        plt.xticks(sorted({1, *range(step, len(ks) + 1, step), len(ks)}))
        plt.xlabel("frequency k")
    plt.title(title)
    out = plt.build()
    return out if sys.stdout.isatty() else plt.uncolorize(out)  # colour codes only for a terminal


def render(info: dict[str, Any], width: int = 100) -> str:
    pb = info["phase_boundaries"]
    lines = [
        f"run {info['run']}   task {fmt.task_label(info['task'])}   p = {info['p']}   step {info['step']}"
    ]
    if pb is not None:
        lines.append(
            f"phase at this step: {info['phase']}   (circuit formation from"
            f" {fmt.step(pb['circuit_formation'])}, clean-up from {fmt.step(pb['cleanup'])},"
            f" generalised from {fmt.step(pb['generalised'])})"
        )
    ks = " ".join(str(k) for k in info["key_freqs"]) or "none"
    source = f"   ({info['key_freq_source']})" if info["key_freq_source"] else ""
    line = f"key frequencies ({info['key_freq_rule']} rule): {ks}{source}"
    if info["neurons_per_freq"]:
        sizes = ", ".join(f"{k}: {c}" for k, c in info["neurons_per_freq"].items() if k != "-1")
        unexplained = info["neurons_per_freq"].get("-1", 0)
        line += (
            f"   [neurons {sizes}; unexplained {unexplained}]"
            if sizes
            else f"   [{unexplained} neurons, none explained]"
        )
    lines.append(line)
    per_task = info["key_freqs_per_task"]
    if len(per_task) > 1:
        for t in per_task:
            tk = " ".join(str(k) for k in t["key_freqs"]) or "none"
            lines.append(f"  {t['task']}: {tk}   ({t['rule']} rule, {t['source']})")
    if info["recomputed"]:
        lines.append(
            f"recomputed from the weights: {', '.join(info['recomputed'])} (the checkpoint lacks them)"
        )
    lines += [f"note: {n}" for n in info["notes"]]
    if info["structure"]:
        lines.append(f"structure: c = {info['structure']}")
    lines.append(
        f"train loss {fmt.num(info['train_loss'])}  acc {fmt.acc(info['train_acc'])}   "
        f"test loss {fmt.num(info['test_loss'])}  acc {fmt.acc(info['test_acc'])}"
    )
    lines.append(
        f"restricted loss {fmt.num(info['restricted_loss'])}  acc {fmt.acc(info['restricted_acc'])}"
        f"  ({info['restricted_split']} pairs)   "
        f"excluded loss {fmt.num(info['excluded_loss'])}  acc {fmt.acc(info['excluded_acc'])}  (train pairs)"
    )
    if info["final"]:
        fk = " ".join(str(k) for k in info["final_key_freqs"] or [])
        fin = info["final"]
        lines.append(
            f"with the final key frequencies ({fk}): restricted {fmt.num(fin['restricted_loss'])}"
            f" / acc {fmt.acc(fin['restricted_acc'])}, excluded {fmt.num(fin['excluded_loss'])}"
            f" / acc {fmt.acc(fin['excluded_acc'])}"
        )
    ab = info["ablation"]
    if ab is not None:
        lines.append(f"Fourier ablations ({ab['source']}; logits over the c = {ab['structure']} grid):")
        lines += [f"  {line}" for line in fmt.ablation_lines(ab, info["neuron_clusters"])]
    elif info["ablation_note"]:
        lines.append(f"Fourier ablations: {info['ablation_note']}")
    gini = fmt.gini_convention(info["gini_constant"])
    lines.append(
        f"weight norm (Σθ²) {fmt.num(info['weight_norm'])}   "
        f"Gini W_E {fmt.num(info['gini_embed'])}  W_L {fmt.num(info['gini_logit'])} ({gini})"
    )
    lines.append(
        f"FFD W_E {fmt.num(info['ffd_embed'])}  W_L {fmt.num(info['ffd_logit'])}   "
        f"FCR W_E {fmt.num(info['fcr_embed'])}  W_L {fmt.num(info['fcr_logit'])}"
    )
    if "ffd_embed_dlog" in info:
        lines.append(
            f"discrete-log basis: Gini W_E {fmt.num(info.get('gini_embed_dlog'))} ({gini})"
            f"  FFD W_E {fmt.num(info.get('ffd_embed_dlog'))}"
            f"  FCR W_E {fmt.num(info.get('fcr_embed_dlog'))}"
        )
    text = "\n".join(lines)
    labels = {
        "embed": "W_E: Fourier norm per frequency",
        "logit": "W_L (neuron → logit): Fourier norm per frequency",
    }
    for name, sp in info["spectra"].items():
        text += "\n" + spectrum_bars(sp["per_freq"], info["key_freqs"], labels[name], width)
    if ab is not None:
        title = "log10(train loss with k removed / train loss)"  # plotext drops a title wider than the plot
        text += "\n" + spectrum_bars(
            fmt.excess_decades(ab["excluded_loss_per_freq"], ab["train_loss"]), ab["key_freqs"], title, width
        )
    return text


def inspect(run_dir: Path, step: int | None, as_json: bool, width: int = 100) -> int:
    """Print the inspection of ``run_dir`` at ``step`` (None: last checkpoint); return the exit code.

    A damaged input is one line on stderr and a non-zero exit; where the checkpoint still shows
    something (non-finite weights), that is printed first, with null for every non-finite number.
    """
    try:
        info = collect(Path(run_dir), step)
    except InspectError as e:
        print(f"grok: error: {e}", file=sys.stderr)
        return e.code
    text = json.dumps(strict_json(info), indent=1, allow_nan=False) if as_json else render(info, width)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `grok inspect RUN | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if info["error"]:
        print(f"grok: error: {info['error']}", file=sys.stderr)
        return EXIT_CORRUPT
    return 0
