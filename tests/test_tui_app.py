# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""Pilot tests: the app driven by keys over fixture run directories (and real processes for stop)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import wait_for
from textual.widgets import TabbedContent
from tui_helpers import (  # noqa: F401
    RUNNING,
    alive,
    cell_text,
    fake_worker,
    fixture_src,
    fx,
    settled,
    static_text,
    until,
)

from grok_tui import format as fmt
from grok_tui import recorder, runs
from grok_tui.checkpoints import run_view
from grok_tui.series import ema
from grok_tui.tui import actions
from grok_tui.tui.app import GrokApp
from grok_tui.tui.screens.experiments import RunTable

SIZE = (110, 32)


def make_app(root: Path) -> GrokApp:
    return GrokApp(root / "experiments.toml", palette="truecolor")


async def goto(pilot, run_id: str) -> None:
    """Put the table cursor on ``run_id``."""
    screen = pilot.app.screen
    table = screen.query_one(RunTable)
    table.move_cursor(row=screen.visible_run_ids().index(run_id), animate=False)
    await pilot.pause()


async def test_table_lists_every_run_with_the_numbers_of_grok_ls(alive: Path) -> None:
    app = make_app(alive)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        table = app.screen.query_one(RunTable)
        assert table.row_count == 8
        for rd in runs.list_runs(alive / "runs"):
            s = rd.summary()
            assert cell_text(table, s.run_id, "state") == fmt.state_label(s).text
            assert cell_text(table, s.run_id, "test") == fmt.acc(s.test_acc)
            assert cell_text(table, s.run_id, "train") == fmt.acc(s.train_acc)
            assert cell_text(table, s.run_id, "mem") == fmt.step(s.memorised_at)
            assert cell_text(table, s.run_id, "grok") == fmt.step(s.grokked_at)
            assert cell_text(table, s.run_id, "progress") == fmt.progress(s.step, s.total_steps)
        assert cell_text(table, "sub/seed0", "state") == "new"
        assert cell_text(table, RUNNING, "state") == "running"
        # queued, and no scheduler holds the fixture's runs directory: nothing will start it
        assert cell_text(table, "add/seed3", "state") == "queued (no scheduler)"


async def test_live_rows_update_in_place(alive: Path) -> None:
    app = make_app(alive)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await goto(pilot, "mix/seed0")
        table = app.screen.query_one(RunTable)
        run_dir = alive / "runs" / RUNNING
        recorder.append_jsonl(run_dir / runs.METRICS, {"step": 2550, "train_acc": 1.0, "test_acc": 0.995})
        recorder.update_status(run_dir, step=2550)
        await settled(pilot)
        assert cell_text(table, RUNNING, "test") == "0.995"
        assert cell_text(table, RUNNING, "grok") == "2550"
        assert cell_text(table, RUNNING, "progress") == "2550/6000"
        assert app.screen.cursor_run_id() == "mix/seed0"  # the cursor did not jump


async def test_broken_toml_shows_one_line_and_the_runs_on_disk(fx: Path) -> None:
    (fx / "experiments.toml").write_text("[experiments.x\n")
    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        err = app.screen.query_one("#config-error")
        assert err.display and "not valid TOML" in static_text(err)
        assert "add/seed0" in app.screen.visible_run_ids()
        await pilot.press("E")  # no terminal to suspend in: a notice, not a crash
        await pilot.pause()
        assert app.is_running


