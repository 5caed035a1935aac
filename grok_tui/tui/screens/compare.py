"""Overlay: the test accuracy of several runs on one log-x plot."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from grok_tui.tui import format as fmt
from grok_tui.tui.screens.run import curve
from grok_tui.tui.widgets.palette import SERIES
from grok_tui.tui.widgets.plot import CurvePlot


class CompareScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="compare.back"),
        Binding("e", "app.cycle_ema", "EMA", id="compare.ema"),
        Binding("x", "toggle_logx", "log-x", id="compare.logx"),
        Binding("t", "toggle_train", "Train acc", id="compare.train"),
    ]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__(id="compare")
        self.run_ids = run_ids
        self.logx = True
        self.with_train = False
        self._versions: tuple = ()

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-head")
        yield CurvePlot("test accuracy", id="overlay", logx=True, ylim=(0.0, 1.0))
        yield Footer()

    def on_mount(self) -> None:
        self.series = {rid: self.app.store.series(rid) for rid in self.run_ids}
        self.refresh_data(force=True)

    def on_unmount(self) -> None:
        for rid in self.run_ids:
            self.app.store.release(rid)

    def on_screen_resume(self) -> None:
        self.refresh_data(force=True)

    def refresh_data(self, force: bool = False) -> None:
        versions = tuple(s.version for s in self.series.values())
        if not force and versions == self._versions:
            return
        self._versions = versions
        w = self.app.ema_weight
        curves, head = [], []
        store = self.app.store
        for i, (rid, s) in enumerate(self.series.items()):
            color = SERIES[i % len(SERIES)]
            c = curve(s.metrics, "test_acc", rid, color, w)
            if c:
                curves.append(c)
            if self.with_train and (
                t := curve(s.metrics, "train_acc", f"{rid} train", SERIES[(i + 4) % len(SERIES)], w)
            ):
                curves.append(t)
            row = store.row(rid)
            head.append((f"{rid} ", color))
            head.append((f"grokked@{fmt.step(row.grokked_at if row else None)}  ", "dim"))
        self.query_one("#compare-head", Static).update(Text.assemble(*head))
        note = f"EMA {w:g}" if w else ""
        self.query_one("#overlay", CurvePlot).plot(curves, logx=self.logx, note=note)

    def refresh_curves(self) -> None:
        self.refresh_data(force=True)

    def action_toggle_logx(self) -> None:
        self.logx = not self.logx
        self.refresh_data(force=True)

    def action_toggle_train(self) -> None:
        self.with_train = not self.with_train
        self.refresh_data(force=True)
