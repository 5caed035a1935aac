"""Which (a, b) grid the Fourier progress measures live on, read off the task's label table.

Nanda et al.'s restricted/excluded logits assume c = a + b: the logits depend on (a, b) through
cos/sin(w_k(a+b)) only. The same algebra holds, with the directions cos/sin(w_k(a−b)), for
c = ±a ± b + γ, and — after listing the non-zero residues in discrete-log order (Mallinar et al. 2024 §3) —
for c = γ·a^{±1}·b^{±1} (multiplication, division) on the (p−1)² grid of non-zero pairs. Any other
task has no such grid: the measures that need one are then skipped rather than made up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dlog import dlog_order, dlog_table, primitive_root

BASES = ("standard", "dlog")


@dataclass(frozen=True)
class Structure:
    """An n×n grid (a-major) over which the labels are c = γ + i ± j (mod n) in the chosen basis."""

    basis: str  # "standard" (numbers 0..p-1) or "dlog" (non-zero numbers in the order g^0, g^1, …)
    sign: int  # +1: i + j, -1: i − j
    p: int
    rows: np.ndarray  # (n·n,) index of the dataset row of each grid cell

    @property
    def n(self) -> int:
        return self.p if self.basis == "standard" else self.p - 1

    @property
    def order(self) -> np.ndarray:
        """The numbers in grid order: 0..p-1, or g^0, g^1, …, g^(p-2)."""
        return np.arange(self.p) if self.basis == "standard" else dlog_order(self.p)

    @property
    def describe(self) -> str:
        op = "+" if self.sign > 0 else "−"
        if self.basis == "standard":
            return f"a {op} b"
        return f"log a {op} log b (g = {primitive_root(self.p)})"


def _affine_sign(T: np.ndarray, n: int) -> int | None:
    """+1 / −1 when T[i, j] = T[0,0] ± i ± j (mod n) with unit ±1 coefficients, else None."""
    if n < 2:
        return None
    alpha = int(T[1, 0] - T[0, 0]) % n
    beta = int(T[0, 1] - T[0, 0]) % n
    if alpha not in (1, n - 1) or beta not in (1, n - 1):
        return None
    i = np.arange(n)
    if not np.array_equal(T % n, (T[0, 0] + alpha * i[:, None] + beta * i[None, :]) % n):
        return None
    return 1 if alpha == beta else -1


def detect_structure(
    a: np.ndarray, b: np.ndarray, labels: np.ndarray, p: int, basis: str = "auto"
) -> Structure | None:
    """The grid of one task's rows (a, b, labels: the task's dataset rows, any order), or None.

    ``basis``: "standard", "dlog", or "auto" (standard first, then discrete log when p is prime).
    ``Structure.rows`` indexes into the given arrays.
    """
    a, b, labels = (np.asarray(x, dtype=np.int64) for x in (a, b, labels))
    T = np.full((p, p), -1, dtype=np.int64)
    R = np.full((p, p), -1, dtype=np.int64)
    ok = (a >= 0) & (a < p) & (b >= 0) & (b < p)
    T[a[ok], b[ok]] = labels[ok]
    R[a[ok], b[ok]] = np.flatnonzero(ok)
    tries = {"auto": BASES, "standard": ("standard",), "dlog": ("dlog",)}.get(basis)
    if tries is None:
        raise ValueError(f"unknown basis '{basis}' (auto, standard or dlog)")
    for kind in tries:
        if kind == "standard":
            if (R < 0).any():
                continue
            sign = _affine_sign(T, p)
            if sign is not None:
                return Structure("standard", sign, p, R.reshape(-1))
        else:
            try:
                order = dlog_order(p)
            except ValueError:
                continue
            if p < 3:
                continue
            sub, rows = T[np.ix_(order, order)], R[np.ix_(order, order)]
            if (rows < 0).any() or (sub <= 0).any():
                continue
            sign = _affine_sign(dlog_table(p)[sub], p - 1)
            if sign is not None:
                return Structure("dlog", sign, p, rows.reshape(-1))
    return None