async def test_run_screen_tabs_heatmap_log_and_back(fx: Path) -> None:
    from grok_tui.tui.widgets.heatmap import FourierHeatmap
    from grok_tui.tui.widgets.plot import CurvePlot

    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await goto(pilot, "add/seed0")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.id == "run"
        acc = app.screen.query_one("#acc", CurvePlot)
        assert [c.label for c in acc.curves] == ["train", "test"]
        assert acc.builds >= 1
        assert app.screen.query_one("#m-gini", CurvePlot).builds == 0  # hidden tab: never drawn
        await pilot.press("2")
        await pilot.pause()
        gini = app.screen.query_one("#m-gini", CurvePlot)
        assert gini.builds >= 1 and [c.label for c in gini.curves] == ["W_E", "W_L"]
        await pilot.press("3")
        await pilot.pause()
        heat = app.screen.query_one("#heat", FourierHeatmap)
        assert heat.matrix.shape == (121, 29) and heat.key_freqs == [4, 11, 17, 23]
        await pilot.press("f")  # the W_L spectrum, which this run also records
        await pilot.pause()
        assert app.screen.spectrum == "logit" and "W_L" in heat.title
        await pilot.press("4")
        await pilot.pause()
        log = app.screen.query_one("#worker-log")
        assert log.lines[-1] == "done: test_acc=1.000"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.id == "experiments"


async def test_log_x_and_the_spectrum_are_screen_state(fx: Path) -> None:
    """x and f flip reactive state; its watchers redraw the plots that show it, nothing else."""
    from grok_tui.tui.widgets.heatmap import FourierHeatmap
    from grok_tui.tui.widgets.plot import CurvePlot

    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        app.open_run("add/seed0")
        await pilot.pause()
        screen = app.screen
        plots = list(screen.query(CurvePlot).results())
        heat = screen.query_one("#heat", FourierHeatmap)
        assert screen.logx and all(p.logx for p in plots)
        await pilot.press("x")
        await pilot.pause()
        assert not screen.logx and not any(p.logx for p in plots)
        built = heat.builds
        await pilot.press("x", "f")
        await pilot.pause()
        assert screen.logx and all(p.logx for p in plots)
        assert screen.spectrum == "logit" and screen.query_one(TabbedContent).active == "fourier"
        assert heat.builds == built + 1  # f redrew the heatmap once; x did not touch it


async def test_mixture_run_plots_each_task(fx: Path) -> None:
    from grok_tui.tui.widgets.plot import CurvePlot

    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        app.open_run("mix/seed0")
        await pilot.pause()
        labels = [c.label for c in app.screen.query_one("#acc", CurvePlot).curves]
        assert labels == ["train", "test", "test a + b", "test a - b"]


async def test_inspector_steps_through_checkpoints_from_the_keyboard(fx: Path) -> None:
    from grok_tui.tui.widgets.bars import SpectrumBars

    app = make_app(fx)
    run_dir = fx / "runs" / "add" / "seed1"
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await goto(pilot, "add/seed1")
        await pilot.press("enter", "i")
        await pilot.pause()
        screen = app.screen
        assert screen.id == "inspector" and screen.step == 2500
        seen = []
        for key in ("left", "h", "right", "l", "home", "end", "g"):
            await pilot.press(key)
            await pilot.pause()
            seen.append(screen.step)
        assert seen == [2000, 1500, 2000, 2500, 0, 2500, 0]
        await pilot.press("l", "l")
        await pilot.pause()
        assert screen.step == 1000
        expected = run_view(run_dir, 1000)
        bars = screen.query_one("#bars-embed", SpectrumBars)
        assert np.allclose(bars.cos, expected.embed.cos) and bars.key_freqs == expected.key_freqs
        assert np.allclose(screen.query_one("#bars-logit", SpectrumBars).sin, expected.logit.sin)
        row = next(r for r in runs.RunDir(run_dir).metrics() if r["step"] == 1000)
        text = static_text(screen.query_one("#insp-measures"))
        assert "restricted loss" in text and fmt.num(row["restricted_loss"]) in text
        assert fmt.num(row["ffd_embed"]) in text
        head = static_text(screen.query_one("#insp-head"))
        assert "step 1000" in head and "3/6" in head


async def test_filter_narrows_the_table_and_escape_restores_it(fx: Path) -> None:
    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("slash", "m", "i", "x")
        await pilot.pause()
        assert app.screen.visible_run_ids() == ["mix/seed0"]
        await pilot.press("enter")  # keep the filter, back to the table
        await pilot.pause()
        assert app.screen.query_one(RunTable).has_focus
        await pilot.press("enter")  # opens the only run left
        await pilot.pause()
        assert app.screen.id == "run" and app.screen.run_id == "mix/seed0"
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert len(app.screen.visible_run_ids()) == 8
        await pilot.press("slash", "f", "a", "i", "l")
        await pilot.pause()
        assert app.screen.visible_run_ids() == ["add/seed1", "add/seed2"]  # seed1: worker vanished


