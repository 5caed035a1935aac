"""What the checkpoint inspector shows for one checkpoint: spectra, key frequencies, measures.

numpy only. Precomputed ``analysis/*`` arrays in the npz win (the worker computed them with the
run's own settings); otherwise the spectra are computed here from the weights with the same
``cos_sin_norms`` the analysis package uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grok_tui.analysis.fourier import cos_sin_norms
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
    for cos_key, sin_key in (
        (f"analysis/{name}_cos", f"analysis/{name}_sin"),
        (f"analysis/{name}_mu", f"analysis/{name}_nu"),
    ):
        if cos_key in arrays and sin_key in arrays:
            return Spectrum(
                np.asarray(arrays[cos_key], float).ravel(), np.asarray(arrays[sin_key], float).ravel()
            )
    return None


def embed_spectrum(arrays: dict[str, np.ndarray], p: int) -> Spectrum | None:
    """W_E's spectrum: rows 0..p-1 are the number tokens (transformer layout)."""
    if (s := _pair(arrays, "embed")) is not None:
        return s
    W = arrays.get("W_E")
    if W is None or W.ndim != 2 or W.shape[0] < p:
        return None
    cos, sin, _ = cos_sin_norms(W[:p], axis=0)
    return Spectrum(cos, sin)


def logit_spectrum(arrays: dict[str, np.ndarray], p: int) -> Spectrum | None:
    """W_L = (W_U[:, :p])ᵀ W_outᵀ, the neuron-to-logit map (p × d_mlp), Fourier along the logit axis."""
    if (s := _pair(arrays, "logit")) is not None:
        return s
    W_out, W_U = arrays.get("blocks.0.W_out"), arrays.get("W_U")
    if W_out is None or W_U is None or W_U.ndim != 2 or W_U.shape[1] < p or W_out.shape[1] != W_U.shape[0]:
        return None
    W_L = (W_out @ W_U[:, :p]).T
    cos, sin, _ = cos_sin_norms(W_L, axis=0)
    return Spectrum(cos, sin)


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
    kf = meta.get("key_freqs")
    if kf is None and "analysis/key_freqs" in arrays:
        kf = np.asarray(arrays["analysis/key_freqs"]).ravel().tolist()
    key_freqs = sorted(
        {int(k) for k in (kf or []) if isinstance(k, (int, float)) and not isinstance(k, bool)}
    )
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
