"""experiments.toml → validated, fully resolved run specs.

The file is read with a size limit, parsed by :mod:`tomllib`, scanned once for what no key allows
(NaN, ±inf, nesting, oversized strings and lists), then each table is converted to its declared schema
(:mod:`.schema`). Checks that span keys (heads divide d_model, the model fits, every task keeps pairs to
train and test on, a sweep's size) follow, all before anything is allocated. A run spec is a plain dict
(it becomes ``spec.json`` verbatim), so workers, readers and the TUI share one representation without
importing this module's types.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec

from ..models.shapes import PARTS, expand_parts, mlp_shapes, n_params, transformer_shapes
from ..tasks import Task, TaskError, task_tokens
from ..transfer import array_shapes, mismatch, source_id
from . import limits
from .errors import ConfigError, Where, explain, shown
from .schema import (
    DEVICE_RE,
    FILE_KEYS,
    NAME_RE,
    SWEEPABLE,
    TABLE_KEYS,
    Defaults,
    Document,
    Experiment,
    Grokfast,
    GrokfastMa,
    GrokfastOff,
    Mlp,
    Model,
    Rfm,
    Settings,
    Slurm,
    Transformer,
)


def valid_device(device: str) -> bool:
    """True for ``auto``, ``cpu``, ``cuda`` and ``cuda:N`` (the whole string)."""
    return DEVICE_RE.fullmatch(device) is not None


@dataclass
class Config:
    """A parsed experiments file: the runs it expands to, in file order."""

    path: Path
    runs_dir: Path
    experiments: dict[str, list[dict[str, Any]]]
    #: [defaults].pack: runs per worker, or "auto" (the scheduler groups them; see grok_tui.packing).
    pack: int | str = 1
    #: [defaults].backend: "local" (this machine's scheduler) or "slurm" (batch jobs as [slurm] says).
    backend: str = "local"
    #: The [slurm] table, checked (its defaults where the file has none).
    slurm: Slurm = field(default_factory=Slurm)

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
                Where(self.path).fail(None, f"no experiment '{shown(name)}'", name, self.experiments)
            out.extend(self.experiments[name])
        return out

    def sources_of(self, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Runs of this file that ``specs`` load from (``init_from``), directly or through each other,
        and that ``specs`` leave out: what running ``specs`` also needs, sources first."""
        by_id = {run_label(s): s for s in self.runs}
        chosen = {run_label(s) for s in specs}
        out: list[dict[str, Any]] = []
        todo = list(specs)
        while todo:
            sid = source_id(todo.pop())
            if sid in by_id and sid not in chosen:
                chosen.add(sid)
                out.insert(0, by_id[sid])
                todo.append(by_id[sid])
        return out


def load_config(path: Path | str) -> Config:
    path = Path(path)
    return parse_config(_read(path), path)


def read_runs_dir(path: Path | str) -> str | None:
    """[defaults].runs_dir of an experiments file, or None where it has none or cannot be read.

    For commands that only want the runs directory: never raises, and reads with the same limits.
    """
    path = Path(path)
    try:
        defaults = _toml(_read(path), Where(path)).get("defaults")
    except ConfigError:
        return None
    runs_dir = defaults.get("runs_dir") if isinstance(defaults, dict) else None
    return runs_dir if isinstance(runs_dir, str) and runs_dir else None


