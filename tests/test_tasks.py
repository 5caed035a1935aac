"""The task language agrees with Python integer arithmetic mod p, and datasets split as the papers do."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grok_tui.tasks import ALIASES, MAX_EXPR_CHARS, Task, TaskError, build_dataset, is_prime, split_pairs

PRIMES = [2, 3, 5, 7, 11, 13, 97, 113]


class Div0(Exception):
    pass


def leaf():
    return st.one_of(
        st.sampled_from(["a", "b", "x", "y"]).map(lambda v: (v, lambda a, b, p, v=v: a if v in "ax" else b)),
        st.integers(0, 300).map(lambda c: (str(c), lambda a, b, p, c=c: c)),
    )


def inv(v: int, p: int) -> int:
    if v % p == 0:
        raise Div0
    return pow(v, p - 2, p)  # Fermat: an independent way to invert than the parser's pow(v, -1, p)


def extend(children):
    binop = st.tuples(st.sampled_from(["+", "-", "*", "/"]), children, children).map(
        lambda t: (
            f"({t[1][0]} {t[0]} {t[2][0]})",
            {
                "+": lambda a, b, p, x=t[1][1], r=t[2][1]: x(a, b, p) + r(a, b, p),
                "-": lambda a, b, p, x=t[1][1], r=t[2][1]: x(a, b, p) - r(a, b, p),
                "*": lambda a, b, p, x=t[1][1], r=t[2][1]: x(a, b, p) * r(a, b, p),
                "/": lambda a, b, p, x=t[1][1], r=t[2][1]: x(a, b, p) * inv(r(a, b, p), p),
            }[t[0]],
        )
    )
    power = st.tuples(children, st.integers(0, 7), st.sampled_from(["**", "^"])).map(
        lambda t: (f"({t[0][0]}){t[2]}{t[1]}", lambda a, b, p, e=t[0][1], k=t[1]: e(a, b, p) ** k)
    )
    neg = children.map(lambda c: (f"-({c[0]})", lambda a, b, p, e=c[1]: -e(a, b, p)))
    return st.one_of(binop, power, neg)


expressions = st.recursive(leaf(), extend, max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(expr=expressions, p=st.sampled_from(PRIMES), data=st.data())
def test_parser_agrees_with_python_integers(expr, p, data) -> None:
    text, ref = expr
    task = Task.parse(text, p)
    for _ in range(5):
        a = data.draw(st.integers(0, p - 1))
        b = data.draw(st.integers(0, p - 1))
        try:
            expected = ref(a, b, p) % p
        except Div0:
            expected = None
        assert task(a, b) == expected, (text, a, b)
        if p <= 13:  # the whole table only where it is cheap
            assert task.table[a, b] == (-1 if expected is None else expected)


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_every_alias_parses(name: str) -> None:
    task = Task.parse(name, 13)
    assert task.table.shape == (13, 13) and (task.table < 13).all()


def test_papers_operations() -> None:
    assert Task.parse("sub", 7)(2, 5) == (2 - 5) % 7
    assert Task.parse("x2_xy_y2", 11)(3, 4) == (9 + 12 + 16) % 11
    div = Task.parse("div", 7)
    assert div(3, 0) is None and div(6, 3) == 2 and (div.table[:, 0] == -1).all()
    assert Task.parse("(a+b)^3", 13)(2, 3) == 125 % 13


@pytest.mark.parametrize(
    "text",
    [
        "a ** b",
        "a ** -1",
        "a ** 1.5",
        "abs(a)",
        "a.real",
        "a if b else a",
        "a % b",
        "[a]",
        "a @ b",
        "lambda: a",
    ],
)
def test_outside_the_language_is_rejected(text: str) -> None:
    with pytest.raises(TaskError):
        Task.parse(text, 7)


def test_split_matches_the_papers_idiom() -> None:
    # Nanda/Furuta: random.seed(seed); random.shuffle(pairs); first int(frac*N) are train.
    p, frac, seed = 13, 0.3, 4
    pairs = [(a, b) for a in range(p) for b in range(p)]
    random.seed(seed)
    random.shuffle(pairs)
    expected = np.zeros((p, p), bool)
    for a, b in pairs[: int(frac * len(pairs))]:
        expected[a, b] = True
    assert (split_pairs(p, frac, seed) == expected).all()


def test_mixture_shares_the_split_and_drops_division_by_zero() -> None:
    tasks = [Task.parse("add", 7), Task.parse("div", 7)]
    ds = build_dataset(tasks, 7, 0.5, 0, "furuta")
    add, div = ds.task_ids == 0, ds.task_ids == 1
    assert add.sum() == 49 and div.sum() == 42 and (ds.b[div] != 0).all()
    pair_train = {(a, b): t for a, b, t in zip(ds.a[add], ds.b[add], ds.is_train[add], strict=True)}
    assert all(
        pair_train[(a, b)] == t for a, b, t in zip(ds.a[div], ds.b[div], ds.is_train[div], strict=True)
    )
    assert set(ds.inputs[add, 1]) == {7 + 1} and set(ds.inputs[div, 1]) == {7 + 4}  # '+' and '/' tokens
    assert ds.vocab == 12


def _sieve(n: int) -> list[bool]:
    flags = [True] * n
    flags[:2] = [False, False]
    for i in range(2, int(n**0.5) + 1):
        if flags[i]:
            flags[i * i :: i] = [False] * len(flags[i * i :: i])
    return flags


def test_is_prime_agrees_with_a_sieve() -> None:
    flags = _sieve(200_000)
    assert [n for n in range(200_000) if is_prime(n)] == [n for n in range(200_000) if flags[n]]


# Carmichael numbers and strong pseudoprimes to the first bases (the cases that fool weaker tests).
PSEUDOPRIMES = [561, 41041, 825265, 3215031751, 2152302898747, 3474749660383, 341550071728321,
                3825123056546413051, 318665857834031151167461]  # fmt: skip
PRIMES_64 = [2**31 - 1, 2**61 - 1, 2**64 - 59, 1_000_000_007, 3825123056546413051 + 2]
PRIMES_32 = [65_521, 1_000_003, 999_999_937, 2**31 - 1, 4_294_967_291]


@settings(max_examples=200, deadline=None)
@given(a=st.sampled_from(PRIMES_32), b=st.sampled_from(PRIMES_32), c=st.integers(2, 2**32))
def test_is_prime_is_exact_for_64_bit_products(a: int, b: int, c: int) -> None:
    assert is_prime(a) and is_prime(b) and not is_prime(a * b) and not is_prime(a * c)


def test_is_prime_known_cases() -> None:
    assert not any(is_prime(n) for n in PSEUDOPRIMES)
    assert [is_prime(n) for n in PRIMES_64] == [True, True, True, True, False]
    with pytest.raises(ValueError, match="too large"):
        is_prime(10**400 + 1)


@pytest.mark.parametrize(
    "text",
    ["+".join(["a"] * 300), "-" * 200 + "a", "-(" * 70 + "a" + ")" * 70, "a" * (MAX_EXPR_CHARS + 1),
     "*".join(["(a+b)"] * 70), "a\x00b"],
)  # fmt: skip
def test_oversized_expressions_are_refused_before_any_recursion(text: str) -> None:
    with pytest.raises(TaskError):
        Task.parse(text, 7)


def test_a_large_expression_inside_the_limits_evaluates_iteratively() -> None:
    # 250 nodes, 63 levels deep: the evaluator is a stack machine, so depth costs no recursion
    text = "+".join(["a*b"] * 62)[:MAX_EXPR_CHARS]
    task = Task.parse(text, 97)
    assert task(3, 5) == 62 * 15 % 97 and int(task.table[3, 5]) == 62 * 15 % 97


def test_p_is_bounded_before_any_table_is_built() -> None:
    with pytest.raises(TaskError, match="p must be an integer from 2 to"):
        Task.parse("add", 10**17)
    with pytest.raises(TaskError):
        Task.parse("div", 2**61 - 1)  # prime, but a table of 5e36 pairs


def test_huge_literal_exponents_cost_nothing() -> None:
    task = Task.parse("a ** " + "9" * 300, 101)
    assert task(2, 0) == pow(2, int("9" * 300), 101)
