"""Packed training: N runs trained as one model (a leading run dimension) write the run directories the
same N runs trained solo write, and a pack's members stop, fail, die and resume one by one.

How close is close: batched float32 kernels (vmap's batched matmuls) sum in another order than a solo
run's, so the losses at step 0 already differ near 1e-9, and training amplifies that as it amplifies any
rounding: a solo run whose embedding is nudged by one ulp drifts from itself just as fast (measured on the
configs below: ~1e-8 at step 25, 1e-7 to 6e-2 by step 50, during memorisation at lr 1e-2). So a packed
run is held to its solo run tightly where the dynamics are tame (every loss to 5e-3 over the short runs
of every kind of run), and on the grokking configs to 1e-6 at the first evaluation, the same memorised
step, the grokked step within one evaluation and, for a run that groks, the final test accuracy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import TINY_TOML, wait_for

from grok_tui import runs
from grok_tui.checkpoints import load_checkpoint
from grok_tui.config import parse_config
from grok_tui.launch.local import prepare_run
from grok_tui.training import neural, packed

#: Grokking in a few hundred steps: memorised by ~75, grokked by ~200-300 (p = 23, 70 % of pairs).
GROKS = TINY_TOML + "seeds = [0, 1]\n{extra}\n"


#: One small shape, and each kind of run a pack must train like a solo run.
SMALL = """
[defaults]
device = "cpu"
p = 17
train_frac = 0.5
steps = 60
eval_every = 20
checkpoint_every = 60
model = { kind = "transformer", d_model = 32, heads = 2, d_mlp = 64 }
optim = { lr = 3e-3, weight_decay = 1.0 }

