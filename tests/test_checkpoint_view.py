# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""The checkpoint view on real training: the analysis recomputed from a checkpoint's weights equals the
one the worker stored, and `grok inspect --json` equals what the TUI inspector shows.

Two real runs through the real CLI (p = 23: one task that groks in seconds, and a two-task mixture),
trained once for the module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_TOML, grok
from tui_helpers import static_text

from grok_tui import format as fmt
from grok_tui import runs
from grok_tui.checkpoints import MEASURES, PROGRESS, RECOMPUTED, STORED, load_checkpoint, run_view

pytestmark = pytest.mark.slow

MIX_TOML = """
[experiments.tinymix]
task = ["add", "sub"]
p = 23
train_frac = 0.7
steps = 400
eval_every = 25
checkpoint_every = 100
model = { d_model = 32, heads = 4, d_mlp = 128 }
optim = { lr = 1e-2, weight_decay = 1.0 }
"""
RUNS = ("tiny/seed0", "tinymix/seed0")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    toml = root / "experiments.toml"
    toml.write_text(TINY_TOML.format(steps=400) + MIX_TOML)
    result = grok("run", str(toml), "--parallel", "2", cwd=root, timeout=600)  # the two at once
    assert result.returncode == 0, result.stderr
    return root


def weights_only(src: Path, dst: Path) -> Path:
    """A copy of run ``src`` as an imported or older run would be: checkpoints holding weights alone
    (no analysis arrays, no meta), no metrics, spectra or final pass."""
    dst.mkdir(parents=True)
    shutil.copy(src / runs.SPEC, dst / runs.SPEC)
    (dst / runs.CKPT_DIR).mkdir()
    for step in runs.RunDir(src).checkpoint_steps():
        arrays, _ = load_checkpoint(runs.RunDir(src).checkpoint_path(step))
        weights = {k: v for k, v in arrays.items() if not k.startswith("analysis/")}
        np.savez(runs.RunDir(dst).checkpoint_path(step), **weights)
    return dst


@pytest.mark.parametrize("run_id", RUNS)
def test_recomputed_analysis_equals_the_stored_one(trained: Path, tmp_path: Path, run_id: str) -> None:
    src = trained / "runs" / run_id
    bare = weights_only(src, tmp_path / "bare")
    steps = runs.RunDir(src).checkpoint_steps()
    assert steps == [0, 100, 200, 300, 400]
    for step in steps:
        stored, fresh = run_view(src, step), run_view(bare, step)
        assert stored.error is None and fresh.error is None
        assert [t.source for t in stored.per_task] == [STORED] * len(stored.per_task)
        assert [t.source for t in fresh.per_task] == [RECOMPUTED] * len(stored.per_task)
        # key frequencies: exactly, task by task, by the same rule
        assert [(t.task, t.freqs, t.rule) for t in fresh.per_task] == [
            (t.task, t.freqs, t.rule) for t in stored.per_task
        ]
        assert fresh.neurons_per_freq == stored.neurons_per_freq and fresh.structure == stored.structure
        # the Fourier ablations: the worker's, and the view's from the weights alone (mixtures: none)
        assert (stored.ablation_source, fresh.ablation_source) == (
            ("stored", "recomputed") if run_id == "tiny/seed0" else (None, None)
        )
        if stored.ablation is not None:
            np.testing.assert_allclose(
                fresh.ablation.per_freq, stored.ablation.per_freq, rtol=1e-4, atol=1e-8
            )
            assert fresh.ablation.train_loss == pytest.approx(stored.ablation.train_loss, rel=1e-4, abs=1e-9)
        for name in ("embed", "logit"):
            assert fresh.spectrum_source[name] == RECOMPUTED and stored.spectrum_source[name] == STORED
            np.testing.assert_allclose(fresh.spectra[name].norms, stored.spectra[name].norms, rtol=1e-5)
        for k in MEASURES:
            if k.startswith(("train_", "test_")):
                assert fresh.measures.get(k) is None  # the training curve is the worker's record only
                continue
            want, got = stored.measures.get(k), fresh.measures.get(k)
            if want is None:
                assert got is None, k
                continue
            assert fresh.sources[k] == RECOMPUTED, k
            if k.endswith("_acc"):  # one pair of 529 may flip on float32 round-off, no more
                assert got == pytest.approx(want, abs=1.01 / 23**2), k
            else:  # measured: 1e-7 (the rows keep 9 digits)
                assert got == pytest.approx(want, rel=1e-5, abs=1e-9), k
    last = run_view(src, steps[-1])
    assert all(t.freqs and t.rule == "neuron" for t in last.per_task)  # the run grokked: not vacuous
    if run_id == "tiny/seed0":
        assert all(last.measures[k] is not None for k in PROGRESS)
    else:  # a mixture: per-task frequencies, the union shown, no restricted/excluded loss
        assert len(last.per_task) == 2 and last.key_freqs == sorted(
            {k for t in last.per_task for k in t.freqs}
        )
        assert all(last.measures.get(k) is None for k in PROGRESS)


