"""Grokfast's filters, StableMax, ⊥Grad and the softmax-collapse measure: against their formulas, and
through real workers that are killed with SIGKILL and resume bit-identically with each option on."""

from __future__ import annotations

import math
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_TOML, grok, start_worker, wait_for
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from grok_tui import runs
from grok_tui.checkpoints import load_checkpoint
from grok_tui.config import load_config
from grok_tui.launch.local import prepare_run
from grok_tui.training.gradients import EmaFilter, MaFilter, make_filter, orthogonalise_
from grok_tui.training.losses import per_pair, softmax_collapse, stablemax_s

GRADS = [torch.tensor(v, dtype=torch.float64) for v in ([1.0, -2.0], [3.0, 0.5], [-1.0, 4.0], [2.0, 2.0],
                                                        [0.0, -3.0])]  # fmt: skip


def filtered(filt_of, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients a filter hands the optimizer, one step per gradient in ``grads``."""
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    filt = filt_of([w])
    out = []
    for g in grads:
        w.grad = g.clone()
        filt.apply()
        out.append(w.grad.clone())
    return out


def test_ema_filter_matches_the_hand_computed_sequence() -> None:
    alpha, lamb = 0.9, 2.0
    h = GRADS[0]  # the average starts at the first gradient
    expected = [GRADS[0] + lamb * h]
    for g in GRADS[1:]:
        h = alpha * h + (1 - alpha) * g
        expected.append(g + lamb * h)
    got = filtered(lambda ps: EmaFilter(ps, alpha, lamb), GRADS)
    for e, g in zip(expected, got, strict=True):
        assert torch.allclose(e, g, rtol=0, atol=1e-12), (e, g)


def test_ma_filter_waits_for_a_full_window_then_adds_its_mean() -> None:
    window, lamb = 3, 5.0
    expected = [GRADS[0], GRADS[1]]  # no amplification before the window is full
    for i in range(2, len(GRADS)):
        expected.append(GRADS[i] + lamb * sum(GRADS[i - 2 : i + 1]) / 3)
    got = filtered(lambda ps: MaFilter(ps, window, lamb), GRADS)
    for e, g in zip(expected, got, strict=True):
        assert torch.allclose(e, g, rtol=0, atol=1e-12), (e, g)


@pytest.mark.parametrize(
    "cfg", [{"kind": "ema", "alpha": 0.9, "lamb": 2.0}, {"kind": "ma", "window": 3, "lamb": 5.0}]
)
def test_a_filter_restored_from_its_state_goes_on_as_the_original(cfg: dict, tmp_path: Path) -> None:
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    first = make_filter(cfg, [w])
    for g in GRADS[:2]:
        w.grad = g.clone()
        first.apply()
    torch.save(first.state_dict(), tmp_path / "state.pt")
    second = make_filter(cfg, [w])
    second.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for g in GRADS[2:]:
        outs = []
        for f in (first, second):
            w.grad = g.clone()
            f.apply()
            outs.append(w.grad.clone())
        assert torch.equal(*outs)


def test_a_filter_state_that_does_not_fit_is_refused() -> None:
    w = torch.nn.Parameter(torch.zeros(2))
    ema, ma = EmaFilter([w], 0.9, 2.0), MaFilter([w], 3, 5.0)
    with pytest.raises(ValueError, match="kind 'ma'"):
        ema.load_state_dict(ma.state_dict())
    with pytest.raises(ValueError, match="does not fit"):
        ema.load_state_dict({"kind": "ema", "h": [torch.zeros(3)]})
    with pytest.raises(ValueError, match="does not fit"):
        ma.load_state_dict({**ma.state_dict(), "ring": [torch.zeros(4, 2)]})
    with pytest.raises(ValueError, match="window of 3"):
        ma.load_state_dict({**ma.state_dict(), "pos": 3})
    assert make_filter({"kind": "none"}, [w]) is None and make_filter(None, [w]) is None


def test_stablemax_loss_is_its_formula_and_stays_finite_where_softmax_saturates() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = (
        torch.randn(64, 11, generator=gen, dtype=torch.float64)
        * torch.tensor([0.1, 3.0, 30.0, 1e4]).repeat(16)[:, None]
    )
    labels = torch.randint(0, 11, (64,), generator=gen)
    z = logits.numpy()
    s = np.where(z >= 0, z + 1, 1 / (1 - np.minimum(z, 0)))
    expected = -np.log(s[np.arange(64), labels.numpy()] / s.sum(1))
    got = per_pair(logits.float(), labels, "stablemax").numpy()
    assert np.allclose(got, expected, rtol=1e-6, atol=0)
    assert torch.equal(stablemax_s(torch.tensor([-3.0, 0.0, 2.5])), torch.tensor([0.25, 1.0, 3.5]))
    # a correct logit 1e6 above the rest: softmax's loss is exactly 0 in float32, StableMax's is not,
    # and its gradient is finite (each branch of s only sees its own half of the line)
    x = torch.tensor([[1e6, 0.0, -5.0]], requires_grad=True)
    loss = per_pair(x, torch.tensor([0]), "stablemax").sum()
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(x.grad).all()
    assert float(-torch.log_softmax(x.detach(), -1)[0, 0]) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from([(7,), (3, 5), (2, 3, 4), (1,), (128, 4)]),
    seed=st.integers(0, 2**31),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_orthograd_makes_each_gradient_orthogonal_to_its_weight_and_keeps_its_norm(
    shape, seed, scale
) -> None:
    gen = torch.Generator().manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(shape, generator=gen, dtype=torch.float64) * scale)
    g = torch.randn(shape, generator=gen, dtype=torch.float64)
    assume(torch.dot(w.reshape(-1), g.reshape(-1)).abs() < 0.999 * w.norm() * g.norm())  # not parallel
    w.grad = g.clone()
    orthogonalise_([w])
    out = w.grad.reshape(-1)
    assert abs(float(torch.dot(w.detach().reshape(-1), out))) <= 1e-9 * float(w.detach().norm() * out.norm())
    assert math.isclose(float(out.norm()), float(g.norm()), rel_tol=1e-9)
    assert w.grad.shape == g.shape


def test_softmax_collapse_counts_pairs_whose_float32_softmax_is_exactly_one() -> None:
    logits = torch.zeros(6, 113)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    logits[0, 0] = 200.0  # exp(-200) is 0 in float32: collapsed
    logits[1, 1] = 30.0  # 112 · exp(-30) ≈ 1e-11, below float32's resolution at 1: collapsed
    logits[2, 2] = 20.0  # 112 · exp(-20) ≈ 2.3e-7: the probability rounds below 1
    logits[3, 3] = 5.0
    logits[4, 0] = 200.0  # the wrong class dominates: probability 0, not 1
    logits[5, 5] = 1e30  # float32 still: exp(-1e30) = 0
    assert softmax_collapse(logits, labels) == pytest.approx(3 / 6)
    assert softmax_collapse(logits.double(), labels) == pytest.approx(3 / 6)  # measured in float32 always
    assert math.isnan(softmax_collapse(logits[:0], labels[:0]))


# --------------------------------------------------------------------------- real workers, kill -9, resume

#: Steps of each resume run: the kill lands between the resume state of step 100 and the end.
STEPS = 200

OPTIONS = {
    "grokfast-ema": 'grokfast = { kind = "ema", alpha = 0.9, lamb = 2.0 }',
    "grokfast-ma": 'grokfast = { kind = "ma", window = 20, lamb = 5.0 }',
    "stablemax": 'loss = "stablemax"',
    "orthograd": 'optim = { kind = "orthograd", lr = 1e-2, weight_decay = 1.0 }',
    "frozen-embed": 'init_from = { freeze = ["embed"] }',  # an optimizer over part of the weights
}


def option_toml(tmp_path: Path, option: str, steps: int = 300) -> Path:
    text = TINY_TOML.format(steps=steps)
    line = OPTIONS[option]
    if line.startswith("optim"):
        text = text.replace("optim = { lr = 1e-2, weight_decay = 1.0 }", line)
    else:
        text += line + "\n"
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_kill9_then_resume_matches_an_uninterrupted_run(option: str, tmp_path: Path) -> None:
    """SIGKILL at a seeded random step past the first resume state; the restarted worker resumes from it
    and ends with the metrics and weights of a run that was never interrupted."""
    spec = load_config(option_toml(tmp_path, option, steps=STEPS)).runs[0]
    straight, killed = (prepare_run(spec, tmp_path / name)[0] for name in ("straight", "killed"))
    kill_after = random.Random(option).randrange(110, STEPS - 10)  # past the resume state of step 100
    reference, worker = start_worker(straight), start_worker(killed)
    wait_for(lambda: (killed.status().get("step") or 0) >= kill_after, f"step {kill_after}", timeout=120)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert (killed.path / runs.CKPT_DIR / runs.RESUME).exists()
    assert start_worker(killed).wait(timeout=120) == 0
    assert "resumed from step" in (killed.path / runs.LOG).read_text()
    assert reference.wait(timeout=120) == 0
    assert killed.status()["state"] == straight.status()["state"] == "done"

    def without_time(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "time"} for r in rows]

    assert without_time(killed.metrics()) == without_time(straight.metrics())
    w1, _ = load_checkpoint(killed.checkpoint_path(STEPS))
    w2, _ = load_checkpoint(straight.checkpoint_path(STEPS))
    assert all(np.array_equal(w1[k], w2[k]) for k in w2)
    collapse = [r["softmax_collapse"] for r in straight.metrics()]
    assert all(0.0 <= c <= 1.0 for c in collapse)
    assert straight.spec()["grokfast"]["kind"] == (option.split("-")[1] if "grokfast" in option else "none")


PRIETO_SMALL = """
[defaults]
device = "cpu"
task = "add"
p = 47
train_frac = 0.4
steps = 400
eval_every = 20
checkpoint_every = 400
model = {{ kind = "mlp", hidden = [200, 200], act = "relu", bias = false }}

[experiments.orthograd]
optim = {{ kind = "orthograd", {optim} }}

[experiments.adamw]
optim = {{ kind = "adamw", {optim} }}
"""


@pytest.mark.slow
def test_orthograd_generalises_without_weight_decay_where_adamw_only_memorises(tmp_path: Path) -> None:
    """Prieto et al.'s claim at p = 47: with no weight decay, plain AdamW memorises and its test accuracy
    stays at chance, while ⊥Grad around the same AdamW generalises (measured here: 0.93 at step 300, 0.97
    at step 400)."""
    optim = "lr = 0.01, weight_decay = 0, betas = [0.9, 0.99], eps = 1e-25, warmup = 0"
    toml = tmp_path / "e.toml"
    toml.write_text(PRIETO_SMALL.format(optim=optim))
    r = grok("run", str(toml), "--parallel", "2", "--runs-dir", str(tmp_path / "runs"), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    best = {}
    for name in ("orthograd", "adamw"):
        run = runs.RunDir(tmp_path / "runs" / name / "seed0")
        rows = run.metrics()
        assert run.status()["state"] == "done" and rows[-1]["train_acc"] == 1.0
        best[name] = max(r["test_acc"] for r in rows)
    assert best["orthograd"] >= 0.9 and best["adamw"] <= 0.1, best
