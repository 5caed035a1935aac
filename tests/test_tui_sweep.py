# ruff: noqa: F811  (pytest fixtures imported from helper modules are parameters here)
"""The sweep screen: the grid `grok grid` prints, as a heatmap one can walk with the arrow keys and open
cell by cell; Pilot drives the real app, and SVG snapshots fix how it reads at 80×24 and 120×40."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import grok
from tui_helpers import drive

from grok_tui.tui.app import GrokApp
from grok_tui.tui.screens.compare import CompareScreen
from grok_tui.tui.screens.experiments import RunTable
from grok_tui.tui.screens.sweep import SweepScreen

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_fixtures import make_sweep_fixture  # noqa: E402


async def open_sweep(pilot, run_id: str) -> SweepScreen:
    await pilot.app.settle()
    await pilot.pause()
    screen = pilot.app.screen
    shown = screen.visible_run_ids()  # a large experiment is one group row until unfolded
    key = run_id if run_id in shown else "group:" + run_id.split("/")[0]
    screen.query_one(RunTable).move_cursor(row=shown.index(key), animate=False)
    await pilot.pause()
    await pilot.press("w")
    await pilot.pause()
    assert isinstance(pilot.app.screen, SweepScreen)
    return pilot.app.screen


def shown(screen: SweepScreen) -> list[list[str]]:
    """The cells' text as the table holds it (axis column dropped)."""
    from textual.widgets import DataTable

    table = screen.query_one("#sweep-grid", DataTable)
    return [[str(c).strip() for c in table.get_row_at(i)[1:]] for i in range(table.row_count)]


@pytest.mark.slow
async def test_the_sweep_screen_shows_what_grok_grid_prints_and_opens_a_cell(
    tiny_sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_sweep)
    app = GrokApp(Path("experiments.toml"), palette="truecolor")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sweep(pilot, "sw/train_frac=0.3-weight_decay=0.3-seed0")
        for value in ("grokked_at", "best_test_acc"):
            args = ["--rows", "train_frac", "--cols", "optim.weight_decay", "--value", value, "--json"]
            cells = json.loads(grok("grid", "sw", *args, cwd=tiny_sweep).stdout)
            expected = [[c["text"] for c in cells if c["train_frac"] == f] for f in (0.3, 0.7)]
            assert shown(screen) == expected
            assert screen.value == value
            await pilot.press("v")
            await pilot.pause()
        # the cell down and right of the first: frac 0.7, wd 1
        await pilot.press("down", "right", "enter")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        assert app.screen.run_ids == [f"sw/train_frac=0.7-weight_decay=1.0-seed{s}" for s in (0, 1)]


def test_swapping_the_axes_transposes_the_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    make_sweep_fixture(tmp_path)
    monkeypatch.chdir(tmp_path)

    async def go() -> tuple[list[list[str]], list[list[str]]]:
        app = GrokApp(Path("experiments.toml"), palette="truecolor")
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_sweep(pilot, "fr/train_frac=0.3-weight_decay=0.1-seed0")
            before = shown(screen)
            await pilot.press("t")
            await pilot.pause()
            return before, shown(screen)

    before, after = asyncio.run(go())
    assert len(before) == 3 and len(before[0]) == 2
    assert after == [list(col) for col in zip(*before, strict=True)]


@pytest.fixture
def sweep_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GrokApp:
    make_sweep_fixture(tmp_path)
    monkeypatch.chdir(tmp_path)
    return GrokApp(Path("experiments.toml"), palette="truecolor")


def test_sweep_screen_80x24(snap_compare, sweep_app: GrokApp) -> None:
    assert snap_compare(
        sweep_app, terminal_size=(80, 24), run_before=drive("w", "down", "right", cursor="group:fr")
    )


def test_sweep_screen_120x40_best_accuracy(snap_compare, sweep_app: GrokApp) -> None:
    assert snap_compare(sweep_app, terminal_size=(120, 40), run_before=drive("w", "v", cursor="group:fr"))


