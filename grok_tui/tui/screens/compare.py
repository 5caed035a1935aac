"""Overlay: the test accuracy of several runs on one log-x plot."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.reactive import var
from textual.widgets import Static

from grok_tui import format as fmt
from grok_tui.tui.screens.base import LiveScreen, footer
from grok_tui.tui.widgets.palette import series_style, tone_variable
from grok_tui.tui.widgets.plot import CurvePlot, curve


class CompareScreen(LiveScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="compare.back"),
        Binding("e", "app.cycle_ema", "EMA", id="compare.ema"),
        Binding("x", "toggle_logx", "log-x", id="compare.logx"),
        Binding("t", "toggle_train", "Train acc", id="compare.train"),
    ]

    #: Log-scaled step axis.
    logx: var[bool] = var(True, init=False)
    #: Also draw each run's train accuracy.
    with_train: var[bool] = var(False, init=False)

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

    def refresh_data(self) -> None:
        """On every poll result: redraw when any run has new rows."""
        versions = tuple(s.version for s in self.series.values())
        if versions != self._versions:
            self._versions = versions
            self.draw()

    def draw(self) -> None:
        w = self.app.ema_weight
        curves, head = [], []
        store = self.app.store
        for i, (rid, s) in enumerate(self.series.items()):
            c = curve(s.metrics, "test_acc", rid, i, w)
            if c:
                curves.append(c)
            if self.with_train and (t := curve(s.metrics, "train_acc", f"{rid} train", i + 4, w)):
                curves.append(t)
            row = store.row(rid)
            head.append((f"{rid} ", series_style(i)))
            grokked = fmt.step(row.summary.grokked_at if row else None)
            head.append((f"grokked@{grokked}  ", tone_variable("muted")))
        self.query_one("#compare-head", Static).update(Content.assemble(*head))
        note = f"EMA {w:g}" if w else ""
        self.query_one("#overlay", CurvePlot).plot(curves, logx=self.logx, note=note)

    def action_toggle_logx(self) -> None:
        self.logx = not self.logx

    def action_toggle_train(self) -> None:
        self.with_train = not self.with_train
