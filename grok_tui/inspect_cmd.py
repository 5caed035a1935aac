"""``grok inspect RUN``: the mechanistic picture of one checkpoint, from the run directory alone.

Reads ``checkpoints/step_N.npz`` (weights + ``analysis/*`` arrays + meta), ``metrics.jsonl`` and, when
the run has finished, ``progress.jsonl`` (restricted/excluded loss with the FINAL key frequencies).
Whatever a checkpoint lacks (older runs, MLPs) is recomputed from its weights with numpy; nothing
here imports torch. Also :func:`progress_curves`, the progress-measure panels ``grok show`` draws.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import live
from .analysis.keyfreq import KeyFreqs, from_component_norms
from .analysis.measures import Spectrum, sum_sq_weights
from .analysis.phase import phase_boundaries
from .exitcodes import FAILED as EXIT_CORRUPT
from .exitcodes import USAGE as EXIT_USAGE
from .runs import SPEC, RunDir, read_jsonl


class InspectError(Exception):
    """A user-facing failure: one line, and the exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def read_progress(run_dir: Path | str) -> list[dict[str, Any]]:
    """Rows of ``progress.jsonl`` written by the final pass (restricted/excluded with final K)."""
    return [r for r in read_jsonl(Path(run_dir) / live.PROGRESS) if "restricted_loss" in r]


