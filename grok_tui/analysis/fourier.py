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


@lru_cache(maxsize=16)
def fourier_basis32(n: int) -> np.ndarray:
    """``fourier_basis(n)`` in float32: the live measures run on float32 weights at half cost."""
    basis = fourier_basis(n).astype(np.float32)
    basis.setflags(write=False)
    return basis


def component_norms(W: np.ndarray, axis: int = 0) -> np.ndarray:
    """Norm of every basis component along ``axis`` (n = W.shape[axis]): const, cos_1, sin_1, …

    This is the vector ``‖(F @ W)[f, :]‖`` (f = 0..n-1) the Gini coefficient is taken over. float32
    input is transformed in float32 (relative error ~1e-6, far below any threshold used here).
    """
    W = np.asarray(W)
    if W.dtype != np.float32:
        W = W.astype(np.float64)
    if axis != 0:
        W = np.moveaxis(W, axis, 0)
    n = W.shape[0]
    F = fourier_basis32(n) if W.dtype == np.float32 else fourier_basis(n)
    coeffs = F @ W.reshape(n, -1)
    return np.sqrt(np.einsum("ij,ij->i", coeffs, coeffs, dtype=np.float64))


def split_cos_sin(norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) per frequency k = 1..⌊n/2⌋ from a component-norm vector; even n: sin_{n/2} = 0."""
    n = norms.shape[0]
    half = n // 2
    cos = norms[1 : 2 * half : 2]
    sin = norms[2 : 2 * half + 1 : 2]
    if sin.shape[0] < half:
        sin = np.concatenate([sin, np.zeros(half - sin.shape[0])])
    return cos, sin


def fft1d(X: np.ndarray, axis: int = 0) -> np.ndarray:
    """Coefficients of X in the real Fourier basis along ``axis`` (same shape)."""
    X = np.asarray(X, dtype=np.float64)
    moved = np.moveaxis(X, axis, 0)
    n = moved.shape[0]
    out = (fourier_basis(n) @ moved.reshape(n, -1)).reshape(moved.shape)
    return np.moveaxis(out, 0, axis)


def fft2d(M: np.ndarray, n: int | None = None) -> np.ndarray:
    """2-D transform over an (a, b) grid: (n², …) a-major or (n, n, …) → (n, n, …) coefficients.

    Entry [f, g, …] is the component along F[f] ⊗ F[g] (f on a, g on b): F M Fᵀ per trailing index.
    Without ``n``, a first axis of perfect-square length is read as n² (p is prime in practice);
    pass ``n`` to settle the ambiguous cases.
    """
    M = np.asarray(M, dtype=np.float64)
    if n is None:
        root = int(round(M.shape[0] ** 0.5))
        n = root if root * root == M.shape[0] else M.shape[0]
    if M.shape[0] == n * n:
        rest = M.shape[1:]
    elif M.ndim >= 2 and M.shape[:2] == (n, n):
        rest = M.shape[2:]
    else:
        raise ValueError(f"fft2d: shape {M.shape} is neither (n², …) nor (n, n, …) for n = {n}")
    F = fourier_basis(n)
    X = M.reshape(n, n * int(np.prod(rest, dtype=np.int64)))
    X = (F @ X).reshape(n, n, -1)  # transform over a
    X = np.einsum("gb,fbr->fgr", F, X, optimize=True)  # transform over b
    return X.reshape((n, n, *rest))


def sum_directions(n: int, ks, sign: int = 1) -> np.ndarray:
    """Unit vectors (2|ks|, n²) along cos(w_k(a ± b)) and sin(w_k(a ± b)), a-major, w_k = 2πk/n.

    These span what Nanda et al. keep (restricted) or remove (excluded): for c = a + b the logits
    of a trained model are ≈ Σ_k α_k cos(w_k(a+b−c)), whose (a, b)-dependence lies in exactly these
    directions. ``sign = -1`` gives the a − b directions (subtraction, division in the log basis).
    A direction that vanishes (sin at k = n/2 for even n) is left out.
    """
    t = np.arange(n)
    s = (t[:, None] + sign * t[None, :]).reshape(-1)
    rows = []
    for k in ks:
        ang = 2 * np.pi * int(k) * s / n
        for v in (np.cos(ang), np.sin(ang)):
            norm = np.linalg.norm(v)
            if norm > 1e-6 * n:
                rows.append(v / norm)
    if not rows:
        return np.zeros((0, n * n))
    return np.stack(rows)
