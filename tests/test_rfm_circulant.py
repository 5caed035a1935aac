"""Random circulant features (Mallinar et al. 2024, Fig. 4): a fixed M with which one kernel solve
generalises, with no AGOP iteration. What a user sees in the run directory and from the file check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grok_tui.analysis import agop as ag
from grok_tui.checkpoints import load_checkpoint
from grok_tui.cli import app
from grok_tui.config import ConfigError, check_resolved, load_config, parse_config, with_added_keys
from grok_tui.launch.local import spec_changes
from grok_tui.models import circulant
from grok_tui.recorder import write_json_atomic
from grok_tui.runs import RunDir
from grok_tui.tasks import Task
from grok_tui.training import rfm as rfm_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPS = ("add", "sub", "mul", "div")


def _spec(features: str = "random_circulant", task: str = "add", p: int = 31, frac: float = 0.6,
          extra: str = "", seed: int = 0) -> dict:  # fmt: skip
    text = f"""
[experiments.rc]
task = "{task}"
p = {p}
train_frac = {frac}
seeds = [{seed}]
{extra}
model = {{ kind = "rfm", features = "{features}" }}
"""
    return parse_config(text, Path("x.toml")).runs[0]


def _train(tmp_path: Path, spec: dict, name: str = "seed0") -> RunDir:
    d = tmp_path / spec["experiment"] / name
    write_json_atomic(d / "spec.json", spec)
    assert rfm_training.run(spec, d, "cpu", lambda: False) == "done"
    return RunDir(d)


def _exprs(task: str, p: int) -> list[str]:
    return [Task.parse(task, p).expr]


# --------------------------------------------------------------------------- the run


def test_one_solve_generalises_where_the_plain_kernel_is_below_chance(tmp_path: Path) -> None:
    """p = 31, 60 % of the pairs: random circulant features reach 100 % test accuracy in their single
    solve; the same Gaussian kernel with M = I (an AGOP RFM's iteration 0, same split) gets none right."""
    spec = _spec()
    assert spec["steps"] == 0  # fixed features default to one solve
    run = _train(tmp_path, spec)
    (row,) = run.metrics()
    assert row["step"] == 0 and row["train_acc"] == 1.0 and row["train_loss"] < 1e-12  # ridgeless
    assert row["test_acc"] >= 0.99
    assert run.summary().grokked_at == 0

    plain = _train(tmp_path, _spec("agop", extra="steps = 1"), "plain")
    assert plain.metrics()[0]["test_acc"] < 0.05  # 1/p = 0.032 is chance


def test_the_shipped_preset_holds_its_headline(tmp_path: Path) -> None:
    """experiments.toml's rfm-random-circulant at 50 %: one solve, 100 % test accuracy on a + b mod 61."""
    runs = load_config(Path(__file__).parent.parent / "experiments.toml").experiments["rfm-random-circulant"]
    (spec,) = [r for r in runs if r["train_frac"] == 0.5]
    assert spec["steps"] == 0 and spec["model"]["features"] == "random_circulant" and spec["p"] == 61
    (row,) = _train(tmp_path, spec).metrics()
    assert row["test_acc"] == 1.0


@pytest.mark.parametrize("task", OPS)
def test_every_operation_generalises_in_its_own_geometry(tmp_path: Path, task: str) -> None:
    """Addition and subtraction in the natural order, multiplication and division in discrete-log order
    (Mallinar et al. App. C): well above chance (1/31) in one solve, and the recorded M's block has the
    shape the measures look for, so its circulant deviation is 0."""
    run = _train(tmp_path, _spec(task=task, frac=0.7), task)
    (row,) = run.metrics()
    assert row["test_acc"] > 0.9 and row["circulant_deviation"] < 1e-20
    arrays, meta = load_checkpoint(run.checkpoint_path(0))
    assert arrays["M"].shape == (62, 62) and meta["test_acc"] == row["test_acc"]
    (prog,) = run.progress()
    assert prog["final"] and prog["circulant_deviation"] == row["circulant_deviation"]
    assert 0 < prog["agop_alignment_final"] <= 1


def test_the_features_follow_the_seed(tmp_path: Path) -> None:
    a = _train(tmp_path, _spec(seed=3), "a")
    b = _train(tmp_path, _spec(seed=3), "b")
    c = _train(tmp_path, _spec(seed=4), "c")
    Ma, Mb, Mc = (load_checkpoint(r.checkpoint_path(0))[0]["M"] for r in (a, b, c))
    np.testing.assert_array_equal(Ma, Mb)
    assert not np.allclose(Ma, Mc)

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "time"} for r in rows]

    assert strip(a.metrics()) == strip(b.metrics()) != strip(c.metrics())


def test_a_run_stopped_before_its_solve_resumes_to_the_same_row(tmp_path: Path) -> None:
    spec = _spec(frac=0.5)
    full = _train(tmp_path, spec, "full")
    part = tmp_path / "rc" / "part"
    write_json_atomic(part / "spec.json", spec)
    assert rfm_training.run(spec, part, "cpu", lambda: True) == "stopped"
    assert RunDir(part).metrics() == []
    assert rfm_training.run(spec, part, "cpu", lambda: False) == "done"
    strip = [{k: v for k, v in r.items() if k != "time"} for r in RunDir(part).metrics()]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in full.metrics()]
    assert RunDir(part).progress() == full.progress()