def cli_json(root: Path, run_dir: Path, step: int) -> dict:
    r = grok("inspect", str(run_dir), "--step", str(step), "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


async def tui_inspector(root: Path, runs_dir: Path, run_id: str, step: int):
    """The real app: open the run, press i, walk left to ``step``; returns (screen, view)."""
    from grok_tui.tui.app import GrokApp

    app = GrokApp(None, runs_dir, palette="truecolor")
    async with app.run_test(size=(110, 34)) as pilot:
        await app.settle()
        await pilot.pause()
        app.open_run(run_id)
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        screen = app.screen
        while screen.step != step:
            await pilot.press("left")
            await pilot.pause()
        shown = {
            "keys": static_text(screen.query_one("#insp-keys")),
            "measures": static_text(screen.query_one("#insp-measures")),
            "bars": screen.query_one("#bars-embed").key_freqs,
            "cos": screen.query_one("#bars-embed").cos,
            "cursor": screen.query_one("#insp-heat").cursor,
            "heat_keys": screen.query_one("#insp-heat").key_freqs,
            "heat_steps": len(screen.query_one("#insp-heat").steps),
        }
        return screen.view, shown


def assert_shown(info: dict, view, shown: dict) -> None:
    """What the inspector rendered is the JSON's: the view both render from, then the numbers on screen."""
    part = view.to_json()
    assert {k: info[k] for k in part} == part
    assert shown["bars"] == info["key_freqs"]
    if shown["heat_steps"]:  # an imported run has no fourier.jsonl: no heatmap to mark
        assert shown["heat_keys"] == info["key_freqs"] and shown["cursor"] == info["step"]
    assert np.allclose(shown["cos"], info["spectra"]["embed"]["cos"])
    assert view.key_freq_line() in shown["keys"].replace("\n", " ")
    for t in info["key_freqs_per_task"]:
        assert (
            f"{' '.join(map(str, t['key_freqs'])) or 'none'} ({t['rule']} rule, {t['source']})"
            in shown["keys"]
        )
    for k in MEASURES:
        if info[k] is not None:
            mark = "*" if info["sources"][k] == RECOMPUTED else ""
            shown_as = fmt.acc if k.endswith("_acc") else fmt.num  # as grok inspect prints them
            assert shown_as(info[k]) + mark in shown["measures"], k
    if info["recomputed"]:
        assert "recomputed from the weights: " + ", ".join(info["recomputed"]) in shown["keys"].replace(
            "\n", " "
        )


@pytest.mark.parametrize(
    ("run_id", "step"), [("tiny/seed0", 200), ("tiny/seed0", 400), ("tinymix/seed0", 400)]
)
async def test_grok_inspect_json_equals_the_tui_inspector(trained: Path, run_id: str, step: int) -> None:
    info = cli_json(trained, trained / "runs" / run_id, step)
    assert info["key_freq_source"] == STORED and info["error"] is None
    view, shown = await tui_inspector(trained, trained / "runs", run_id, step)
    assert shown["heat_steps"] == 400 // 25 + 1
    assert_shown(info, view, shown)
    if run_id.startswith("tinymix"):
        assert len(info["key_freqs_per_task"]) == 2
        assert [t["task"] for t in info["key_freqs_per_task"]] == ["a + b", "a - b"]


async def test_a_weights_only_checkpoint_is_recomputed_the_same_in_both(
    trained: Path, tmp_path: Path
) -> None:
    """An imported run: both front-ends recompute, say so, and agree with what the worker had stored."""
    bare = weights_only(trained / "runs" / "tiny" / "seed0", tmp_path / "runs" / "tiny" / "seed0")
    info = cli_json(tmp_path, bare, 400)
    stored = cli_json(trained, trained / "runs" / "tiny" / "seed0", 400)
    assert info["key_freq_source"] == RECOMPUTED and info["key_freqs"] == stored["key_freqs"]
    assert info["recomputed"] == [
        "key frequencies",
        "spectra",
        "restricted/excluded",
        "Gini/FFD/FCR",
        "weight norm",
    ]
    for k in PROGRESS:
        tol = {"abs": 1.01 / 23**2} if k.endswith("_acc") else {"rel": 1e-5, "abs": 1e-9}
        assert info[k] == pytest.approx(stored[k], **tol) and info["sources"][k] == RECOMPUTED
    text = grok("inspect", str(bare), cwd=tmp_path)
    assert text.returncode == 0
    assert (
        f"key frequencies (neuron rule): {' '.join(map(str, stored['key_freqs']))}   (recomputed)"
        in text.stdout
    )
    assert "recomputed from the weights: key frequencies, spectra, restricted/excluded" in text.stdout
    view, shown = await tui_inspector(tmp_path, tmp_path / "runs", "tiny/seed0", 400)
    assert_shown(info, view, shown)
