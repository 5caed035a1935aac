"""The experiments file, declared: one msgspec Struct per table, unknown keys refused.

msgspec checks types strictly (a bool is never an int, a string never a number), ranges and enums, and
names the failing field; :mod:`.errors` turns that into the one line the user sees, describing what is
allowed from these declarations. NaN and ±inf are refused for every key before this schema runs
(:func:`grok_tui.config.loader.scan`). Numbers that may be written either way (``lr = 1`` or ``1e-3``)
keep the type they were written with, so ``spec.json`` holds what the file says.
"""

# No ``from __future__ import annotations``: msgspec reads these annotations as live objects.

import re
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

from .limits import (
    MAX_BATCH,
    MAX_D_MLP,
    MAX_D_MODEL,
    MAX_EXPR_CHARS,
    MAX_GROKFAST_WINDOW,
    MAX_HEADS,
    MAX_HIDDEN,
    MAX_LAYERS,
    MAX_P,
    MAX_PACK,
    MAX_SEED,
    MAX_SEEDS,
    MAX_STEPS,
    MAX_STRING,
    MAX_TASKS,
)


def _number(**bounds: float) -> Any:
    """An int or a float within ``bounds``, kept as written."""
    return Annotated[int, Meta(**bounds)] | Annotated[float, Meta(**bounds)]


Positive = _number(gt=0)
NonNegative = _number(ge=0)
Fraction = Annotated[float, Meta(gt=0, lt=1)]
Count = Annotated[int, Meta(ge=1, le=MAX_STEPS)]
Seed = Annotated[int, Meta(ge=0, le=MAX_SEED)]
Text = Annotated[str, Meta(max_length=MAX_STRING)]
Expression = Annotated[str, Meta(min_length=1, max_length=MAX_EXPR_CHARS)]

#: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whole string: a trailing newline is not a device).
DEVICE_RE = re.compile(r"\A(auto|cpu|cuda(:[0-9]{1,4})?)\Z")
Device = Annotated[str, Meta(pattern=DEVICE_RE.pattern, description="auto, cpu, cuda or cuda:N")]
#: Experiment names are directory names.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+=-]*")


class Table(Struct, forbid_unknown_fields=True):
    """A TOML table whose keys are exactly the declared fields."""


# Nanda §3.2 / Furuta §4.3; pos_embed, biases and init follow the layout unless set (None until resolved).
class Transformer(Table, tag="transformer", tag_field="kind"):
    layers: Annotated[int, Meta(ge=1, le=MAX_LAYERS)] = 1
    d_model: Annotated[int, Meta(ge=1, le=MAX_D_MODEL)] = 128
    heads: Annotated[int, Meta(ge=1, le=MAX_HEADS)] = 4
    d_mlp: Annotated[int, Meta(ge=1, le=MAX_D_MLP)] = 512
    act: Literal["relu", "gelu"] = "relu"
    pos_embed: bool | None = None
    biases: Literal["mlp", "none"] | None = None
    init: Literal["nanda", "furuta"] | None = None


# Mallinar's quadratic net (hidden=[1024], act x², no bias) or Prieto's ReLU net (hidden=[200, 200]).
class Mlp(Table, tag="mlp", tag_field="kind"):
    hidden: Annotated[
        list[Annotated[int, Meta(ge=1, le=MAX_HIDDEN)]], Meta(min_length=1, max_length=MAX_LAYERS)
    ] = field(default_factory=lambda: [1024])
    act: Literal["quadratic", "relu"] = "quadratic"
    bias: bool = False


# Mallinar et al. RFM: kernel ridge regression + AGOP (steps are RFM iterations).
class Rfm(Table, tag="rfm", tag_field="kind"):
    kernel: Literal["gaussian", "laplace", "quadratic"] = "gaussian"
    bandwidth: Positive = 2.5
    ridge: NonNegative = 0.0
    agop_power: Positive = 0.5
    centering: bool = True
    # "random_circulant": their Fig. 4's fixed random block-circulant M (no AGOP update; one solve, steps 0).
    features: Literal["agop", "random_circulant"] = "agop"


Model = Transformer | Mlp | Rfm


# Grokfast (Lee et al. 2024): add λ × the slow part of the gradient before the optimizer step, the slow
# part being an exponential moving average (h ← αh + (1−α)g, their α 0.98, λ 2) or the mean of the last
# ``window`` gradients (their N 100, λ 5; no amplification until the window is full).
class GrokfastOff(Table, tag="none", tag_field="kind"):
    pass