def test_grok_show_prints_the_numbers_of_a_single_solve(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    run = _train(tmp_path, _spec())
    out = CliRunner(env={"GROK_RUNS_DIR": None}).invoke(
        app, ["show", str(run.path), "--runs-dir", str(tmp_path)]
    )
    assert out.exit_code == 0, out.output
    assert "one evaluation, at step 0" in out.output
    assert "circulant_deviation" in out.output and "test_acc" in out.output


# --------------------------------------------------------------------------- the features


@settings(max_examples=40, deadline=None)
@given(task=st.sampled_from(OPS), p=st.sampled_from([5, 7, 11, 13, 31, 61]), seed=st.integers(0, 2**63 - 1))
def test_the_block_has_the_shape_its_operation_needs(task: str, p: int, seed: int) -> None:
    """M = (M*)^{1/2} keeps M*'s structure: symmetric, PSD, its square the positive part of M*, and an
    off-diagonal block circulant (add, mul) or Hankel (sub, div) in the order task_geometry names."""
    exprs = _exprs(task, p)
    M = circulant.random_circulant_features(exprs, p, seed)
    C = circulant.block(exprs, p, seed)
    assert M.shape == (2 * p, 2 * p)
    np.testing.assert_allclose(M, M.T, atol=1e-12)
    assert np.linalg.eigvalsh(M).min() > -1e-9
    M_star = np.block([[np.eye(p) - 1 / p, C.T], [C, np.eye(p) - 1 / p]])
    w, V = np.linalg.eigh(M_star)
    np.testing.assert_allclose(M @ M, (V * np.clip(w, 0, None)) @ V.T, atol=1e-9)
    direction, use_dlog = ag.task_geometry(exprs)
    assert use_dlog == (task in ("mul", "div")) and direction == (
        "circulant" if task in ("add", "mul") else "hankel"
    )
    if use_dlog:
        assert not C[0].any() and not C[:, 0].any()  # zero has no logarithm
    view = ag.dlog_view(C, p) if use_dlog else C
    assert ag.circulant_deviation(view, direction) < 1e-20
    assert ag.feature_circulant_deviation(M, p, direction, use_dlog) < 1e-20
    np.testing.assert_allclose(view.sum(axis=0), 0, atol=1e-12)  # the first column is mean-centred


def test_addition_block_is_the_papers_circulant() -> None:
    """Mallinar et al.'s construction: M*[:p, p:] = circulant(c), entry [a, b] = c[a - b], c uniform minus
    its mean."""
    p = 11
    C = circulant.block(["a + b"], p, 7)
    c = np.random.default_rng(7).uniform(size=p)
    c -= c.mean()
    a, b = np.indices((p, p))
    np.testing.assert_allclose(C.T, c[(a - b) % p])


# --------------------------------------------------------------------------- the file check and spec.json


@pytest.mark.parametrize(
    ("toml", "key", "text"),
    [
        ('task = "add"\nsteps = 30\n', "steps", "steps = 0 (got 30)"),
        ('task = "x2_y"\n', "model.features", "built for a + b, a - b, a * b and a / b"),
        ('task = ["add", "sub"]\n', "model.features", "not a mixture"),
        ('task = "mul"\np = 12\n', "model.features", "needs a prime p"),
    ],
)
def test_combinations_that_cannot_apply_are_one_line(toml: str, key: str, text: str) -> None:
    body = toml if "p =" in toml else toml + "p = 13\n"
    with pytest.raises(ConfigError) as e:
        parse_config(f'[experiments.e]\n{body}model = {{ kind = "rfm", features = "random_circulant" }}\n',
                     Path("x.toml"))  # fmt: skip
    line = str(e.value)
    assert "\n" not in line and f"experiment 'e': key '{key}'" in line and text in line


def test_an_rfm_spec_from_before_features_still_means_the_agop_rfm(tmp_path: Path) -> None:
    """A spec.json written before the key resolves, trains the AGOP RFM, and is the same experiment."""
    new = _spec("agop", extra="steps = 2", p=11, frac=0.5)
    old = {**new, "model": {k: v for k, v in new["model"].items() if k != "features"}}
    assert check_resolved(old, "spec.json") is old
    assert with_added_keys(old)["model"] == new["model"]
    assert spec_changes(old, new) == []
    assert spec_changes(old, {**new, "model": {**new["model"], "features": "random_circulant"}}) == ["model"]
    run = _train(tmp_path, old)
    assert run.metrics()[0]["circulant_deviation"] is None  # M₀ = I: the AGOP machine, from the identity


@pytest.mark.parametrize(
    ("change", "key"),
    [({"steps": 4}, "steps"), ({"tasks": ["a**2 + b"]}, "model.features"), ({"tasks": ["a + b", "a - b"]},
     "model.features"), ({"features": "agop", "steps": 0}, "steps")],
)  # fmt: skip
def test_a_spec_json_the_file_could_never_hold_is_refused(change: dict, key: str) -> None:
    spec = json.loads(json.dumps(_spec()))
    if "features" in change:
        spec["model"]["features"] = change.pop("features")
    spec.update(change)
    with pytest.raises(ConfigError, match=rf"spec.json: key '{key}'"):
        check_resolved(spec, "spec.json")
