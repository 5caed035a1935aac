# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""Steering from the TUI says what really happened: `r` on a finished experiment asks before a rerun,
and every command's own words (read back from tui-launch.log) and exit code end up in a notification.
The commands are the real `grok` CLI in detached subprocesses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import end_leftovers, stop_queued_runs
from tui_helpers import fixture_src, fx, settled, static_text, toasts  # noqa: F401

from grok_tui.tui import actions
from grok_tui.tui.app import GrokApp
from grok_tui.tui.screens.experiments import RunTable

SIZE = (110, 32)


@pytest.fixture(autouse=True)
def nothing_to_adopt(fx: Path) -> Iterator[None]:
    """A launch would adopt the fixture's queued run (add/seed3: queued, with no scheduler) and train it:
    these tests are about what the app says, so that run is stopped first; whatever a launch starts ends
    with the test."""
    stop_queued_runs(fx / "runs")
    yield
    end_leftovers(fx / "runs")


async def goto(pilot, run_id: str) -> None:
    screen = pilot.app.screen
    screen.query_one(RunTable).move_cursor(row=screen.visible_run_ids().index(run_id), animate=False)
    await pilot.pause()


async def toast_with(pilot, *words: str, timeout: float = 120.0) -> str:
    """The first notification on screen holding every one of ``words`` (waits for it; a deadline, not
    an expectation: a loaded machine starts `grok` slowly)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        hit = next((t for t in toasts(pilot.app) if all(w in t for w in words)), None)
        if hit is not None:
            return hit
        assert loop.time() < end, f"no notification with {words}; on screen: {toasts(pilot.app)}"
        await pilot.pause(0.05)


async def test_r_on_a_finished_experiment_asks_before_a_rerun(fx: Path) -> None:
    app = GrokApp(fx / "experiments.toml", palette="truecolor")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settled(pilot)
        await goto(pilot, "mix/seed0")  # done, and the only run of experiment mix
        await pilot.press("r")
        await pilot.pause()
        assert app.screen.id == "confirm"
        question = static_text(app.screen.query_one("#confirm-question"))
        assert "mix/seed0 already finished" in question and "grok run --force deletes" in question
        await pilot.press("n")
        await pilot.pause()
        assert app.screen.id == "experiments" and app.launched == []  # nothing started
        await toast_with(pilot, "nothing launched")


async def test_r_on_an_experiment_with_runs_to_start_launches_without_asking(fx: Path) -> None:
    app = GrokApp(fx / "experiments.toml", palette="truecolor")
    asked = []
    app.launch = lambda exps, force=False: asked.append((exps, force))  # no real training here
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settled(pilot)
        await goto(pilot, "add/seed0")  # done, but add/seed2 (failed) and add/seed3 (queued) would start
        await pilot.press("r")
        await pilot.pause()
        assert app.screen.id == "experiments" and asked == [(["add"], False)]


async def test_the_notification_says_what_grok_run_did(fx: Path) -> None:
    """Launching a finished experiment without --force: the real child says "already done", exit 0."""
    app = GrokApp(fx / "experiments.toml", palette="truecolor")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settled(pilot)
        app.launch(["mix"])
        (pid,) = app.launched
        said = await toast_with(pilot, "grok run", "already done")
        assert "mix/seed0: already done (use --force to rerun)" in said and "failed" not in said
        log = (fx / "runs" / actions.LAUNCH_LOG).read_text()
        assert log.startswith(actions.HEADER) and "--only mix" in log.splitlines()[0]


async def test_a_failed_command_says_why_and_its_exit_code(fx: Path) -> None:
    """experiments.toml changed under a finished run: `grok run` refuses (exit 2), the error shows."""
    toml = fx / "experiments.toml"
    toml.write_text(toml.read_text().replace("steps = 4000", "steps = 4100"))
    app = GrokApp(toml, palette="truecolor")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settled(pilot)
        app.launch(["mix"])
        said = await toast_with(pilot, "grok run failed")
        assert "error:" in said and "mix/seed0" in said and "(exit code 2)" in said
