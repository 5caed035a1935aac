# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""The checkpoint view on the generated fixtures (numpy only), and the TUI inspector that draws it:
spectra stored or computed by the analysis package, key frequencies by a named rule, the inspected step
marked on the Fourier heatmap, everything on an 80×24 terminal."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tui_helpers import fixture_src, fx, settled, static_text  # noqa: F401

from grok_tui.analysis.fourier import cos_sin_norms
from grok_tui.checkpoints import RECOMPUTED, STORED, load_checkpoint, run_view
from grok_tui.runs import RunDir
from grok_tui.tui.app import GrokApp

P = 59


def test_spectra_computed_from_weights_match_the_fourier_basis(fixture_src: Path) -> None:
    rd = RunDir(fixture_src / "runs" / "add" / "seed1")  # weights only, no analysis arrays
    step = rd.checkpoint_steps()[-1]
    arrays, _ = load_checkpoint(rd.checkpoint_path(step))
    view = run_view(rd.path, step)
    assert view.error is None and view.spectrum_source == {"embed": RECOMPUTED, "logit": RECOMPUTED}
    cos, sin, _ = cos_sin_norms(arrays["W_E"][:P], axis=0)
    assert np.allclose(view.embed.cos, cos) and np.allclose(view.embed.sin, sin)
    W_L = (arrays["blocks.0.W_out"] @ arrays["W_U"][:, :P]).T
    cos, sin, _ = cos_sin_norms(W_L, axis=0)
    assert np.allclose(view.logit.cos, cos) and np.allclose(view.logit.sin, sin)
    # no stored frequencies: the run's own (neuron) rule, through the numpy forward pass, says so
    (kf,) = view.per_task
    assert (kf.rule, kf.source, kf.note) == ("neuron", RECOMPUTED, "")
    assert view.recomputed() == ["key frequencies", "spectra"]  # the metrics row has the rest


def test_stored_analysis_arrays_win_and_an_unrecorded_rule_is_said(fixture_src: Path) -> None:
    rd = RunDir(fixture_src / "runs" / "add" / "seed0")
    arrays, _ = load_checkpoint(rd.checkpoint_path(6000))
    view = run_view(rd.path, 6000, row={"test_acc": 0.999})
    assert view.key_freqs == arrays["analysis/key_freqs"].tolist() == [4, 11, 17, 23]
    (kf,) = view.per_task
    assert (kf.rule, kf.source) == ("unrecorded", STORED)  # this file does not say which rule
    assert view.rule_notes() == ["the checkpoint does not record which rule gave them"]
    assert view.measures["test_acc"] == 0.999 and view.sources["test_acc"] == STORED  # the row wins
    assert view.measures["restricted_loss"] > 0  # from meta when the row lacks it
    assert np.allclose(view.embed.cos, arrays["analysis/embed_cos"], rtol=1e-5)


def test_a_damaged_checkpoint_is_reported_not_raised(fixture_src: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "add" / "seed0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "spec.json").write_bytes((fixture_src / "runs" / "add" / "seed0" / "spec.json").read_bytes())
    (run / "checkpoints" / "step_0000100.npz").write_bytes(b"PK\x03\x04 not a zip")
    view = run_view(run, 100, row={"train_loss": 1.0})
    assert view.step == 100 and view.embed is None and "step_0000100.npz" in view.error
    assert not view.readable and view.measures == {"train_loss": 1.0}


def heat_cursor_column(heat) -> int:
    """Where the ▲ under the step axis is, in the widget's last row."""
    last = "".join(seg.text for seg in heat._frame[-1])
    return last.index("▲")


@contextlib.asynccontextmanager
async def inspector(root: Path, run_id: str, size: tuple[int, int]):
    """The real app on the fixtures, the run opened and ``i`` pressed: yields (pilot, screen)."""
    app = GrokApp(root / "experiments.toml", palette="truecolor")
    async with app.run_test(size=size) as pilot:
        await settled(pilot)
        app.open_run(run_id)
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        yield pilot, app.screen


async def test_the_inspector_marks_its_step_on_the_heatmap_at_80x24(fx: Path) -> None:
    """The inspected step is the heatmap's cursor, it moves with ←/→, and the screen fits 80×24."""
    from grok_tui.tui.widgets.heatmap import FourierHeatmap

    async with inspector(fx, "add/seed0", (80, 24)) as (pilot, screen):
        heat = screen.query_one("#insp-heat", FourierHeatmap)
        assert screen.id == "inspector" and screen.step == 6000 and heat.cursor == 6000
        assert heat.key_freqs == [4, 11, 17, 23] and len(heat.steps) == 121
        right = heat_cursor_column(heat)
        for key, step in (("left", 5500), ("home", 0), ("end", 6000)):
            await pilot.press(key)
            await pilot.pause()
            assert screen.step == step == heat.cursor
            col = heat_cursor_column(heat)
            assert (col < right) if step < 6000 else (col == right)
        # everything on screen at 80×24: no widget cut off or squeezed out
        assert screen.query_one("Footer").region.y == 23
        widgets = ["#insp-head", "#insp-keys", "#bars-embed", "#bars-logit", "#insp-heat", "#insp-measures"]
        regions = [screen.query_one(w).region for w in widgets]
        assert all(r.height >= 1 and r.bottom <= 23 for r in regions), regions
        assert heat.region.height >= 5 and all(r.height >= 4 for r in regions[2:4])
        ys = [r.y for r in regions]
        assert ys == sorted(ys) and all(a.bottom <= b.y for a, b in zip(regions, regions[1:], strict=False))
        keys = static_text(screen.query_one("#insp-keys"))
        assert "4 11 17 23 (unrecorded rule, stored)" in keys
        measures = static_text(screen.query_one("#insp-measures"))
        assert "restricted loss" in measures and "Σ w²" in measures


async def test_recomputed_numbers_are_marked_in_the_inspector(fx: Path) -> None:
    """A checkpoint without stored analysis: the rule and 'recomputed' are on screen, no silent numbers."""
    async with inspector(fx, "add/seed1", (100, 30)) as (_, screen):
        keys = static_text(screen.query_one("#insp-keys")).replace("\n", " ")
        view = screen.view
        assert view.per_task[0].source == RECOMPUTED
        assert f"{view.key_freq_line()}" in keys and "(neuron rule, recomputed)" in keys
        assert "recomputed from the weights: key frequencies, spectra" in keys


READERS = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from grok_tui.cli.inspecting import inspect
    from grok_tui.tui.app import GrokApp
    root = Path(sys.argv[1])
    assert inspect(root / "runs" / "add" / "seed1", None, True) == 0  # recomputes: the numpy forward

    async def go():
        app = GrokApp(root / "experiments.toml", palette="256")
        async with app.run_test(size=(100, 30)) as pilot:
            await app.settle()
            for run_id in ("add/seed0", "add/seed1", "mix/seed0"):
                app.open_run(run_id)
                await pilot.pause()
                for key in ("3", "i", "left", "escape", "escape"):
                    await pilot.press(key)
                    await pilot.pause()

    asyncio.run(go())
    print(sorted(m for m in ("torch", "grok_tui.recorder", "grok_tui.train") if m in sys.modules))
    """
)


@pytest.mark.slow  # a fresh interpreter or a long generated input
def test_checkpoint_readers_import_neither_the_writer_nor_torch(fixture_src: Path) -> None:
    """grok inspect and the TUI (heatmap, inspector, recomputation included) read checkpoints
    through grok_tui.checkpoints: neither torch nor the writer (recorder.py) is ever loaded."""
    out = subprocess.run(
        [sys.executable, "-c", READERS, str(fixture_src)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
