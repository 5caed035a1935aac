"""What the training worker calls: cheap measures every evaluation, forward-pass measures every
checkpoint, and a final pass over all checkpoints with the final key frequencies. Numpy only.

The worker must never die of analysis: every entry point catches its own errors, prints one line to
stderr (the run's worker.log) and returns what it has. The checkpoint view (``grok_tui.checkpoints``)
recomputes what a checkpoint lacks with the same functions, through the variants that raise instead
(``weight_measures``, ``checkpoint_analysis``), so that it can say what failed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import numpy as np

from ..config import ANALYSIS_DEFAULTS
from ..tasks import Task, is_prime
from . import keyfreq
from .ablation import ROW_SCALARS, fourier_ablation
from .measures import Spectrum, embed_matrix, logit_spectrum, spectrum
from .progress import progress_measures
from .structure import Structure, detect_structure

Forward = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray | None]]

#: Models whose MLP activations the neuron rule reads (Nanda et al.'s Colab clusters the transformer's
#: MLP neurons); for the others the worker passes none, and the rule falls back, saying so.
NEURON_RULE_MODELS = ("transformer",)


def options(spec: dict[str, Any]) -> dict[str, Any]:
    """The run's analysis options with defaults filled in (older specs may lack some)."""
    return {**ANALYSIS_DEFAULTS, **(spec.get("analysis") or {})}


def gini_constant(spec: Any) -> bool | None:
    """Whether the run's Gini numbers include the constant component (``analysis.gini_constant``; the
    default for a spec that predates the key); None when a damaged spec.json does not say."""
    if not isinstance(spec, dict):
        return None
    analysis = spec.get("analysis")
    if analysis is None:
        analysis = {}
    if not isinstance(analysis, dict):
        return None
    v = analysis.get("gini_constant", ANALYSIS_DEFAULTS["gini_constant"])
    return v if isinstance(v, bool) else None


def _warn(where: str, err: BaseException) -> None:
    print(f"grok analysis: {where} skipped ({err.__class__.__name__}: {err})", file=sys.stderr)


def spec_tasks(spec: dict[str, Any]) -> tuple[str, ...]:
    """A spec's tasks as resolved expressions (``tasks``; an older spec: ``task``)."""
    t = spec.get("tasks") or spec.get("task") or ()
    return (t,) if isinstance(t, str) else tuple(t)


@lru_cache(maxsize=32)
def _task_structure(task: str, p: int, basis: str) -> Structure | None:
    t = Task.parse(task, p)
    T = t.table
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    keep = T >= 0
    return detect_structure(a[keep], b[keep], T[keep], p, basis)


def _basis_option(opts: dict[str, Any]) -> str:
    return "standard" if opts.get("discrete_log") == "off" else "auto"


def has_structure(spec: dict[str, Any]) -> bool:
    """Whether restricted/excluded loss exist for this run: one task, with a Fourier structure."""
    return task_structure(spec) is not None


def task_structure(spec: dict[str, Any]) -> Structure | None:
    """The Fourier grid of a one-task run (None for a mixture or a task without one)."""
    tasks = spec_tasks(spec)
    if len(tasks) != 1:
        return None
    return _task_structure(tasks[0], int(spec["p"]), _basis_option(options(spec)))


def use_dlog(spec: dict[str, Any]) -> bool:
    """Also report spectra in the discrete-log basis: 'on' (p prime), or 'auto' for mul/div-like."""
    opts, p = options(spec), int(spec["p"])
    mode = opts.get("discrete_log")
    if mode == "off" or p < 3 or not is_prime(p):
        return False
    if mode == "on":
        return True
    try:
        structs = [_task_structure(t, p, "auto") for t in spec_tasks(spec)]
    except Exception:
        return False
    return any(s is not None and s.basis == "dlog" for s in structs)