def _num(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


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


def _spectra(weights: dict[str, np.ndarray], arrays: dict[str, np.ndarray], p: int):
    """(name → Spectrum) for W_E and W_L: from the stored analysis arrays, else from the weights."""
    out: dict[str, Spectrum] = {}
    computed = live._spectra(weights, p, "standard")
    for name in ("embed", "logit"):
        cos, sin = arrays.get(f"analysis/{name}_cos"), arrays.get(f"analysis/{name}_sin")
        const = arrays.get(f"analysis/{name}_const")
        if cos is not None and sin is not None and const is not None and len(cos) == p // 2:
            norms = np.zeros(p)
            norms[0] = float(const)
            norms[1 : 2 * (p // 2) : 2] = cos
            sins = np.asarray(sin)[: (p - 1) // 2]
            norms[2 : 2 * len(sins) + 1 : 2] = sins
            out[name] = Spectrum(norms)
        elif name in computed:
            out[name] = computed[name]
    return out


def _key_freqs(arrays: dict[str, np.ndarray], spectra: dict[str, Spectrum], spec: dict) -> KeyFreqs:
    if "analysis/key_freqs" in arrays:
        rule = str(arrays.get("analysis/key_freq_rule", "?"))
        kf = KeyFreqs([int(k) for k in np.asarray(arrays["analysis/key_freqs"]).ravel()], rule)
        if "analysis/neuron_freq" in arrays:
            kf.neuron_freq = np.asarray(arrays["analysis/neuron_freq"])
        return kf
    opts = live.options(spec)
    for name in ("logit", "embed"):
        if name in spectra:
            return KeyFreqs(from_component_norms(spectra[name].norms, opts["key_freq_frac"]), name)
    return KeyFreqs([], "none")


def collect(run_dir: Path, step: int | None) -> dict[str, Any]:
    """Everything ``grok inspect`` shows, as a JSON-able dict. Raises InspectError."""
    run_dir = Path(run_dir)
    if not (run_dir / SPEC).exists():
        raise InspectError(f"no run at {run_dir} (no {SPEC})")
    run = RunDir(run_dir)
    spec = run.spec()
    p = spec.get("p")
    if not isinstance(p, int) or p < 2:
        raise InspectError(f"{run_dir / SPEC}: no valid 'p'", EXIT_CORRUPT)
    step = _pick_step(run, step)
    from .recorder import load_checkpoint

    try:
        arrays, meta = load_checkpoint(run.checkpoint_path(step))
    except ValueError as e:
        raise InspectError(str(e), EXIT_CORRUPT) from None
    weights = {k: v for k, v in arrays.items() if not k.startswith("analysis/")}
    rows = run.metrics()
    row = next((r for r in reversed(rows) if r.get("step") == step), {})
    m = {**row, **{k: v for k, v in meta.items() if k != "tasks"}}
    opts = live.options(spec)
    spectra = _spectra(weights, arrays, p)
    kf = _key_freqs(arrays, spectra, spec)
    eta, const = float(opts["ffd_eta"]), bool(opts["gini_constant"])

    def measure(key: str, name: str, fn) -> float | None:
        v = _num(m.get(key))
        if v is None and name in spectra:
            v = _num(fn(spectra[name]))
        return v

    bounds = phase_boundaries(rows)  # first crossings: the phase at `step` only depends on rows ≤ step
    final = next((r for r in read_progress(run_dir) if r.get("step") == step), None)
    structure = arrays.get("analysis/structure")
    out: dict[str, Any] = {
        "run": run.run_id,
        "path": str(run_dir),
        "task": spec.get("task"),
        "p": p,
        "step": step,
        "phase": bounds.phase_at(step),
        "phase_boundaries": {
            "circuit_formation": bounds.circuit_formation,
            "cleanup": bounds.cleanup,
            "generalised": bounds.generalised,
        },
        "structure": str(structure) if structure is not None else None,
        "key_freqs": kf.freqs,
        "key_freq_rule": kf.rule,
        "neurons_per_freq": {str(k): c for k, c in kf.cluster_sizes().items()},
        "train_loss": _num(m.get("train_loss")),
        "train_acc": _num(m.get("train_acc")),
        "test_loss": _num(m.get("test_loss")),
        "test_acc": _num(m.get("test_acc")),
        "restricted_loss": _num(m.get("restricted_loss")),
        "restricted_acc": _num(m.get("restricted_acc")),
        "excluded_loss": _num(m.get("excluded_loss")),
        "excluded_acc": _num(m.get("excluded_acc")),
        "restricted_split": opts["restricted_split"],
        "final_key_freqs": final.get("key_freqs") if final else None,
        "final": (
            {
                k: _num(final.get(k))
                for k in ("restricted_loss", "restricted_acc", "excluded_loss", "excluded_acc")
            }
            if final
            else None
        ),
        "weight_norm": _num(m.get("weight_norm")) or _num(sum_sq_weights(weights)),
        "gini_embed": measure("gini_embed", "embed", lambda s: s.gini(const)),
        "gini_logit": measure("gini_logit", "logit", lambda s: s.gini(const)),
        "ffd_embed": measure("ffd_embed", "embed", lambda s: s.ffd(eta)),
        "fcr_embed": measure("fcr_embed", "embed", lambda s: s.fcr()),
        "ffd_logit": measure("ffd_logit", "logit", lambda s: s.ffd(eta)),
        "fcr_logit": measure("fcr_logit", "logit", lambda s: s.fcr()),
        "spectra": {
            name: {
                k: [_num(x) for x in v.tolist()]
                for k, v in (("per_freq", sp.per_freq), ("cos", sp.cos), ("sin", sp.sin))
            }
            for name, sp in spectra.items()
        },
    }
    for key in ("gini_embed_dlog", "ffd_embed_dlog", "fcr_embed_dlog", "gini_logit_dlog", "ffd_logit_dlog"):
        if _num(m.get(key)) is not None:
            out[key] = _num(m.get(key))
    return out


# --------------------------------------------------------------------------- rendering


def _f(v: Any, fmt: str = ".4g") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) else "-"


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
        f"run {info['run']}   task {info['task']}   p = {info['p']}   step {info['step']}",
        f"phase at this step: {info['phase']}   (circuit formation from {_f(pb['circuit_formation'])},"
        f" clean-up from {_f(pb['cleanup'])}, generalised from {_f(pb['generalised'])})",
    ]
    ks = " ".join(str(k) for k in info["key_freqs"]) or "none"
    line = f"key frequencies ({info['key_freq_rule']} rule): {ks}"
    if info["neurons_per_freq"]:
        sizes = ", ".join(f"{k}: {c}" for k, c in info["neurons_per_freq"].items() if k != "-1")
        line += f"   [neurons {sizes}; unexplained {info['neurons_per_freq'].get('-1', 0)}]"
    lines.append(line)
    if info["structure"]:
        lines.append(f"structure: c = {info['structure']}")
    lines.append(
        f"train loss {_f(info['train_loss'])}  acc {_f(info['train_acc'], '.3f')}   "
        f"test loss {_f(info['test_loss'])}  acc {_f(info['test_acc'], '.3f')}"
    )
    lines.append(
        f"restricted loss {_f(info['restricted_loss'])}  acc {_f(info['restricted_acc'], '.3f')}"
        f"  ({info['restricted_split']} pairs)   "
        f"excluded loss {_f(info['excluded_loss'])}  acc {_f(info['excluded_acc'], '.3f')}  (train pairs)"
    )
    if info["final"]:
        fk = " ".join(str(k) for k in info["final_key_freqs"] or [])
        fin = info["final"]
        lines.append(
            f"with the final key frequencies ({fk}): restricted {_f(fin['restricted_loss'])}"
            f" / acc {_f(fin['restricted_acc'], '.3f')}, excluded {_f(fin['excluded_loss'])}"
            f" / acc {_f(fin['excluded_acc'], '.3f')}"
        )
    lines.append(
        f"weight norm (Σθ²) {_f(info['weight_norm'], '.5g')}   "
        f"Gini W_E {_f(info['gini_embed'], '.3f')}  W_L {_f(info['gini_logit'], '.3f')}"
    )
    lines.append(
        f"FFD W_E {_f(info['ffd_embed'], '.3f')}  W_L {_f(info['ffd_logit'], '.3f')}   "
        f"FCR W_E {_f(info['fcr_embed'], '.3f')}  W_L {_f(info['fcr_logit'], '.3f')}"
    )
    if "ffd_embed_dlog" in info:
        lines.append(
            f"discrete-log basis: Gini W_E {_f(info.get('gini_embed_dlog'), '.3f')}"
            f"  FFD W_E {_f(info.get('ffd_embed_dlog'), '.3f')}"
            f"  FCR W_E {_f(info.get('fcr_embed_dlog'), '.3f')}"
        )
    text = "\n".join(lines)
    labels = {
        "embed": "W_E: Fourier norm per frequency",
        "logit": "W_L (neuron → logit): Fourier norm per frequency",
    }
    for name, sp in info["spectra"].items():
        text += "\n" + spectrum_bars(sp["per_freq"], info["key_freqs"], labels[name], width)
    return text


def _json_safe(v: Any) -> Any:
    """Strict JSON: NaN and ±inf become null."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def inspect(run_dir: Path, step: int | None, as_json: bool, width: int = 100) -> int:
    """Print the inspection of ``run_dir`` at ``step`` (None: last checkpoint); return the exit code."""
    try:
        info = collect(Path(run_dir), step)
    except InspectError as e:
        print(f"grok: error: {e}", file=sys.stderr)
        return e.code
    text = json.dumps(_json_safe(info), indent=1, default=str) if as_json else render(info, width)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `grok inspect RUN | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


# --------------------------------------------------------------------------- grok show


def progress_series(run_dir: Path | str) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """Panels of progress-measure curves: title → {label: (steps, values)}.

    Restricted/excluded loss and accuracy come from progress.jsonl (final key frequencies, as in the
    paper) when the run has finished, else from the per-checkpoint values in metrics.jsonl.
    """
    run = RunDir(run_dir)
    rows = run.metrics()
    prog = read_progress(run_dir)

    def series(src: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
        pts = [(r["step"], _num(r.get(key))) for r in src if isinstance(r.get("step"), int)]
        pts = [(s, v) for s, v in pts if v is not None]
        return [float(s) for s, _ in pts], [v for _, v in pts]

    src, tag = (prog, " (final key freqs)") if prog else (rows, "")
    panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    loss = {k: series(rows, k) for k in ("train_loss", "test_loss")}
    loss.update({k: series(src, k) for k in ("restricted_loss", "excluded_loss")})
    panels["restricted / excluded loss" + tag] = loss
    panels["restricted / excluded accuracy" + tag] = {
        k: series(src, k) for k in ("restricted_acc", "excluded_acc")
    }
    panels["sum of squared weights"] = {"weight_norm": series(rows, "weight_norm")}
    panels["Gini of Fourier norms"] = {k: series(rows, k) for k in ("gini_embed", "gini_logit")}
    panels["FFD / FCR"] = {k: series(rows, k) for k in ("ffd_embed", "fcr_embed", "ffd_logit", "fcr_logit")}
    panels["feature matrix (RFM / MLP)"] = {
        k: series(rows, k) for k in ("circulant_deviation", "agop_alignment", "nfa_corr")
    }
    return {
        title: {k: v for k, v in ps.items() if v[0]}
        for title, ps in panels.items()
        if any(v[0] for k, v in ps.items() if k not in ("train_loss", "test_loss"))
    }


def phase_line(run_dir: Path | str) -> str:
    """One line: the phase now and the steps where each phase began (see analysis.phase)."""
    rows = RunDir(run_dir).metrics()
    b = phase_boundaries(rows)
    now = b.phase_at(max((r["step"] for r in rows if isinstance(r.get("step"), int)), default=0))
    return (
        f"phase: {now}   (circuit formation from {_f(b.circuit_formation)},"
        f" clean-up from {_f(b.cleanup)}, generalised from {_f(b.generalised)})"
    )


def progress_curves(run_dir: Path | str, width: int = 100) -> list[str]:
    """The phase line, then rendered plotext panels of :func:`progress_series` (log-y for losses);
    [] when the run has no progress measures yet."""
    from .plots import curves

    panels = progress_series(run_dir)
    if not panels:
        return []
    # the phase rule reads a network's memorise/clean-up story; an RFM interpolates from iteration 0
    rfm = RunDir(run_dir).summary(rows=[]).model_kind == "rfm"
    out = [] if rfm else [phase_line(run_dir)]
    for title, series in panels.items():
        out.append(curves(series, title, width=width, log_y="loss" in title))
    return out