def _read(path: Path) -> str:
    """The file's text, read with a size limit."""
    try:
        with path.open("rb") as f:
            data = f.read(limits.MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{shown(str(path), 200)}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{shown(str(path), 200)}: cannot read: {e.strerror or e}") from None
    if len(data) > limits.MAX_FILE_BYTES:
        Where(path).fail(None, f"larger than {limits.MAX_FILE_BYTES:,} bytes (a limit of this tool)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{shown(str(path), 200)}: cannot read: not UTF-8 text ({e.reason})") from None


def _toml(text: str, where: Where) -> dict[str, Any]:
    if len(text) > limits.MAX_FILE_BYTES:
        where.fail(None, f"larger than {limits.MAX_FILE_BYTES:,} bytes (a limit of this tool)")
    try:
        return tomllib.loads(text)
    except (RecursionError, MemoryError):
        where.fail(None, f"not valid TOML: nested too deeply (at most {limits.MAX_NESTING} levels)")
    except tomllib.TOMLDecodeError as e:
        where.fail(None, f"not valid TOML: {shown(str(e), 200)}")
    except ValueError:  # int() refusing a number of more than 4,300 digits
        where.fail(None, "not valid TOML: a number too long to read (TOML integers are 64-bit)")


def parse_config(text: str, path: Path) -> Config:
    where = Where(path)
    doc = _toml(text, where)
    scan(doc, path)
    try:
        msgspec.convert(doc, Document)
    except msgspec.ValidationError as e:
        raise explain(e, Document, doc, where) from None
    defaults = doc.get("defaults", {})
    try:
        msgspec.convert(defaults, Defaults)
    except msgspec.ValidationError as e:
        raise explain(e, Defaults, defaults, where, prefix="defaults.") from None
    try:
        slurm = msgspec.convert(doc.get("slurm", {}), Slurm)
    except msgspec.ValidationError as e:
        raise explain(e, Slurm, doc.get("slurm", {}), where, prefix="slurm.") from None
    experiments = doc.get("experiments")
    if not experiments:
        where.fail("experiments", "no experiments: add an [experiments.NAME] table")
    expanded: dict[str, list[dict[str, Any]]] = {}
    budget = limits.MAX_RUNS
    for name, table in experiments.items():
        expanded[name] = expand_experiment(path, name, table, defaults, budget)
        budget -= len(expanded[name])
    _check_sources(path, expanded)
    return Config(
        path=path,
        runs_dir=path.parent / defaults.get("runs_dir", "runs"),
        experiments=expanded,
        pack=defaults.get("pack", 1),
        backend=defaults.get("backend", "local"),
        slurm=slurm,
    )


def _check_sources(path: Path, expanded: dict[str, list[dict[str, Any]]]) -> None:
    """Each ``init_from`` source that this file defines exists, has a checkpoint at the step asked
    for and the shapes of the parts loaded from it; no runs load from each other in a ring. A source
    defined elsewhere (only in the runs directory) is checked when the run starts."""
    by_id = {run_label(s): s for runs in expanded.values() for s in runs}
    for spec in by_id.values():
        sid = source_id(spec)
        if sid is None or sid.partition("/")[0] not in expanded:
            continue
        where = Where(path, spec["experiment"])
        exp, _, name = sid.partition("/")
        src = by_id.get(sid)
        if src is None:
            names = [s["name"] for s in expanded[exp]]
            listed = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
            where.fail("init_from.run", f"experiment '{exp}' has no run '{shown(name)}' (its runs: {listed})")
        why = mismatch(array_shapes(src), array_shapes(spec) or {}, spec["init_from"]["load"], sid)
        if why:
            where.fail("init_from.run", why)
        step = spec["init_from"]["step"]
        if (
            step != "last"
            and step != src["steps"]
            and (step > src["steps"] or step % src["checkpoint_every"])
        ):
            where.fail(
                "init_from.step",
                f"run '{sid}' writes checkpoints every {src['checkpoint_every']} steps up to {src['steps']}; "
                f"{step} is not one of them",
            )
        seen, at = [run_label(spec)], sid
        while at in by_id:
            if at in seen:
                where.fail("init_from.run", f"runs load from each other in a ring: {' → '.join([*seen, at])}")
            seen.append(at)
            at = source_id(by_id[at])


def scan(doc: dict[str, Any], path: Path) -> None:
    """Refuse, wherever it is, what no key allows: NaN/±inf, integers beyond 64 bits (TOML's own rule),
    deep nesting, huge strings and lists.

    Iterative, so a hostile document cannot exhaust the stack here either.
    """
    todo: list[tuple[tuple[str, ...], Any, int]] = [((), doc, 0)]
    while todo:
        keys, value, depth = todo.pop()
        problem = None
        if depth > limits.MAX_NESTING:
            problem = f"nested deeper than {limits.MAX_NESTING} levels"
        elif isinstance(value, dict):
            for k, v in reversed(value.items()):
                if len(k) > limits.MAX_STRING:
                    problem = f"a key has at most {limits.MAX_STRING} characters"
                    break
                todo.append(((*keys, k), v, depth + 1))
        elif isinstance(value, list):
            if len(value) > limits.MAX_LIST:
                problem = f"a list has at most {limits.MAX_LIST:,} entries (got {len(value):,})"
            todo.extend((keys, v, depth + 1) for v in reversed(value))
        elif isinstance(value, str) and len(value) > limits.MAX_STRING:
            problem = f"a string has at most {limits.MAX_STRING} characters (got {len(value):,})"
        elif isinstance(value, float) and not math.isfinite(value):
            problem = f"{value} is not a finite number"
        elif type(value) is int and not -(2**63) <= value < 2**63:
            problem = f"{shown(value)} is beyond the 64-bit integers TOML allows"
        if problem is not None:
            if len(keys) >= 2 and keys[0] == "experiments":
                Where(path, keys[1]).fail(".".join(keys[2:]) or None, problem)
            Where(path).fail(".".join(keys) or None, problem)


# --------------------------------------------------------------------------- experiments → runs


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
        value = "+".join(str(v) for v in value) or "none"
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "_", str(value)).strip("_.") or "_"


