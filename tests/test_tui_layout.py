# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""The smallest supported terminal (80×24): nothing that matters is cut. The state column is whole
whatever the run ids, the run column stays when the table scrolls sideways, every footer shows help
and quit, plot legends wrap instead of being cut, and no two quantities of different scale share an
axis."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Footer
from tui_helpers import add_schedule, alive, copy_run, fixture_src, fx, settled, until, write_jsonl  # noqa: F401

from grok_tui import format as fmt
from grok_tui import runs
from grok_tui.config import load_config
from grok_tui.tui.app import GrokApp
from grok_tui.tui.screens.experiments import RunTable
from grok_tui.tui.widgets.plot import CurvePlot

SMALL = (80, 24)
LONG = "weight_decay_sweep_of_the_grokking_transformer_at_lr3e-3_and_frac0_4"  # an experiment name


def lines(widget) -> list[str]:
    """What ``widget`` draws, line by line, as plain text."""
    return [widget.render_line(y).text for y in range(widget.size.height)]


def table_line(table: RunTable, run_id: str) -> str:
    return lines(table)[1 + table.get_row_index(run_id)]  # line 0 is the header


async def test_every_footer_shows_help_and_quit(alive: Path) -> None:
    app = GrokApp(alive / "experiments.toml", palette="truecolor")
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        screens = []
        for keys in (["down"], ["up", "enter"], ["i"], ["escape", "escape", "space", "space", "o"]):
            await pilot.press(*keys)
            await pilot.pause()
            footer = app.screen.query_one(Footer)
            shown = {k.key for k in footer.query("FooterKey") if k.region.width and k.region.right <= 80}
            assert {"question_mark", "q"} <= shown, (app.screen.id, shown)
            screens.append(app.screen.id)
        assert screens == ["experiments", "run", "inspector", "compare"]


async def test_the_state_is_never_cut_and_the_run_stays_when_scrolled(fx: Path) -> None:
    """A run id longer than the terminal, and a state that grows from "new" to "running" in place."""
    toml = fx / "experiments.toml"
    toml.write_text(toml.read_text() + f'\n[experiments.{LONG}]\ntask = "add"\nsteps = 6000\n')
    spec = next(s for s in load_config(toml).runs if s["experiment"] == LONG)
    app = GrokApp(toml, palette="truecolor")
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        table = app.screen.query_one(RunTable)
        rid = f"{LONG}/{spec['name']}"
        assert "new" in table_line(table, rid).split()
        # the run starts: a directory whose worker holds the lock and says running
        rd = fx / "runs" / rid
        rd.mkdir(parents=True)
        (rd / runs.SPEC).write_text(json.dumps(spec))
        (rd / runs.STATUS).write_text(json.dumps({"state": "running", "step": 40, "total_steps": 6000}))
        with runs.hold_lock(rd):
            await settled(pilot)
            line = table_line(table, rid)
            assert "running" in line.split() and "…" in line  # the id gives way, the state does not
            for other in ("add/seed2", "old/seed0"):  # short ids are whole
                assert f" {other} " in table_line(table, other)
            table.scroll_to(x=table.max_scroll_x, animate=False)
            await pilot.pause()
            assert table.scroll_x > 0
            row = table_line(table, "add/seed0")
            assert row.split()[:2] == ["add/seed0", "done"] and row.split()[-1] == "cpu"  # both ends
        full = app.screen.query_one("#exp-detail")
        await pilot.press("G")
        await pilot.pause()
        assert full.render_line(0).text.split()[0] in ("old/seed0", rid)  # the detail line names it in full


async def test_legends_wrap_instead_of_being_cut(alive: Path) -> None:
    app = GrokApp(alive / "experiments.toml", palette="truecolor")
    async with app.run_test(size=SMALL) as pilot:
        await settled(pilot)
        app.open_run("mix/seed0")  # four accuracy curves (two tasks)
        await pilot.pause()
        for tab in ("1", "2"):
            await pilot.press(tab)
            await pilot.pause()
            for plot in app.screen.query(CurvePlot).results():
                if not plot.region.width:
                    continue  # in the hidden tab
                text = " ".join(lines(plot))
                assert plot.title in text
                for c in plot.curves:
                    assert f"━ {c.label}" in text or not c.label, (plot.id, c.label)


async def open_measures(app: GrokApp, pilot, run_id: str) -> None:
    """The run screen of ``run_id`` on its measures tab (key 2)."""
    app.open_run(run_id)
    await pilot.pause()
    await pilot.press("2")


def measure_plots(app: GrokApp) -> dict[str, CurvePlot]:
    """The measures tab's panels by title, in screen order."""
    return {p.title: p for p in app.screen.query_one("#measure-grid").query(CurvePlot).results()}


async def test_each_quantity_of_the_weights_panel_has_its_own_axis(fx: Path) -> None:
    """Σw² (~1e3), the learning rate (~1e-3) and the key-frequency count (0..4) in separate panels."""
    run = copy_run(fx / "runs" / "add" / "seed0", fx / "runs" / "sched" / "seed0")
    rows = add_schedule(run)
    app = GrokApp(fx / "experiments.toml", palette="truecolor")
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await open_measures(app, pilot, "sched/seed0")
        await pilot.pause()
        await pilot.pause()  # the panels mounted for this run's own metrics take their place
        plots = measure_plots(app)
        assert list(plots) == [
            "loss",
            "restricted / excluded accuracy",
            "Gini",
            "FFD / FCR",
            "Σ w²",
            "learning rate",
            "key frequencies",
        ]
        for title, key, logy in (("Σ w²", "weight_norm", False), ("learning rate", "lr", True)):
            (c,) = plots[title].curves
            assert list(c.y) == [r[key] for r in rows] and plots[title].logy is logy
        (kf,) = plots["key frequencies"].curves
        assert set(kf.y.tolist()) == {0, 4} and plots["key frequencies"].region.height >= 4
        for p in plots.values():  # every panel on screen, with its own y axis
            assert p.region.width and p.region.height >= 4, p.title
        text = " ".join(lines(plots["learning rate"]))
        assert "1e-3" in text or "1e-4" in text  # its own log axis, not Σw²'s
        assert fmt.num(rows[-1]["weight_norm"]) not in text


async def test_softmax_collapse_gets_its_own_panel(fx: Path) -> None:
    """A run that records Prieto et al.'s softmax collapse shows it as a share (0..1) in a panel of its
    own, titled by what it counts."""
    run = copy_run(fx / "runs" / "add" / "seed0", fx / "runs" / "collapse" / "seed0")
    rows = runs.read_jsonl(run / runs.METRICS)
    last = max(r["step"] for r in rows) or 1
    for r in rows:
        r["softmax_collapse"] = round(r["step"] / last, 3)
    write_jsonl(run / runs.METRICS, rows)
    app = GrokApp(fx / "experiments.toml", palette="truecolor")
    async with app.run_test(size=(100, 30)) as pilot:
        await settled(pilot)
        await open_measures(app, pilot, "collapse/seed0")
        title = "softmax collapse (share of train pairs)"

        def panel() -> CurvePlot | None:
            return measure_plots(app).get(title)

        await until(pilot, lambda: panel() is not None and bool(panel().curves))
        (c,) = panel().curves
        assert list(c.y) == [r["softmax_collapse"] for r in rows] and panel().logy is False
        assert panel().region.height >= 4
