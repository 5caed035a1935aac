"""Fourier ablations of one checkpoint (Nanda et al. 2023 §5.2 and Fig. 15; Furuta et al. 2024 Table A.4).

From the logits over the task's Fourier grid and the checkpoint's key frequencies K:

- the loss of the logits as they are, on the restricted split and on the train pairs (the reference);
- only K kept (the restricted loss, with its bias correction, on the restricted split and on train pairs);
- all of K removed (the excluded loss, train pairs);
- each single frequency k = 1..⌊n/2⌋ removed alone (train pairs): the bars. For a key frequency the
  loss rises; for a non-key one it stays at the train loss when the model uses K alone (addition),
  and rises when it does not (subtraction: Furuta et al. find the non-key frequencies matter, and the
  restricted loss sits far above the train loss);

plus the neuron clusters of the neuron rule (Nanda's Colab): neurons per key frequency and their
share of variance explained by it, and the neurons no frequency explains. The projections and the
loss are progress.py's; nothing here is a second formula.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .fourier import sum_directions
from .progress import (
    cross_entropy,
    excluded_logits,
    grid_logits,
    restricted_logits,
    single_excluded_losses,
    split_mask,
)
from .structure import Structure

#: Arrays the worker stores per checkpoint (``analysis/<name>``); restricted/excluded are the row's.
STORED_ARRAYS = (
    "ablation_loss",
    "ablation_train_loss",
    "ablation_restricted_train_loss",
    "excluded_loss_all_freqs",
)
#: The scalars an ablation shares with the metrics row (stored there, not twice).
ROW_SCALARS = ("restricted_loss", "restricted_acc", "excluded_loss", "excluded_acc")


def _num(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


@dataclass
class Ablation:
    """The losses of one checkpoint's logits with Fourier components kept or removed."""

    key_freqs: list[int]
    split: str  # the restricted split: all | train | test
    loss: float  # the logits as they are, on ``split`` pairs
    train_loss: float  # the logits as they are, on train pairs
    restricted_loss: float  # only the key frequencies (and the constant) kept, ``split`` pairs
    restricted_acc: float
    restricted_train_loss: float  # the same logits on train pairs: against train_loss, like for like
    excluded_loss: float  # every key frequency removed, train pairs
    excluded_acc: float
    per_freq: np.ndarray  # (⌊n/2⌋,) train loss with frequency k = 1..⌊n/2⌋ removed alone

    def without_key(self) -> dict[int, float]:
        """Train loss with each key frequency removed alone."""
        return {k: float(self.per_freq[k - 1]) for k in self.key_freqs if 1 <= k <= len(self.per_freq)}

    def worst_non_key(self) -> tuple[int, float] | None:
        """The non-key frequency whose removal raises the train loss most: (k, loss)."""
        keys = set(self.key_freqs)
        rest = [(float(v), k) for k, v in enumerate(self.per_freq, 1) if k not in keys and math.isfinite(v)]
        if not rest:
            return None
        v, k = max(rest)
        return k, v

    def arrays(self) -> dict[str, np.ndarray]:
        """What the worker stores (STORED_ARRAYS); the rest is in the metrics row."""
        return {
            "ablation_loss": np.asarray(self.loss, dtype=np.float64),
            "ablation_train_loss": np.asarray(self.train_loss, dtype=np.float64),
            "ablation_restricted_train_loss": np.asarray(self.restricted_train_loss, dtype=np.float64),
            "excluded_loss_all_freqs": np.asarray(self.per_freq, dtype=np.float64),
        }

    def to_json(self) -> dict[str, Any]:
        """Stable keys for ``grok inspect --json``; non-finite numbers are null."""
        worst = self.worst_non_key()
        return {
            "key_freqs": list(self.key_freqs),
            "restricted_split": self.split,
            "loss": _num(self.loss),
            "train_loss": _num(self.train_loss),
            "restricted_loss": _num(self.restricted_loss),
            "restricted_acc": _num(self.restricted_acc),
            "restricted_train_loss": _num(self.restricted_train_loss),
            "excluded_loss": _num(self.excluded_loss),
            "excluded_acc": _num(self.excluded_acc),
            "without_key": {str(k): _num(v) for k, v in self.without_key().items()},
            "worst_non_key": None if worst is None else {"freq": worst[0], "loss": _num(worst[1])},
            "excluded_loss_per_freq": [_num(v) for v in self.per_freq],
        }


