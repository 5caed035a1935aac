"""A spec.json checked against the experiments file's own schema: what a reader or the worker may rely on.

A run directory's spec.json was written by :mod:`.loader`, but it is a file on disk: it may be an older
version's, or valid JSON with wrong values in it. Every key present is checked with the schema the file
was checked with (:mod:`.schema`), so a value the experiments file could never have held is one line
naming spec.json and the key; ``required`` names the keys the caller cannot do without.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from .errors import ConfigError, Where, explain, shown
from .limits import MAX_SEED
from .loader import ADDED_MODEL_KEYS, features_problem
from .schema import TABLE_KEYS, Analysis, Grokfast, InitFrom, Model, Optim, Settings

#: Top-level keys of a spec that an experiments file sets (the rest are the loader's own).
SETTINGS = tuple(k for k in Settings.__struct_fields__ if k not in (*TABLE_KEYS, "seeds"))
#: Keys the worker needs to train (a mixture's ``tasks`` are resolved expressions).
TO_TRAIN = ("tasks", "p", "train_frac", "split_seed", "init_seed", "steps", "eval_every", "checkpoint_every",
            "batch_size", "layout", "loss", "model")  # fmt: skip


def check_resolved(spec: Any, path: Path | str, required: Iterable[str] = ("p",)) -> dict[str, Any]:
    """``spec`` when every key it holds has a value the experiments file allows and ``required`` are
    present, else ConfigError: one line naming ``path`` and the key."""
    where = Where(Path(path))

    def convert(value: Any, typ: Any, prefix: str = "") -> Any:
        try:
            return msgspec.convert(value, typ)
        except msgspec.ValidationError as e:
            raise explain(e, typ, value, where, prefix=prefix) from None

    if not isinstance(spec, dict):
        where.fail(None, f"not a JSON object, got {shown(spec)}")
    for key in required:
        if key not in spec:
            where.fail(key, "missing")
    convert({k: spec[k] for k in SETTINGS if k in spec}, Settings)
    for key in ("seed", "init_seed"):
        if key in spec:
            _seed(where, key, spec[key])
    tasks = spec.get("tasks")
    if tasks is not None and not (
        isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks)
    ):
        where.fail("tasks", f"must be a non-empty list of operations, got {shown(tasks)}")
    model = None
    if spec.get("model") is not None:
        model = convert(spec["model"], Model, "model.")
        added = ADDED_MODEL_KEYS.get(spec["model"].get("kind"), {})  # absent from older spec.json files
        for key in model.__struct_fields__:  # the loader writes every key, resolved: a missing one is damage
            if spec["model"].get(key) is None and key not in added:
                where.fail(f"model.{key}", "missing")
        if hasattr(model, "heads") and model.d_model % model.heads:
            where.fail("model.heads", f"must divide d_model = {model.d_model}, got {model.heads}")
    if bad := features_problem(model, spec.get("steps"), tasks, spec.get("p")):
        where.fail(*bad)
    if spec.get("optim") is not None:
        convert(spec["optim"], Optim, "optim.")
    convert(spec.get("analysis") or {}, Analysis, "analysis.")
    if spec.get("grokfast") is not None:
        convert(spec["grokfast"], Grokfast, "grokfast.")
    if spec.get("init_from") is not None:
        init = convert(spec["init_from"], InitFrom, "init_from.")
        if not isinstance(init.freeze, list) or "all" in init.load + init.freeze:
            where.fail("init_from", "must list the parts it loads and freezes, as grok writes them")
    return spec


def _seed(where: Where, key: str, value: Any) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED):
        where.fail(key, f"must be an integer in [0, {MAX_SEED}], got {shown(value)}")


__all__ = ["TO_TRAIN", "ConfigError", "check_resolved"]
