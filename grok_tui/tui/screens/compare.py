"""Overlay: the test accuracy of several runs on one log-x plot.

Each run keeps its colour (its place in the selection) and is named by the settings that differ among the
selected runs (``frac=0.3 wd=1 seed=0``), so a sweep's legend reads at 80 columns; ``b`` draws the seeds of
each sweep point as one band (mean with min–max) instead of n lines.
"""

from __future__ import annotations

import statistics

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.reactive import var
from textual.widgets import Static

from grok_tui import format as fmt
from grok_tui import sweeps
from grok_tui.tui.screens.base import LiveScreen, footer
from grok_tui.tui.widgets.palette import series_style, tone_variable
from grok_tui.tui.widgets.plot import CurvePlot, band, curve


class CompareScreen(LiveScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="compare.back"),
        Binding("e", "app.cycle_ema", "EMA", id="compare.ema"),
        Binding("x", "toggle_logx", "log-x", id="compare.logx"),
        Binding("t", "toggle_train", "Train acc", id="compare.train"),
        Binding("b", "toggle_bands", "Seed bands", id="compare.bands"),
    ]

    #: Log-scaled step axis.
    logx: var[bool] = var(True, init=False)
    #: Also draw each run's train accuracy.
    with_train: var[bool] = var(False, init=False)
    #: The seeds of a sweep point as one band (mean, min–max) instead of a line each.
    bands: var[bool] = var(False, init=False)

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__(id="compare")
        self.run_ids = run_ids
        self._versions: tuple = ()

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-head")
        yield CurvePlot("test accuracy", id="overlay", logx=True, ylim=(0.0, 1.0))
        yield footer()

    def on_mount(self) -> None:
        self.series = {rid: self.app.store.series(rid) for rid in self.run_ids}
        self.watch(self.app, "ema_weight", self.draw, init=False)
        self.refresh_data()

    def on_unmount(self) -> None:
        for rid in self.run_ids:
            self.app.store.release(rid)

    def watch_logx(self) -> None:
        self.draw()

    def watch_with_train(self) -> None:
        self.draw()

    def watch_bands(self) -> None:
        self.draw()

    def _settings(self) -> dict[str, dict]:
        store = self.app.store
        return {rid: sweeps.settings(r.summary.spec if (r := store.row(rid)) else {}) for rid in self.run_ids}

    def _head(self) -> list[tuple[str, str]]:
        """The head starts with the experiment when every run is of one (the legend leaves it out)."""
        exps = {rid.split("/", 1)[0] for rid in self.run_ids}
        return [(f"{exps.pop()}  ", "bold")] if len(exps) == 1 else []

    def labels(self) -> dict[str, str]:
        """Each run named by the settings that differ among the selection (its id when they tell two
        runs apart no better)."""
        settings = self._settings()
        keys = sweeps.differing(settings.values())
        out = {
            rid: " ".join(f"{sweeps.short(k)}={sweeps.show(s.get(k))}" for k in keys)
            for rid, s in settings.items()
        }
        if not keys or len(set(out.values())) < len(out):
            return {rid: rid for rid in self.run_ids}
        return out

    def points(self) -> list[tuple[str, list[str]]]:
        """The selection grouped by sweep point (every differing setting but the seed), in order."""
        settings = self._settings()
        keys = [k for k in sweeps.differing(settings.values()) if k != sweeps.SEED]
        groups: dict[str, list[str]] = {}
        for rid in self.run_ids:
            label = " ".join(f"{sweeps.short(k)}={sweeps.show(settings[rid].get(k))}" for k in keys)
            groups.setdefault(label or "all seeds", []).append(rid)
        return list(groups.items())

    def refresh_data(self) -> None:
        """On every poll result: redraw when any run has new rows."""
        versions = tuple(s.version for s in self.series.values())
        if versions != self._versions:
            self._versions = versions
            self.draw()

    def draw(self) -> None:
        if self.bands:
            self._draw_bands()
            return
        w = self.app.ema_weight
        curves, head = [], self._head()
        store = self.app.store
        labels = self.labels()
        for i, (rid, s) in enumerate(self.series.items()):
            c = curve(s.metrics, "test_acc", labels[rid], i, w)
            if c:
                curves.append(c)
            if self.with_train and (t := curve(s.metrics, "train_acc", f"{labels[rid]} train", i + 4, w)):
                curves.append(t)
            row = store.row(rid)
            head.append((f"{labels[rid]} ", series_style(i)))
            grokked = fmt.step(row.summary.grokked_at if row else None)
            head.append((f"grokked@{grokked}  ", tone_variable("muted")))
        self.query_one("#compare-head", Static).update(Content.assemble(*head))
        note = f"EMA {w:g}" if w else ""
        self.query_one("#overlay", CurvePlot).plot(curves, logx=self.logx, note=note)

    def _draw_bands(self) -> None:
        """One curve per sweep point: its seeds' mean test accuracy over the steps they share, shaded
        between their min and max; the head says how many of them grokked and the median step."""
        from grok_tui.runs import FIT_THRESHOLD

        curves, head = [], self._head()
        store = self.app.store
        for i, (label, rids) in enumerate(self.points()):
            cols = [self.series[rid].metrics for rid in rids]
            c = band(f"{label} ({len(rids)})", [(m.get("step"), m.get("test_acc")) for m in cols], i)
            if c:
                curves.append(c)
            grokked = [r.summary.grokked_at for rid in rids if (r := store.row(rid)) and r.summary.grokked_at]
            mid = sweeps.cell_text("grokked_at", statistics.median(grokked)) if grokked else fmt.DASH
            head.append((f"{label} ", series_style(i)))
            head.append((f"{len(grokked)}/{len(rids)} grokked@{mid}  ", tone_variable("muted")))
        self.query_one("#compare-head", Static).update(Content.assemble(*head))
        note = f"band: min–max over seeds; grokked: test acc ≥ {FIT_THRESHOLD}"
        self.query_one("#overlay", CurvePlot).plot(curves, logx=self.logx, note=note)

    def action_toggle_bands(self) -> None:
        self.bands = not self.bands

    def action_toggle_logx(self) -> None:
        self.logx = not self.logx

    def action_toggle_train(self) -> None:
        self.with_train = not self.with_train