def _label(key: str, value: Any) -> str:
    """``key=value`` in a sweep run's name: the key's last part, but ``from`` for ``init_from.run`` (whose
    ``/seed{seed}``, the same for every point, is left out)."""
    if key == "init_from.run" and isinstance(value, str):
        return f"from={_slug(value.removesuffix('/seed{seed}'))}"
    return f"{key.split('.')[-1]}={_slug(value)}"


def _package_version() -> str:
    from .. import __version__

    return __version__


def _check_name(where: Where, name: str) -> None:
    if len(name) > limits.MAX_NAME:
        where.fail(None, f"a name has at most {limits.MAX_NAME} characters (got {len(name):,})")
    if not NAME_RE.fullmatch(name) or ".." in name:
        where.fail(None, "experiment names may hold letters, digits and _ . + = - (no '/', no '..')")


#: ``init_from.run``: EXPERIMENT/NAME, where NAME may hold "{seed}".
_RUN_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*/[A-Za-z0-9{][A-Za-z0-9_.+={}-]*")

#: Tables whose ``kind`` decides which other keys they hold.
KINDS = ("model", "grokfast")


def _merge(defaults: dict[str, Any], table: dict[str, Any]) -> dict[str, Any]:
    """[defaults] under the experiment's keys; the TABLE_KEYS tables merge key by key, except that an
    experiment naming another ``kind`` of model or Grokfast filter than the one [defaults] names replaces
    that table (the default's keys belong to the other kind). A [defaults] table that names no kind merges
    into whichever kind the experiment has, its keys checked against that kind."""
    merged = {k: v for k, v in defaults.items() if k not in FILE_KEYS}
    for key in TABLE_KEYS:
        if key in merged or key in table:
            base, own = merged.get(key), table.get(key)
            if key in KINDS and isinstance(base, dict) and isinstance(own, dict):
                base = {} if "kind" in own and "kind" in base and own["kind"] != base["kind"] else base
            merged[key] = {**(base or {}), **(own or {})}
    merged.update({k: v for k, v in table.items() if k not in (*TABLE_KEYS, "sweep")})
    return merged


def _check_sweep(where: Where, sweep: dict[str, Any]) -> None:
    for key, values in sweep.items():
        head, _, rest = key.partition(".")
        if head == "seeds":
            where.fail("sweep.seeds", "list seeds in 'seeds', not in the sweep")
        if head not in SWEEPABLE:
            where.unknown(f"sweep.{key}", head, SWEEPABLE)
        if rest and (head not in TABLE_KEYS or "." in rest):
            where.fail(f"sweep.{key}", f"a sweep key is a key, or TABLE.KEY for {', '.join(TABLE_KEYS)}")
        if not isinstance(values, list) or not values:
            where.fail(f"sweep.{key}", f"must be a non-empty list of values, got {shown(values)}")


def expand_experiment(
    path: Path, name: str, table: Any, defaults: dict[str, Any], budget: int = limits.MAX_RUNS
) -> list[dict[str, Any]]:
    """One [experiments.NAME] table → its runs: the sweep's cartesian product × the seeds."""
    where = Where(path, name)
    _check_name(where, name)
    if not isinstance(table, dict):
        where.fail(None, f"must be a table, got {shown(table)}")
    try:
        msgspec.convert(table, Experiment)
    except msgspec.ValidationError as e:
        raise explain(e, Experiment, table, where) from None
    merged = _merge(defaults, table)
    seeds = merged.get("seeds", [0])
    if len(set(seeds)) != len(seeds):
        where.fail("seeds", f"seed listed twice in {shown(seeds)}")
    sweep = _flatten(table.get("sweep") or {})
    _check_sweep(where, sweep)
    n_runs = math.prod(len(v) for v in sweep.values()) * len(seeds)
    if n_runs > budget:
        where.fail(
            "sweep" if sweep else "seeds",
            f"expands to {n_runs:,} runs; a file holds at most {limits.MAX_RUNS:,} (a limit of this tool)",
        )
    runs, seen = [], set()
    keys = list(sweep)
    for point in itertools.product(*(sweep[k] for k in keys)):
        raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in merged.items()}
        for key, value in zip(keys, point, strict=True):
            _set_path(raw, key, value)
        label = "-".join(_label(k, v) for k, v in zip(keys, point, strict=True))
        resolved = _Point(where, name, raw, keys)
        names = [f"{label}-seed{seed}" if label else f"seed{seed}" for seed in seeds]
        for run_name in names:
            if len(run_name) > limits.MAX_NAME:
                where.fail(
                    "sweep", f"run name '{shown(run_name)}' is longer than {limits.MAX_NAME} characters"
                )
            if run_name in seen:
                where.fail("sweep", f"two runs would both be named '{shown(run_name)}'")
            seen.add(run_name)
        runs.extend(resolved.spec(seed, run_name) for seed, run_name in zip(seeds, names, strict=True))
    return runs


