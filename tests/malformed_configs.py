"""A seeded generator of malformed experiment files, by class of problem, and a small TOML writer.

Every file it makes must be refused: each case is built from a valid base document by one change whose
invalidity follows from the rules the README states (not from what the code happens to do), so the
generator is an independent statement of those rules. ``expect`` is text the one-line error must hold
(the key it names), where the class pins it down.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any

P_MAX = 1024
SEED_MAX = 2**63 - 1


@dataclass(frozen=True)
class Case:
    cls: str  # the class of problem
    name: str
    data: bytes
    expect: str | None = None  # a fragment the error line must contain


# --------------------------------------------------------------------------- a TOML writer


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _string(k)


def _string(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)  # JSON escapes are TOML basic-string escapes, but for DEL
    return out.replace("\x7f", "\\u007F")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, Raw):
        return v.text
    raise TypeError(type(v))


@dataclass(frozen=True)
class Raw:
    """TOML text written as is (numbers Python cannot hold as a float, deep nesting)."""

    text: str


def dumps(doc: dict[str, Any]) -> str:
    """Top-level tables as [headers] (one level: [defaults], [experiments.NAME]); the rest inline."""
    lines: list[str] = []
    for top, body in doc.items():
        if top == "experiments" and isinstance(body, dict):
            for name, table in body.items():
                if isinstance(table, dict):
                    lines.append(f"[experiments.{_key(name)}]")
                    lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
                else:
                    lines.append(f"experiments.{_key(name)} = {_value(table)}")
        elif isinstance(body, dict):
            lines.append(f"[{_key(top)}]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in body.items()]
        else:
            lines.insert(0, f"{_key(top)} = {_value(body)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- valid bases

BASES: list[dict[str, Any]] = [
    {"defaults": {"eval_every": 50}, "experiments": {"e": {"task": "add", "p": 13, "train_frac": 0.5}}},
    {
        "experiments": {
            "m": {
                "task": "mul",
                "p": 11,
                "seeds": [0, 1],
                "model": {"kind": "mlp", "hidden": [64], "act": "relu", "bias": True},
                "optim": {"lr": 0.01, "weight_decay": 0.5, "betas": [0.9, 0.98], "eps": 1e-8, "warmup": 5},
            }
        }
    },
    {
        "experiments": {
            "r": {
                "task": "add",
                "p": 11,
                "train_frac": 0.5,
                "model": {"kind": "rfm", "kernel": "laplace", "bandwidth": 2.0, "ridge": 0.1},
                "analysis": {"key_freq_rule": "embed", "ffd_eta": 0.4, "discrete_log": "off"},
            }
        }
    },
    {
        "defaults": {"device": "cpu", "model": {"d_model": 32, "heads": 4, "d_mlp": 64}},
        "experiments": {
            "x": {
                "task": ["add", "sub"],
                "p": 7,
                "layout": "furuta",
                "sweep": {"train_frac": [0.3, 0.5], "optim": {"weight_decay": [0.1, 1.0]}},
            }
        },
    },
]

# Where each key lives, and what makes a value of it wrong. Kinds: int ranges, number ranges, bool, enum.
_INT_KEYS = {  # key → (lo, hi)
    "p": (2, P_MAX),
    "steps": (1, 10**9),
    "eval_every": (1, 10**9),
    "checkpoint_every": (1, 10**9),
    "batch_size": (0, 10**9),
    "split_seed": (0, SEED_MAX),
}
_MODEL_INT_KEYS = {"layers": (1, 64), "d_model": (1, 8192), "heads": (1, 256), "d_mlp": (1, 32768)}
_NUMBER_KEYS = {  # key → (lo, lo_open, hi, hi_open); None: unbounded
    "train_frac": (0, True, 1, True),
    "optim.lr": (0, True, None, False),
    "optim.weight_decay": (0, False, None, False),
    "optim.eps": (0, True, None, False),
    "analysis.key_freq_threshold": (0, True, 1, True),
    "analysis.ffd_eta": (0, True, 1, True),
    "analysis.key_freq_frac": (0, True, 1, True),
}
_RFM_NUMBER_KEYS = {"bandwidth": (0, True), "ridge": (0, False), "agop_power": (0, True)}
_ENUMS = {
    "layout": ("nanda", "furuta"),
    "loss": ("ce", "mse", "stablemax"),
    "on_nan": ("fail", "continue"),
    "optim.kind": ("adamw", "orthograd"),
    "analysis.key_freq_rule": ("neuron", "embed", "logit"),
    "analysis.discrete_log": ("auto", "on", "off"),
    "analysis.restricted_split": ("all", "train", "test"),
}
_TRANSFORMER_ENUMS = {"act": ("relu", "gelu"), "biases": ("mlp", "none"), "init": ("nanda", "furuta")}
_BOOLS = ["analysis.gini_constant", "tf32"]
_WRONG_TYPES: list[Any] = [True, False, "7", 7.5, [7], {"x": 1}, datetime.date(1979, 5, 27)]


def _exp(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = next(iter(doc["experiments"]))
    return name, doc["experiments"][name]


def _put(table: dict[str, Any], dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if rest:
        table[head] = dict(table.get(head) or {})
        table[head][rest] = value
    else:
        table[head] = value


def _number_outside(lo, lo_open, hi, hi_open) -> list[Any]:
    out: list[Any] = [-1.5, -(10**6)] if lo is not None else []
    if lo is not None:
        out.append(lo if lo_open else lo - 1e-9)
    if hi is not None:
        out += [hi] if hi_open else []
        out += [hi + 0.5, 10**6]
    return out


def _int_outside(lo: int, hi: int) -> list[Any]:
    huge = [v for v in (10**17, 2**63 - 1) if v > hi] or [2**63]
    return [lo - 1, -(10**12), hi + 1, *huge, Raw("1" + "0" * 400)]


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.cases: list[Case] = []

    def add(self, cls: str, name: str, doc_or_text: Any, expect: str | None = None) -> None:
        if isinstance(doc_or_text, dict):
            data = dumps(doc_or_text).encode()
        elif isinstance(doc_or_text, str):
            data = doc_or_text.encode("utf-8", "surrogatepass")
        else:
            data = doc_or_text
        self.cases.append(Case(cls, name, data, expect))

    def base(self) -> dict[str, Any]:
        return copy.deepcopy(self.rng.choice(BASES))

    def transformer_base(self) -> dict[str, Any]:
        return copy.deepcopy(BASES[self.rng.choice([0, 3])])

    def set_key(self, cls: str, dotted: str, value: Any, doc: dict[str, Any] | None = None) -> None:
        """``dotted`` = value in the experiment, or in [defaults] (then the error names defaults.KEY)."""
        doc = doc or self.transformer_base()
        name, table = _exp(doc)
        sweep = table.get("sweep") or {}
        head = dotted.partition(".")[0]
        if head in sweep and (dotted == head or not isinstance(sweep[head], dict)):
            del sweep[head]  # the sweep would replace the bad value
        elif isinstance(sweep.get(head), dict):
            sweep[head].pop(dotted.partition(".")[2], None)
            if not sweep[head]:
                del sweep[head]
        if "sweep" in table and not sweep:
            del table["sweep"]
        where = self.rng.random()
        if where < 0.25:
            head, _, rest = dotted.partition(".")
            if not rest:  # the experiment must not override it
                table.pop(head, None)
            elif isinstance(table.get(head), dict):
                table[head].pop(rest, None)
            _put(doc.setdefault("defaults", {}), dotted, value)
            # named defaults.KEY when [defaults] alone is wrong, KEY when the merged experiment is
            self.add(cls, f"[defaults] {dotted} = {_value(value)[:40]}", doc, dotted)
        elif where < 0.4 and "sweep" not in table:
            table["sweep"] = {}
            _put(table["sweep"], dotted, [value])
            self.add(cls, f"sweep {dotted} = [{_value(value)[:40]}]", doc, f"sweep.{dotted}")
        else:
            _put(table, dotted, value)
            self.add(cls, f"{dotted} = {_value(value)[:40]}", doc, dotted)


def generate(seed: int = 0) -> list[Case]:
    """The cases, in a fixed order for a given seed."""
    g = _Gen(seed)
    rng = g.rng

    # ---- wrong types, per key
    for key in [*_INT_KEYS, *_NUMBER_KEYS]:
        for bad in _WRONG_TYPES:
            if isinstance(bad, (int, float)) and not isinstance(bad, bool) and key in _NUMBER_KEYS:
                continue  # a number is the right type for a number key
            g.set_key("wrong type", key, bad)
    for key in _MODEL_INT_KEYS:
        for bad in _WRONG_TYPES:
            g.set_key("wrong type", f"model.{key}", bad)
    for key in [*_ENUMS, *(f"model.{k}" for k in _TRANSFORMER_ENUMS), "device"]:
        for bad in (True, 1, 1.5, ["x"], {"x": 1}):
            g.set_key("wrong type", key, bad)
    for key in [*_BOOLS, "model.pos_embed"]:
        for bad in (1, 0, "true", "yes", 1.0, [True]):
            g.set_key("wrong type", key, bad)
    for bad in (5, True, ["x"], {"a": "b"}):
        g.set_key("wrong type", "description", bad)
    for bad in (5, True, [5], [], {"a": 1}, "", "   "):
        g.set_key("wrong type", "task", bad)
    for bad in (5, "0", [True], [0.5], ["0"], [[0]], {"a": 0}):
        g.set_key("wrong type", "seeds", bad)
    for bad in ("0.9", [0.9], [0.9, 0.98, 0.99], [True, 0.9], ["0.9", 0.98]):
        g.set_key("wrong type", "optim.betas", bad)
    for bad in (1, [1], "x", True):
        g.set_key("wrong type", "model", bad)
        g.set_key("wrong type", "optim", bad)
        g.set_key("wrong type", "analysis", bad)
    for kind_bad in (5, True, "", "lstm", "Transformer", "rfmm"):
        g.set_key("enum", "model.kind", kind_bad)

    # ---- out of range and beyond the machine, per key
    for key, (lo, hi) in {**_INT_KEYS, **{f"model.{k}": v for k, v in _MODEL_INT_KEYS.items()}}.items():
        for bad in _int_outside(lo, hi):
            g.set_key("out of range", key, bad)
    for key, bounds in _NUMBER_KEYS.items():
        for bad in _number_outside(*bounds):
            g.set_key("out of range", key, bad)
    for key, (lo, lo_open) in _RFM_NUMBER_KEYS.items():
        for bad in [lo - 1] + ([lo] if lo_open else []):
            doc = copy.deepcopy(BASES[2])
            g.set_key("out of range", f"model.{key}", bad, doc)
    for bad in ([], [0], [-1], [65537], [100_000_000_000], [64] * 65):
        doc = copy.deepcopy(BASES[1])
        _exp(doc)[1]["model"]["hidden"] = bad
        g.add("out of range", f"mlp hidden = {_value(bad)[:40]}", doc, "model.hidden")
    for bad in ([], [-1], [1, 1], [0, 0, 2], [SEED_MAX + 1], [2**64], list(range(1001))):
        g.set_key("out of range", "seeds", bad)
    for bad in ([1.0, 0.9], [-0.1, 0.9], [0.9, 1]):
        g.set_key("out of range", "optim.betas", bad)

    # ---- non-finite numbers, everywhere a number goes
    for key in [*_NUMBER_KEYS, *_INT_KEYS, *(f"model.{k}" for k in _MODEL_INT_KEYS)]:
        for bad in (math.nan, math.inf, -math.inf, Raw("1e400"), Raw("-nan")):
            g.set_key("non-finite", key, bad)
    for key in _RFM_NUMBER_KEYS:
        for bad in (math.nan, math.inf, Raw("1e999")):
            g.set_key("non-finite", f"model.{key}", bad, copy.deepcopy(BASES[2]))
    for bad in ([math.nan, 0.9], [0.9, math.inf]):
        g.set_key("non-finite", "optim.betas", bad)

    # ---- enums: misspelt, wrong case, another kind's choice
    for key, choices in {**_ENUMS, **{f"model.{k}": v for k, v in _TRANSFORMER_ENUMS.items()}}.items():
        c = rng.choice(choices)
        for bad in (c + "x", c.upper(), c[:-1] or "q", "", " " + c):
            g.set_key("enum", key, bad)
    g.set_key("enum", "model.act", "quadratic")
    for bad in ("gelu", "Quadratic"):
        doc = copy.deepcopy(BASES[1])
        _exp(doc)[1]["model"]["act"] = bad
        g.add("enum", f"mlp act = {bad}", doc, "model.act")
    for bad in ("gaussianx", "rbf", "Laplace"):
        doc = copy.deepcopy(BASES[2])
        _exp(doc)[1]["model"]["kernel"] = bad
        g.add("enum", f"rfm kernel = {bad}", doc, "model.kernel")
    for bad in ("tpu", "cuda:", "cuda:x", "cpu\n", "auto ", "CPU", "cuda:12345", "cuda:0\n"):
        g.set_key("enum", "device", bad)

    # ---- the fast-grokking options: Grokfast's table, and what an RFM (no gradient, no softmax) refuses
    for kind, key, bounds in (
        ("ema", "alpha", (0, False, 1, True)),
        ("ema", "lamb", (0, False, None, False)),
        ("ma", "lamb", (0, False, None, False)),
    ):
        for bad in [*_number_outside(*bounds), True, "2", [2.0]]:
            doc = g.transformer_base()
            _exp(doc)[1]["grokfast"] = {"kind": kind, key: bad}
            g.add("out of range", f"grokfast {kind} {key} = {_value(bad)[:40]}", doc, f"grokfast.{key}")
    for bad in [*_int_outside(1, 1000), 2.5, True, "100"]:
        doc = g.transformer_base()
        _exp(doc)[1]["grokfast"] = {"kind": "ma", "window": bad}
        g.add("out of range", f"grokfast window = {_value(bad)[:40]}", doc, "grokfast.window")
    for bad in ("EMA", "", "sma", "ema ", 1, True):
        g.set_key("enum", "grokfast.kind", bad)
    for bad in (1, [1], "ema", True):
        g.set_key("wrong type", "grokfast", bad)
    for table, key in (({"kind": "ma", "alpha": 0.9}, "alpha"), ({"kind": "ema", "window": 10}, "window"),
                       ({"alpha": 0.9}, "alpha"), ({"kind": "ema", "lambda": 2}, "lambda")):  # fmt: skip
        doc = g.transformer_base()
        _exp(doc)[1]["grokfast"] = table
        g.add("unknown key", f"grokfast = {_value(table)}", doc, key)
    big = {"kind": "transformer", "d_model": 1024, "heads": 4, "d_mlp": 4096}
    g.add(
        "huge",
        "Grokfast-MA window of 1000 on a big model",
        {"experiments": {"e": {"p": 7, "model": big, "grokfast": {"kind": "ma", "window": 1000}}}},
        "grokfast.window",
    )
    options = (("grokfast", {"kind": "ema"}), ("optim", {"kind": "orthograd"}), ("loss", "stablemax"))
    for key, value in options:
        doc = copy.deepcopy(BASES[2])
        _exp(doc)[1][key] = value
        g.add("wrong for the model", f"rfm with {key} = {_value(value)}", doc, key)

    # ---- init_from: a transfer run names a source and the parts it loads or freezes
    for bad in ("wings", "Embed", "", 1, True):
        doc = g.transformer_base()
        _exp(doc)[1]["init_from"] = {"run": "src/seed0", "load": [bad]}
        g.add("enum", f"init_from load = [{_value(bad)}]", doc, "init_from.load")
    for bad in (1, "src/seed0", [1], True):
        g.set_key("wrong type", "init_from", bad)
    for bad in (-1, "first", 1.5, True, 2**40):
        doc = g.transformer_base()
        _exp(doc)[1]["init_from"] = {"run": "src/seed0", "load": ["embed"], "step": bad}
        g.add("out of range", f"init_from step = {_value(bad)}", doc, "init_from.step")
    for bad in ("embed", 1, ["embed", 3]):
        doc = g.transformer_base()
        _exp(doc)[1]["init_from"] = {"freeze": bad}
        g.add("wrong type", f"init_from freeze = {_value(bad)}", doc, "init_from.freeze")
    for table, key in (
        ({"run": "src/seed0", "parts": ["embed"]}, "parts"),
        ({"load": ["embed"]}, "init_from.run"),  # loads from no run
        ({"run": "src/seed0"}, "init_from.load"),  # a source and nothing to take from it
        ({"freeze": True}, "init_from.freeze"),  # freezes what it loads, and loads nothing
        ({"run": "nosuch", "load": ["embed"]}, "init_from.run"),  # not EXPERIMENT/NAME
        ({"run": "a/b/c", "load": ["embed"]}, "init_from.run"),
        ({"run": "../x", "load": ["embed"]}, "init_from.run"),
    ):
        doc = g.transformer_base()
        _exp(doc)[1]["init_from"] = table
        g.add("init_from", f"init_from = {_value(table)}", doc, key)
    for base in (BASES[1], BASES[2]):  # an MLP and an RFM have no transformer parts
        doc = copy.deepcopy(base)
        _exp(doc)[1]["init_from"] = {"freeze": ["embed"]}
        g.add("wrong for the model", f"{_exp(doc)[0]} with init_from", doc, "init_from")
    src = {"task": "add", "p": 11, "layout": "furuta", "steps": 100, "checkpoint_every": 50}
    for change, key in (
        ({"p": 13}, "init_from.run"),  # another vocabulary
        ({"model": {"d_model": 64}}, "init_from.run"),  # another width
        ({"init_from": {"run": "src/seed7", "load": ["embed"]}}, "init_from.run"),  # no such run
        ({"init_from": {"run": "src/seed0", "load": ["embed"], "step": 70}}, "init_from.step"),
        ({"init_from": {"run": "dst/seed0", "load": ["block"]}}, "init_from.run"),  # itself
    ):
        dst = {**src, "task": "2*a+b", "init_from": {"run": "src/seed0", "load": ["embed"]}, **change}
        g.add(
            "init_from",
            f"source and run differ: {_value(change)[:60]}",
            {"experiments": {"src": src, "dst": dst}},
            key,
        )
    ring = {
        "a": {**src, "init_from": {"run": "b/seed0", "load": ["embed"]}},
        "b": {**src, "init_from": {"run": "a/seed0", "load": ["embed"]}},
    }
    g.add("init_from", "two runs load from each other", {"experiments": ring}, "init_from.run")
    # ---- random circulant features (Mallinar et al. Fig. 4): one operation they exist for, one solve
    for bad in ("AGOP", "random", "random_circulantx", "circulant", "", 1, True, ["agop"]):
        doc = copy.deepcopy(BASES[2])
        _exp(doc)[1]["model"]["features"] = bad
        g.add("enum", f"rfm features = {_value(bad)}", doc, "model.features")
    fixed = {"kind": "rfm", "features": "random_circulant"}
    for changes, expect in (
        ({"steps": 5}, "steps"),  # fixed features have nothing to iterate
        ({"steps": 1}, "steps"),
        ({"sweep": {"steps": [0, 10]}}, "sweep.steps"),
        ({"task": "x2_y"}, "model.features"),  # no circulant shape is known for it
        ({"task": "a^2 + b^2"}, "model.features"),
        ({"task": ["add", "sub"]}, "model.features"),  # a mixture
        ({"task": "mul", "p": 12}, "model.features"),  # discrete-log order needs a prime p
    ):
        doc = {"experiments": {"e": {"task": "add", "p": 11, "train_frac": 0.5, "model": dict(fixed)}}}
        _exp(doc)[1].update(changes)
        g.add("wrong for the model", f"random circulant with {_value(changes)[:50]}", doc, expect)
    doc = {"defaults": {"steps": 100}, "experiments": {"e": {"p": 11, "train_frac": 0.5, "model": fixed}}}
    g.add("wrong for the model", "random circulant under [defaults] steps = 100", doc, "steps")
    doc = {"defaults": {"model": fixed}, "experiments": {"e": {"p": 11, "train_frac": 0.5, "steps": 30}}}
    g.add("wrong for the model", "[defaults] random circulant, experiment steps = 30", doc, "steps")
    for model in ({"kind": "mlp", "features": "random_circulant"}, {"features": "agop"}):
        doc = {"experiments": {"e": {"p": 11, "model": model}}}
        g.add("unknown key", f"features on a {model.get('kind', 'transformer')}", doc, "model.features")
    g.add("out of range", "steps = 0 on an AGOP rfm", {"experiments": {"e": {"p": 11, "steps": 0,
          "model": {"kind": "rfm"}}}}, "steps")  # fmt: skip

    # ---- unknown keys: seeded typos of every key of a base, at every level
    for _ in range(40):
        doc = g.base()
        name, table = _exp(doc)
        sub = rng.choice(
            [k for k in ("model", "optim", "analysis") if isinstance(table.get(k), dict)] + [None]
        )
        target = table[sub] if sub else table
        key = rng.choice([k for k in target if k != "kind"] or ["p"])
        typo = _typo(rng, key)
        if typo in _ALL_KEYS or not typo:
            continue
        target[typo] = target.pop(key, 1)
        g.add("unknown key", f"{sub + '.' if sub else ''}{key} → {typo}", doc, typo)
    for top in ("experiment", "default", "Experiments", "runs"):
        g.add("unknown key", f"top-level [{top}]", {top: {"p": 7}, "experiments": {"e": {}}}, top)
    g.add("unknown key", "sweep in [defaults]", {"defaults": {"sweep": {"p": [7]}}, "experiments": {"e": {}}})
    g.add("unknown key", "runs_dir in an experiment", {"experiments": {"e": {"runs_dir": "x"}}}, "runs_dir")
    g.add("unknown key", "mlp key on a transformer", {"experiments": {"e": {"model": {"hidden": [8]}}}})
    g.add(
        "unknown key",
        "transformer key on an rfm",
        {"experiments": {"e": {"model": {"kind": "rfm", "d_model": 8}}}},
    )

    # ---- structure: non-tables, bad sweeps, empty files
    g.add(
        "structure",
        "[defaults] model = 1",
        "[defaults]\nmodel = 1\n[experiments.e]\np = 7\n",
        "defaults.model",
    )
    g.add(
        "structure", "[defaults] optim = [1]", "[defaults]\noptim = [1]\n[experiments.e]\n", "defaults.optim"
    )
    g.add("structure", "defaults = 1", "defaults = 1\n[experiments.e]\n", "defaults")
    g.add("structure", "experiments = 1", "experiments = 1\n", "experiments")
    g.add("structure", "experiments.e = 1", "[experiments]\ne = 1\n")
    g.add("structure", "experiments.e = []", "[experiments]\ne = []\n")
    g.add("structure", "no experiments", "[defaults]\np = 7\n", "experiments")
    g.add("structure", "empty file", "")
    g.add("structure", "only a comment", "# nothing\n")
    g.add("structure", "empty [experiments]", "[experiments]\n", "experiments")
    for sweep, expect in (
        ("1", "sweep"),
        ("{ p = 7 }", "sweep.p"),
        ("{ p = [] }", "sweep.p"),
        ("{ seeds = [[0]] }", "sweep.seeds"),
        ("{ description = ['x'] }", "sweep.description"),
        ("{ lr = [1e-3] }", "sweep.lr"),
        ("{ p.x = [1] }", "sweep.p.x"),
        ("{ model.kind.x = [1] }", "sweep.model.kind.x"),
        ("{ optim.bogus = [1] }", "sweep.optim.bogus"),
        ("{ p = [7, 'x'] }", "sweep.p"),
        ("{ p = [7, 1] }", "sweep.p"),
        ("{ model = [1] }", "sweep.model"),
        ("{ model = [{ d_model = 30 }] }", "sweep.model"),
        ("{ task = ['a/b', 'a_b'] }", "sweep"),
        ("{ train_frac = [0.3, 1.5] }", "sweep.train_frac"),
        ("{ optim.lr = [1e-3, nan] }", "sweep.optim.lr"),
        ("{ runs_dir = ['x'] }", "sweep.runs_dir"),
    ):
        g.add("structure", f"sweep = {sweep}", f"[experiments.e]\np = 7\nsweep = {sweep}\n", expect)

    # ---- task expressions
    for bad in (
        "addition",
        "a +",
        "a ** b",
        "a ** -1",
        "a % b",
        "abs(a)",
        "a.real",
        "lambda: a",
        '__import__("os")',
        "a + c",
        "a/0",
        "a/(b-b)",
        "(a+b)/(a-a)",
        "+".join(["a"] * 1000),
        "+".join(["a*b"] * 120),
        "-" * 300 + "a",
        "(" * 300 + "a" + ")" * 300,
        "a" * 100_000,
        "a\x00",
        "a + 1.5",
        "a if b else a",
    ):
        g.set_key("task", "task", bad)
    for task, p in (
        ("div", 12),
        ("a / b", 15),
        ("div", 2**61 - 1),
        ("div", Raw("1" + "0" * 400)),
        ("div", 10**17),
    ):
        doc = g.transformer_base()
        _exp(doc)[1].update({"task": task, "p": p})
        g.add(
            "task",
            f"task {task} with p = {_value(p)[:30]}",
            doc,
            "p" if not isinstance(p, int) or p > P_MAX else "task",
        )
    for mix in (
        ["add", "add"],
        ["add", "a+b"],
        ["a+b", "b+a"],
        ["x + y", "a + b"],
        ["mul", "b*a"],
        ["sub", "a-b+0"],
        ["a**2 + b", "x2_y"],
        [f"a + {i}*b" for i in range(17)],
    ):
        g.set_key("task", "task", mix)

    # ---- train/test split with nothing on one side
    for p, frac in ((113, 1e-6), (13, 0.001), (2, 0.2), (1024, 1e-7), (3, 0.1)):
        doc = g.transformer_base()
        _exp(doc)[1].update({"p": p, "train_frac": frac, "task": "add"})
        _exp(doc)[1].pop("sweep", None)
        g.add("split", f"p = {p}, train_frac = {frac}", doc, "train_frac")
    for p in (
        2,
        3,
        5,
    ):  # a division whose split trains (or tests) no pair it keeps: found with the papers' idiom
        n = p * p
        for frac in (1.5 / n, 1 - 1.5 / n):
            for seed in range(40):
                order = list(range(n))
                random.Random(seed).shuffle(order)
                train = set(order[: int(frac * n)])
                kept = {i for i in range(n) if i % p}
                if not (train & kept) or not (kept - train):
                    doc = {"experiments": {"d": {"task": "div", "p": p, "train_frac": frac, "seeds": [seed]}}}
                    g.add("split", f"div p = {p} frac = {frac:.3f} seed {seed}", doc, "train_frac")
                    break

    # ---- sizes only this machine cannot hold
    big_sweep = {k: list(range(1, 2001)) for k in ("steps", "eval_every", "checkpoint_every")}
    g.add("huge", "sweep of 8e9 points", {"experiments": {"e": {"p": 7, "sweep": big_sweep}}}, "sweep")
    g.add(
        "huge",
        "sweep of 4e9 points",
        {
            "experiments": {
                "e": {
                    "p": 7,
                    "seeds": list(range(1000)),
                    "sweep": {"steps": list(range(1, 2001)), "eval_every": list(range(1, 2001))},
                }
            }
        },
        "sweep",
    )
    g.add(
        "huge",
        "1000 seeds × 11 points",
        {"experiments": {"e": {"p": 7, "seeds": list(range(1000)), "sweep": {"steps": list(range(1, 12))}}}},
        "sweep",
    )
    many = {f"e{i}": {"p": 7, "seeds": list(range(1000))} for i in range(11)}
    g.add("huge", "11 experiments of 1000 seeds", {"experiments": many}, "seeds")
    g.add(
        "huge",
        "params of d_model 8192",
        {"experiments": {"e": {"model": {"d_model": 8192, "d_mlp": 32768}}}},
        "model",
    )
    g.add(
        "huge",
        "params of 64 layers",
        {"experiments": {"e": {"model": {"layers": 64, "d_model": 1024}}}},
        "model",
    )
    g.add(
        "huge",
        "mlp of 64 wide layers",
        {"experiments": {"e": {"model": {"kind": "mlp", "hidden": [65536] * 3}}}},
        "model",
    )
    g.add(
        "huge",
        "mixture at p = 1021",
        {"experiments": {"e": {"p": 1021, "task": ["add", "sub", "mul"]}}},
        "'p'",
    )
    g.add("huge", "rfm at p = 1021", {"experiments": {"e": {"p": 1021, "model": {"kind": "rfm"}}}}, "'p'")
    g.add(
        "huge",
        "rfm at p = 256",
        {"experiments": {"e": {"p": 256, "train_frac": 0.9, "model": {"kind": "rfm"}}}},
        "'p'",
    )
    g.add("huge", "file over 1 MiB", "#" * (1 << 20) + "\n[experiments.e]\n")
    g.add("huge", "3 MiB on one line", b'[experiments.e]\ndescription = "' + b"x" * (3 << 20) + b'"\n')
    g.add("huge", "a 5000-digit number", "[experiments.e]\np = 1" + "0" * 5000 + "\n")

    # ---- nesting
    for depth in (11, 50, 1000, 100_000):
        g.add(
            "nesting",
            f"array {depth} deep",
            "[experiments.e]\ndescription = " + "[" * depth + "]" * depth + "\n",
        )
        g.add(
            "nesting",
            f"inline table {depth} deep",
            "[experiments.e]\nmodel = " + "{a = " * depth + "1" + "}" * depth + "\n",
        )
    g.add("nesting", "dotted key 1000 deep", "[experiments.e]\nmodel." + "a." * 1000 + "b = 1\n")
    g.add("nesting", "header 200 deep", "[experiments.e." + ".".join(["x"] * 200) + "]\n")
    g.add(
        "nesting",
        "sweep list 12 deep",
        "[experiments.e]\nsweep.p = " + "[" * 12 + "7" + "]" * 12 + "\n",
        "sweep.p",
    )

    # ---- long strings
    for n in (1001, 100_000):
        g.set_key("long string", "description", "x" * n)
        g.add("long string", f"key of {n} characters", f"[experiments.e]\n{'k' * n} = 1\n")
        g.add(
            "long string",
            f"runs_dir of {n} characters",
            {"defaults": {"runs_dir": "r" * n}, "experiments": {"e": {}}},
        )
    # ---- [defaults] pack: runs per worker, a whole number from 1 to 1024 or "auto"; a file-level key
    for bad, cls in (
        (0, "out of range"), (-1, "out of range"), (1025, "out of range"), (10**17, "out of range"),
        (2**63 - 1, "out of range"), ("big", "enum"), ("Auto", "enum"), ("", "enum"), (" auto", "enum"),
        (1.5, "wrong type"), (2.0, "wrong type"), (True, "wrong type"), (False, "wrong type"),
        ([2], "wrong type"), ({"n": 2}, "wrong type"), (datetime.date(1979, 5, 27), "wrong type"),
        (math.nan, "non-finite"), (math.inf, "non-finite"), (Raw("1e400"), "non-finite"),
    ):  # fmt: skip
        doc = {"defaults": {"pack": bad}, "experiments": {"e": {"p": 11}}}
        g.add(cls, f"[defaults] pack = {_value(bad)[:40]}", doc, "defaults.pack")
    g.add("unknown key", "pack in an experiment", {"experiments": {"e": {"p": 11, "pack": 2}}}, "pack")
    g.add("structure", "sweep = { pack = [2] }", "[experiments.e]\nsweep = { pack = [2] }\n", "sweep.pack")

    # ---- [defaults] backend (local | slurm) and the [slurm] table: every string is one line of a batch
    # script, so a line break, CR or NUL anywhere in one is refused (it would start a shell command)
    for bad, cls in (
        ("Slurm", "enum"),
        ("pbs", "enum"),
        ("", "enum"),
        (1, "wrong type"),
        (True, "wrong type"),
    ):
        doc = {"defaults": {"backend": bad}, "experiments": {"e": {"p": 11}}}
        g.add(cls, f"[defaults] backend = {_value(bad)[:40]}", doc, "defaults.backend")
    g.add(
        "unknown key",
        "backend in an experiment",
        {"experiments": {"e": {"p": 11, "backend": "slurm"}}},
        "backend",
    )
    rng = g.rng
    for key in ("partition", "account", "qos", "time", "mem"):
        for breaker in ("\n", "\r", "\x00", "\x0c", "\u2028"):
            good = {"time": "1:00:00", "mem": "16G"}.get(key, "gpu")
            at = rng.randrange(len(good) + 1)
            doc = {"slurm": {key: good[:at] + breaker + "#SBATCH --x" + good[at:]}, "experiments": {"e": {}}}
            g.add("slurm line", f"slurm.{key} with {breaker!r} at {at}", doc, f"slurm.{key}")
    for key in ("extra", "setup"):
        for breaker in ("\n", "\r", "\x00", "\x1b", "\x85"):
            line = "--constraint=a100" if key == "extra" else "module load cuda"
            at = rng.randrange(1, len(line) + 1)
            doc = {
                "slurm": {
                    key: ["--x" if key == "extra" else "true", line[:at] + breaker + "rm -rf ~" + line[at:]]
                },
                "experiments": {"e": {}},
            }
            g.add("slurm line", f"slurm.{key}[1] with {breaker!r} at {at}", doc, f"slurm.{key}")
    for bad in ("four hours", "1:2:3:4", "-1", "1-", "1h", "", "01:60:00x"):
        g.add(
            "slurm value",
            f"slurm.time = {bad!r}",
            {"slurm": {"time": bad}, "experiments": {"e": {}}},
            "slurm.time",
        )
    for bad in ("16 G", "16GB", "G", "-1G", "1e9"):
        g.add(
            "slurm value",
            f"slurm.mem = {bad!r}",
            {"slurm": {"mem": bad}, "experiments": {"e": {}}},
            "slurm.mem",
        )
    for bad in ("gpu node", "a;b", "$(id)", "x" * 201, ""):
        doc = {"slurm": {"partition": bad}, "experiments": {"e": {}}}
        g.add("slurm value", f"slurm.partition = {bad[:20]!r}", doc, "slurm.partition")
    g.add(
        "slurm value",
        "extra not an option",
        {"slurm": {"extra": ["constraint=a100"]}, "experiments": {"e": {}}},
        "slurm.extra",
    )
    for key, bad, cls in (
        ("gpus_per_job", -1, "out of range"), ("gpus_per_job", 65, "out of range"),
        ("gpus_per_job", 1.0, "wrong type"), ("cpus_per_task", 0, "out of range"),
        ("cpus_per_task", "4", "wrong type"), ("max_running", 0, "out of range"),
        ("stop_before", -5, "out of range"), ("stop_before", 86_401, "out of range"),
        ("setup", "module load cuda", "wrong type"), ("extra", ["--x"] * 101, "out of range"),
    ):  # fmt: skip
        g.add(
            cls,
            f"slurm.{key} = {_value(bad)[:40]}",
            {"slurm": {key: bad}, "experiments": {"e": {}}},
            f"slurm.{key}",
        )
    for key in ("partition", "gpus_per_job", "stop_before", "setup"):
        typo = _typo(rng, key)
        if typo != key:
            g.add("unknown key", f"slurm.{typo}", {"slurm": {typo: 1}, "experiments": {"e": {}}}, typo)
    g.add("structure", "slurm not a table", 'slurm = "gpu"\n[experiments.e]\n', "slurm")

    g.add(
        "long string",
        "device of 10,000 characters",
        {"experiments": {"e": {"device": "cpu" * 3334}}},
        "device",
    )

    # ---- odd experiment names
    for name in (
        "e\n",
        "a/b",
        "..",
        "a..b",
        "",
        "-a",
        " a",
        "a b",
        "é",
        "a\x00",
        "a\tb",
        ".hidden",
        "a" * 201,
        "a" * 100_000,
        "e\r",
        "con/",
        "a\\b",
        "🙂",
    ):
        g.add("name", f"experiment name {name[:20]!r}", {"experiments": {name: {"p": 7}}})
    long_task = "+".join(f"({i}*a**2 + b**3 + a*b)" for i in range(12))  # a valid task, 250 characters
    g.add(
        "name",
        "run name from a long task",
        {"experiments": {"e": {"p": 7, "sweep": {"task": [long_task]}}}},
        "sweep",
    )

    # ---- bytes that are not a TOML file
    g.add("not toml", "invalid UTF-8", b'[experiments.e]\ndescription = "\xff\xfe"\n')
    g.add("not toml", "NUL bytes", b"[experiments.e]\x00\np = 7\n")
    g.add("not toml", "binary noise", bytes(rng.randrange(256) for _ in range(4096)))
    g.add("not toml", "a JSON file", json.dumps({"experiments": {"e": {"p": 7}}}))
    g.add("not toml", "UTF-16", "[experiments.e]\np = 7\n".encode("utf-16"))

    # ---- seeded syntax mutations of valid files (each one breaks TOML by construction)
    for i in range(60):
        text = dumps(g.base())
        lines = text.splitlines()
        kv = [j for j, line in enumerate(lines) if " = " in line]
        j = rng.choice(kv)
        how = i % 6
        if how == 0:
            lines.insert(j + 1, lines[j])  # a key twice
        elif how == 1:
            lines[j] = lines[j].replace(" = ", "  ", 1)  # no '='
        elif how == 2:
            lines[j] = "[" + lines[j]  # a broken header
        elif how == 3:
            lines[j] = lines[j] + " ]"  # trailing junk
        elif how == 4:
            lines[j] = lines[j].replace(" = ", ' = "', 1)  # an unterminated string
        else:
            cut = rng.randrange(1, len(lines[j]))
            lines[j] = lines[j][:cut] + "{" + lines[j][cut:]
        g.add("syntax", f"mutation {how} of line {j}", "\n".join(lines) + "\n")
    return g.cases


_ALL_KEYS = {
    "description", "task", "p", "train_frac", "seeds", "split_seed", "steps", "eval_every",
    "checkpoint_every", "batch_size", "layout", "loss", "device", "on_nan", "tf32", "model", "optim",
    "analysis", "sweep", "runs_dir", "pack", "kind", "layers", "d_model", "heads", "d_mlp", "act",
    "pos_embed", "biases", "init", "hidden", "bias", "kernel", "bandwidth", "ridge", "agop_power",
    "centering", "lr",
    "weight_decay", "betas", "eps", "warmup", "key_freq_rule", "key_freq_threshold", "ffd_eta",
    "gini_constant", "discrete_log", "key_freq_frac", "restricted_split", "grokfast", "alpha", "lamb",
    "window", "init_from", "run", "step", "load", "freeze", "features",
}  # fmt: skip


def _typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(len(word))
    how = rng.randrange(3)
    if how == 0 and len(word) > 1:
        return word[:i] + word[i + 1 :]
    if how == 1 and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + rng.choice("aeiouxz") + word[i:]