def fourier_ablation(
    logits: np.ndarray,
    labels: np.ndarray,
    is_train: np.ndarray,
    structure: Structure,
    key_freqs: Iterable[int],
    split: str = "all",
) -> Ablation:
    """The ablation of ``logits`` (indexed like ``structure.rows``, as ``progress_measures`` takes
    them) with key frequencies ``key_freqs``; restricted on ``split``, the rest on train pairs."""
    keys = sorted({int(k) for k in key_freqs})
    L = grid_logits(logits, structure)
    y = np.asarray(labels, dtype=np.int64)[structure.rows]
    train = np.asarray(is_train, dtype=bool)[structure.rows]
    mask = split_mask(split, train)
    U = sum_directions(structure.n, keys, structure.sign)
    R, E = restricted_logits(L, U), excluded_logits(L, U)
    r_loss, r_acc = cross_entropy(R[mask], y[mask])
    e_loss, e_acc = cross_entropy(E[train], y[train])
    return Ablation(
        key_freqs=keys,
        split=split,
        loss=cross_entropy(L[mask], y[mask])[0],
        train_loss=cross_entropy(L[train], y[train])[0],
        restricted_loss=r_loss,
        restricted_acc=r_acc,
        restricted_train_loss=cross_entropy(R[train], y[train])[0],
        excluded_loss=e_loss,
        excluded_acc=e_acc,
        per_freq=single_excluded_losses(L, y, train, structure, range(1, structure.n // 2 + 1)),
    )


def from_stored(
    analysis: dict[str, np.ndarray],
    scalars: dict[str, float | None],
    key_freqs: list[int],
    n: int,
    split: str,
) -> Ablation | str | None:
    """The ablation the worker stored (its arrays plus the row's restricted/excluded); None when a
    part is missing (an older checkpoint), or a line naming the damaged array. The caller then
    recomputes it."""
    if any(k not in analysis for k in STORED_ARRAYS) or any(scalars.get(k) is None for k in ROW_SCALARS):
        return None
    per = np.asarray(analysis["excluded_loss_all_freqs"])
    if per.shape != (n // 2,) or per.dtype.kind != "f":
        return f"array 'analysis/excluded_loss_all_freqs' is {per.dtype} {per.shape}, not float ({n // 2},)"
    for k in STORED_ARRAYS[:3]:
        a = np.asarray(analysis[k])
        if a.shape != () or a.dtype.kind != "f":
            return f"array 'analysis/{k}' is {a.dtype} {a.shape}, not a float scalar"
    return Ablation(
        key_freqs=sorted(key_freqs),
        split=split,
        loss=float(analysis["ablation_loss"]),
        train_loss=float(analysis["ablation_train_loss"]),
        restricted_train_loss=float(analysis["ablation_restricted_train_loss"]),
        per_freq=per.astype(np.float64),
        **{k: float(scalars[k]) for k in ROW_SCALARS},  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- neuron clusters


@dataclass
class Cluster:
    """The neurons the neuron rule assigns to one frequency."""

    freq: int
    neurons: int
    mean_share: float | None  # mean share of their variance the frequency explains (None: not stored)
    min_share: float | None


@dataclass
class Clusters:
    """Nanda's Colab neuron clusters: a neuron belongs to frequency k when k's {const, cos_k, sin_k}²
    block explains more than ``threshold`` of its variance; the rest are unexplained."""

    clusters: list[Cluster]
    neurons: int
    unexplained: int
    threshold: float

    @property
    def explained_share(self) -> float | None:
        return None if self.neurons == 0 else (self.neurons - self.unexplained) / self.neurons

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "neurons": self.neurons,
            "unexplained": self.unexplained,
            "explained_share": _num(self.explained_share),
            "clusters": [
                {
                    "freq": c.freq,
                    "neurons": c.neurons,
                    "mean_share": _num(c.mean_share),
                    "min_share": _num(c.min_share),
                }
                for c in self.clusters
            ],  # fmt: skip
        }


def neuron_clusters(neuron_freq: np.ndarray, neuron_frac: np.ndarray | None, threshold: float) -> Clusters:
    """Clusters from the neuron rule's per-neuron frequency (-1: unexplained) and best share."""
    freq = np.asarray(neuron_freq, dtype=np.int64).ravel()
    frac = None if neuron_frac is None else np.asarray(neuron_frac, dtype=np.float64).ravel()
    if frac is not None and frac.shape != freq.shape:
        frac = None
    out = []
    for k in sorted(int(x) for x in np.unique(freq[freq > 0])):
        sel = freq == k
        share = None if frac is None else frac[sel]
        out.append(
            Cluster(k, int(sel.sum()), None if share is None else float(share.mean()),
                    None if share is None else float(share.min()))
        )  # fmt: skip
    return Clusters(out, int(freq.size), int((freq <= 0).sum()), float(threshold))