def spectra(arrays: dict[str, np.ndarray], p: int, basis: str = "standard") -> dict[str, Spectrum]:
    """The spectra of W_E (``embed``) and W_L (``logit``), whichever the weights hold: what every
    measure here, the stored ``analysis/*_cos|sin|const`` arrays and the checkpoint inspector read."""
    out = {}
    E = embed_matrix(arrays, p)
    if E is not None and E.shape[0] == p:
        out["embed"] = spectrum(E, basis, p)
    sp = logit_spectrum(arrays, p, basis)
    if sp is not None:
        out["logit"] = sp
    return out


def _clean(x: float) -> float:
    return float(x) if math.isfinite(x) else float("nan")


# --------------------------------------------------------------------------- every evaluation


def weight_measures(
    arrays: dict[str, np.ndarray],
    spec: dict[str, Any],
    scalars: dict[str, float] | None = None,
    out: dict[str, list[float]] | None = None,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """:func:`eval_measures` without its safety net: raises on weights it cannot read (the
    checkpoint view reports that instead of printing it). Fills ``scalars``/``out`` as it goes."""
    scalars = {} if scalars is None else scalars
    out = {} if out is None else out
    opts, p = options(spec), int(spec["p"])
    eta, const = float(opts["ffd_eta"]), bool(opts["gini_constant"])
    bases = [("", "standard")] + ([("_dlog", "dlog")] if use_dlog(spec) else [])
    for suffix, basis in bases:
        for name, sp in spectra(arrays, p, basis).items():
            scalars[f"gini_{name}{suffix}"] = _clean(sp.gini(const))
            scalars[f"ffd_{name}{suffix}"] = _clean(sp.ffd(eta))
            scalars[f"fcr_{name}{suffix}"] = _clean(sp.fcr())
            if suffix or name != "embed":
                out[f"{name}{suffix}"] = [float(x) for x in sp.per_freq]
    return scalars, out


def eval_measures(
    arrays: dict[str, np.ndarray], spec: dict[str, Any]
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Cheap weight-only measures for every evaluation.

    Returns (scalars for the metrics row: gini_embed, gini_logit, ffd_embed, fcr_embed, ffd_logit,
    fcr_logit [+ the same with a ``_dlog`` suffix for mul/div], spectra for the fourier row:
    ``logit`` = norm of W_L per frequency k = 1..⌊p/2⌋ [+ ``embed_dlog``, ``logit_dlog`` over
    k = 1..⌊(p−1)/2⌋]). The trainer writes weight_norm and the standard ``embed`` spectrum itself.
    """
    scalars: dict[str, float] = {}
    spectra: dict[str, list[float]] = {}
    try:
        weight_measures(arrays, spec, scalars, spectra)
    except Exception as e:  # never kill training over a measure
        _warn("eval measures", e)
    return scalars, spectra


# --------------------------------------------------------------------------- every checkpoint


def _grid(dataset: Any, rows: np.ndarray, p: int, basis: str) -> Structure | None:
    """The task's Fourier grid; else a plain a-major grid (sign 0) if all p² pairs exist."""
    a, b, y = dataset.a[rows], dataset.b[rows], dataset.labels[rows]
    st = detect_structure(a, b, y, p, basis)
    if st is not None:
        return st
    if len(rows) == p * p:
        R = np.full(p * p, -1, dtype=np.int64)
        R[a * p + b] = np.arange(len(rows))
        if (R >= 0).all():
            return Structure("standard", 0, p, R)  # sign 0: a grid, not a structure
    return None


def dataset_grid(dataset: Any, spec: dict[str, Any]) -> Structure | None:
    """The Fourier grid over a one-task dataset's rows (None for a mixture or a task without one)."""
    if len(getattr(dataset, "tasks", [None])) > 1:
        return None
    grid = _grid(dataset, np.arange(len(dataset.labels)), int(spec["p"]), _basis_option(options(spec)))
    return grid if grid is not None and grid.sign != 0 else None


def key_frequencies(
    arrays: dict[str, np.ndarray],
    acts: np.ndarray | None,
    grid: Structure | None,
    p: int,
    opts: dict[str, Any],
) -> keyfreq.KeyFreqs:
    """Key frequencies by the run's rule. Where that rule cannot apply (the neuron rule without
    activations or without an (a, b) grid; a matrix the weights lack) the next rule is used, and
    ``KeyFreqs.note`` says why: the result always names the rule that gave it."""
    rule = opts["key_freq_rule"]
    basis = grid.basis if grid is not None else "standard"
    note = ""
    if rule == "neuron":
        if acts is not None and grid is not None:
            return keyfreq.neuron_rule(np.asarray(acts)[grid.rows], grid.n, float(opts["key_freq_threshold"]))
        note = (
            "the neuron rule reads a transformer's MLP activations, and there are none"
            if acts is None
            else "the neuron rule needs every (a, b) pair of the task, and some are missing"
        )
    order = ("embed", "logit") if rule == "embed" else ("logit", "embed")
    sp = spectra(arrays, p, basis)
    for name in order:
        if name in sp:
            if name != order[0] and rule != "neuron":
                note = f"no {'W_E' if order[0] == 'embed' else 'W_L'} in these weights"
            freqs = keyfreq.from_component_norms(sp[name].norms, float(opts["key_freq_frac"]))
            return keyfreq.KeyFreqs(freqs, name, note=note)
    return keyfreq.KeyFreqs([], "none", note=note or "no W_E or W_L in these weights")


def checkpoint_analysis(
    arrays: dict[str, np.ndarray],
    logits: np.ndarray | None,
    acts: np.ndarray | None,
    dataset: Any,
    spec: dict[str, Any],
    scalars: dict[str, float] | None = None,
    out: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """:func:`checkpoint_measures` without its safety net (raises; fills ``scalars``/``out`` as it
    goes); ``logits=None`` leaves out what needs them (restricted/excluded loss and accuracy). The
    checkpoint view recomputes what a checkpoint lacks with this."""
    scalars = {} if scalars is None else scalars
    out = {} if out is None else out
    opts, p = options(spec), int(spec["p"])
    bases = ["standard"] + (["dlog"] if use_dlog(spec) else [])
    for basis in bases:
        suffix = "" if basis == "standard" else "_dlog"
        for name, sp in spectra(arrays, p, basis).items():
            out[f"{name}_cos{suffix}"] = sp.cos.astype(np.float32)
            out[f"{name}_sin{suffix}"] = sp.sin.astype(np.float32)
            out[f"{name}_const{suffix}"] = np.asarray(sp.const, dtype=np.float32)
    tasks = getattr(dataset, "tasks", [None])
    basis = _basis_option(opts)
    if len(tasks) > 1:
        for i in range(len(tasks)):
            rows = np.flatnonzero(dataset.task_ids == i)
            grid = _grid(dataset, rows, p, basis)
            sub = None if acts is None else np.asarray(acts)[rows]
            kf = key_frequencies(arrays, sub, grid, p, opts)
            out[f"key_freqs_task{i}"] = np.asarray(kf.freqs, dtype=np.int64)
            out[f"key_freq_rule_task{i}"] = np.asarray(kf.rule)
            if kf.note:
                out[f"key_freq_note_task{i}"] = np.asarray(kf.note)
        return scalars, out
    rows = np.arange(len(dataset.labels))
    grid = _grid(dataset, rows, p, basis)
    kf = key_frequencies(arrays, acts, grid, p, opts)
    scalars["n_key_freqs"] = len(kf.freqs)
    out["key_freqs"] = np.asarray(kf.freqs, dtype=np.int64)
    out["key_freq_rule"] = np.asarray(kf.rule)
    if kf.note:
        out["key_freq_note"] = np.asarray(kf.note)
    if kf.neuron_freq is not None:
        out["neuron_freq"] = kf.neuron_freq.astype(np.int16)
        out["neuron_frac"] = kf.neuron_frac.astype(np.float32)
    if grid is not None and grid.sign != 0:
        out["structure"] = np.asarray(grid.describe)
        if logits is not None:
            ab = fourier_ablation(
                np.asarray(logits), dataset.labels, dataset.is_train, grid, kf.freqs,
                split=str(opts["restricted_split"]),
            )  # fmt: skip
            out.update(ab.arrays())
            scalars.update({k: _clean(getattr(ab, k)) for k in ROW_SCALARS})
    return scalars, out


def checkpoint_measures(
    arrays: dict[str, np.ndarray],
    logits: np.ndarray,
    acts: np.ndarray | None,
    dataset: Any,
    spec: dict[str, Any],
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Forward-pass measures at a checkpoint, with that checkpoint's own key frequencies.

    ``logits`` (N, n_out) and ``acts`` (N, d_mlp, last-position MLP activations; None for models
    without them) cover every dataset row in dataset order. Returns (scalars: restricted_loss,
    restricted_acc, excluded_loss, excluded_acc, n_key_freqs — the first four only for tasks with a
    Fourier structure, see structure.py; arrays stored as ``analysis/<name>``: key_freqs,
    key_freq_rule, key_freq_note (why not the run's rule, when another one applied), structure,
    embed_cos/sin/const, logit_cos/sin/const, neuron_freq, neuron_frac, the Fourier ablation's
    ablation_loss, ablation_train_loss and excluded_loss_all_freqs (k = 1..⌊n/2⌋; see ablation.py), and
    ``*_dlog`` spectra for mul/div). Mixtures get spectra and per-task key frequencies
    (``key_freqs_task<i>``, ``key_freq_rule_task<i>``, ``key_freq_note_task<i>``) only.
    """
    scalars: dict[str, float] = {}
    out: dict[str, np.ndarray] = {}
    try:
        checkpoint_analysis(arrays, logits, acts, dataset, spec, scalars, out)
    except Exception as e:
        _warn("checkpoint measures", e)
    return scalars, out


# --------------------------------------------------------------------------- after the run


def weights_of(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A checkpoint's weights: its arrays without the stored ``analysis/*``."""
    return {k: v for k, v in arrays.items() if not k.startswith("analysis/")}


def final_pass(
    final: dict[str, np.ndarray],
    checkpoints: Iterable[tuple[int, dict[str, np.ndarray]]],
    spec: dict[str, Any],
    forward: Forward,
    dataset: Any,
) -> list[dict[str, Any]]:
    """Key frequencies of the ``final`` weights, then restricted/excluded loss and accuracy of every
    checkpoint with them (Nanda's Colab ``get_metrics``): the rows of progress.jsonl, oldest first.

    ``checkpoints`` yields (step, arrays) as the trainer loads them, one at a time (the final weights
    come separately so that one pass suffices). Rows: step, restricted_loss, restricted_acc,
    excluded_loss, excluded_acc, key_freqs, rule, structure, split. No rows for mixtures or tasks
    without Fourier structure; a checkpoint whose forward pass fails is skipped with a warning.
    """
    out_rows: list[dict[str, Any]] = []
    try:
        if len(getattr(dataset, "tasks", [None])) > 1:
            return []
        opts, p = options(spec), int(spec["p"])
        rows = np.arange(len(dataset.labels))
        grid = _grid(dataset, rows, p, _basis_option(opts))
        if grid is None or grid.sign == 0:
            return []
        weights = weights_of(final)
        _, acts = forward(weights)
        kf = key_frequencies(weights, acts, grid, p, opts)
        split = str(opts["restricted_split"])
        for step, arrays in checkpoints:
            try:
                logits, _ = forward(weights_of(arrays))
            except Exception as e:
                _warn(f"final pass at step {step}", e)
                continue
            m = progress_measures(logits, dataset.labels, dataset.is_train, grid, kf.freqs, split)
            out_rows.append(
                {
                    "step": int(step),
                    **{k: _clean(float(v)) for k, v in m.items()},  # type: ignore[arg-type]
                    "key_freqs": kf.freqs,
                    "rule": kf.rule,
                    "structure": grid.describe,
                    "split": split,
                }
            )
    except Exception as e:
        _warn("final pass", e)
        return []  # rows scored with a half-done pass would mislead: none
    return out_rows
