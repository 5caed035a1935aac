"""The real Fourier basis over Z_p (Nanda et al. §2.1) and per-frequency norms."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def fourier_basis(p: int) -> np.ndarray:
    """Orthonormal p×p basis, rows: constant, then cos_k, sin_k for k = 1..⌊p/2⌋ (index 2k-1, 2k).

    For even p the last sine row (k = p/2) is identically zero and stays zero.
    """
    t = np.arange(p)
    rows = [np.ones(p)]
    for k in range(1, p // 2 + 1):
        rows.append(np.cos(2 * np.pi * k * t / p))
        rows.append(np.sin(2 * np.pi * k * t / p))
    basis = np.stack(rows[:p])
    norms = np.linalg.norm(basis, axis=1, keepdims=True)
    basis = np.divide(basis, norms, out=np.zeros_like(basis), where=norms > 1e-9)
    basis.setflags(write=False)
    return basis


def cos_sin_norms(W: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """(μ_k, ν_k, const) norms of W's cos_k / sin_k / constant components along ``axis`` (length p).

    For an embedding stored as (p, d) rows use axis=0; the norm is taken over the other axis.
    """
    W = np.asarray(W, dtype=np.float64)
    if axis != 0:
        W = np.moveaxis(W, axis, 0)
    p = W.shape[0]
    coeffs = fourier_basis(p) @ W.reshape(p, -1)  # (p, rest)
    norms = np.linalg.norm(coeffs, axis=1)
    n = p // 2
    cos = norms[1 : 2 * n : 2]
    sin = norms[2 : 2 * n + 1 : 2]
    if sin.shape[0] < n:  # even p: no sin row for k = p/2
        sin = np.concatenate([sin, np.zeros(n - sin.shape[0])])
    return cos, sin, float(norms[0])


def freq_norms(W: np.ndarray, axis: int = 0) -> np.ndarray:
    """Norm per frequency k = 1..⌊p/2⌋ (cos and sin merged): the Fourier heatmap's column."""
    cos, sin, _ = cos_sin_norms(W, axis)
    return np.sqrt(cos**2 + sin**2)