class GrokfastEma(Table, tag="ema", tag_field="kind"):
    alpha: Annotated[float, Meta(ge=0, lt=1)] = 0.98
    lamb: NonNegative = 2.0


class GrokfastMa(Table, tag="ma", tag_field="kind"):
    window: Annotated[int, Meta(ge=1, le=MAX_GROKFAST_WINDOW)] = 100
    lamb: NonNegative = 5.0


Grokfast = GrokfastOff | GrokfastEma | GrokfastMa


class Optim(Table):
    # "orthograd": Prieto et al. 2025's ⊥Grad around AdamW (each gradient made orthogonal to its weights,
    # rescaled to its norm), which lets a network grok without weight decay.
    kind: Literal["adamw", "orthograd"] = "adamw"
    lr: Positive = 1e-3
    weight_decay: NonNegative = 1.0
    betas: Annotated[list[_number(ge=0, lt=1)], Meta(min_length=2, max_length=2)] = field(
        default_factory=lambda: [0.9, 0.98]
    )
    eps: Positive = 1e-8
    # 10 steps of linear warm-up (Nanda); 0 with the furuta layout (Furuta et al.: no schedule).
    warmup: Annotated[int, Meta(ge=0, le=MAX_STEPS)] | None = None


#: Parts of a transformer that ``init_from`` loads or freezes: the token embedding W_E (Furuta et al.'s
#: PG-E), the position embedding W_pos, every block's attention and MLP (PG-T), the unembedding W_U, or all.
Part = Literal["embed", "pos", "block", "unembed", "all"]
Parts = Annotated[list[Part], Meta(max_length=5)]


# Transfer from a pre-grokked run (Furuta et al. 2024 §5): the named parts start as the source run's
# checkpoint; frozen parts get no gradient and no weight decay. ``freeze = true`` freezes what is loaded;
# a list freezes those parts, loaded or not (without ``load``: a frozen random embedding, their App. F).
# ``run`` is EXPERIMENT/NAME; "{seed}" in it is this run's seed (the paper pairs seeds).
class InitFrom(Table):
    run: Text = ""
    step: Annotated[int, Meta(ge=0, le=MAX_STEPS)] | Literal["last"] = "last"
    load: Parts = field(default_factory=list)
    freeze: bool | Parts = False


class Analysis(Table):
    # Which published key-frequency rule to use (Nanda et al. 2023 §4.1, App. C.2 and their Colab):
    # "neuron" (clusters, 0.85 cut), "embed", "logit".
    key_freq_rule: Literal["neuron", "embed", "logit"] = "neuron"
    key_freq_threshold: Fraction = 0.85
    # Furuta's FFD threshold η.
    ffd_eta: Fraction = 0.5
    # Gini over per-frequency norms: include the constant component or not (the paper leaves it open).
    gini_constant: bool = False
    # For mul/div also report measures in the discrete-log basis.
    discrete_log: Literal["auto", "on", "off"] = "auto"
    # Embed/logit key-frequency rules: components above this fraction of the largest (TransformerLens: 1/4).
    key_freq_frac: Fraction = 0.25
    # Pairs the restricted loss is scored on (the paper names none; the Colab reports all and train).
    restricted_split: Literal["all", "train", "test"] = "all"


class Settings(Table):
    """Keys an experiment sets, or [defaults] sets for every experiment."""

    description: Text = ""
    task: Annotated[
        Expression | Annotated[list[Expression], Meta(min_length=1, max_length=MAX_TASKS)],
        Meta(
            description=f"an operation name, an expression in a and b, or a list of up to {MAX_TASKS} of them"
        ),
    ] = "add"
    p: Annotated[int, Meta(ge=2, le=MAX_P)] = 113
    train_frac: Fraction = 0.3
    seeds: Annotated[list[Seed], Meta(min_length=1, max_length=MAX_SEEDS)] = field(
        default_factory=lambda: [0]
    )
    split_seed: Seed | None = None  # None: each run's split follows its seed
    # 0 only for an RFM with fixed features (a single kernel solve); the loader checks it.
    steps: Annotated[int, Meta(ge=0, le=MAX_STEPS)] = 10_000
    eval_every: Count = 100
    checkpoint_every: Count = 1000
    batch_size: Annotated[int, Meta(ge=0, le=MAX_BATCH, description="0 (full batch) or a batch size")] = 0
    layout: Literal["nanda", "furuta"] = "nanda"
    # "stablemax": Prieto et al. 2025's softmax replacement (s(x) = x+1 for x ≥ 0, 1/(1−x) below), which
    # cannot saturate the way float32 softmax does.
    loss: Literal["ce", "mse", "stablemax"] = "ce"
    device: Device = "auto"
    # What a run does when its training loss turns NaN or infinite: stop as failed, or train on.
    on_nan: Literal["fail", "continue"] = "fail"
    # TF32 float32 matmuls on a GPU that has them (10-bit mantissa, faster): grokking is precision-
    # sensitive (Prieto et al. 2025), so a run uses them only when it asks. The loss stays float64.
    tf32: bool = False
    # Checked as a Model once [defaults] and the experiment are merged: its kind may come from either.
    model: dict[str, Any] = {}
    # Checked as a Grokfast once merged, like model: {kind = "ema" | "ma" | "none", ...}.
    grokfast: dict[str, Any] = {}
    optim: Optim = field(default_factory=Optim)
    analysis: Analysis = field(default_factory=Analysis)
    init_from: InitFrom = field(default_factory=InitFrom)


