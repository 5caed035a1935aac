"""Reading a checkpoint: ``checkpoints/step_N.npz`` (+ the run's spec.json and its metrics row at that
step) becomes one :class:`CheckpointView`, the thing ``grok inspect`` prints and the TUI inspector draws.

numpy only. What the checkpoint lacks (an older or imported file, an analysis that failed in the
worker) is recomputed from its weights with the worker's own functions (``analysis.live``), the forward
pass over every (a, b) pair included (``analysis.forward``). The view says which key-frequency rule
gave the frequencies, and for every number whether the worker stored it or it was recomputed, and why
not the run's own rule when that one could not apply. The Fourier ablations (``analysis.ablation``)
use the view's own key frequencies, stored or recomputed alike. A damaged file (truncated, garbled, arrays
missing or of the wrong shape, non-finite weights, a bad ``meta_json``, a spec.json of the wrong types)
becomes one line naming the file (``CheckpointView.error``), never an exception.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import ablation as abl
from .analysis import forward as fwd
from .analysis import live
from .analysis.measures import Spectrum, sum_sq_weights
from .models.shapes import spec_shapes
from .runs import SPEC, RunDir, finite

STORED, RECOMPUTED = "stored", "recomputed"

#: The scalars of a checkpoint, in the order both front-ends list them.
MEASURES = (
    "train_loss",
    "test_loss",
    "train_acc",
    "test_acc",
    "restricted_loss",
    "restricted_acc",
    "excluded_loss",
    "excluded_acc",
    "gini_embed",
    "gini_logit",
    "ffd_embed",
    "fcr_embed",
    "ffd_logit",
    "fcr_logit",
    "weight_norm",
)
#: The same measures in the discrete-log basis (mul/div): listed only where they exist.
DLOG_MEASURES = (
    "gini_embed_dlog",
    "ffd_embed_dlog",
    "fcr_embed_dlog",
    "gini_logit_dlog",
    "ffd_logit_dlog",
    "fcr_logit_dlog",
)
PROGRESS = ("restricted_loss", "restricted_acc", "excluded_loss", "excluded_acc")
_WEIGHT_ONLY = tuple(k for k in MEASURES + DLOG_MEASURES if k.startswith(("gini_", "ffd_", "fcr_")))

_STEP_RE = re.compile(r"^step_(\d+)$")
_TASK_KEY = re.compile(r"^key_freqs_task(\d+)$")


class CheckpointError(ValueError):
    """A damaged checkpoint or spec.json: ``str(err)`` is the one line a user sees, naming the file."""


# --------------------------------------------------------------------------- the file


def _header_check(f: Any, key: str, size: int) -> None:
    """Refuse a member whose header claims more data than the zip holds, or pickled objects, before
    numpy allocates anything for it."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        return  # read_array checks what it knows
    if dtype.hasobject:
        raise ValueError(f"array '{key}' holds Python objects (never unpickled)")
    if math.prod(shape) * dtype.itemsize > size:
        raise ValueError(f"array '{key}' claims {shape} of {dtype}, more than the {size} bytes stored")


