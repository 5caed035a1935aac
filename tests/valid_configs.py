"""A seeded generator of valid experiment files covering every key, for round-trip and golden tests.

Values are drawn so that the file is valid by the README's rules (tasks divide only at prime p, mixtures
list distinct functions, heads divide d_model, every task keeps pairs to train and test on), and so that
numbers that may be written as int or float are written both ways (``weight_decay = 1`` and ``1.0``).
"""

from __future__ import annotations

import random
from typing import Any

from malformed_configs import dumps

PRIMES = [5, 7, 11, 13, 17, 23, 31, 97, 113]
SINGLE = [
    "add",
    "sub",
    "mul",
    "div",
    "x2_y",
    "x2_xy_y2",
    "_x_y__3",
    "a^2 + b^2",
    "2*a - 3*b",
    "a*b + b",
    "x/y",
]
#: Distinct functions mod any p >= 7 (a mixture must not list one function twice).
MIXABLE = ["add", "sub", "mul", "div", "x2_y"]


def _number(rng: random.Random, choices: list[float]) -> float | int:
    v = rng.choice(choices)
    return int(v) if v == int(v) and rng.random() < 0.5 else v


def _model(rng: random.Random, layout: str) -> dict[str, Any]:
    kind = rng.choice(["transformer", "transformer", "mlp", "rfm", None])
    m: dict[str, Any] = {} if kind is None else {"kind": kind}
    if kind in ("transformer", None):
        d = rng.choice([8, 16, 32, 64, 128])
        options = {
            "layers": rng.choice([1, 1, 2]),
            "d_model": d,
            "heads": rng.choice([h for h in (1, 2, 4, 8) if d % h == 0]),
            "d_mlp": rng.choice([16, 64, 512]),
            "act": rng.choice(["relu", "gelu"]),
            "pos_embed": rng.random() < 0.5,
            "biases": rng.choice(["mlp", "none"]),
            "init": rng.choice(["nanda", "furuta"]),
        }
    elif kind == "mlp":
        options = {
            "hidden": rng.choice([[1024], [200, 200], [32], [16, 8, 4]]),
            "act": rng.choice(["quadratic", "relu"]),
            "bias": rng.random() < 0.5,
        }
    else:
        options = {
            "kernel": rng.choice(["gaussian", "laplace", "quadratic"]),
            "bandwidth": _number(rng, [1.0, 2.5, 10.0]),
            "ridge": _number(rng, [0.0, 1e-3, 1.0]),
            "agop_power": _number(rng, [0.5, 1.0, 0.25]),
            "centering": rng.random() < 0.5,
            "features": rng.choice(["agop", "random_circulant"]),
        }
    m.update({k: v for k, v in options.items() if rng.random() < 0.4})
    return m


def _optim(rng: random.Random) -> dict[str, Any]:
    options = {
        "kind": rng.choice(["adamw", "orthograd"]),
        "lr": _number(rng, [1e-3, 3e-3, 1.0, 0.01]),
        "weight_decay": _number(rng, [0.0, 0.1, 1.0, 5.0]),
        "betas": rng.choice([[0.9, 0.98], [0.9, 0.999], [0, 0.5], [0.0, 0.9]]),
        "eps": _number(rng, [1e-8, 1e-6, 1.0]),
        "warmup": rng.choice([0, 10, 100]),
    }
    return {k: v for k, v in options.items() if rng.random() < 0.35}


def _grokfast(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["ema", "ma", "none", None])
    table: dict[str, Any] = {} if kind is None else {"kind": kind}
    if kind == "ema":
        table.update({"alpha": rng.choice([0.98, 0.9, 0.0]), "lamb": _number(rng, [2.0, 5.0, 0.0])})
    elif kind == "ma":
        # window × parameters stays under the limit for every model drawn here (a window of 1,000 is
        # allowed for Nanda's 226,816 parameters, not for 300,000)
        table.update({"window": rng.choice([1, 100, 300]), "lamb": _number(rng, [5.0, 1.0])})
    return {k: v for k, v in table.items() if k == "kind" or rng.random() < 0.5}


def _analysis(rng: random.Random) -> dict[str, Any]:
    options = {
        "key_freq_rule": rng.choice(["neuron", "embed", "logit"]),
        "key_freq_threshold": rng.choice([0.85, 0.5, 0.99]),
        "ffd_eta": rng.choice([0.5, 0.1]),
        "gini_constant": rng.random() < 0.5,
        "discrete_log": rng.choice(["auto", "on", "off"]),
        "key_freq_frac": rng.choice([0.25, 0.5]),
        "restricted_split": rng.choice(["all", "train", "test"]),
    }
    return {k: v for k, v in options.items() if rng.random() < 0.3}


def _task(rng: random.Random, p: int) -> str | list[str]:
    if rng.random() < 0.25:
        return rng.sample(MIXABLE, rng.choice([2, 3]))
    return rng.choice(SINGLE)


