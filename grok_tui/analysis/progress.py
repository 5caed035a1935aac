"""Nanda et al.'s restricted and excluded loss and accuracy (Nanda et al. 2023 §5.1, App. C.2).

Given the logits L of every grid cell (rows a-major over the Structure's grid, columns = the p
classes; the '=' and task-token classes dropped) and key frequencies K, with u_k, v_k the unit
cos/sin(w_k(a ± b)) directions:

- restricted logits  L̃ = Σ_K (u_k u_kᵀ + v_k v_kᵀ) L + 1·mean_rows(L − Σ_K …)  (bias correction:
  the constant 2-D component is kept), scored on ``split`` ("all" by default; the paper names none,
  the Colab reports all and train);
- excluded logits  L̂ = L − Σ_K (u_k u_kᵀ + v_k v_kᵀ) L, no bias correction, scored on TRAIN pairs.

Cross-entropy is computed in float64 (as Nanda's notebook and Furuta et al.'s code do); accuracy is the
argmax of the same logits.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from .fourier import sum_directions
from .structure import Structure

SPLITS = ("all", "train", "test")


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean CE, accuracy) of float64 log-softmax; NaN for no rows."""
    if logits.shape[0] == 0:
        return float("nan"), float("nan")
    L = np.asarray(logits, dtype=np.float64)
    m = L.max(axis=1, keepdims=True)
    lse = np.log(np.exp(L - m).sum(axis=1)) + m[:, 0]
    idx = np.arange(L.shape[0])
    loss = float(np.mean(lse - L[idx, labels]))
    acc = float(np.mean(L.argmax(axis=1) == labels))
    return loss, acc


def projection(L: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Σ_k (u_k u_kᵀ) L for orthonormal rows u_k of U (the part of L along the kept directions)."""
    if U.shape[0] == 0:
        return np.zeros_like(L)
    return U.T @ (U @ L)


def restricted_logits(L: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Logits keeping only the U directions and the per-class mean (bias correction)."""
    P = projection(L, U)
    return P + (L - P).mean(axis=0, keepdims=True)


def excluded_logits(L: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Logits with the U directions removed (no bias correction)."""
    return L - projection(L, U)


def split_mask(split: str, train: np.ndarray) -> np.ndarray:
    if split == "all":
        return np.ones_like(train, dtype=bool)
    if split == "train":
        return train
    if split == "test":
        return ~train
    raise ValueError(f"unknown split '{split}' ({', '.join(SPLITS)})")


def grid_logits(logits: np.ndarray, structure: Structure) -> np.ndarray:
    """(n², p) float64 logits of the grid cells, classes ≥ p dropped."""
    return np.asarray(logits, dtype=np.float64)[structure.rows][:, : structure.p]


def progress_measures(
    logits: np.ndarray,
    labels: np.ndarray,
    is_train: np.ndarray,
    structure: Structure,
    freqs: Iterable[int],
    split: str = "all",
    per_freq: bool = False,
) -> dict[str, object]:
    """restricted_loss/acc (on ``split``), excluded_loss/acc (train) for key frequencies ``freqs``.

    ``logits``, ``labels``, ``is_train`` are indexed like ``structure.rows`` (the task's rows).
    With ``per_freq``, also ``excluded_loss_per_freq``: train loss with each k removed alone
    (Nanda Fig. 15), in the order of ``freqs``.
    """
    freqs = [int(k) for k in freqs]
    L = grid_logits(logits, structure)
    y = np.asarray(labels, dtype=np.int64)[structure.rows]
    train = np.asarray(is_train, dtype=bool)[structure.rows]
    U = sum_directions(structure.n, freqs, structure.sign)
    P = projection(L, U)
    restricted = P + (L - P).mean(axis=0, keepdims=True)
    excluded = L - P
    m = split_mask(split, train)
    r_loss, r_acc = cross_entropy(restricted[m], y[m])
    e_loss, e_acc = cross_entropy(excluded[train], y[train])
    out: dict[str, object] = {
        "restricted_loss": r_loss,
        "restricted_acc": r_acc,
        "excluded_loss": e_loss,
        "excluded_acc": e_acc,
    }
    if per_freq:
        out["excluded_loss_per_freq"] = single_excluded_losses(L, y, train, structure, freqs)
    return out


@lru_cache(maxsize=256)
def _directions(n: int, k: int, sign: int) -> np.ndarray:
    """``sum_directions(n, [k], sign)``, kept: the inspector asks for the same ones at every step."""
    U = sum_directions(n, [k], sign)
    U.setflags(write=False)
    return U


def single_excluded_losses(
    L: np.ndarray, y: np.ndarray, train: np.ndarray, structure: Structure, freqs: Iterable[int]
) -> np.ndarray:
    """Train loss with each frequency k of ``freqs`` removed alone (Nanda Fig. 15), in their order.

    ``L``, ``y``, ``train`` are in grid order (``grid_logits``). Every frequency's coefficients come
    from one product (U_all @ L) and only the train rows of each excluded-logit matrix are formed:
    all 56 frequencies of p = 113 in a fraction of a second, where one small product per frequency
    is slowed tenfold by a busy multi-threaded BLAS.
    """
    freqs = [int(k) for k in freqs]
    dirs = [_directions(structure.n, k, structure.sign) for k in freqs]
    if not dirs:
        return np.zeros(0)
    C = np.concatenate(dirs) @ L  # (Σ directions, classes)
    Lt, yt = L[train], y[train]
    per, i = [], 0
    for Uk in dirs:
        j = i + Uk.shape[0]
        per.append(cross_entropy(Lt - Uk[:, train].T @ C[i:j], yt)[0])
        i = j
    return np.asarray(per, dtype=np.float64)
