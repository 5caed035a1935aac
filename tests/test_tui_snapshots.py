# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""SVG snapshots of every screen over the fixture runs (baselines: pytest --snapshot-update).

Deterministic by construction: fixtures are seeded with fixed timestamps, the app starts in the
fixture root with relative paths (no tmp path on screen), the heatmap palette is fixed, and every
screenshot is taken after a fresh poll has been handled.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import RUNNING, add_schedule, alive, copy_run, drive, fixture_src, fx  # noqa: F401

from grok_tui.tui.app import GrokApp


@pytest.fixture
def app(alive: Path, monkeypatch: pytest.MonkeyPatch) -> GrokApp:
    monkeypatch.chdir(alive)
    return GrokApp(Path("experiments.toml"), palette="truecolor")


def test_experiments_screen(snap_compare, app: GrokApp) -> None:
    assert snap_compare(app, terminal_size=(110, 24), run_before=drive(cursor="add/seed2"))


def test_experiments_screen_80x24_filtered_and_selected(snap_compare, app: GrokApp) -> None:
    keys = ("space", "space", "slash", "a", "d", "d", "enter")
    assert snap_compare(app, terminal_size=(80, 24), run_before=drive(*keys, cursor="add/seed0"))


def test_run_screen_curves(snap_compare, app: GrokApp) -> None:
    assert snap_compare(app, terminal_size=(100, 30), run_before=drive("enter", cursor="add/seed0"))


def test_run_screen_measures(snap_compare, app: GrokApp) -> None:
    assert snap_compare(app, terminal_size=(100, 30), run_before=drive("enter", "2", cursor="add/seed0"))


def test_run_screen_fourier_heatmap(snap_compare, app: GrokApp) -> None:
    assert snap_compare(app, terminal_size=(100, 30), run_before=drive("enter", "3", cursor="add/seed0"))


def test_checkpoint_inspector(snap_compare, app: GrokApp) -> None:
    keys = ("enter", "i", "left", "left", "left")
    assert snap_compare(app, terminal_size=(100, 30), run_before=drive(*keys, cursor="add/seed0"))


def test_overlay_with_ema(snap_compare, app: GrokApp) -> None:
    keys = ("space", "space", "space", "o", "e")
    assert snap_compare(app, terminal_size=(100, 24), run_before=drive(*keys, cursor="add/seed0"))


def test_stop_confirm_and_help(snap_compare, app: GrokApp) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=drive("s", cursor=RUNNING))


def test_help_screen(snap_compare, app: GrokApp) -> None:
    assert snap_compare(app, terminal_size=(80, 30), run_before=drive("question_mark"))


@pytest.fixture
def scheduled_app(fx: Path, monkeypatch: pytest.MonkeyPatch) -> GrokApp:
    """The fixture runs plus one that records the learning rate and the key-frequency count."""
    add_schedule(copy_run(fx / "runs" / "add" / "seed0", fx / "runs" / "sched" / "seed0"))
    monkeypatch.chdir(fx)
    return GrokApp(Path("experiments.toml"), palette="truecolor")


def test_run_screen_measures_80x24_one_axis_per_quantity(snap_compare, scheduled_app: GrokApp) -> None:
    keys = ("enter", "2")
    assert snap_compare(scheduled_app, terminal_size=(80, 24), run_before=drive(*keys, cursor="sched/seed0"))
