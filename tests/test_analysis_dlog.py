"""Discrete-log basis: the primitive root generates Z_p^*; multiplication becomes a shift."""

import numpy as np
import pytest

from grok_tui.analysis.dlog import dlog_order, dlog_perm, dlog_table, primitive_root, reorder


@pytest.mark.parametrize(("p", "g"), [(2, 1), (3, 2), (7, 3), (61, 2), (97, 5), (113, 3)])
def test_primitive_root_is_smallest_generator(p: int, g: int) -> None:
    assert primitive_root(p) == g
    assert sorted(dlog_order(p).tolist()) == list(range(1, p))


def test_non_prime_is_refused() -> None:
    with pytest.raises(ValueError, match="not prime"):
        primitive_root(12)


def test_multiplication_is_addition_of_logs() -> None:
    p = 97
    log = dlog_table(p)
    assert log[0] == -1 and log[1] == 0
    for a, b in [(3, 5), (96, 96), (10, 77)]:
        assert log[a * b % p] == (log[a] + log[b]) % (p - 1)


def test_reorder_turns_multiplication_table_into_circulant() -> None:
    p = 13
    x = np.arange(p)
    table = (x[:, None] * x[None, :]) % p
    perm = dlog_perm(p)
    assert perm[0] == 0 and sorted(perm.tolist()) == list(range(p))
    R = reorder(table, p)[1:, 1:]
    log = dlog_table(p)
    L = log[R]  # logs of products, in log order: (i + j) mod (p-1)
    i = np.arange(p - 1)
    assert np.array_equal(L, (i[:, None] + i[None, :]) % (p - 1))