def test_an_overlay_of_a_sweep_names_runs_by_what_differs_and_bands_the_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four runs (two points × two seeds): the legend reads `wd=0.1 seed=0`, not the run ids; with `b`
    each point is one curve, the mean of its seeds' test accuracy between their min and max."""
    import asyncio

    import numpy as np

    from grok_tui import runs
    from grok_tui.tui.widgets.plot import CurvePlot

    make_sweep_fixture(tmp_path)
    monkeypatch.chdir(tmp_path)
    ids = [f"fr/train_frac=0.7-weight_decay={wd}-seed{s}" for wd in ("0.1", "1.0") for s in (0, 1)]

    async def go():
        app = GrokApp(Path("experiments.toml"), palette="truecolor")
        async with app.run_test(size=(100, 30)) as pilot:
            await app.settle()
            app.open_compare(ids)
            await pilot.pause()
            await app.settle()
            await pilot.pause()
            lines = [c.label for c in app.screen.query_one("#overlay", CurvePlot).curves]
            await pilot.press("b")
            await pilot.pause()
            return lines, list(app.screen.query_one("#overlay", CurvePlot).curves)

    lines, bands = asyncio.run(go())
    assert lines == ["wd=0.1 seed=0", "wd=0.1 seed=1", "wd=1 seed=0", "wd=1 seed=1"]
    assert [b.label for b in bands] == ["wd=0.1 (2)", "wd=1 (2)"]
    for b, pair in zip(bands, (ids[:2], ids[2:]), strict=True):
        rows = [
            {r["step"]: r["test_acc"] for r in runs.read_jsonl(Path("runs") / rid / runs.METRICS)}
            for rid in pair
        ]
        want = np.array([[r[s] for s in b.x.tolist()] for r in rows])
        assert np.allclose(b.y, want.mean(axis=0)) and np.allclose(b.lo, want.min(axis=0))
        assert np.allclose(b.hi, want.max(axis=0)) and b.x.size == len(rows[0])


def test_overlay_bands_80x24(snap_compare, sweep_app: GrokApp) -> None:
    async def run_before(pilot) -> None:
        await pilot.app.settle()
        pilot.app.open_compare(
            [f"fr/train_frac={f}-weight_decay=1.0-seed{s}" for f in ("0.3", "0.7") for s in (0, 1)]
        )
        await pilot.pause()
        await pilot.app.settle()
        await pilot.press("b")
        await pilot.pause()

    assert snap_compare(sweep_app, terminal_size=(80, 24), run_before=run_before)


def test_a_large_experiment_starts_as_one_row_of_aggregates_and_enter_unfolds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import statistics

    from grok_tui import runs

    make_sweep_fixture(tmp_path)
    monkeypatch.chdir(tmp_path)
    summaries = [r.summary() for r in runs.list_runs("runs")]
    grokked = [s.grokked_at for s in summaries if s.grokked_at is not None]

    async def go():
        app = GrokApp(Path("experiments.toml"), palette="truecolor")
        async with app.run_test(size=(120, 30)) as pilot:
            await app.settle()
            await pilot.pause()
            screen = app.screen
            table = screen.query_one(RunTable)
            folded = screen.visible_run_ids()
            cells = [str(c) for c in table.get_row("group:fr")]
            await pilot.press("enter")
            await pilot.pause()
            unfolded = screen.visible_run_ids()
            await pilot.press("enter")
            await pilot.pause()
            return folded, cells, unfolded, screen.visible_run_ids()

    folded, cells, unfolded, again = asyncio.run(go())
    assert folded == again == ["group:fr"]
    assert unfolded == ["group:fr", *(s.run_id for s in summaries)]
    assert "12 runs" in cells[0] and cells[1] == "12 done"
    assert cells[2] == f"{len(grokked)}/12 grok" and cells[6] == str(round(statistics.median(grokked)))


def test_experiments_grouped_80x24(snap_compare, sweep_app: GrokApp) -> None:
    async def run_before(pilot) -> None:
        await pilot.app.settle()
        await pilot.pause()

    assert snap_compare(sweep_app, terminal_size=(80, 24), run_before=run_before)