async def test_select_runs_and_overlay_test_accuracy_with_ema(fx: Path) -> None:
    from grok_tui.tui.widgets.plot import CurvePlot

    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await goto(pilot, "add/seed0")
        await pilot.press("space", "space")  # space marks and moves down
        await pilot.pause()
        assert app.screen.selected == {"add/seed0", "add/seed1"}
        assert cell_text(app.screen.query_one(RunTable), "add/seed0", "run").startswith("●")
        await pilot.press("o")
        await pilot.pause()
        assert app.screen.id == "compare"
        plot = app.screen.query_one("#overlay", CurvePlot)
        assert [c.label for c in plot.curves] == ["seed=0", "seed=1"]  # named by what differs
        raw = [r["test_acc"] for r in runs.RunDir(fx / "runs" / "add" / "seed0").metrics()]
        assert np.allclose(plot.curves[0].y, raw)
        await pilot.press("e")
        await pilot.pause()
        assert app.ema_weight == 0.6
        assert np.allclose(plot.curves[0].y, ema(np.array(raw), 0.6))
        assert "EMA 0.6" in plot.note
        await pilot.press("e", "e")
        await pilot.pause()
        assert app.ema_weight == 0.0 and np.allclose(plot.curves[0].y, raw)


async def test_stop_asks_first_then_signals_the_live_worker(fx: Path, fake_worker: subprocess.Popen) -> None:
    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await goto(pilot, RUNNING)
        assert cell_text(app.screen.query_one(RunTable), RUNNING, "state") == "running"
        await pilot.press("s")
        await pilot.pause()
        assert app.screen.id == "confirm"
        await pilot.press("n")
        await pilot.pause()
        assert app.screen.id == "experiments" and fake_worker.poll() is None
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("y")  # grok stop, in the background: SIGTERM, the worker checkpoints and exits
        await pilot.pause()
        wait_for(lambda: fake_worker.poll() is not None, timeout=60, what="the worker to exit on SIGTERM")
        await settled(pilot)
        assert cell_text(app.screen.query_one(RunTable), RUNNING, "state") == "stopped"


async def test_quitting_never_stops_a_run(fx: Path, fake_worker: subprocess.Popen) -> None:
    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running
    assert fake_worker.poll() is None and runs.lock_held(fx / "runs" / RUNNING)


async def test_stop_and_resume_refuse_what_cannot_be_done(fx: Path, fake_worker: subprocess.Popen) -> None:
    with pytest.raises(actions.ActionError, match="already running"):
        actions.resume([fx / "runs" / RUNNING], fx / "runs")
    with pytest.raises(actions.ActionError, match="not running"):
        actions.stop([fx / "runs" / "add" / "seed0"], fx / "runs")
    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await goto(pilot, "add/seed0")  # done: nothing to stop, nothing to resume
        await pilot.press("s", "R")
        await pilot.pause()
        assert app.screen.id == "experiments"
    assert fake_worker.poll() is None


async def test_help_and_command_palette(fx: Path) -> None:
    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.id == "help"
        text = " ".join(static_text(w) for w in app.screen.query("Static"))
        for words in ("Launch", "Stop", "Overlay", "Filter", "Quit"):
            assert words in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.id == "experiments"
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"filter")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.id == "experiments" and app.screen.query_one("#filter").display


async def test_80x24_every_screen_fits(alive: Path) -> None:
    """The smallest supported terminal: every screen composes, footer and plots included."""
    app = make_app(alive)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await goto(pilot, "add/seed0")
        for keys in (
            ["enter"],
            ["2"],
            ["3"],
            ["4"],
            ["i"],
            ["left"],
            ["escape", "escape"],
            ["space", "space", "o"],
        ):
            await pilot.press(*keys)
            await pilot.pause()
            assert app.screen.query_one("Footer").region.y == 23


