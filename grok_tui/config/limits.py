"""What an experiments file may ask for: bounds on sizes that would only exhaust this machine.

Every bound is checked before anything is allocated (the file before it is parsed, a sweep's size as a
product before it is expanded, a model's parameters before it is built). The figures behind them are in
the README's "Limits" section.
"""

from __future__ import annotations

from ..tasks import MAX_EXPR_CHARS, MAX_P

#: The file is read whole before parsing; the shipped one is 8 KB.
MAX_FILE_BYTES = 1 << 20
#: Tables and lists inside one another (the deepest real one: experiments.NAME.sweep.model.hidden[[...]]).
MAX_NESTING = 10
#: Any string value (task expressions have their own, shorter limit).
MAX_STRING = 1000
#: Any list value.
MAX_LIST = 10_000
#: Experiment and run names become directory names: 200 leaves room in NAME_MAX (255 bytes) for the
#: launcher's staging suffix ``.PID.XXXXXXXX``.
MAX_NAME = 200
#: Runs one file may expand to (sweep points × seeds, counted before expanding).
MAX_RUNS = 10_000
MAX_SEEDS = 1000
#: Seeds and split seeds are int64 (torch.manual_seed takes the init seed and seed + 1).
MAX_SEED = 2**63 - 1
MAX_TASKS = 16
MAX_STEPS = 10**9
MAX_BATCH = 10**9
MAX_LAYERS = 64
MAX_D_MODEL = 8192
MAX_HEADS = 256
MAX_D_MLP = 32768
MAX_HIDDEN = 65536
#: Parameters of a network, counted from the spec before it is built (Nanda's has 226,816): 400 MB of
#: float32 weights in every checkpoint, four times that with AdamW's state and the gradients.
MAX_PARAMS = 10**8
#: Gradients Grokfast-MA keeps per parameter (window × parameters float32, in memory and in resume.pt:
#: 0.9 GB for Nanda's model at the limit).
MAX_GROKFAST_WINDOW = 1000
MAX_GROKFAST_FLOATS = 2**28
#: Logits of one evaluation pass over every pair (pairs × classes): float32, then float64 for the loss;
#: measured 24 bytes of peak memory per logit at p = 509 (3 GB, 19 s on one CPU thread), so 51 GiB here.
MAX_LOGITS = 2**31
#: Entries of an RFM's kernel matrix (all points × training points, float64): 8.6 GB at the limit.
MAX_KERNEL = 2**30
#: Members of one pack (``[defaults] pack`` / ``--pack``): more than any GPU holds of the smallest model;
#: ``pack = "auto"`` stops at packing.AUTO_MAX.
MAX_PACK = 1024

__all__ = [
    "MAX_BATCH",
    "MAX_D_MLP",
    "MAX_D_MODEL",
    "MAX_EXPR_CHARS",
    "MAX_FILE_BYTES",
    "MAX_GROKFAST_FLOATS",
    "MAX_GROKFAST_WINDOW",
    "MAX_HEADS",
    "MAX_HIDDEN",
    "MAX_KERNEL",
    "MAX_LAYERS",
    "MAX_LIST",
    "MAX_LOGITS",
    "MAX_NAME",
    "MAX_NESTING",
    "MAX_P",
    "MAX_PACK",
    "MAX_PARAMS",
    "MAX_RUNS",
    "MAX_SEED",
    "MAX_SEEDS",
    "MAX_STEPS",
    "MAX_STRING",
    "MAX_TASKS",
]