class Experiment(Settings):
    sweep: Annotated[dict[str, Any], Meta(description="a table of lists")] = {}


class Defaults(Settings):
    runs_dir: Annotated[str, Meta(min_length=1, max_length=MAX_STRING, description="a non-empty path")] = (
        "runs"
    )
    # Runs per worker process (packing.py): N, or "auto" to size packs from the free memory. A file-level
    # key like runs_dir: how the runs are scheduled, not what they compute, so it never enters spec.json.
    pack: Annotated[int, Meta(ge=1, le=MAX_PACK)] | Literal["auto"] = 1
    # Where workers run: this machine's scheduler, or Slurm batch jobs (the [slurm] table), file-level too.
    backend: Literal["local", "slurm"] = "local"


#: [defaults] keys about the file as a whole, not defaults of a run: they are left out of every spec.
FILE_KEYS = ("runs_dir", "pack", "backend")

#: One line of a batch script: no control character but tab (a line break, CR or NUL would end the line
#: and start a command; the rest have no business in one), nor Unicode's line and paragraph separators.
_LINE = "[^\\x00-\\x08\\x0a-\\x1f\\x7f\\x85\\u2028\\u2029]"
Line = Annotated[str, Meta(max_length=MAX_STRING, pattern=rf"\A{_LINE}*\Z", description="one line of text")]
Word = Annotated[
    str,
    Meta(min_length=1, max_length=200, pattern=r"\A[A-Za-z0-9_.,:+=@%/-]+\Z", description="a Slurm name"),
]
#: sbatch's --time forms: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
SLURM_TIME_RE = re.compile(r"\A([0-9]+-)?[0-9]+(:[0-9]{1,2}){0,2}\Z")
SlurmTime = Annotated[
    str, Meta(pattern=SLURM_TIME_RE.pattern, description="a Slurm time: MINUTES, HH:MM:SS or D-HH:MM:SS")
]
Memory = Annotated[str, Meta(pattern=r"\A[0-9]{1,12}[KMGT]?\Z", description="a size such as 16G or 4000M")]
SbatchOption = Annotated[
    str,
    Meta(
        max_length=MAX_STRING,
        pattern=rf"\A-{_LINE}*\Z",
        description="an sbatch option on one line, e.g. --constraint=a100",
    ),
]


class Slurm(Table):
    """How ``backend = "slurm"`` submits workers: each worker (or pack) is one task of a job array."""

    partition: Word | None = None
    account: Word | None = None
    qos: Word | None = None
    time: SlurmTime | None = None
    mem: Memory | None = None
    gpus_per_job: Annotated[int, Meta(ge=0, le=64)] = 0
    cpus_per_task: Annotated[int, Meta(ge=1, le=1024)] = 1
    # The array's "%" cap: at most this many of its tasks run at once (none: as many as Slurm allows).
    max_running: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    # Seconds before the time limit Slurm sends SIGTERM, so the worker checkpoints and ends "stopped
    # (time limit)" instead of being killed.
    stop_before: Annotated[int, Meta(ge=0, le=86_400)] = 120
    extra: Annotated[list[SbatchOption], Meta(max_length=100)] = []
    # Shell lines run in the job before the worker starts (module load cuda, conda activate …).
    setup: Annotated[list[Line], Meta(max_length=100)] = []


class Document(Table):
    defaults: dict[str, Any] = {}
    experiments: dict[str, Any] = {}
    slurm: dict[str, Any] = {}


#: Keys that hold tables merged key by key with [defaults] (the rest replace the default).
TABLE_KEYS = ("model", "optim", "analysis", "grokfast", "init_from")
#: Keys a sweep may list values for.
SWEEPABLE = tuple(k for k in Settings.__struct_fields__ if k not in ("description", "seeds"))