def test_spawn_detached_gives_the_child_its_own_session_and_no_terminal(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    code = "import os, sys; print(os.getsid(0) == os.getpid(), repr(sys.stdin.read()))"
    pid = actions.spawn_detached([sys.executable, "-c", code], log)
    ended: dict[int, actions.Outcome] = {}  # other tests' children may end here too

    def reaped() -> actions.Outcome | None:
        ended.update((o.pid, o) for o in actions.reap())
        return ended.get(pid)

    out = wait_for(reaped, what="the child to finish")
    assert (out.pid, out.returncode, out.lines) == (pid, 0, ["True ''"])  # what it printed, read back
    assert log.read_text().splitlines()[0].startswith(actions.HEADER)  # after the line naming it
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left


def test_launch_runs_the_grok_cli_for_the_selected_experiments(tmp_path: Path) -> None:
    argv = actions.launch_argv(Path("experiments.toml"), ["add", "mix"], Path("runs"))
    assert argv[1:] == [
        "-m",
        "grok_tui",
        "run",
        "experiments.toml",
        "--only",
        "add",
        "--only",
        "mix",
        "--runs-dir",
        "runs",
        "--detach",
    ]
    with pytest.raises(actions.ActionError):
        actions.launch(None, ["add"], tmp_path)


async def test_colours_follow_the_theme(fx: Path) -> None:
    """States, axes and markers take the theme's colours: switching the theme recolours them."""
    from rich.style import Style

    from grok_tui.tui.widgets.palette import TONE_VARIABLES, tone_style

    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        table = app.screen.query_one(RunTable)
        seen = {}
        for theme in ("textual-dark", "textual-light"):
            app.theme = theme
            await pilot.pause()
            await pilot.pause()  # the theme is applied, then announced
            done = table.get_cell("add/seed0", "state")
            assert done.style == tone_style(app, fmt.STATE_TONES["done"]) != Style()
            assert TONE_VARIABLES["success"] in app.theme_variables
            app.open_run("add/seed0")
            await pilot.pause()
            _, axis, mark = app.screen.query_one("#acc").part_styles()
            seen[theme] = (done.style.color, axis.color, mark.color)
            await pilot.press("escape")
            await pilot.pause()
        assert all(a != b for a, b in zip(seen["textual-dark"], seen["textual-light"], strict=True))


async def test_the_run_and_inspector_name_the_phase_grok_show_and_grok_inspect_name(fx: Path) -> None:
    import json

    from grok_tui.cli.inspecting import collect
    from grok_tui.cli.progress import phase_line

    run_dir = fx / "runs" / "add" / "seed0"
    now = phase_line(run_dir).split("   ")[0].removeprefix("phase: ")
    app = make_app(fx)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        app.open_run("add/seed0")
        await pilot.pause()
        assert static_text(app.screen.query_one("#run-head")).strip().endswith(f"· {now}")
        app.open_inspector("add/seed0")
        await pilot.pause()
        step = app.screen.step
        info = json.loads(json.dumps(collect(run_dir, step), default=str))
        assert f"step {step}  phase {info['phase']}" in static_text(app.screen.query_one("#insp-head"))


async def test_a_poll_result_between_push_and_mount_of_a_screen_is_no_crash(fx: Path) -> None:
    """The poll thread's RunsChanged can be handled after a screen is pushed and before it has its
    widgets (seen under load: NoMatches '#exp-title' from the first poll). It is skipped, and the screen
    shows the run once mounted."""
    from textual.widgets import Static

    from grok_tui.tui.messages import RunsChanged

    app = GrokApp(fx / "experiments.toml", palette="truecolor")
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        app.open_run("add/seed0")
        assert not app.screen.is_mounted  # pushed, not composed yet
        app.on_runs_changed(RunsChanged(app.handled))
        await until(pilot, lambda: app.screen.is_mounted)
        await pilot.pause()
        head = str(app.screen.query_one("#run-head", Static).render())
        assert "add/seed0" in head and "done" in head
