"""experiments.toml → validated, fully resolved run specs.

Every error is a :class:`ConfigError` whose message is one line naming the file, the experiment and the key,
with the close match for a misspelt key. A run spec is a plain dict (it becomes ``spec.json`` verbatim), so
workers, readers and the TUI share one representation without importing this module's types.
"""

from __future__ import annotations

import difflib
import itertools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tasks import LAYOUTS, Task, TaskError


class ConfigError(ValueError):
    """A bad experiments file; ``str(err)`` is the one line the user sees."""


# --------------------------------------------------------------------------- schema

_INT = (int,)
_NUM = (int, float)

MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    # Nanda §3.2 / Furuta §4.3; pos_embed, biases and init follow the layout unless set.
    "transformer": {
        "layers": 1,
        "d_model": 128,
        "heads": 4,
        "d_mlp": 512,
        "act": "relu",
        "pos_embed": None,
        "biases": None,
        "init": None,
    },
    # Mallinar's quadratic net (hidden=[1024], act x², no bias) or Prieto's ReLU net (hidden=[200, 200]).
    "mlp": {"hidden": [1024], "act": "quadratic", "bias": False},
    # Mallinar et al. RFM: kernel ridge regression + AGOP (steps are RFM iterations).
    "rfm": {
        "kernel": "gaussian",
        "bandwidth": 2.5,
        "ridge": 0.0,
        "agop_power": 0.5,
        "centering": True,
    },
}
MODEL_CHOICES = {
    "act": {"transformer": ("relu", "gelu"), "mlp": ("quadratic", "relu")},
    "biases": ("mlp", "none"),
    "init": ("nanda", "furuta"),
    "kernel": ("gaussian", "laplace", "quadratic"),
}
OPTIM_DEFAULTS: dict[str, Any] = {
    "kind": "adamw",
    "lr": 1e-3,
    "weight_decay": 1.0,
    "betas": [0.9, 0.98],
    "eps": 1e-8,
    "warmup": 10,
}
ANALYSIS_DEFAULTS: dict[str, Any] = {
    # Which published key-frequency rule to use (Nanda et al. 2023 §4.1, App. C.2 and their Colab):
    # "neuron" (clusters, 0.85 cut), "embed", "logit".
    "key_freq_rule": "neuron",
    "key_freq_threshold": 0.85,
    # Furuta's FFD threshold η.
    "ffd_eta": 0.5,
    # Gini over per-frequency norms: include the constant component or not (the paper leaves it open).
    "gini_constant": False,
    # For mul/div also report measures in the discrete-log basis.
    "discrete_log": "auto",
    # Embed/logit key-frequency rules: components above this fraction of the largest (TransformerLens: 1/4).
    "key_freq_frac": 0.25,
    # Pairs the restricted loss is scored on (the paper names none; the Colab reports all and train).
    "restricted_split": "all",
}

