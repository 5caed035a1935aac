"""Key frequencies by the three published rules (Nanda et al. 2023); the rule used is always recorded.

- ``embed`` (Nanda §4.1, TransformerLens demo): components of W_E's spectrum above ``frac``·max.
- ``logit`` (Nanda App. C.2, used for restricted/excluded loss): the same on W_L's class axis.
- ``neuron`` (Nanda's Colab ``calculate_key_freqs``): each neuron's share of variance in the 3×3
  block {const, cos_k, sin_k}² of the 2-D transform of its activations over the (a, b) grid; neurons
  whose best share exceeds the 0.85 cut form clusters, and the clusters' frequencies are the key
  frequencies. Unlike the Colab, k = ⌊n/2⌋ is tested too (its loop stops one short).

Frequencies are k = 1..⌊n/2⌋ of the grid's group (n = p, or p − 1 in the discrete-log basis).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fourier import fourier_basis

RULES = ("neuron", "embed", "logit")


@dataclass
class KeyFreqs:
    """The result of one rule: sorted frequencies plus what the rule looked at."""

    freqs: list[int]
    rule: str
    # neuron rule: best frequency per neuron (-1 below the cut or dead) and its variance share
    neuron_freq: np.ndarray | None = field(default=None, repr=False)
    neuron_frac: np.ndarray | None = field(default=None, repr=False)
    # why this rule and not the one asked for ("" when it is the one asked for)
    note: str = ""

    def cluster_sizes(self) -> dict[int, int]:
        """Neurons per key frequency (neuron rule), -1 = unexplained."""
        if self.neuron_freq is None:
            return {}
        ks, counts = np.unique(self.neuron_freq, return_counts=True)
        return {int(k): int(c) for k, c in zip(ks, counts, strict=True)}


def from_component_norms(norms: np.ndarray, frac: float = 0.25) -> list[int]:
    """Frequencies k with a cos or sin component above ``frac`` × the largest non-constant one."""
    norms = np.asarray(norms, dtype=np.float64)
    comp = norms[1:]
    if comp.size == 0 or comp.max() <= 0:
        return []
    f = np.flatnonzero(comp > frac * comp.max()) + 1  # component index 1..n-1
    return sorted({int((i + 1) // 2) for i in f})


def neuron_fractions(acts_grid: np.ndarray, n: int) -> np.ndarray:
    """(⌊n/2⌋, d) share of each neuron's variance in the {const, cos_k, sin_k}² block, k = 1..⌊n/2⌋.

    ``acts_grid``: (n², d) activations in grid order (a-major). Each neuron is centred first, so the
    const×const cell is zero; a neuron with no variance has share 0 everywhere.
    """
    A = np.asarray(acts_grid)
    dtype = np.float32 if A.dtype == np.float32 else np.float64
    A = A.astype(dtype, copy=False)
    d = A.shape[1]
    A = A - A.mean(axis=0, keepdims=True)
    F = fourier_basis(n).astype(dtype)
    X = (F @ A.reshape(n, n * d)).reshape(n, n, d)  # over a
    X = np.matmul(F, X)  # over b: for each f, F @ X[f] (n, d)
    S = np.square(X, dtype=np.float64 if dtype == np.float64 else np.float32)  # (n, n, d)
    total = S.sum(axis=(0, 1))
    half = n // 2
    ks = np.arange(1, half + 1)
    c = 2 * ks - 1
    s = np.minimum(2 * ks, n - 1)
    has_sin = (2 * ks) <= n - 1  # even n: no sin at k = n/2
    block = S[0, c] + S[c, 0] + S[c, c]
    block = block + has_sin[:, None] * (S[0, s] + S[s, 0] + S[c, s] + S[s, c] + S[s, s])
    return np.divide(block, total[None, :], out=np.zeros_like(block, dtype=np.float64), where=total > 0)


def neuron_rule(acts_grid: np.ndarray, n: int, threshold: float = 0.85, min_neurons: int = 1) -> KeyFreqs:
    """Clusters of neurons explained above ``threshold`` by one frequency → their frequencies."""
    frac = neuron_fractions(acts_grid, n)
    if frac.size == 0:
        return KeyFreqs([], "neuron", np.zeros(0, dtype=np.int64), np.zeros(0))
    best = frac.max(axis=0)
    freq = frac.argmax(axis=0) + 1
    freq = np.where(best > threshold, freq, -1).astype(np.int64)
    ks, counts = np.unique(freq[freq > 0], return_counts=True)
    keys = sorted(int(k) for k, c in zip(ks, counts, strict=True) if c >= min_neurons)
    return KeyFreqs(keys, "neuron", freq, best)
