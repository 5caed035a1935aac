"""A real tiny sweep, trained once per session: 2 train fractions × 2 weight decays × 2 seeds of a+b mod 23.

At 600 steps the fraction 0.3 memorises and never generalises, 0.7 with weight decay 1 groks (by step ~300)
and 0.7 with weight decay 0.3 climbs without reaching 0.99: a grid with cells that grok and cells that do
not. Tests read these directories and never write them (copy to modify). conftest.py registers the
fixture, so the sweep trains once per session: imported into each test module instead, every module would
get (and train) its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import grok

SWEEP_TOML = """
[defaults]
runs_dir = "runs"
device = "cpu"

[experiments.sw]
description = "tiny sweep: train fraction x weight decay, two seeds"
task = "add"
p = 23
steps = 600
eval_every = 25
checkpoint_every = 300
seeds = [0, 1]
model = { d_model = 32, heads = 4, d_mlp = 128 }
optim = { lr = 1e-2 }
sweep = { train_frac = [0.3, 0.7], "optim.weight_decay" = [0.3, 1.0] }

[experiments.other]
description = "one run of another experiment, for selections across experiments"
task = "sub"
p = 23
train_frac = 0.7
steps = 300
eval_every = 25
checkpoint_every = 300
model = { d_model = 32, heads = 4, d_mlp = 128 }
optim = { lr = 1e-2, weight_decay = 1.0 }
"""


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweep's directory (experiments.toml and runs/), trained for real with `grok run`."""
    root = tmp_path_factory.mktemp("tiny-sweep")
    (root / "experiments.toml").write_text(SWEEP_TOML)
    # the eight sw runs train as one pack (2.2x faster here than two at a time), "other" beside it
    r = grok("run", "experiments.toml", "--parallel", "2", "--pack", "8", cwd=root, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return root