# key → (types, description used in errors)
EXPERIMENT_SCHEMA: dict[str, tuple[tuple[type, ...], str]] = {
    "description": ((str,), "a string"),
    "task": ((str, list), "an operation name, an expression in a and b, or a list of them"),
    "p": (_INT, "an integer modulus"),
    "train_frac": (_NUM, "a number in (0, 1)"),
    "seeds": ((list,), "a non-empty list of integers"),
    "split_seed": (_INT, "an integer"),
    "steps": (_INT, "a positive integer"),
    "eval_every": (_INT, "a positive integer"),
    "checkpoint_every": (_INT, "a positive integer"),
    "batch_size": (_INT, "0 (full batch) or a positive integer"),
    "layout": ((str,), f"one of {', '.join(LAYOUTS)}"),
    "loss": ((str,), "ce or mse"),
    "device": ((str,), "auto, cpu, cuda or cuda:N"),
    "model": ((dict,), "a table"),
    "optim": ((dict,), "a table"),
    "analysis": ((dict,), "a table"),
    "sweep": ((dict,), "a table of lists"),
}
DEFAULTS_ONLY = {"runs_dir": ((str,), "a path")}
EXPERIMENT_DEFAULTS: dict[str, Any] = {
    "description": "",
    "task": "add",
    "p": 113,
    "train_frac": 0.3,
    "seeds": [0],
    "split_seed": None,
    "steps": 10_000,
    "eval_every": 100,
    "checkpoint_every": 1000,
    "batch_size": 0,
    "layout": "nanda",
    "loss": "ce",
    "device": "auto",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass
class Config:
    """A parsed experiments file: the runs it expands to, in file order."""

    path: Path
    runs_dir: Path
    experiments: dict[str, list[dict[str, Any]]]

    @property
    def runs(self) -> list[dict[str, Any]]:
        return [r for runs in self.experiments.values() for r in runs]

    def select(self, only: list[str] | None) -> list[dict[str, Any]]:
        """Runs of the named experiments (all when ``only`` is empty); unknown names raise ConfigError."""
        if not only:
            return self.runs
        out = []
        for name in only:
            if name not in self.experiments:
                raise ConfigError(
                    _msg(self.path, None, None, f"no experiment '{name}'", name, self.experiments)
                )
            out.extend(self.experiments[name])
        return out


def _msg(path: Path, exp: str | None, key: str | None, text: str, word=None, choices=None) -> str:
    where = [str(path)]
    if exp is not None:
        where.append(f"experiment '{exp}'")
    if key is not None:
        where.append(f"key '{key}'")
    hint = ""
    if word is not None and choices:
        close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
        if close:
            hint = f" (did you mean '{close[0]}'?)"
    return ": ".join(where) + f": {text}{hint}"


class _Ctx:
    """Carries file + experiment so every check can raise a fully located one-line error."""

    def __init__(self, path: Path, exp: str | None) -> None:
        self.path, self.exp = path, exp

    def fail(self, key: str | None, text: str, word=None, choices=None) -> None:
        raise ConfigError(_msg(self.path, self.exp, key, text, word, choices))


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # bool is an int subclass; never accept it for a number
        return bool in types
    if float in types and isinstance(value, int):
        return True
    return isinstance(value, types)


def _check_keys(ctx: _Ctx, table: dict, allowed, prefix: str = "") -> None:
    for key in table:
        if key not in allowed:
            ctx.fail(prefix + key, "unknown key", key, allowed)


def _resolve_model(ctx: _Ctx, model: dict[str, Any], layout: str) -> dict[str, Any]:
    kind = model.get("kind", "transformer")
    if kind not in MODEL_DEFAULTS:
        ctx.fail(
            "model.kind",
            f"unknown model kind '{kind}' (choose {', '.join(MODEL_DEFAULTS)})",
            kind,
            MODEL_DEFAULTS,
        )
    defaults = MODEL_DEFAULTS[kind]
    _check_keys(ctx, {k: v for k, v in model.items() if k != "kind"}, defaults, "model.")
    out = {"kind": kind, **defaults, **{k: v for k, v in model.items() if k != "kind"}}
    for key, default in defaults.items():
        value = out[key]
        if default is None and value is None:
            continue
        ref = default if default is not None else value
        if isinstance(ref, bool) or isinstance(value, bool):
            if not isinstance(value, bool) and not (key in ("pos_embed",) and value is None):
                ctx.fail(f"model.{key}", f"must be true or false, got {value!r}")
        elif isinstance(ref, list):
            if (
                not isinstance(value, list)
                or not value
                or not all(_type_ok(v, _INT) and v > 0 for v in value)
            ):
                ctx.fail(f"model.{key}", f"must be a non-empty list of positive integers, got {value!r}")
        elif isinstance(ref, str) or key in ("biases", "init"):
            if not isinstance(value, str):
                ctx.fail(f"model.{key}", f"must be a string, got {value!r}")
            choices = MODEL_CHOICES.get(key)
            if isinstance(choices, dict):
                choices = choices.get(kind)
            if choices and value not in choices:
                ctx.fail(f"model.{key}", f"'{value}' is not one of {', '.join(choices)}", value, choices)
        elif isinstance(ref, (int, float)):
            types = _INT if isinstance(ref, int) and not isinstance(ref, float) else _NUM
            if not _type_ok(value, types):
                ctx.fail(f"model.{key}", f"must be a number, got {value!r}")
            if value < 0 or (value == 0 and key not in ("ridge",)):
                ctx.fail(f"model.{key}", f"must be positive, got {value!r}")
    if kind == "transformer":
        if out["pos_embed"] is None:
            out["pos_embed"] = layout == "nanda"
        if out["biases"] is None:
            out["biases"] = "mlp" if layout == "nanda" else "none"
        if out["init"] is None:
            out["init"] = layout
        if out["d_model"] % out["heads"]:
            ctx.fail("model.heads", f"d_model {out['d_model']} is not divisible by heads {out['heads']}")
    return out


def _resolve_optim(ctx: _Ctx, optim: dict[str, Any], layout: str) -> dict[str, Any]:
    _check_keys(ctx, optim, OPTIM_DEFAULTS, "optim.")
    defaults = dict(OPTIM_DEFAULTS)
    if layout == "furuta":
        defaults["warmup"] = 0  # Furuta et al.: no schedule
    out = {**defaults, **optim}
    if out["kind"] != "adamw":
        ctx.fail("optim.kind", f"unknown optimizer '{out['kind']}' (choose adamw)", out["kind"], ["adamw"])
    for key in ("lr", "weight_decay", "eps"):
        if not _type_ok(out[key], _NUM):
            ctx.fail(f"optim.{key}", f"must be a number, got {out[key]!r}")
    if out["lr"] <= 0:
        ctx.fail("optim.lr", f"must be positive, got {out['lr']}")
    if out["weight_decay"] < 0:
        ctx.fail("optim.weight_decay", f"must be >= 0, got {out['weight_decay']}")
    betas = out["betas"]
    if not (
        isinstance(betas, list) and len(betas) == 2 and all(_type_ok(b, _NUM) and 0 <= b < 1 for b in betas)
    ):
        ctx.fail("optim.betas", f"must be two numbers in [0, 1), got {betas!r}")
    if not _type_ok(out["warmup"], _INT) or out["warmup"] < 0:
        ctx.fail("optim.warmup", f"must be a non-negative integer, got {out['warmup']!r}")
    return out


def _resolve_analysis(ctx: _Ctx, analysis: dict[str, Any]) -> dict[str, Any]:
    _check_keys(ctx, analysis, ANALYSIS_DEFAULTS, "analysis.")
    out = {**ANALYSIS_DEFAULTS, **analysis}
    for key, default in ANALYSIS_DEFAULTS.items():
        if type(out[key]) is not type(default) and not (
            isinstance(default, float) and _type_ok(out[key], _NUM)
        ):
            ctx.fail(f"analysis.{key}", f"must be a {type(default).__name__}, got {out[key]!r}")
    if out["key_freq_rule"] not in ("neuron", "embed", "logit"):
        ctx.fail(
            "analysis.key_freq_rule",
            "must be neuron, embed or logit",
            out["key_freq_rule"],
            ["neuron", "embed", "logit"],
        )
    if out["discrete_log"] not in ("auto", "on", "off"):
        ctx.fail("analysis.discrete_log", "must be auto, on or off")
    if out["restricted_split"] not in ("all", "train", "test"):
        ctx.fail("analysis.restricted_split", "must be all, train or test")
    for key in ("key_freq_threshold", "key_freq_frac", "ffd_eta"):
        if not 0 < out[key] < 1:
            ctx.fail(f"analysis.{key}", f"must be a number in (0, 1), got {out[key]!r}")
    return out


def _validate_scalar(ctx: _Ctx, key: str, value: Any) -> None:
    types, what = EXPERIMENT_SCHEMA[key]
    if not _type_ok(value, types):
        ctx.fail(key, f"must be {what}, got {value!r}")
    if key == "p" and value < 2:
        ctx.fail(key, f"modulus must be >= 2, got {value}")
    if key == "train_frac" and not 0 < value < 1:
        ctx.fail(key, f"must be in (0, 1), got {value}")
    if key in ("steps", "eval_every", "checkpoint_every") and value <= 0:
        ctx.fail(key, f"must be a positive integer, got {value}")
    if key == "batch_size" and value < 0:
        ctx.fail(key, f"must be 0 (full batch) or positive, got {value}")
    if key == "layout" and value not in LAYOUTS:
        ctx.fail(key, f"'{value}' is not one of {', '.join(LAYOUTS)}", value, LAYOUTS)
    if key == "loss" and value not in ("ce", "mse"):
        ctx.fail(key, f"'{value}' is not one of ce, mse", value, ("ce", "mse"))
    if key == "device" and not _DEVICE_RE.match(value):
        ctx.fail(key, f"'{value}' is not auto, cpu, cuda or cuda:N")
    if key == "seeds":
        if not value:
            ctx.fail(key, "must list at least one seed")
        if not all(_type_ok(s, _INT) and s >= 0 for s in value):
            ctx.fail(key, f"seeds must be non-negative integers, got {value!r}")
        if len(set(value)) != len(value):
            ctx.fail(key, f"seed listed twice in {value!r}")
    if key == "task":
        tasks = value if isinstance(value, list) else [value]
        if not tasks:
            ctx.fail(key, "a task mixture must list at least one task")
        if not all(isinstance(t, str) for t in tasks):
            ctx.fail(key, f"tasks must be strings, got {value!r}")


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _set_path(d: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if rest:
        d[head] = dict(d.get(head) or {})
        _set_path(d[head], rest, value)
    else:
        d[head] = value


def _slug(value: Any) -> str:
    if isinstance(value, list):
        value = "+".join(str(v) for v in value)
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "_", str(value)).strip("_.") or "_"


def _package_version() -> str:
    from . import __version__

    return __version__


def resolve_run(ctx: _Ctx, name: str, raw: dict[str, Any], seed: int, run_name: str) -> dict[str, Any]:
    """One experiment table (defaults merged, sweep point applied) → the spec of one run."""
    for key, value in raw.items():
        if key in EXPERIMENT_SCHEMA and key not in ("model", "optim", "analysis", "sweep"):
            _validate_scalar(ctx, key, value)
    exp = {**EXPERIMENT_DEFAULTS, **raw}
    p = exp["p"]
    task_list = exp["task"] if isinstance(exp["task"], list) else [exp["task"]]
    tasks = []
    for t in task_list:
        try:
            tasks.append(Task.parse(t, p))
        except TaskError as e:
            ctx.fail("task", str(e))
    if len({t.expr for t in tasks}) != len(tasks):
        ctx.fail("task", f"the mixture lists the same operation twice: {task_list!r}")
    model = _resolve_model(ctx, dict(exp.get("model") or {}), exp["layout"])
    optim = _resolve_optim(ctx, dict(exp.get("optim") or {}), exp["layout"])
    analysis = _resolve_analysis(ctx, dict(exp.get("analysis") or {}))
    split_seed = exp["split_seed"] if exp["split_seed"] is not None else seed
    return {
        "experiment": name,
        "name": run_name,
        "description": exp["description"],
        "task": exp["task"],
        "tasks": [t.expr for t in tasks],
        "p": p,
        "train_frac": float(exp["train_frac"]),
        "seed": seed,
        "split_seed": split_seed,
        "init_seed": seed,
        "steps": exp["steps"],
        "eval_every": exp["eval_every"],
        "checkpoint_every": exp["checkpoint_every"],
        "batch_size": exp["batch_size"],
        "layout": exp["layout"],
        "loss": exp["loss"] if model["kind"] != "rfm" else "mse",
        "device": exp["device"],
        "model": model,
        "optim": optim,
        "analysis": analysis,
        "version": _package_version(),
    }


def expand_experiment(path: Path, name: str, table: Any, defaults: dict[str, Any]) -> list[dict[str, Any]]:
    ctx = _Ctx(path, name)
    if not _NAME_RE.match(name) or ".." in name:
        ctx.fail(None, "experiment names may hold letters, digits and _ . + = - (no '/', no '..')")
    if not isinstance(table, dict):
        ctx.fail(None, "must be a table")
    _check_keys(ctx, table, EXPERIMENT_SCHEMA)
    for key in ("model", "optim", "analysis", "sweep"):
        if key in table and not isinstance(table[key], dict):
            ctx.fail(key, f"must be a table, got {table[key]!r}")
    merged = {k: v for k, v in defaults.items() if k != "runs_dir"}
    for key in ("model", "optim", "analysis"):
        if key in merged or key in table:
            merged[key] = {**(merged.get(key) or {}), **(table.get(key) or {})}
    merged.update({k: v for k, v in table.items() if k not in ("model", "optim", "analysis", "sweep")})
    _validate_scalar(ctx, "seeds", merged.get("seeds", EXPERIMENT_DEFAULTS["seeds"]))

    sweep = _flatten(table.get("sweep") or {})
    for key, values in sweep.items():
        head = key.split(".")[0]
        if head not in EXPERIMENT_SCHEMA or head in ("sweep", "description"):
            ctx.fail(f"sweep.{key}", "cannot sweep an unknown key", head, EXPERIMENT_SCHEMA)
        if head == "seeds":
            ctx.fail("sweep.seeds", "list seeds in 'seeds', not in the sweep")
        if not isinstance(values, list) or not values:
            ctx.fail(f"sweep.{key}", f"must be a non-empty list of values, got {values!r}")

    runs, seen = [], set()
    keys = list(sweep)
    for point in itertools.product(*(sweep[k] for k in keys)):
        raw = {**merged, **{k: (dict(v) if isinstance(v, dict) else v) for k, v in merged.items()}}
        for key, value in zip(keys, point, strict=True):
            _set_path(raw, key, value)
        label = "-".join(f"{k.split('.')[-1]}={_slug(v)}" for k, v in zip(keys, point, strict=True))
        for seed in merged.get("seeds", EXPERIMENT_DEFAULTS["seeds"]):
            run_name = f"{label}-seed{seed}" if label else f"seed{seed}"
            if run_name in seen:
                ctx.fail("sweep", f"two runs would both be named '{run_name}'")
            seen.add(run_name)
            runs.append(resolve_run(ctx, name, raw, seed, run_name))
    return runs


def parse_config(text: str, path: Path) -> Config:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    ctx = _Ctx(path, None)
    _check_keys(ctx, doc, ("defaults", "experiments"))
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        ctx.fail("defaults", "must be a table")
    allowed = {**EXPERIMENT_SCHEMA, **DEFAULTS_ONLY}
    allowed.pop("sweep")
    _check_keys(ctx, defaults, allowed, "defaults.")
    runs_dir = defaults.get("runs_dir", "runs")
    if not isinstance(runs_dir, str) or not runs_dir:
        ctx.fail("defaults.runs_dir", "must be a non-empty path string")
    experiments = doc.get("experiments")
    if not isinstance(experiments, dict) or not experiments:
        ctx.fail("experiments", "no experiments: add an [experiments.NAME] table")
    expanded = {name: expand_experiment(path, name, t, defaults) for name, t in experiments.items()}
    return Config(path=path, runs_dir=(path.parent / runs_dir), experiments=expanded)


def load_config(path: Path | str) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    return parse_config(text, path)


def run_label(spec: dict[str, Any]) -> str:
    return f"{spec['experiment']}/{spec['name']}"
