"""Discrete logarithms mod a prime: the basis in which multiplication and division become cyclic.

For a prime p and a primitive root g, x = g^i (mod p) for x in 1..p-1 and a unique i in 0..p-2,
so a·b ↦ i + j (mod p-1): multiplication is addition on Z_{p-1} once the non-zero residues are
listed in the order g^0, g^1, ..., g^(p-2). Mallinar et al. 2024 (§3, App. C) reorder rows and
columns 1..p-1 that way before measuring circulant structure; our Fourier measures for mul/div use
the same order.
Lemma G.1 of that paper: the choice of generator does not matter, so we take the smallest.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..tasks import is_prime


def _prime_factors(n: int) -> list[int]:
    out, d = [], 2
    while d * d <= n:
        if n % d == 0:
            out.append(d)
            while n % d == 0:
                n //= d
        d += 1
    if n > 1:
        out.append(n)
    return out


@lru_cache(maxsize=64)
def primitive_root(p: int) -> int:
    """The smallest generator of the multiplicative group mod the prime ``p`` (1 for p = 2).

    Raises ValueError when p is not prime (the group is then not cyclic in general).
    """
    if not is_prime(p):
        raise ValueError(f"p = {p} is not prime: no primitive root / discrete-log basis")
    if p == 2:
        return 1
    factors = _prime_factors(p - 1)
    for g in range(2, p):
        if all(pow(g, (p - 1) // q, p) != 1 for q in factors):
            return g
    raise AssertionError("unreachable: every prime has a primitive root")  # pragma: no cover


@lru_cache(maxsize=64)
def _dlog_order(p: int) -> np.ndarray:
    g = primitive_root(p)
    order = np.empty(p - 1, dtype=np.int64)
    x = 1
    for i in range(p - 1):
        order[i] = x
        x = x * g % p
    order.setflags(write=False)
    return order


def dlog_order(p: int) -> np.ndarray:
    """Residues in discrete-log order: ``[g^0, g^1, ..., g^(p-2)] mod p`` (length p-1, no zero).

    ``W[dlog_order(p)]`` lists the rows of a (p, …) table so that multiplication by g is a shift.
    """
    return _dlog_order(p)


def dlog_table(p: int) -> np.ndarray:
    """``log_g x`` for x = 0..p-1 (length p); entry 0 is -1 (zero has no logarithm)."""
    table = np.full(p, -1, dtype=np.int64)
    table[dlog_order(p)] = np.arange(p - 1)
    return table


def dlog_perm(p: int) -> np.ndarray:
    """Permutation of 0..p-1 keeping 0 first, then residues in log order: ``[0, g^0, g^1, ...]``.

    ``M[perm][:, perm]`` reorders a p×p block as Mallinar et al. do (their positions are ours
    cyclically shifted by one inside 1..p-1, which changes no circulant or Fourier measure).
    """
    return np.concatenate([[0], dlog_order(p)]).astype(np.int64)


def reorder(M: np.ndarray, p: int) -> np.ndarray:
    """A p×p matrix with rows and columns permuted into the discrete-log order (``dlog_perm``)."""
    perm = dlog_perm(p)
    return np.asarray(M)[np.ix_(perm, perm)]