def _fixed_features(model: Model | None) -> bool:
    """An RFM whose M is given (``features`` other than "agop"): no AGOP update, one kernel solve."""
    return isinstance(model, Rfm) and model.features != "agop"


def features_problem(
    model: Model | None, steps: int | None, tasks: list[str] | None, p: int | None
) -> tuple[str, str] | None:
    """(key, what is wrong) where ``steps`` or the tasks cannot go with the model's features, else None.

    steps = 0 is the single solve of an RFM with fixed features, which have nothing to iterate; random
    circulant features exist for add, sub, mul and div only (Mallinar et al. Fig. 4). Unknown values
    (None, in a spec.json that lacks them) are not checked.
    """
    fixed = _fixed_features(model)
    if fixed and steps not in (None, 0):
        fixed_m = f'an RFM with features = "{model.features}" keeps M fixed'
        return "steps", f"{fixed_m}: one kernel solve, steps = 0 (got {steps})"
    if not fixed and steps == 0:
        return "steps", 'must be at least 1 (0 is for an RFM with features = "random_circulant")'
    if fixed and model.features == "random_circulant" and tasks is not None and p is not None:
        from ..models import circulant  # numpy: only for a file that asks for it

        problem = circulant.unsupported(tasks, p)
        if problem is not None:
            return "model.features", problem
    return None


@lru_cache(maxsize=1024)
def _facts(expr: str, p: int) -> tuple[int, bytes]:
    """Pairs the task keeps at p, and a digest of its label table (equal digests: one function).

    Cached small, so a sweep of thousands of points builds each table once and holds none.
    """
    table = Task.parse(expr, p).table
    return int((table >= 0).sum()), hashlib.sha256(table.tobytes()).digest()