def experiment(rng: random.Random, on_nan: bool = True) -> dict[str, Any]:
    """One valid experiment table (without its sweep)."""
    p = rng.choice(PRIMES)
    layout = rng.choice(["nanda", "furuta"])
    options: dict[str, Any] = {
        "description": rng.choice(["", "a run", "Nanda et al. 2023 — a+b mod 113"]),
        "task": _task(rng, p),
        "p": p,
        "train_frac": rng.choice([0.3, 0.5, 0.7, 0.45]),
        "seeds": rng.sample(range(0, 50), rng.choice([1, 1, 2, 3])),
        "split_seed": rng.choice([0, 7, 2**40]),
        "steps": rng.choice([100, 2500, 40_000]),
        "eval_every": rng.choice([1, 50, 100]),
        "checkpoint_every": rng.choice([10, 500, 1000]),
        "batch_size": rng.choice([0, 0, 32, 512]),
        "layout": layout,
        "loss": rng.choice(["ce", "mse", "stablemax"]),
        "device": rng.choice(["auto", "cpu", "cuda", "cuda:1"]),
        "model": _model(rng, layout),
        "optim": _optim(rng),
        "grokfast": _grokfast(rng),
        "analysis": _analysis(rng),
    }
    if on_nan:
        options["on_nan"] = rng.choice(["fail", "continue"])
    table = {k: v for k, v in options.items() if k in ("p",) or rng.random() < 0.6}
    if (table.get("model") or {}).get("kind") == "rfm":
        _gradient_free(table)
        _fixed_features(table)
    return table


def _gradient_free(table: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
    """What an RFM table must say against a gradient option it (or [defaults]) holds."""
    if "grokfast" in table or "grokfast" in (defaults or {}):
        table["grokfast"] = {"kind": "none"}
    if "kind" in (table.get("optim") or {}) or "kind" in ((defaults or {}).get("optim") or {}):
        table["optim"] = {**(table.get("optim") or {}), "kind": "adamw"}
    if (table.get("loss") or (defaults or {}).get("loss")) == "stablemax":
        table["loss"] = "mse"


def _fixed_features(table: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
    """What an RFM with random circulant features must say: one operation they are built for (add, sub,
    mul, div; every p drawn is prime) and one kernel solve (steps = 0, which is also their default)."""
    model = table.get("model") or (defaults or {}).get("model") or {}
    if model.get("kind") != "rfm" or model.get("features") != "random_circulant":
        return
    if "task" in table and table["task"] not in ("add", "sub", "mul", "div"):
        table["task"] = "add"
    if "steps" in table or "steps" in (defaults or {}):
        table["steps"] = 0
    sweep = table.get("sweep") or {}
    for key in ("steps", "task"):
        sweep.pop(key, None)
    if "sweep" in table and not sweep:
        del table["sweep"]


def _sweep(rng: random.Random, table: dict[str, Any]) -> dict[str, Any]:
    pool: dict[str, list[Any]] = {
        "train_frac": [0.3, 0.4, 0.5],
        "steps": [100, 200, 300],
        "layout": ["nanda", "furuta"],
        "split_seed": [1, 2, 3],
        "optim.weight_decay": [0.1, 1, 3.0],
        "optim.lr": [1e-3, 3e-3],
        "analysis.key_freq_rule": ["neuron", "embed"],
        "task": ["add", "sub", ["add", "mul"]],
    }
    kind = (table.get("model") or {}).get("kind", "transformer")
    if kind in ("transformer",):
        pool["model.d_mlp"] = [64, 128]
    sweep: dict[str, Any] = {}
    for key in rng.sample(sorted(pool), rng.choice([1, 2])):
        values = rng.sample(pool[key], rng.choice([1, 2, len(pool[key])]))
        head, _, rest = key.partition(".")
        if rest:
            sweep.setdefault(head, {})[rest] = values
        else:
            sweep[key] = values
    return sweep


def document(rng: random.Random, on_nan: bool = True) -> dict[str, Any]:
    """A valid file: one to three experiments, some keys in [defaults], some sweeps."""
    defaults: dict[str, Any] = {}
    if rng.random() < 0.5:
        defaults = {k: v for k, v in experiment(rng, on_nan).items() if rng.random() < 0.3}
        defaults.pop("p", None)
        defaults.pop("task", None)  # a default task must suit every experiment's p
        if defaults.get("steps") == 0 and (defaults.get("model") or {}).get("features") != "random_circulant":
            del defaults["steps"]  # one solve is for random circulant features only
        if rng.random() < 0.3:
            defaults["runs_dir"] = rng.choice(["runs", "out/runs", "../r"])
    experiments: dict[str, Any] = {}
    for _ in range(rng.choice([1, 1, 2, 3])):
        name = rng.choice(["quick", "nanda-add", "e", "f.1", "g+h=i", "run_2"]) + str(len(experiments))
        table = experiment(rng, on_nan)
        if "model" in defaults:  # one model table, so the merged one is of one kind
            table.pop("model", None)
            if table.get("steps") == 0 and defaults["model"].get("features") != "random_circulant":
                del table["steps"]  # it was the one solve of the random circulant model just dropped
        if rng.random() < 0.4:
            table["sweep"] = _sweep(rng, {**defaults, **table})
        if (table.get("model") or defaults.get("model") or {}).get("kind") == "rfm":
            _gradient_free(table, defaults)
            _fixed_features(table, defaults)
        experiments[name] = table
    doc: dict[str, Any] = {"experiments": experiments}
    if defaults:
        doc = {"defaults": defaults, **doc}
    return doc


def text(rng: random.Random, on_nan: bool = True) -> str:
    return dumps(document(rng, on_nan))
