"""What the checkpoint inspector shows for one checkpoint: spectra, key frequencies, measures.

numpy only. Precomputed ``analysis/*`` arrays in the npz win (the worker computed them with the
run's own settings); otherwise the spectra are computed here from the weights with the same
functions ``grok inspect`` uses (``grok_tui.analysis.measures``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grok_tui.analysis import measures
from grok_tui.recorder import load_checkpoint

#: Scalars the inspector lists, in this order (from the metrics row at the step, else the npz meta).
MEASURES = (
    "train_loss",
    "test_loss",
    "train_acc",
    "test_acc",
    "restricted_loss",
    "restricted_acc",
    "excluded_loss",
    "excluded_acc",
    "gini_embed",
    "gini_logit",
    "ffd_embed",
    "fcr_embed",
    "ffd_logit",
    "fcr_logit",
    "weight_norm",
)


@dataclass
class Spectrum:
    """Per-frequency cos/sin norms (k = 1..⌊p/2⌋) of one weight matrix."""

    cos: np.ndarray
    sin: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return np.sqrt(self.cos**2 + self.sin**2)


@dataclass
class CheckpointView:
    step: int
    embed: Spectrum | None = None
    logit: Spectrum | None = None
    key_freqs: list[int] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def _pair(arrays: dict[str, np.ndarray], name: str) -> Spectrum | None:
    """The worker's own ``analysis/<name>_cos`` / ``_sin`` arrays, when it stored them."""
    cos, sin = arrays.get(f"analysis/{name}_cos"), arrays.get(f"analysis/{name}_sin")
    if cos is None or sin is None:
        return None
    return Spectrum(np.asarray(cos, float).ravel(), np.asarray(sin, float).ravel())


def embed_spectrum(arrays: dict[str, np.ndarray], p: int) -> Spectrum | None:
    """W_E's spectrum (number-token rows), stored or computed by the analysis package."""
    if (s := _pair(arrays, "embed")) is not None:
        return s
    E = measures.embed_matrix(arrays, p)
    if E is None or E.shape[0] != p:
        return None
    sp = measures.spectrum(E)
    return Spectrum(sp.cos, sp.sin)


def logit_spectrum(arrays: dict[str, np.ndarray], p: int) -> Spectrum | None:
    """W_L's spectrum (the neuron-to-logit map, Fourier along the logit axis), stored or computed."""
    if (s := _pair(arrays, "logit")) is not None:
        return s
    sp = measures.logit_spectrum(arrays, p)
    return None if sp is None else Spectrum(sp.cos, sp.sin)


def key_frequencies(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> list[int]:
    """The checkpoint's key frequencies: the analysis arrays (per task for mixtures: their union),
    else ``meta["key_freqs"]``."""
    found: list[Any] = []
    for k, v in arrays.items():
        if k == "analysis/key_freqs" or k.startswith("analysis/key_freqs_task"):
            found.extend(np.asarray(v).ravel().tolist())
    if not found and isinstance(meta.get("key_freqs"), list):
        found = meta["key_freqs"]
    return sorted({int(k) for k in found if isinstance(k, (int, float)) and not isinstance(k, bool)})


def _scalar(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def inspect_checkpoint(path: Path, p: int, row: dict[str, Any] | None = None) -> CheckpointView:
    """Everything the inspector draws for one checkpoint; a damaged file yields ``error``, not a raise."""
    step = int(path.stem.split("_")[-1]) if path.stem.startswith("step_") else -1
    try:
        arrays, meta = load_checkpoint(path)
    except ValueError as e:
        return CheckpointView(step=step, error=str(e), measures=_measures(row, {}))
    key_freqs = key_frequencies(arrays, meta)
    try:
        embed, logit = embed_spectrum(arrays, p), logit_spectrum(arrays, p)
    except (ValueError, np.linalg.LinAlgError) as e:
        return CheckpointView(
            step=step, key_freqs=key_freqs, error=f"{path}: {e}", measures=_measures(row, meta)
        )
    return CheckpointView(
        step=int(meta.get("step", step)),
        embed=embed,
        logit=logit,
        key_freqs=key_freqs,
        measures=_measures(row, meta),
    )


def _measures(row: dict[str, Any] | None, meta: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k in MEASURES:
        v = _scalar((row or {}).get(k))
        if v is None or math.isnan(v):
            v = _scalar(meta.get(k))
        if v is not None and not math.isnan(v):
            out[k] = v
    return out
