"""Weights, activations and logits with Fourier content chosen by hand: the ground truth the measures
are tested against (a known set of key frequencies in, the same set out), and fixtures for readers.

Everything follows the checkpoint conventions (x @ W; W_E rows = tokens; W_L = (W_out @ W_U)[:, :p]ᵀ).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .dlog import dlog_order


def fourier_rows(
    n: int,
    ks: Iterable[int],
    d: int,
    rng: np.random.Generator,
    cos_amp: float = 1.0,
    sin_amp: float = 1.0,
    noise: float = 0.0,
) -> np.ndarray:
    """(n, d) matrix whose rows t are Σ_k cos(w_k t)·u_k + sin(w_k t)·v_k (+ noise), w_k = 2πk/n.

    u_k, v_k are random orthonormal directions scaled so every frequency's cos part has norm
    ``cos_amp``·√(n/2) and sin part ``sin_amp``·√(n/2) in the orthonormal basis: equal-amplitude
    key frequencies, as FFD's closed form assumes.
    """
    ks = [int(k) for k in ks]
    t = np.arange(n)
    Q, _ = np.linalg.qr(rng.standard_normal((d, max(2 * len(ks), 1))))
    W = np.zeros((n, d))
    for i, k in enumerate(ks):
        W += cos_amp * np.outer(np.cos(2 * np.pi * k * t / n), Q[:, 2 * i])
        W += sin_amp * np.outer(np.sin(2 * np.pi * k * t / n), Q[:, 2 * i + 1])
    return W + noise * rng.standard_normal((n, d))


def transformer_arrays(
    p: int,
    ks: Iterable[int],
    rng: np.random.Generator,
    d_model: int = 32,
    d_mlp: int = 64,
    extra_tokens: int = 1,
    noise: float = 0.0,
    basis: str = "standard",
) -> dict[str, np.ndarray]:
    """Checkpoint-style arrays whose W_E[:p] and W_L both carry exactly the frequencies ``ks``.

    ``basis='dlog'``: the content is periodic in log_g of the number (rows 1..p-1 in log order),
    as a multiplication model's would be; row/class 0 gets noise only.
    """
    ks = list(ks)
    vocab = p + extra_tokens
    f32 = np.float32

    def periodic(d: int) -> np.ndarray:
        if basis == "standard":
            return fourier_rows(p, ks, d, rng, noise=noise)
        out = noise * rng.standard_normal((p, d))
        out[dlog_order(p)] = fourier_rows(p - 1, ks, d, rng, noise=noise)
        return out

    W_E = rng.standard_normal((vocab, d_model)) * 0.1
    W_E[:p] = periodic(d_model)
    W_U = rng.standard_normal((d_model, vocab)) * 0.1
    W_U[:, :p] = periodic(d_model).T
    return {
        "W_E": W_E.astype(f32),
        "W_pos": (0.1 * rng.standard_normal((3, d_model))).astype(f32),
        "blocks.0.W_Q": rng.standard_normal((d_model, d_model)).astype(f32),
        "blocks.0.W_K": rng.standard_normal((d_model, d_model)).astype(f32),
        "blocks.0.W_V": rng.standard_normal((d_model, d_model)).astype(f32),
        "blocks.0.W_O": rng.standard_normal((d_model, d_model)).astype(f32),
        "blocks.0.W_in": rng.standard_normal((d_model, d_mlp)).astype(f32),
        "blocks.0.b_in": np.zeros(d_mlp, f32),
        "blocks.0.W_out": rng.standard_normal((d_mlp, d_model)).astype(f32),
        "blocks.0.b_out": np.zeros(d_model, f32),
        "W_U": W_U.astype(f32),
    }


def grid_positions(p: int, basis: str = "standard") -> np.ndarray:
    """Position of each number 0..p-1 on the grid axis (dlog: log_g x, and -1 for 0)."""
    if basis == "standard":
        return np.arange(p)
    pos = np.full(p, -1)
    pos[dlog_order(p)] = np.arange(p - 1)
    return pos


def fourier_logits(
    a: np.ndarray,
    b: np.ndarray,
    p: int,
    ks: Iterable[int],
    sign: int = 1,
    basis: str = "standard",
    scale: float = 5.0,
    n_out: int | None = None,
) -> np.ndarray:
    """(N, n_out) logits Σ_k scale·cos(w_k(i ± j − c)) on grid positions (i, j, c) of (a, b, class):
    Nanda's trained-model form, nothing else. Rows/classes off the grid (0 in the log basis) get 0."""
    pos = grid_positions(p, basis)
    n = p if basis == "standard" else p - 1
    i, j = pos[np.asarray(a)], pos[np.asarray(b)]
    L = np.zeros((len(i), n_out or p + 1))
    on = (i >= 0) & (j >= 0)
    for c in range(p):
        if pos[c] < 0:
            continue
        for k in ks:
            L[on, c] += scale * np.cos(2 * np.pi * int(k) * (i[on] + sign * j[on] - pos[c]) / n)
    return L


def neuron_acts(
    a: np.ndarray,
    b: np.ndarray,
    p: int,
    ks: Iterable[int],
    rng: np.random.Generator,
    per_freq: int = 8,
    n_noise: int = 4,
    n_dead: int = 2,
    basis: str = "standard",
) -> tuple[np.ndarray, np.ndarray]:
    """(N, d_mlp) post-ReLU activations and each neuron's true frequency (-1: noise/dead neuron).

    A frequency-k neuron is ReLU(2.5 + cos(w_k i + φ) + cos(w_k j + ψ)): the offset keeps it in
    ReLU's linear range, so its variance sits wholly in the {const, cos_k, sin_k}² block.
    """
    pos = grid_positions(p, basis)
    n = p if basis == "standard" else p - 1
    i, j = pos[np.asarray(a)], pos[np.asarray(b)]
    cols, truth = [], []
    for k in ks:
        for _ in range(per_freq):
            ph = rng.uniform(0, 2 * np.pi, 2)
            w = 2 * np.pi * int(k) / n
            cols.append(np.maximum(2.5 + np.cos(w * i + ph[0]) + np.cos(w * j + ph[1]), 0))
            truth.append(int(k))
    for _ in range(n_noise):
        cols.append(np.maximum(rng.standard_normal(len(i)), 0))
        truth.append(-1)
    for _ in range(n_dead):
        cols.append(np.zeros(len(i)))
        truth.append(-1)
    return np.stack(cols, axis=1).astype(np.float32), np.asarray(truth)