[experiments.v]
seeds = [0, 1]
"""
VARIANTS = {
    "mlp": 'model = { kind = "mlp", hidden = [64], act = "quadratic" }',
    "mixture": 'task = ["add", "sub"]',
    "grokfast-ema": 'sweep = { "grokfast.alpha" = [0.9, 0.8] }\ngrokfast = { kind = "ema", lamb = 2.0 }',
    "grokfast-ma": 'sweep = { "grokfast.lamb" = [1.0, 3.0] }\ngrokfast = { kind = "ma", window = 5 }',
    "orthograd": 'optim = { kind = "orthograd", lr = 3e-3, weight_decay = 0.0 }',
    "minibatch": "batch_size = 32",
    "stablemax": 'loss = "stablemax"',
    "mse": 'loss = "mse"',
    "two-layers": 'model = { kind = "transformer", d_model = 32, heads = 2, d_mlp = 64, layers = 2 }',
    "optimiser-values": 'sweep = { "optim.lr" = [1e-3, 3e-3], "optim.betas" = [[0.9, 0.98], [0.8, 0.99]] }'
    "\noptim = { warmup = 0 }",
}
RTOL = 5e-3


def _specs(text: str, root: Path) -> list[dict[str, Any]]:
    return parse_config(text, root / "experiments.toml").runs


def _dirs(specs: list[dict[str, Any]], root: Path) -> list[Path]:
    return [prepare_run(s, root)[0].path for s in specs]


def _solo(specs: list[dict[str, Any]], root: Path) -> list[Path]:
    dirs = _dirs(specs, root)
    for spec, d in zip(specs, dirs, strict=True):
        assert neural.run(spec, d, "cpu", lambda: False) == "done"
    return dirs


def _pack(specs: list[dict[str, Any]], root: Path) -> tuple[list[Path], dict[str, tuple[str, Any]]]:
    dirs = _dirs(specs, root)
    ends: dict[str, tuple[str, Any]] = {}

    def ended(d: Path, state: str, error: Any) -> None:
        ends[runs.RunDir(d).run_id] = (state, error)

    packed.run(specs, dirs, torch.device("cpu"), lambda: False, lambda d: False, ended)
    return dirs, ends


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    return runs.read_jsonl(run_dir / runs.METRICS)


def _assert_close(solo: Path, pack: Path, rtol: float = RTOL, upto: int | None = None) -> None:
    """Every loss, weight norm and lr of ``pack``'s rows (up to step ``upto``) within ``rtol`` of solo's."""
    a, b = _rows(solo), _rows(pack)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b, strict=True):
        if upto is not None and x["step"] > upto:
            break
        for key in ("train_loss", "test_loss", "weight_norm", "lr"):
            assert y[key] == pytest.approx(x[key], rel=rtol, abs=1e-9), (pack.name, x["step"], key)


@pytest.mark.slow
def test_packed_members_grok_like_their_solo_runs(tmp_path: Path) -> None:
    """Seeds, train fractions and weight decays varying inside one pack of four."""
    extra = 'sweep = { train_frac = [0.6, 0.7], "optim.weight_decay" = [1.0, 2.0] }'
    specs = _specs(GROKS.format(steps=500, extra=extra).replace("seeds = [0, 1]", "seeds = [0]"), tmp_path)
    for spec in specs[1::2]:  # half of them another seed (split and init)
        spec.update(seed=1, split_seed=1, init_seed=1, name=spec["name"].replace("seed0", "seed1"))
    solo = _solo(specs, tmp_path / "solo")
    pack, ends = _pack(specs, tmp_path / "pack")
    assert {s for s, _ in ends.values()} == {"done"}
    grokked = 0
    for s, p in zip(solo, pack, strict=True):
        _assert_close(s, p, rtol=1e-6, upto=25)
        ra, rb = runs.RunDir(s).summary(), runs.RunDir(p).summary()
        assert rb.memorised_at == ra.memorised_at is not None, p.name
        if ra.grokked_at is None:
            assert rb.grokked_at is None or rb.grokked_at >= 500 - 25, p.name
        else:
            grokked += 1
            assert rb.grokked_at is not None and abs(rb.grokked_at - ra.grokked_at) <= 25, p.name
            assert _rows(p)[-1]["test_acc"] == pytest.approx(_rows(s)[-1]["test_acc"], abs=0.02)
        # every file a reader uses is there, with the same checkpoints
        assert runs.RunDir(p).checkpoint_steps() == runs.RunDir(s).checkpoint_steps()
        assert len(runs.read_jsonl(p / runs.FOURIER)) == len(_rows(p))
        assert len(runs.read_jsonl(p / runs.PROGRESS)) == len(runs.read_jsonl(s / runs.PROGRESS))
    assert grokked >= 3  # the comparison is about runs that really grok


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_kind_of_run_packs_like_solo(variant: str, tmp_path: Path) -> None:
    specs = _specs(SMALL + VARIANTS[variant] + "\n", tmp_path)
    solo = _solo(specs, tmp_path / "solo")
    pack, ends = _pack(specs, tmp_path / "pack")
    assert {s for s, _ in ends.values()} == {"done"}, ends
    for s, p in zip(solo, pack, strict=True):
        _assert_close(s, p)


def test_a_diverging_member_fails_alone_at_the_step_a_solo_run_does(tmp_path: Path) -> None:
    specs = _specs(SMALL + 'sweep = { "optim.lr" = [3e-3, 1e6] }\n', tmp_path)
    solo_dirs = _dirs(specs, tmp_path / "solo")
    solo_errors = {}
    for spec, d in zip(specs, solo_dirs, strict=True):
        try:
            neural.run(spec, d, "cpu", lambda: False)
        except Exception as e:  # noqa: BLE001 - the diverging solo run raises Diverged
            solo_errors[d.name] = str(e)
    pack, ends = _pack(specs, tmp_path / "pack")
    failed = {n.split("/")[1]: str(e) for n, (s, e) in ends.items() if s == "failed"}
    assert failed == solo_errors != {}
    for s, p in zip(solo_dirs, pack, strict=True):
        if p.name not in solo_errors:
            _assert_close(s, p)
        else:  # no row of a diverged model, as solo
            assert [r["step"] for r in _rows(p)] == [r["step"] for r in _rows(s)]


def test_init_from_members_load_their_own_sources_and_keep_them_frozen(tmp_path: Path) -> None:
    """Furuta et al.'s transfer in a pack: each member loads its own source's embedding before the pack
    stacks the members, and the frozen part takes no step (no gradient, no weight decay)."""
    text = SMALL.replace("[experiments.v]", "[experiments.src]") + (
        '[experiments.t]\nseeds = [0, 1]\ntask = "sub"\n'
        'init_from = { run = "src/seed{seed}", step = 60, load = ["embed"], freeze = true }\n'
    )
    specs = _specs(text, tmp_path)
    sources, targets = specs[:2], specs[2:]
    solo = _solo(sources + targets, tmp_path / "solo")[2:]
    _solo(sources, tmp_path / "pack")
    pack, ends = _pack(targets, tmp_path / "pack")
    assert {s for s, _ in ends.values()} == {"done"}, ends
    for s, p, src in zip(solo, pack, ("seed0", "seed1"), strict=True):
        _assert_close(s, p)
        assert runs.read_json(p / runs.SPEC)["loaded_from"]["run"] == f"src/{src}"
        first, last = (load_checkpoint(runs.RunDir(p).checkpoint_path(k))[0] for k in (0, 60))
        source = load_checkpoint(runs.RunDir(tmp_path / "pack" / "src" / src).checkpoint_path(60))[0]
        assert (first["W_E"] == source["W_E"]).all() and (last["W_E"] == source["W_E"]).all()
        assert not (last["W_U"] == first["W_U"]).all()  # the rest trained


def test_a_member_that_does_not_fit_the_pack_fails_alone(tmp_path: Path) -> None:
    """The scheduler never hands a worker such a pack; a hand-started one refuses the misfits alone."""
    specs = _specs(SMALL, tmp_path)
    other_p = _specs(
        SMALL.replace("p = 17", "p = 19").replace("[experiments.v]", "[experiments.w]"), tmp_path
    )
    rfm = _specs(
        SMALL.replace("[experiments.v]", '[experiments.r]\nmodel = { kind = "rfm" }\nsteps = 2'), tmp_path
    )
    _, ends = _pack([specs[0], other_p[0], rfm[0], specs[1]], tmp_path / "pack")
    assert ends["v/seed0"][0] == ends["v/seed1"][0] == "done"
    assert ends["w/seed0"][0] == "failed"
    assert str(ends["w/seed0"][1]) == "cannot train in a pack: differs from the pack's first member in p"
    assert str(ends["r/seed0"][1]).startswith("cannot train in a pack: an RFM is solved by kernel ridge")


# --------------------------------------------------------------------------- the packed worker process


def _start_pack(dirs: list[Path], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "grok_tui.worker", *map(str, dirs)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _status(d: Path) -> dict[str, Any]:
    return runs.read_json(d / runs.STATUS) or {}


@pytest.mark.slow
def test_sigterm_stops_every_member_resumably(tmp_path: Path) -> None:
    specs = _specs(GROKS.format(steps=100_000, extra=""), tmp_path)
    dirs = _dirs(specs, tmp_path)
    proc = _start_pack(dirs, tmp_path / "pack.log")
    wait_for(lambda: all((_status(d).get("step") or 0) >= 50 for d in dirs), "the pack to train", 120)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    for d in dirs:
        assert _status(d)["state"] == "stopped"
        assert (d / runs.CKPT_DIR / runs.RESUME).exists()
        assert not runs.RunDir(d).alive()