class _Point:
    """One sweep point: its settings checked against the schema and against each other."""

    def __init__(self, where: Where, name: str, raw: dict[str, Any], sweep_keys: list[str]) -> None:
        self.where, self.name, self.raw, self.sweep_keys = where, name, raw, sweep_keys

        def rename(key: str) -> str:
            hit = any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in sweep_keys)
            return f"sweep.{key}" if hit else key

        self.rename = rename
        try:
            s = msgspec.convert(raw, Settings)
        except msgspec.ValidationError as e:
            raise explain(e, Settings, raw, where, rename=rename) from None
        model_raw = {"kind": "transformer", **s.model}
        try:
            model = msgspec.convert(model_raw, Model)
        except msgspec.ValidationError as e:
            raise explain(e, Model, model_raw, where, prefix="model.", rename=rename) from None
        if isinstance(model, Transformer):
            model = msgspec.structs.replace(
                model,
                pos_embed=s.layout == "nanda" if model.pos_embed is None else model.pos_embed,
                biases=("mlp" if s.layout == "nanda" else "none") if model.biases is None else model.biases,
                init=s.layout if model.init is None else model.init,
            )
            if model.d_model % model.heads:
                self.fail("model.heads", f"d_model {model.d_model} is not divisible by heads {model.heads}")
        grokfast_raw = {"kind": "none", **s.grokfast}
        try:
            self.grokfast = msgspec.convert(grokfast_raw, Grokfast)
        except msgspec.ValidationError as e:
            raise explain(e, Grokfast, grokfast_raw, where, prefix="grokfast.", rename=rename) from None
        if _fixed_features(model) and "steps" not in raw:
            s = msgspec.structs.replace(s, steps=0)  # fixed features: one solve unless steps is set
        self.s, self.model = s, model
        self.tasks = self._tasks()
        if bad := features_problem(model, s.steps, [t.expr for t in self.tasks], s.p):
            self.fail(*bad)
        self._check_sizes()
        self._check_split()
        self._check_init_from()

    def fail(self, key: str, text: str) -> None:
        self.where.fail(self.rename(key), text)

    def _tasks(self) -> list[Task]:
        s = self.s
        texts = s.task if isinstance(s.task, list) else [s.task]
        tasks = []
        for text in texts:
            try:
                tasks.append(Task.parse(text, s.p))
            except TaskError as e:
                self.fail("task", str(e))
        for t in tasks:
            if self._kept(t) == 0:
                self.fail("task", f"task '{shown(t.name)}' drops every pair at p = {s.p} (its divisor is 0)")
        if len(tasks) > 1:  # the same function twice, however it is written ('add', 'a+b', 'b + a')
            seen: dict[bytes, Task] = {}
            for t in tasks:
                first = seen.setdefault(_facts(t.expr, s.p)[1], t)
                if first is not t:
                    self.fail(
                        "task",
                        f"the mixture lists the same operation twice: '{shown(first.name)}' and "
                        f"'{shown(t.name)}' are one function mod {s.p}",
                    )
        return tasks

    def _kept(self, task: Task) -> int:
        return _facts(task.expr, self.s.p)[0] if task.divides else self.s.p**2

    def _check_sizes(self) -> None:
        s, m, p = self.s, self.model, self.s.p
        rows = sum(self._kept(t) for t in self.tasks)
        if isinstance(m, Rfm):
            self._check_gradient_free()
            entries = rows * math.ceil(s.train_frac * rows)
            if entries > limits.MAX_KERNEL:
                self.fail(
                    "p",
                    f"an RFM at p = {p} with train_frac {s.train_frac} has a kernel of {entries:,} entries; "
                    f"at most {limits.MAX_KERNEL:,} (a limit of this tool)",
                )
            return
        vocab = task_tokens(self.tasks, p, s.layout)[1]
        n_out = vocab if isinstance(m, Transformer) else p
        if rows * n_out > limits.MAX_LOGITS:
            self.fail(
                "p",
                f"evaluating every pair at p = {p} takes {rows * n_out:,} logits; "
                f"at most {limits.MAX_LOGITS:,} (a limit of this tool)",
            )
        n = _n_params(m, p, len(self.tasks), vocab, n_out)
        if n > limits.MAX_PARAMS:
            self.fail("model", f"has {n:,} parameters; at most {limits.MAX_PARAMS:,} (a limit of this tool)")
        g = self.grokfast
        if isinstance(g, GrokfastMa) and g.window * n > limits.MAX_GROKFAST_FLOATS:
            self.fail(
                "grokfast.window",
                f"{g.window} gradients of {n:,} parameters are {g.window * n:,} floats to keep; "
                f"at most {limits.MAX_GROKFAST_FLOATS:,} (a limit of this tool)",
            )

    def _check_gradient_free(self) -> None:
        """An RFM has no gradient to filter or project and no softmax: those options cannot apply."""
        s = self.s
        if not isinstance(self.grokfast, GrokfastOff):
            self.fail("grokfast.kind", 'an RFM has no gradient to filter (set kind = "none")')
        if s.optim.kind != "adamw":
            self.fail("optim.kind", f"'{s.optim.kind}' applies to gradient-trained models, not an RFM")
        if s.loss == "stablemax":
            self.fail("loss", "'stablemax' applies to gradient-trained models; an RFM fits the MSE")

    def _check_split(self) -> None:
        """Both sides of the split hold pairs of every task, whatever the seed.

        A task that drops pairs (a divisor 0 mod p) is safe when each side has more pairs than it drops;
        a split that close to empty trains or tests on almost nothing anyway.
        """
        s, n_pairs = self.s, self.s.p**2
        n_train = int(s.train_frac * n_pairs)
        n_test = n_pairs - n_train
        at = f"{s.train_frac} of the {n_pairs} pairs at p = {s.p}"
        if n_train == 0:
            self.fail("train_frac", f"{at} trains on no pair")
        if n_test == 0:
            self.fail("train_frac", f"{at} leaves no pair to test")
        for t in self.tasks:
            dropped = n_pairs - self._kept(t)
            if dropped and min(n_train, n_test) <= dropped:
                side = "trains" if n_train <= dropped else "tests"
                self.fail(
                    "train_frac",
                    f"{at} {side} on {min(n_train, n_test)}, no more than the {dropped} that task "
                    f"'{shown(t.name)}' drops: the split may hold none of its pairs",
                )

    def _check_init_from(self) -> None:
        """Loading and freezing apply to a transformer's parts, and loading needs a source run."""
        f, m = self.s.init_from, self.model
        if not (f.run or f.load or f.freeze):
            return
        load_swept = "init_from.load" in self.sweep_keys
        if not isinstance(m, Transformer):
            kind = "an MLP" if isinstance(m, Mlp) else "an RFM"
            self.fail("init_from", f"loads and freezes parts of a transformer; this model is {kind}")
        if f.load and not f.run:
            self.fail("init_from.run", "names no run to load from (EXPERIMENT/NAME)")
        if f.run and not f.load and not load_swept:
            parts = ", ".join(PARTS)
            self.fail("init_from.load", f"names no part to load from run '{shown(f.run)}' ({parts} or all)")
        if f.freeze is True and not f.load and not load_swept:
            self.fail("init_from.freeze", "true freezes the loaded parts, and load names none")
        if f.run and not _RUN_REF.fullmatch(f.run):
            self.fail(
                "init_from.run",
                f"must be EXPERIMENT/NAME ('{{seed}}': this run's seed), got '{shown(f.run)}'",
            )
        named = set(f.load) | (set(f.freeze) if isinstance(f.freeze, list) else set())
        if "pos" in named and not m.pos_embed:
            self.fail("init_from", "names part 'pos', and this model has no position embedding")

    def _init_from(self, seed: int, run_name: str) -> dict[str, Any] | None:
        """The resolved init_from of one run: parts spelled out, "{seed}" filled in; None when it loads
        and freezes nothing."""
        f = self.s.init_from
        if not isinstance(self.model, Transformer):
            return None  # _check_init_from refused any init_from for these
        load = expand_parts(list(f.load))
        freeze = load if f.freeze is True else expand_parts(list(f.freeze) if f.freeze else [])
        if not self.model.pos_embed:
            load, freeze = [p for p in load if p != "pos"], [p for p in freeze if p != "pos"]
        if not (load or freeze):
            return None
        run = f.run.replace("{seed}", str(seed)) if load else ""
        if run == f"{self.name}/{run_name}":
            self.fail("init_from.run", f"run '{shown(run)}' would start from itself")
        return {"run": run, "step": f.step, "load": load, "freeze": freeze}

    def spec(self, seed: int, run_name: str) -> dict[str, Any]:
        s = self.s
        split_seed = s.split_seed if s.split_seed is not None else seed
        optim = msgspec.to_builtins(s.optim)
        if optim["warmup"] is None:
            optim["warmup"] = 0 if s.layout == "furuta" else 10  # Furuta et al.: no schedule
        return {
            "experiment": self.name,
            "name": run_name,
            "description": s.description,
            "task": self.raw.get("task", s.task),
            "tasks": [t.expr for t in self.tasks],
            "p": s.p,
            "train_frac": float(s.train_frac),
            "seed": seed,
            "split_seed": split_seed,
            "init_seed": seed,
            "steps": s.steps,
            "eval_every": s.eval_every,
            "checkpoint_every": s.checkpoint_every,
            "batch_size": s.batch_size,
            "layout": s.layout,
            "loss": s.loss if not isinstance(self.model, Rfm) else "mse",
            "device": s.device,
            "on_nan": s.on_nan,
            "tf32": s.tf32,
            "model": msgspec.to_builtins(self.model),
            "grokfast": msgspec.to_builtins(self.grokfast),
            "optim": optim,
            "analysis": msgspec.to_builtins(s.analysis),
            "init_from": self._init_from(seed, run_name),
            "version": _package_version(),
        }


