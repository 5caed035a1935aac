"""Tasks over Z_p: a safe expression language in ``a`` and ``b``, the papers' named operations, and datasets.

Expressions are parsed with :mod:`ast` against a whitelist and evaluated by walking the tree with Python
integers — never ``eval``. ``/`` is multiplication by the modular inverse; a pair whose divisor is 0 mod p
is dropped from the task. ``^`` is accepted as a power, like ``**``, with a literal exponent only.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Furuta et al. (grok_mod_poly config/*.py fns_dict keys) and Power et al. names → expressions in a, b.
ALIASES: dict[str, str] = {
    # elementary
    "add": "a + b",
    "sub": "a - b",
    "subtract": "a - b",
    "mul": "a * b",
    "multiply": "a * b",
    "div": "a / b",
    "division": "a / b",
    # linear / degree 1 (Furuta §4.2)
    "x_x_y": "2*a + b",
    "x_x_m_y": "2*a - b",
    "2x_3y": "2*a + 3*b",
    "2x_m_3y": "2*a - 3*b",
    "xy_y": "a*b + b",
    "xy_m_y": "a*b - b",
    "xy_x_y": "a*b + a + b",
    "xy_x_m_y": "a*b + a - b",  # the reference code defines it as xy+x+y (a bug); this is the intent
    # univariate terms
    "x2_y": "a**2 + b",
    "x2_m_y": "a**2 - b",
    "x3_y": "a**3 + b",
    "x3_2y": "a**3 + 2*b",
    "x3_m_2y": "a**3 - 2*b",
    # sums of powers / differences
    "x2_y2": "a**2 + b**2",
    "x2_m_y2": "a**2 - b**2",
    **{f"x{n}_y{n}": f"a**{n} + b**{n}" for n in range(3, 8)},
    # cross terms (non-factorizable)
    "x2_xy_y2": "a**2 + a*b + b**2",
    "x2_xy_y2_x": "a**2 + a*b + b**2 + a",
    "x3_xy": "a**3 + a*b",
    "x3_xy2_y": "a**3 + a*b**2 + b",
    # factorizable
    "x2_2xy_y2": "(a + b)**2",
    "x2_m_2xy_y2": "(a - b)**2",
    "x2_2xy_y2_x_y": "(a + b)**2 + a + b",
    **{f"_x_y__{n}": f"(a + b)**{n}" for n in range(3, 8)},
    **{f"_x_m_y__{n}": f"(a - b)**{n}" for n in range(3, 5)},
    # Power et al. 2022 (openai/grok) operator keys
    "**2+": "a**2 + b",
    "**3+": "a**3 + b",
    "x**2+y**2_mod_97": "a**2 + b**2",
    "x**2+y**2+x*y_mod_97": "a**2 + b**2 + a*b",
    "x**2+y**2+x*y+x_mod_97": "a**2 + b**2 + a*b + a",
    "x**3+x*y_mod_97": "a**3 + a*b",
    "x**3+x*y**2+y_mod_97": "a**3 + a*b**2 + b",
}


class TaskError(ValueError):
    """A task expression that is not in the language (message is one line)."""


_VARS = {"a": "a", "b": "b", "x": "a", "y": "b"}


def _check(node: ast.AST, text: str) -> None:
    """Whitelist walk: only the node kinds of the language."""
    if isinstance(node, ast.Expression):
        _check(node.body, text)
    elif isinstance(node, ast.BinOp):
        if isinstance(node.op, (ast.Pow, ast.BitXor)):
            exp = node.right
            if isinstance(exp, ast.UnaryOp) or not (isinstance(exp, ast.Constant) and type(exp.value) is int):
                raise TaskError(f"exponent in '{text}' must be a non-negative integer literal")
            _check(node.left, text)
        elif isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            _check(node.left, text)
            _check(node.right, text)
        else:
            raise TaskError(f"operator '{type(node.op).__name__}' is not allowed in '{text}'")
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _check(node.operand, text)
    elif isinstance(node, ast.Constant):
        if type(node.value) is not int or node.value < 0:
            raise TaskError(f"constant {node.value!r} in '{text}' is not a non-negative integer")
    elif isinstance(node, ast.Name):
        if node.id not in _VARS:
            raise TaskError(f"unknown variable '{node.id}' in '{text}' (use a and b)")
    else:
        raise TaskError(f"'{text}' is not an expression in a and b (+ - * / ** and integers)")


class _Div0(Exception):
    pass


def _eval(node: ast.AST, a: int, b: int, p: int) -> int:
    if isinstance(node, ast.Expression):
        return _eval(node.body, a, b, p)
    if isinstance(node, ast.Constant):
        return node.value % p
    if isinstance(node, ast.Name):
        return a if _VARS[node.id] == "a" else b
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, a, b, p)
        return (-v) % p if isinstance(node.op, ast.USub) else v
    assert isinstance(node, ast.BinOp)
    left = _eval(node.left, a, b, p)
    if isinstance(node.op, (ast.Pow, ast.BitXor)):
        return pow(left, node.right.value, p)  # type: ignore[attr-defined]
    right = _eval(node.right, a, b, p)
    if isinstance(node.op, ast.Add):
        return (left + right) % p
    if isinstance(node.op, ast.Sub):
        return (left - right) % p
    if isinstance(node.op, ast.Mult):
        return (left * right) % p
    if right == 0:
        raise _Div0
    return (left * pow(right, -1, p)) % p


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))


@dataclass(frozen=True)
class Task:
    """One operation ``(a, b) ↦ expr mod p``; ``name`` is what the user wrote (alias or expression)."""

    name: str
    expr: str
    p: int

    @classmethod
    def parse(cls, text: str, p: int) -> Task:
        if not isinstance(text, str) or not text.strip():
            raise TaskError("a task must be a non-empty string")
        key = text.strip()
        expr = ALIASES.get(key, ALIASES.get(key.lower(), key))
        if expr is key and re.fullmatch(r"[A-Za-z_][\w]*", key) and key not in _VARS:
            close = _close(key, ALIASES)
            hint = f" (did you mean '{close}'?)" if close else ""
            raise TaskError(f"unknown operation '{key}'{hint}")
        try:
            tree = ast.parse(expr.replace("^", "**") if "^" in expr else expr, mode="eval")
        except SyntaxError:
            raise TaskError(f"cannot parse task '{expr}'") from None
        _check(tree, expr)
        if "/" in expr and not is_prime(p):
            raise TaskError(f"task '{key}' divides, so p must be prime (got p = {p})")
        task = cls(name=key, expr=expr, p=p)
        task.__dict__["_tree"] = tree
        return task

    @cached_property
    def _fn(self) -> Callable[[int, int], int]:
        tree = self.__dict__.get("_tree") or ast.parse(self.expr.replace("^", "**"), mode="eval")
        return lambda a, b: _eval(tree, a, b, self.p)

    @property
    def divides(self) -> bool:
        return "/" in self.expr

    def __call__(self, a: int, b: int) -> int | None:
        """The label, or None where a divisor is 0 mod p (the pair is not part of the task)."""
        try:
            return self._fn(a, b)
        except _Div0:
            return None

    @cached_property
    def table(self) -> np.ndarray:
        """p×p label table (row a, column b); -1 marks dropped pairs."""
        t = np.full((self.p, self.p), -1, dtype=np.int64)
        for a in range(self.p):
            for b in range(self.p):
                v = self(a, b)
                if v is not None:
                    t[a, b] = v
        return t


def _close(word: str, choices) -> str | None:
    import difflib

    hits = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return hits[0] if hits else None


# --------------------------------------------------------------------------- datasets

LAYOUTS = ("nanda", "furuta")


# Furuta et al.'s special tokens after the p numbers: '=' then the four operators (vocab p + 5).
FURUTA_OPS = {"a + b": 1, "a - b": 2, "a * b": 3, "a / b": 4}


def task_tokens(tasks: list[Task], p: int, layout: str) -> tuple[list[int], int]:
    """Token id that signals each task, and the vocabulary size.

    Nanda ``[a, b, '=']``: '=' is p (vocab p + 1); a mixture gives each task its own token p + 1 + i.
    Furuta ``[a, op, b]``: the paper's vocabulary (p + 5: '=', '+', '-', '*', '/'); an elementary task
    shows its operator, a polynomial shows '=' (as in the paper), and further polynomials of a mixture
    get extra tokens p + 5 + j so that every task of a mixture is told apart.
    """
    if layout == "nanda":
        if len(tasks) == 1:
            return [p], p + 1
        return [p + 1 + i for i in range(len(tasks))], p + 1 + len(tasks)
    tokens, extra = [], 0
    for t in tasks:
        if t.expr in FURUTA_OPS:
            tokens.append(p + FURUTA_OPS[t.expr])
        elif extra == 0:
            tokens.append(p)
            extra = 1
        else:
            tokens.append(p + 4 + extra)
            extra += 1
    return tokens, p + 5 + max(extra - 1, 0)


@dataclass
class Dataset:
    """Token sequences for every (task, a, b) with train/test masks; built with numpy only.

    Token ids: 0..p-1 are the numbers, then the task tokens of :func:`task_tokens`. The split is over
    (a, b) pairs and shared by every task of a mixture, as in Furuta et al.
    """

    tasks: list[Task]
    p: int
    layout: str
    vocab: int
    inputs: np.ndarray  # (N, 3) int64 tokens
    labels: np.ndarray  # (N,) int64
    task_ids: np.ndarray  # (N,) int64, index into tasks
    a: np.ndarray
    b: np.ndarray
    is_train: np.ndarray  # (N,) bool

    @property
    def n_train(self) -> int:
        return int(self.is_train.sum())


def split_pairs(p: int, train_frac: float, seed: int) -> np.ndarray:
    """p×p boolean train mask: all pairs a-major, ``random.Random(seed).shuffle``, first int(frac·N)."""
    pairs = [(a, b) for a in range(p) for b in range(p)]
    random.Random(seed).shuffle(pairs)
    n_train = int(train_frac * len(pairs))
    mask = np.zeros((p, p), dtype=bool)
    for a, b in pairs[:n_train]:
        mask[a, b] = True
    return mask


def build_dataset(tasks: list[Task], p: int, train_frac: float, split_seed: int, layout: str) -> Dataset:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout '{layout}'")
    train_mask = split_pairs(p, train_frac, split_seed)
    aa, bb = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    inputs, labels, tids, A, B, train = [], [], [], [], [], []
    tokens, vocab = task_tokens(tasks, p, layout)
    for i, task in enumerate(tasks):
        table = task.table
        keep = table >= 0
        a, b = aa[keep], bb[keep]
        tok = np.full_like(a, tokens[i])
        seq = np.stack([a, b, tok] if layout == "nanda" else [a, tok, b], axis=1)
        inputs.append(seq)
        labels.append(table[keep])
        tids.append(np.full(a.shape, i))
        A.append(a)
        B.append(b)
        train.append(train_mask[keep])
    return Dataset(
        tasks=tasks,
        p=p,
        layout=layout,
        vocab=vocab,
        inputs=np.concatenate(inputs).astype(np.int64),
        labels=np.concatenate(labels).astype(np.int64),
        task_ids=np.concatenate(tids).astype(np.int64),
        a=np.concatenate(A).astype(np.int64),
        b=np.concatenate(B).astype(np.int64),
        is_train=np.concatenate(train),
    )
