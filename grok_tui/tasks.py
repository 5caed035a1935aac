"""Tasks over Z_p: a safe expression language in ``a`` and ``b``, the papers' named operations, and datasets.

Expressions are parsed with :mod:`ast` against a whitelist (bounded in length, nodes and depth before and
while the tree is walked) and compiled into a postfix program that a stack evaluates over all p² pairs at
once — never ``eval``, never recursion. ``/`` is multiplication by the modular inverse; a pair whose divisor
is 0 mod p is dropped from the task. ``^`` is accepted as a power, like ``**``, with a literal exponent only.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def _np() -> ModuleType:
    """numpy, imported on first use: checking an experiments file needs it only to build a label table."""
    import numpy

    return numpy


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


#: Limits of the language, checked before the text is parsed and before the tree is walked: far above any
#: published task (the longest, Furuta's ``a**3 + a*b**2 + b``, has 17 characters and 10 nodes) and low
#: enough that parsing, checking and evaluating over all p² pairs stay in milliseconds.
MAX_EXPR_CHARS = 500
MAX_EXPR_NODES = 256
MAX_EXPR_DEPTH = 64
#: Largest modulus. Building the dataset at p = 1021 takes 1.5 s and 180 MB (the seeded shuffle of p² pair
#: indices dominates); a transformer's evaluation pass holds p²·(p + 1) logits, about 25 GiB there.
MAX_P = 1024

_VARS = {"a": "a", "b": "b", "x": "a", "y": "b"}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}

# A compiled task is a postfix program: ("a",) ("b",) ("const", c) ("neg",) ("+",) ("-",) ("*",) ("/",)
# ("pow", e). Evaluating it needs a stack, not recursion, whatever the shape of the tree.
_Op = tuple


def _compile(tree: ast.Expression, text: str) -> tuple[_Op, ...]:
    """Whitelist walk (iterative, bounded in nodes and depth) → postfix program."""
    out: list[_Op] = []
    todo: list[tuple[ast.AST | _Op, int]] = [(tree.body, 1)]  # nodes to visit, or ops to emit on the way up
    nodes = 0
    while todo:
        node, depth = todo.pop()
        if isinstance(node, tuple):
            out.append(node)
            continue
        nodes += 1
        if nodes > MAX_EXPR_NODES or depth > MAX_EXPR_DEPTH:
            raise TaskError(
                f"task '{text}' is too large (at most {MAX_EXPR_NODES} terms and {MAX_EXPR_DEPTH} levels)"
            )
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Pow, ast.BitXor)):
            exp = node.right
            if not (isinstance(exp, ast.Constant) and type(exp.value) is int):
                raise TaskError(f"exponent in '{text}' must be a non-negative integer literal")
            todo += [(("pow", exp.value), depth), (node.left, depth + 1)]
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            todo += [((_BINOPS[type(node.op)],), depth), (node.right, depth + 1), (node.left, depth + 1)]
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            if isinstance(node.op, ast.USub):
                todo.append((("neg",), depth))
            todo.append((node.operand, depth + 1))
        elif isinstance(node, ast.Constant):
            if type(node.value) is not int or node.value < 0:
                raise TaskError(f"constant {node.value!r} in '{text}' is not a non-negative integer")
            out.append(("const", node.value))
        elif isinstance(node, ast.Name):
            if node.id not in _VARS:
                raise TaskError(f"unknown variable '{node.id}' in '{text}' (use a and b)")
            out.append((_VARS[node.id],))
        elif isinstance(node, ast.BinOp):
            raise TaskError(f"operator '{type(node.op).__name__}' is not allowed in '{text}'")
        else:
            raise TaskError(f"'{text}' is not an expression in a and b (+ - * / ** and integers)")
    return tuple(out)


def _evaluate(prog: tuple[_Op, ...], a: np.ndarray, b: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Run ``prog`` over arrays of residues: (values mod p, mask of pairs where some divisor is 0 mod p).

    Values stay in [0, p) with p ≤ MAX_P, so every product fits in int64. Powers and inverses are looked up
    in p-entry tables built with Python's modular ``pow``, so a huge literal exponent costs nothing.
    """
    np = _np()
    stack: list[np.ndarray] = []
    dropped = np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=bool)
    residues = range(p)
    for op in prog:
        kind = op[0]
        if kind == "a":
            stack.append(a)
        elif kind == "b":
            stack.append(b)
        elif kind == "const":
            stack.append(np.int64(op[1] % p))
        elif kind == "neg":
            stack.append((-stack.pop()) % p)
        elif kind == "pow":
            table = np.array([pow(x, op[1], p) for x in residues], dtype=np.int64)
            stack.append(table[stack.pop()])
        else:
            right, left = stack.pop(), stack.pop()
            if kind == "+":
                stack.append((left + right) % p)
            elif kind == "-":
                stack.append((left - right) % p)
            elif kind == "*":
                stack.append((left * right) % p)
            else:  # '/': multiply by the inverse (p is prime); a zero divisor drops the pair
                inverse = np.array([pow(x, -1, p) if x else 0 for x in residues], dtype=np.int64)
                dropped |= right == 0
                stack.append((left * inverse[right]) % p)
    (values,) = stack
    return np.broadcast_to(values, dropped.shape), dropped