def _n_params(m: Transformer | Mlp, p: int, n_tasks: int, vocab: int, n_out: int) -> int:
    """Parameters of the network the spec builds (an unresolved pos_embed/biases counts as present)."""
    if isinstance(m, Transformer):
        biases = m.biases != "none"
        shapes = transformer_shapes(
            vocab, n_out, m.d_model, m.d_mlp, m.layers, m.pos_embed is not False, biases
        )
    else:
        shapes = mlp_shapes(p, n_tasks, m.hidden, n_out, m.bias)
    return n_params(shapes)


#: Spec keys added since the first release, with the value a spec.json written before them means: a
#: reader comparing an old spec with a new one (``grok run`` on an existing run) fills them in first.
ADDED_SPEC_KEYS: dict[str, Any] = {
    "on_nan": "fail",
    "grokfast": {"kind": "none"},
    "init_from": None,
    "tf32": False,
}
#: The same for keys of one model kind's table (an RFM before ``features`` iterated the AGOP).
ADDED_MODEL_KEYS: dict[str, dict[str, Any]] = {"rfm": {"features": "agop"}}


def with_added_keys(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` with every key added since it was written set to what its absence meant."""
    out = {**ADDED_SPEC_KEYS, **spec}
    model = out.get("model")
    if isinstance(model, dict) and isinstance(model.get("kind"), str):
        out["model"] = {**ADDED_MODEL_KEYS.get(model["kind"], {}), **model}
    return out


def run_label(spec: dict[str, Any]) -> str:
    return f"{spec['experiment']}/{spec['name']}"


__all__ = [
    "ADDED_MODEL_KEYS",
    "ADDED_SPEC_KEYS",
    "Config",
    "ConfigError",
    "load_config",
    "parse_config",
    "read_runs_dir",
    "run_label",
    "valid_device",
    "with_added_keys",
]