def load_checkpoint(path: Path | str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a checkpoint npz, numpy only and never unpickling. Raises CheckpointError
    naming the file when it is not a readable npz or its ``meta_json`` is not a JSON object."""
    path = Path(path)
    try:
        arrays: dict[str, np.ndarray] = {}
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"unexpected member '{info.filename}'")
                key = info.filename[: -len(".npy")]
                with zf.open(info) as f:
                    _header_check(f, key, info.file_size)
                with zf.open(info) as f:
                    arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        why = f"{e.__class__.__name__}: {e}"
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({why})") from None
    except Exception as e:  # whatever else a hostile zip raises
        why = e.__class__.__name__
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({why})") from None
    raw = arrays.pop("meta_json", None)
    if raw is None:
        return arrays, {}
    try:
        if raw.ndim != 0 or raw.dtype.kind != "U":
            raise ValueError("not a string")
        meta = json.loads(str(raw))
    except ValueError:
        raise CheckpointError(f"{path}: meta_json is not JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: meta_json is not a JSON object")
    return arrays, meta


# --------------------------------------------------------------------------- spec.json


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_spec(spec: Any, where: Path | str) -> dict[str, Any]:
    """``spec`` if it holds what the view reads with the types the experiments file allows, else
    CheckpointError naming ``where`` (spec.json) and the key. Only ``p`` is required; without the rest
    less is recomputed."""
    from .config import ConfigError, check_resolved

    try:
        return check_resolved(spec, where)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


# --------------------------------------------------------------------------- arrays vs spec


def _analysis_shapes(p: int) -> dict[str, tuple[str, tuple[int, ...] | None]]:
    """Stored analysis arrays the view reads: name → (dtype kind, shape; None = any 1-D)."""
    half, half_log = p // 2, (p - 1) // 2
    out: dict[str, tuple[str, tuple[int, ...] | None]] = {
        "key_freqs": ("i", None),
        "key_freq_rule": ("U", ()),
        "key_freq_note": ("U", ()),
        "structure": ("U", ()),
        "neuron_freq": ("i", None),
        "neuron_frac": ("f", None),
    }
    for name in ("embed", "logit"):
        for suffix, n in (("", half), ("_dlog", half_log)):
            out[f"{name}_cos{suffix}"] = ("f", (n,))
            out[f"{name}_sin{suffix}"] = ("f", (n,))
            out[f"{name}_const{suffix}"] = ("f", ())
    return out


def _check_arrays(
    path: Path, arrays: dict[str, np.ndarray], spec: dict[str, Any], spec_path: Path | str
) -> None:
    """The weights are the ones the spec's model has; what the view reads of the analysis is of the
    right kind and shape. Raises CheckpointError naming the file and the array."""
    p = spec["p"]
    # p bounds everything sized p² later: it must agree with the weights before anything else runs
    rows = [(k, n) for k, n in (("W_E", p + 1), ("mlp.0.W", 2 * p), ("M", 2 * p)) if k in arrays]
    if not rows:
        raise CheckpointError(f"{path}: no weights (W_E, mlp.0.W or M) in this checkpoint")
    for key, need in rows:
        a = arrays[key]
        if a.ndim != 2 or a.shape[0] < need:
            raise CheckpointError(
                f"{path}: array '{key}' has shape {a.shape}, too small for p = {p} ({spec_path})"
            )
    for key, a in arrays.items():
        if a.dtype.kind not in "biufU":
            raise CheckpointError(f"{path}: array '{key}' has dtype {a.dtype}")
    model = spec.get("model") or {}
    if model.get("kind") == "transformer" and model["layers"] != fwd.n_layers(arrays):
        raise CheckpointError(
            f"{path}: {fwd.n_layers(arrays)} blocks, the model of {spec_path} has {model['layers']}"
        )
    try:
        expected = spec_shapes(spec)
    except (ValueError, RecursionError) as e:  # a task that does not parse (TaskError)
        raise CheckpointError(f"{spec_path}: key 'tasks': {e}") from None
    for key, shape in (expected or {}).items():
        if key not in arrays:
            raise CheckpointError(f"{path}: array '{key}' is missing (the model of {spec_path} has it)")
        if arrays[key].shape != shape or arrays[key].dtype.kind != "f":
            got = f"{arrays[key].dtype} {arrays[key].shape}"
            raise CheckpointError(
                f"{path}: array '{key}' is {got}, the model of {spec_path} needs float {shape}"
            )
    shapes = _analysis_shapes(p)
    for key, a in arrays.items():
        if not key.startswith("analysis/"):
            continue
        name = key[len("analysis/") :]
        m = re.match(r"^(key_freqs|key_freq_rule|key_freq_note)_task\d+$", name)
        kind, shape = shapes.get(m.group(1) if m else name, (None, None))
        if kind is None:
            continue  # not read here
        if a.dtype.kind != kind and not (kind == "i" and a.dtype.kind == "u" or kind == "f" and a.size == 0):
            raise CheckpointError(f"{path}: array '{key}' has dtype {a.dtype}")
        if (shape is None and a.ndim != 1) or (shape is not None and a.shape != shape):
            raise CheckpointError(f"{path}: array '{key}' has shape {a.shape}")
        if name.startswith("key_freqs") and a.size and (a.min() < 1 or a.max() > p // 2):
            raise CheckpointError(f"{path}: array '{key}' holds frequencies outside 1..{p // 2}")


def _non_finite(arrays: dict[str, np.ndarray]) -> list[str]:
    return [k for k, a in arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]


# --------------------------------------------------------------------------- the view


@dataclass
class TaskKeyFreqs:
    """Key frequencies of one task (the run's only task, or one task of a mixture)."""

    task: str | None
    freqs: list[int]
    rule: str  # the rule that gave them: neuron | embed | logit | none | unrecorded
    source: str  # stored | recomputed
    note: str = ""  # why not the run's own rule, when another one gave them

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "key_freqs": self.freqs, "rule": self.rule, "source": self.source,
                "note": self.note or None}  # fmt: skip


@dataclass
class CheckpointView:
    """Everything both front-ends show for one checkpoint, and where each number came from."""

    path: Path
    step: int
    p: int | None = None
    tasks: list[str] = field(default_factory=list)
    run_rule: str | None = None  # the run's key_freq_rule (spec.json)
    spectra: dict[str, Spectrum] = field(default_factory=dict)  # embed (W_E), logit (W_L)
    spectrum_source: dict[str, str] = field(default_factory=dict)
    per_task: list[TaskKeyFreqs] = field(default_factory=list)
    neurons_per_freq: dict[int, int] = field(default_factory=dict)  # neuron rule; -1: unexplained
    clusters: abl.Clusters | None = None  # the neuron rule's clusters, with their variance shares
    ablation: abl.Ablation | None = None  # Fourier ablations (one task with a Fourier grid)
    ablation_source: str | None = None  # stored | recomputed
    ablation_note: str | None = None  # why there is no ablation (no grid, a mixture, not recomputable)
    gini_constant: bool | None = None  # the run's analysis.gini_constant: Gini with the constant or not
    structure: str | None = None
    measures: dict[str, float | None] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # measure → stored | recomputed
    notes: list[str] = field(default_factory=list)  # what could not be recomputed, and why
    error: str | None = None  # the one line for a damaged input
    readable: bool = False  # the weights were read (with an error: shown, but not to be trusted)

    @property
    def embed(self) -> Spectrum | None:
        return self.spectra.get("embed")

    @property
    def logit(self) -> Spectrum | None:
        return self.spectra.get("logit")

    @property
    def key_freqs(self) -> list[int]:
        """The run's key frequencies: a mixture's is the union of its tasks'."""
        return sorted({k for t in self.per_task for k in t.freqs})

    @property
    def key_freq_rule(self) -> str:
        rules = list(dict.fromkeys(t.rule for t in self.per_task))
        return ", ".join(rules) if rules else "none"

    @property
    def key_freq_source(self) -> str | None:
        srcs = list(dict.fromkeys(t.source for t in self.per_task))
        return ", ".join(srcs) if srcs else None

    def key_freq_line(self) -> str:
        """'4 11 17 (neuron rule, stored)'; a mixture: the union, then each task's."""
        if not self.per_task:
            return "none"

        def one(t: TaskKeyFreqs) -> str:
            ks = " ".join(map(str, t.freqs)) or "none"
            return f"{ks} ({t.rule} rule, {t.source})"

        if len(self.per_task) == 1:
            return one(self.per_task[0])
        union = " ".join(map(str, self.key_freqs)) or "none"
        return f"{union} (union) · " + " · ".join(f"{t.task}: {one(t)}" for t in self.per_task)

    def rule_notes(self) -> list[str]:
        """One line per task whose frequencies come from another rule than the run's, saying why."""
        out = []
        for t in self.per_task:
            who = f"{t.task}: " if len(self.per_task) > 1 else ""
            if t.rule == "unrecorded":
                out.append(f"{who}{t.note}")
            elif t.note:
                out.append(f"{who}{t.rule} rule, not the run's {self.run_rule} rule: {t.note}")
        return out

    def recomputed(self) -> list[str]:
        """What was recomputed from the weights, in words ([] when the worker stored everything)."""
        items = []
        if any(t.source == RECOMPUTED for t in self.per_task):
            items.append("key frequencies")
        if RECOMPUTED in self.spectrum_source.values():
            items.append("spectra")
        for label, keys in (
            ("restricted/excluded", PROGRESS),
            ("Gini/FFD/FCR", _WEIGHT_ONLY),
            ("weight norm", ("weight_norm",)),
        ):
            if any(self.sources.get(k) == RECOMPUTED for k in keys):
                items.append(label)
        return items

    def shown_measures(self) -> list[str]:
        """MEASURES, then the discrete-log ones that exist."""
        return list(MEASURES) + [k for k in DLOG_MEASURES if self.measures.get(k) is not None]

    def to_json(self) -> dict[str, Any]:
        """The checkpoint part of ``grok inspect --json`` (strict JSON: non-finite numbers are null)."""
        kf = self.per_task[0] if len(self.per_task) == 1 else None
        out: dict[str, Any] = {
            "step": self.step,
            "error": self.error,
            "structure": self.structure,
            "key_freqs": self.key_freqs,
            "key_freq_rule": self.key_freq_rule,
            "key_freq_source": self.key_freq_source,
            "key_freq_note": (kf.note or None) if kf else None,
            "key_freqs_per_task": [t.to_json() for t in self.per_task],
            "run_key_freq_rule": self.run_rule,
            "neurons_per_freq": {str(k): c for k, c in self.neurons_per_freq.items()},
        }
        for k in MEASURES:
            out[k] = finite(self.measures.get(k))
        for k in DLOG_MEASURES:
            if finite(self.measures.get(k)) is not None:
                out[k] = finite(self.measures.get(k))
        out["sources"] = {k: v for k, v in self.sources.items() if finite(self.measures.get(k)) is not None}
        out["recomputed"] = self.recomputed()
        out["notes"] = self.notes + self.rule_notes()
        out["spectra"] = {
            name: {
                k: [finite(x) for x in v.tolist()]
                for k, v in (("per_freq", sp.per_freq), ("cos", sp.cos), ("sin", sp.sin))
            }
            for name, sp in self.spectra.items()
        }
        out["spectra_source"] = dict(self.spectrum_source)
        out["gini_constant"] = self.gini_constant
        out["ablation"] = (
            None
            if self.ablation is None
            else {"source": self.ablation_source, "structure": self.structure, **self.ablation.to_json()}
        )
        out["ablation_note"] = self.ablation_note
        out["neuron_clusters"] = None if self.clusters is None else self.clusters.to_json()
        return out


def _step_of(path: Path) -> int:
    m = _STEP_RE.match(path.stem)
    return int(m.group(1)) if m else -1


def _str(a: np.ndarray | None) -> str | None:
    return None if a is None else str(a)


def _stored_spectra(analysis: dict[str, np.ndarray]) -> dict[str, Spectrum]:
    """The worker's own spectra, where it stored all three parts (const, cos, sin)."""
    out = {}
    for name in ("embed", "logit"):
        cos, sin = analysis.get(f"{name}_cos"), analysis.get(f"{name}_sin")
        const = analysis.get(f"{name}_const")
        if cos is None or sin is None or const is None:
            continue
        half = len(cos)
        norms = np.zeros(2 * half + 1)
        norms[0] = float(const)
        norms[1::2] = cos
        norms[2::2] = sin
        out[name] = Spectrum(norms)
    return out


def _stored_keys(analysis: dict[str, np.ndarray], tasks: list[str]) -> list[TaskKeyFreqs]:
    def keys(suffix: str, task: str | None) -> TaskKeyFreqs | None:
        freqs = analysis.get(f"key_freqs{suffix}")
        if freqs is None:
            return None
        rule = _str(analysis.get(f"key_freq_rule{suffix}"))
        note = _str(analysis.get(f"key_freq_note{suffix}")) or ""
        if rule is None:
            rule, note = "unrecorded", "the checkpoint does not record which rule gave them"
        return TaskKeyFreqs(task, sorted(int(k) for k in np.asarray(freqs).ravel()), rule, STORED, note)

    if (one := keys("", tasks[0] if len(tasks) == 1 else None)) is not None:
        return [one]
    found = sorted(int(m.group(1)) for k in analysis if (m := _TASK_KEY.match(k)))
    out = []
    for i in found:
        kf = keys(f"_task{i}", tasks[i] if i < len(tasks) else f"task {i}")
        if kf is not None:
            out.append(kf)
    return out


def _dataset(spec: dict[str, Any]) -> tuple[Any, str | None]:
    """(the run's dataset, None) or (None, why it cannot be rebuilt from spec.json)."""
    from .tasks import Task, build_dataset

    missing = [k for k in ("train_frac", "split_seed") if k not in spec]
    if not list(live.spec_tasks(spec)):
        missing.insert(0, "tasks")
    if missing:
        return None, "spec.json has no " + ", ".join(f"'{k}'" for k in missing)
    p = spec["p"]
    data = build_dataset(
        [Task.parse(t, p) for t in list(live.spec_tasks(spec))], p, spec["train_frac"], spec["split_seed"],
        spec.get("layout", "nanda"),
    )  # fmt: skip
    return data, None


class _Recompute:
    """The worker's checkpoint analysis, run from the weights, once and only when something needs it."""

    def __init__(self, weights: dict[str, np.ndarray], spec: dict[str, Any]) -> None:
        self.weights, self.spec = weights, spec
        self._done = False
        self.scalars: dict[str, float] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.why_not: str | None = None  # why restricted/excluded could not be recomputed
        self.logits: np.ndarray | None = None  # every dataset row's logits (the forward pass)
        self.data: Any = None
        self.acts_why_not: str | None = None  # why the neuron rule had no activations

    def run(self) -> None:
        if self._done:
            return
        self._done = True
        model = self.spec.get("model")
        data, why = _dataset(self.spec)
        logits = acts = None
        if model is None:
            why = why or "spec.json has no 'model'"
        elif model.get("kind") not in fwd.KINDS:
            why = why or f"no forward pass for a {model.get('kind')} model"
        elif why is None:
            logits, all_acts = fwd.forward(self.weights, model, data)
            acts = all_acts if model["kind"] in live.NEURON_RULE_MODELS else None
        self.why_not, self.logits, self.data = why, logits, data
        if acts is None:
            self.acts_why_not = why
        if data is None:
            # no dataset: the frequencies from the weights alone, by the worker's own rule function
            kf = live.key_frequencies(self.weights, None, None, self.spec["p"], live.options(self.spec))
            self.arrays = {"key_freqs": np.asarray(kf.freqs), "key_freq_rule": np.asarray(kf.rule)}
            if kf.note:
                self.arrays["key_freq_note"] = np.asarray(kf.note)
            return
        live.checkpoint_analysis(self.weights, logits, acts, data, self.spec, self.scalars, self.arrays)


def _row_measures(v: CheckpointView, row: dict[str, Any]) -> None:
    """The metrics row first: it is the worker's record, and it stays even if the file is damaged."""
    for k in MEASURES + DLOG_MEASURES:
        if finite(row.get(k)) is not None:
            v.measures[k], v.sources[k] = finite(row.get(k)), STORED


def view(
    path: Path | str,
    spec: dict[str, Any],
    row: dict[str, Any] | None = None,
    *,
    spec_path: Path | str = SPEC,
    ablation: bool = True,
) -> CheckpointView:
    """The view of checkpoint ``path`` of a run with ``spec`` (spec.json's object) and ``row`` (its
    metrics row at that step, if any). Never raises for damaged input: see ``error``. ``ablation=False``
    leaves the Fourier ablations out (a caller that wants the key frequencies alone need not wait
    for the forward pass an older checkpoint's ablations take)."""
    path = Path(path)
    v = CheckpointView(path=path, step=_step_of(path))
    _row_measures(v, row or {})
    try:
        spec = check_spec(spec, spec_path)
        v.p, v.tasks = spec["p"], list(live.spec_tasks(spec))
        v.run_rule = str(live.options(spec)["key_freq_rule"])
        v.gini_constant = live.gini_constant(spec)
        arrays, meta = load_checkpoint(path)
        _check_arrays(path, arrays, spec, spec_path)
        meta_step = meta.get("step")
        if meta_step is not None and meta_step != v.step and v.step >= 0:
            raise CheckpointError(f"{path}: meta_json says step {meta_step!r}, the file name {v.step}")
    except CheckpointError as e:
        v.error = str(e)
        return v
    v.readable = True
    with np.errstate(all="ignore"):  # non-finite weights give NaN measures, reported once as the error
        _fill(v, arrays, meta, spec, ablation)
    return v


def _fill(
    v: CheckpointView,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    spec: dict[str, Any],
    ablation: bool,
) -> None:
    """Everything a readable checkpoint adds to the row's measures: stored first, else recomputed."""
    weights = live.weights_of(arrays)
    analysis = {k[len("analysis/") :]: a for k, a in arrays.items() if k.startswith("analysis/")}
    bad = _non_finite(weights)
    if bad:
        v.error = (
            f"{v.path}: non-finite weights in {', '.join(bad[:4])}{' …' if len(bad) > 4 else ''}"
            " (the run had diverged by this step)"
        )
    for k in MEASURES + DLOG_MEASURES:  # then the checkpoint's own copy of the row
        if k not in v.measures and finite(meta.get(k)) is not None:
            v.measures[k], v.sources[k] = finite(meta.get(k)), STORED
    if (spec.get("model") or {}).get("kind", "rfm" if "M" in weights else None) == "rfm":
        v.notes.append(
            "a Recursive Feature Machine has no network weights: no key frequencies, spectra or"
            " restricted/excluded loss to recompute (its own measures are the metrics row's)"
        )
        v.ablation_note = "a Recursive Feature Machine has no network logits here: no Fourier ablations"
        return
    p = spec["p"]
    rec = _Recompute(weights, spec)

    def attempt(what: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as e:  # the worker's functions on a checkpoint they were not written for
            v.notes.append(f"{what} not recomputed ({e.__class__.__name__}: {e})")
            return None

    # spectra: the stored ones, else from the weights
    v.spectra = _stored_spectra(analysis)
    v.spectrum_source = dict.fromkeys(v.spectra, STORED)
    computed = attempt("spectra", lambda: live.spectra(weights, p)) or {}
    for name, sp in computed.items():
        if name not in v.spectra:
            v.spectra[name], v.spectrum_source[name] = sp, RECOMPUTED
    # weight-only measures
    if any(k not in v.measures for k in _WEIGHT_ONLY):
        got = attempt("Gini/FFD/FCR", lambda: live.weight_measures(weights, spec)[0]) or {}
        for k, x in got.items():
            if k in MEASURES + DLOG_MEASURES and k not in v.measures:
                v.measures[k], v.sources[k] = finite(x), RECOMPUTED
    if "weight_norm" not in v.measures:
        v.measures["weight_norm"], v.sources["weight_norm"] = finite(sum_sq_weights(weights)), RECOMPUTED
    # key frequencies, structure, restricted/excluded: the worker's analysis, else recomputed
    v.per_task = _stored_keys(analysis, v.tasks)
    v.structure = _str(analysis.get("structure"))
    neuron_freq = analysis.get("neuron_freq")
    need_progress = any(k not in v.measures for k in PROGRESS) and not bad
    if need_progress:
        need_progress = bool(attempt("restricted/excluded", lambda: live.has_structure(spec)))
    if not v.per_task or need_progress:
        if bad:
            v.notes.append("key frequencies not recomputed (non-finite weights)")
        elif attempt("key frequencies and restricted/excluded", lambda: rec.run() or True):
            _take_recomputed(v, rec, need_progress)
            if neuron_freq is None and v.per_task and v.per_task[0].source == RECOMPUTED:
                neuron_freq = rec.arrays.get("neuron_freq")
    if neuron_freq is not None and len(v.per_task) == 1 and v.per_task[0].rule == "neuron":
        ks, counts = np.unique(np.asarray(neuron_freq), return_counts=True)
        v.neurons_per_freq = {int(k): int(c) for k, c in zip(ks, counts, strict=True)}
        frac = analysis.get("neuron_frac") if "neuron_freq" in analysis else rec.arrays.get("neuron_frac")
        threshold = float(live.options(spec)["key_freq_threshold"])
        v.clusters = abl.neuron_clusters(np.asarray(neuron_freq), frac, threshold)
    if ablation:
        _fill_ablation(v, analysis, spec, rec, bool(bad))


def _fill_ablation(v: CheckpointView, analysis: dict[str, np.ndarray], spec: dict[str, Any], rec: _Recompute,
                   bad: bool) -> None:  # fmt: skip
    """The Fourier ablations with the view's key frequencies: stored, else from a forward pass; else
    ``ablation_note`` says why there are none (no Fourier grid, a mixture, nothing to recompute from)."""
    try:
        v.ablation = _ablation(v, analysis, spec, rec, bad)
    except _NoAblation as e:
        v.ablation_note = str(e)
    except Exception as e:  # the worker's functions on a checkpoint they were not written for
        v.ablation_note = f"Fourier ablations not recomputed ({e.__class__.__name__}: {e})"


class _NoAblation(Exception):
    """Why a checkpoint has no Fourier ablations, in one line."""


def _ablation(
    v: CheckpointView, analysis: dict[str, np.ndarray], spec: dict[str, Any], rec: _Recompute, bad: bool
) -> abl.Ablation:
    tasks = live.spec_tasks(spec)
    if len(tasks) > 1:
        raise _NoAblation("a mixture of tasks has no single Fourier grid: no Fourier ablations")
    grid = live.task_structure(spec)
    if grid is None:
        raise _NoAblation(
            f"c = {tasks[0] if tasks else '?'} is not ±a ± b (nor a^±1·b^±1 in the discrete-log basis):"
            " no Fourier grid, no Fourier ablations"
        )
    v.structure = v.structure or grid.describe
    if len(v.per_task) != 1:
        raise _NoAblation("no key frequencies: no Fourier ablations")
    keys, split = v.per_task[0].freqs, str(live.options(spec)["restricted_split"])
    stored = abl.from_stored(analysis, v.measures, keys, grid.n, split)
    if isinstance(stored, abl.Ablation) and v.per_task[0].source == STORED:
        v.ablation_source = STORED
        return stored
    if isinstance(stored, str):
        v.notes.append(f"{v.path.name}: {stored}: Fourier ablations recomputed")
    if bad:
        raise _NoAblation("Fourier ablations not recomputed (non-finite weights)")
    rec.run()
    if rec.logits is None:
        raise _NoAblation(f"Fourier ablations not recomputed ({rec.why_not})")
    v.ablation_source = RECOMPUTED
    done = rec.arrays.get("key_freqs")
    if done is not None and sorted(int(k) for k in done) == keys:  # the recomputation's own, same keys
        again = abl.from_stored(rec.arrays, rec.scalars, keys, grid.n, split)
        if isinstance(again, abl.Ablation):
            return again
    rows = live.dataset_grid(rec.data, spec)
    if rows is None:
        raise _NoAblation("Fourier ablations not recomputed (the dataset does not fill the task's grid)")
    return abl.fourier_ablation(rec.logits, rec.data.labels, rec.data.is_train, rows, keys, split)


def _take_recomputed(v: CheckpointView, rec: _Recompute, need_progress: bool) -> None:
    if not v.per_task:
        for t in _stored_keys(rec.arrays, v.tasks):
            note = t.note
            if note and v.run_rule == "neuron" and t.rule != "neuron" and rec.acts_why_not:
                note += f" ({rec.acts_why_not})"
            v.per_task.append(TaskKeyFreqs(t.task, t.freqs, t.rule, RECOMPUTED, note))
    if v.structure is None:
        v.structure = _str(rec.arrays.get("structure"))
    if need_progress:
        for k in PROGRESS:
            if k not in v.measures and k in rec.scalars:
                v.measures[k], v.sources[k] = finite(rec.scalars[k]), RECOMPUTED
        if rec.why_not and any(k not in v.measures for k in PROGRESS):
            v.notes.append(f"restricted/excluded loss and accuracy not recomputed ({rec.why_not})")


# --------------------------------------------------------------------------- a run's checkpoint


def metrics_row(rows: list[dict[str, Any]], step: int) -> dict[str, Any]:
    """The last metrics row at ``step`` ({} when there is none)."""
    return next((r for r in reversed(rows) if r.get("step") == step and _is_int(r.get("step"))), {})


def read_spec(run_dir: Path | str) -> dict[str, Any]:
    """spec.json of a run, checked (CheckpointError naming the file otherwise)."""
    path = Path(run_dir) / SPEC
    try:
        with open(path) as f:
            spec = json.load(f)
    except OSError as e:
        raise CheckpointError(f"{path}: unreadable ({e.strerror or e.__class__.__name__})") from None
    except ValueError:
        raise CheckpointError(f"{path}: not valid JSON") from None
    return check_spec(spec, path)


def run_view(
    run_dir: Path | str, step: int, row: dict[str, Any] | None = None, *, ablation: bool = True
) -> CheckpointView:
    """The view of a run's checkpoint at ``step``; ``row`` defaults to its metrics row at that step."""
    run = RunDir(run_dir)
    path = run.checkpoint_path(step)
    if row is None:
        row = metrics_row(run.metrics(), step)
    try:
        spec = read_spec(run.path)
    except CheckpointError as e:
        v = CheckpointView(path=path, step=step, error=str(e))
        _row_measures(v, row)
        return v
    return view(path, spec, row, spec_path=run.path / SPEC, ablation=ablation)