# Deterministic Miller–Rabin: the first 13 primes as bases decide every n below this bound
# (Sorenson & Webster 2015, "Strong pseudoprimes to twelve prime bases"); p is far below it.
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
_MR_BOUND = 3_317_044_064_679_887_385_961_981


def is_prime(n: int) -> bool:
    """Exact primality for n < 3.3·10²⁴ in microseconds (ValueError above: no silent guess)."""
    if n < 2:
        return False
    for q in _MR_BASES:
        if n % q == 0:
            return n == q
    if n >= _MR_BOUND:
        raise ValueError(f"{n} is too large for an exact primality test")
    d, s = n - 1, 0
    while not d & 1:
        d, s = d >> 1, s + 1
    for base in _MR_BASES:
        x = pow(base, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


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
        if len(text) > MAX_EXPR_CHARS:
            raise TaskError(f"a task has at most {MAX_EXPR_CHARS} characters (got {len(text)})")
        if type(p) is not int or not 2 <= p <= MAX_P:
            raise TaskError(f"p must be an integer from 2 to {MAX_P} (got {p!r})")
        key = text.strip()
        expr = ALIASES.get(key, ALIASES.get(key.lower(), key))
        if expr is key and re.fullmatch(r"[A-Za-z_]\w*", key) and key not in _VARS:
            close = _close(key, ALIASES)
            hint = f" (did you mean '{close}'?)" if close else ""
            raise TaskError(f"unknown operation '{_shown(key)}'{hint}")
        try:
            tree = ast.parse(expr.replace("^", "**"), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise TaskError(f"cannot parse task '{_shown(expr)}'") from None
        prog = _compile(tree, _shown(expr))
        if any(op[0] == "/" for op in prog) and not is_prime(p):
            raise TaskError(f"task '{_shown(key)}' divides, so p must be prime (got p = {p})")
        task = cls(name=key, expr=expr, p=p)
        task.__dict__["_prog"] = prog
        return task

    @property
    def divides(self) -> bool:
        return "/" in self.expr

    def __call__(self, a: int, b: int) -> int | None:
        """The label, or None where a divisor is 0 mod p (the pair is not part of the task)."""
        np = _np()
        value, dropped = _evaluate(self._prog, np.int64(a % self.p), np.int64(b % self.p), self.p)
        return None if dropped else int(value)

    @cached_property
    def _prog(self) -> tuple[_Op, ...]:
        return _compile(ast.parse(self.expr.replace("^", "**"), mode="eval"), self.expr)

    @cached_property
    def table(self) -> np.ndarray:
        """p×p label table (row a, column b); -1 marks dropped pairs."""
        np = _np()
        r = np.arange(self.p, dtype=np.int64)
        values, dropped = _evaluate(self._prog, r[:, None], r[None, :], self.p)
        table = np.where(dropped, -1, values).astype(np.int64)
        table.setflags(write=False)
        return table


def _shown(text: str, limit: int = 60) -> str:
    """``text`` fit for a one-line message: control characters escaped, long text cut."""
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    """p×p boolean train mask: all pairs a-major, ``random.Random(seed).shuffle``, first int(frac·N).

    Shuffling the pair indices a·p + b permutes them exactly as shuffling the (a, b) tuples would (the
    shuffle depends only on the length), at a fraction of the memory.
    """
    np = _np()
    order = list(range(p * p))
    random.Random(seed).shuffle(order)
    mask = np.zeros(p * p, dtype=bool)
    mask[order[: int(train_frac * len(order))]] = True
    return mask.reshape(p, p)


def build_dataset(tasks: list[Task], p: int, train_frac: float, split_seed: int, layout: str) -> Dataset:
    np = _np()
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
