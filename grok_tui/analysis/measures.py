"""Weight-only measures: the matrices the papers look at, their Fourier spectra, Gini, FFD and FCR.

Conventions (x @ W, as in the checkpoints): the embedding rows 0..p-1 embed the numbers, so the
Fourier transform of W_E runs along axis 0; the neuron-to-logit map W_L = (W_out @ W_U)[:, :p]ᵀ is
(p × d_mlp), rows = output classes, so its transform also runs along axis 0 (Nanda et al. App. C.2,
Furuta et al. §4). For the MLP models the first layer's a-half plays W_E and the last layer W_L.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .dlog import dlog_order
from .fourier import component_norms, fourier_basis, fourier_basis32, split_cos_sin


def embed_matrix(arrays: dict[str, np.ndarray], p: int) -> np.ndarray | None:
    """(p, d) rows embedding the numbers 0..p-1, or None when the model has no such matrix."""
    if "W_E" in arrays:
        return np.asarray(arrays["W_E"])[:p]
    if "mlp.0.W" in arrays:  # one-hot(a) ⊕ one-hot(b): the a-half
        return np.asarray(arrays["mlp.0.W"])[:p]
    return None


_BLOCK_OUT = re.compile(r"^blocks\.(\d+)\.W_out$")
_MLP_W = re.compile(r"^mlp\.(\d+)\.W$")


def _logit_factors(arrays: dict[str, np.ndarray], p: int) -> tuple[np.ndarray | None, np.ndarray] | None:
    """(A, B) with W_L = Bᵀ Aᵀ: transformer (last W_out, W_U[:, :p]); MLP (None, last layer)."""
    if "W_U" in arrays:
        blocks = sorted(int(m.group(1)) for k in arrays if (m := _BLOCK_OUT.match(k)))
        if not blocks:
            return None
        return np.asarray(arrays[f"blocks.{blocks[-1]}.W_out"]), np.asarray(arrays["W_U"])[:, :p]
    layers = sorted(int(m.group(1)) for k in arrays if (m := _MLP_W.match(k)))
    if len(layers) >= 2:
        return None, np.asarray(arrays[f"mlp.{layers[-1]}.W"])[:, :p]
    return None


def neuron_logit_map(arrays: dict[str, np.ndarray], p: int) -> np.ndarray | None:
    """W_L (p × d_mlp): how each neuron of the last MLP writes to the logit of each class 0..p-1.

    Transformer: (W_out @ W_U)[:, :p]ᵀ of the last block (the residual path from the MLP to the
    unembedding). MLP: the last layer's weights (hidden × p)ᵀ. None when neither exists.
    """
    fac = _logit_factors(arrays, p)
    if fac is None:
        return None
    A, B = fac
    B = np.asarray(B, dtype=np.float64)
    return B.T if A is None else (np.asarray(A, dtype=np.float64) @ B).T


def logit_spectrum(arrays: dict[str, np.ndarray], p: int, basis: str = "standard") -> Spectrum | None:
    """``spectrum(neuron_logit_map(arrays, p), basis)`` without forming W_L: (F·W_Uᵀ)·W_outᵀ costs
    about a third less than F·(W_out·W_U)ᵀ, and this runs at every evaluation."""
    fac = _logit_factors(arrays, p)
    if fac is None or fac[1].shape[1] != p:
        return None
    A, B = fac
    dtype = np.float32 if B.dtype == np.float32 and (A is None or A.dtype == np.float32) else np.float64
    Bt = B.T.astype(dtype, copy=False)  # (p, d) rows = classes
    if basis == "dlog":
        Bt = Bt[dlog_order(p)]
    elif basis != "standard":
        raise ValueError(f"unknown basis '{basis}' (standard or dlog)")
    n = Bt.shape[0]
    F = fourier_basis32(n) if dtype == np.float32 else fourier_basis(n)
    X = F @ Bt
    if A is not None:
        X = X @ A.astype(dtype, copy=False).T
    return Spectrum(np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64)))


def sum_sq_weights(arrays: dict[str, np.ndarray]) -> float:
    """Total sum of squared weights over every parameter array (Nanda et al.'s SSW)."""
    return float(
        sum(
            np.sum(np.square(np.asarray(v, dtype=np.float64)))
            for k, v in arrays.items()
            if not k.startswith("analysis/") and k != "meta_json" and np.asarray(v).dtype.kind == "f"
        )
    )


def gini(x: np.ndarray) -> float:
    """Gini coefficient of a non-negative vector (Hurley & Rickard 2009): 0 = flat, → 1 = one spike.

    G = 2·Σ_i i·x_(i) / (n·Σx) − (n+1)/n with x sorted ascending, i = 1..n; all zeros count as flat.
    m equal spikes among n entries give exactly 1 − m/n.
    """
    x = np.sort(np.abs(np.asarray(x, dtype=np.float64).ravel()))
    n, total = x.shape[0], x.sum()
    if n == 0 or total <= 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(2 * np.dot(i, x) / (n * total) - (n + 1) / n)


def ffd(cos: np.ndarray, sin: np.ndarray, eta: float = 0.5, n: int | None = None) -> float:
    """Furuta's Fourier frequency density: the share of cos and sin components above η·max.

    FFD = (1/(2⌊n/2⌋)) Σ_k (1[μ_k/max μ > η] + 1[ν_k/max ν > η]) for odd n (Furuta et al. 2024 §4): |K| key
    frequencies with balanced cos/sin give 2|K|/(2⌊n/2⌋); a flat spectrum gives 1. For even n
    (the log basis of Z_p^*, n = p − 1) sin_{n/2} does not exist and the denominator is n − 1.
    """
    cos, sin = np.asarray(cos, dtype=np.float64), np.asarray(sin, dtype=np.float64)
    half = cos.shape[0]
    n = 2 * half + 1 if n is None else n
    count = 0
    for v in (cos, sin):
        m = v.max() if v.size else 0.0
        if m > 0:
            count += int(np.sum(v / m > eta))
    denom = 2 * half - (1 if n % 2 == 0 else 0)
    return count / denom if denom > 0 else float("nan")


def fcr(cos: np.ndarray, sin: np.ndarray, n: int | None = None) -> float:
    """Furuta's Fourier coefficient ratio: mean over k of min(μ_k/ν_k, ν_k/μ_k); 1 = balanced.

    For even n the k = n/2 term (no sine) is left out. A frequency with μ = ν = 0 is balanced.
    """
    cos, sin = np.asarray(cos, dtype=np.float64), np.asarray(sin, dtype=np.float64)
    half = cos.shape[0]
    n = 2 * half + 1 if n is None else n
    if n % 2 == 0:
        cos, sin = cos[:-1], sin[:-1]
    if cos.size == 0:
        return float("nan")
    lo, hi = np.minimum(cos, sin), np.maximum(cos, sin)
    ratio = np.divide(lo, hi, out=np.ones_like(lo), where=hi > 0)
    return float(ratio.mean())


@dataclass
class Spectrum:
    """Fourier component norms of a matrix along its number axis (n = p, or p − 1 in log basis)."""

    norms: np.ndarray  # (n,) const, cos_1, sin_1, ...

    @property
    def n(self) -> int:
        return int(self.norms.shape[0])

    @property
    def const(self) -> float:
        return float(self.norms[0])

    @property
    def cos(self) -> np.ndarray:
        return split_cos_sin(self.norms)[0]

    @property
    def sin(self) -> np.ndarray:
        return split_cos_sin(self.norms)[1]

    @property
    def per_freq(self) -> np.ndarray:
        """Norm per frequency k = 1..⌊n/2⌋, cos and sin merged (the heatmap column)."""
        c, s = split_cos_sin(self.norms)
        return np.sqrt(c**2 + s**2)

    def gini(self, constant: bool = False) -> float:
        """Gini over the components (cos and sin separate); the constant only when ``constant``."""
        return gini(self.norms if constant else self.norms[1:])

    def ffd(self, eta: float = 0.5) -> float:
        c, s = split_cos_sin(self.norms)
        return ffd(c, s, eta, self.n)

    def fcr(self) -> float:
        c, s = split_cos_sin(self.norms)
        return fcr(c, s, self.n)


def spectrum(W: np.ndarray, basis: str = "standard", p: int | None = None) -> Spectrum:
    """Spectrum of a (p, …) matrix along axis 0; ``basis='dlog'``: rows 1..p-1 in log order."""
    W = np.asarray(W, dtype=np.float64)
    if basis == "dlog":
        W = W[dlog_order(p or W.shape[0])]
    elif basis != "standard":
        raise ValueError(f"unknown basis '{basis}' (standard or dlog)")
    return Spectrum(component_norms(W, axis=0))
