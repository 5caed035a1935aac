"""One run: accuracy and loss curves, progress measures, the Fourier heatmap, the worker log."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Log, Static, TabbedContent, TabPane

from grok_tui.series import ema
from grok_tui.tui import format as fmt
from grok_tui.tui.store import Columns, Row
from grok_tui.tui.widgets.heatmap import FourierHeatmap
from grok_tui.tui.widgets.palette import SERIES, TEST, TRAIN
from grok_tui.tui.widgets.plot import Curve, CurvePlot

#: Progress-measure panels: (widget id, title, metric keys, log-y).
MEASURE_PANELS = [
    ("m-loss", "loss", ["train_loss", "test_loss", "restricted_loss", "excluded_loss"], True),
    ("m-gini", "Gini", ["gini_embed", "gini_logit"], False),
    ("m-ffd", "FFD / FCR", ["ffd_embed", "fcr_embed", "ffd_logit", "fcr_logit"], False),
    ("m-norm", "weights", ["weight_norm"], False),
]
KNOWN = {"step", "time", "train_acc", "test_acc", "restricted_acc", "excluded_acc"} | {
    k for _, _, keys, _ in MEASURE_PANELS for k in keys
}
LABELS = {
    "train_loss": "train",
    "test_loss": "test",
    "restricted_loss": "restricted",
    "excluded_loss": "excluded",
    "gini_embed": "W_E",
    "gini_logit": "W_L",
    "ffd_embed": "FFD W_E",
    "fcr_embed": "FCR W_E",
    "ffd_logit": "FFD W_L",
    "fcr_logit": "FCR W_L",
    "weight_norm": "Σ w²",
}


SPECTRUM_TITLES = {
    "embed": "‖W_E‖",
    "logit": "‖W_L‖",
    "embed_dlog": "‖W_E‖ (log basis)",
    "logit_dlog": "‖W_L‖ (log basis)",
}


def header_text(row: Row | None, run_id: str) -> Text:
    """One line, the table's words: state, step, accuracies, memorised/grokked at, error."""
    if row is None:
        return Text(run_id, style="bold")
    return Text.assemble(
        (run_id, "bold"),
        " ",
        (row.state, fmt.STATE_COLORS.get(row.state, "")),
        f" {fmt.progress(row.step, row.total_steps)}",
        f" · train {fmt.acc(row.train_acc)} test {fmt.acc(row.test_acc)}",
        f" · mem@{fmt.step(row.memorised_at)} grok@{fmt.step(row.grokked_at)}",
        (f" · {row.error}", "#ff5f5f") if row.error else "",
    )


def curve(cols: Columns, key: str, label: str, color: str, smooth: float) -> Curve | None:
    """One metric as a curve over steps (EMA-smoothed at full resolution when ``smooth`` > 0)."""
    x, y = cols.get("step"), cols.get(key)
    if x is None or y is None or not np.isfinite(y).any():
        return None
    return Curve(label, x, ema(y, smooth) if smooth else y, color)


class RunScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="run.back"),
        Binding("1", "tab('curves')", "Curves", id="run.tab.curves"),
        Binding("2", "tab('measures')", "Measures", id="run.tab.measures"),
        Binding("3", "tab('fourier')", "Fourier", id="run.tab.fourier"),
        Binding("4", "tab('log')", "Log", id="run.tab.log"),
        Binding("i", "inspect", "Checkpoints", id="run.inspect"),
        Binding("e", "app.cycle_ema", "EMA", id="run.ema"),
        Binding("x", "toggle_logx", "log-x", id="run.logx"),
        Binding("f", "cycle_spectrum", "Spectrum", id="run.spectrum"),
        Binding("s", "stop", "Stop", id="run.stop"),
        Binding("R", "resume", "Resume", id="run.resume"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__(id="run")
        self.run_id = run_id
        self.logx = True
        self.spectrum = "embed"
        self._version = -1
        self._log_written = 0
        self._drawn_ema: float | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="run-head")
        with TabbedContent(id="run-tabs", initial="curves"):
            with TabPane("Curves", id="curves"), Vertical():
                yield CurvePlot("accuracy", id="acc", logx=True)
                yield CurvePlot("loss", id="loss", logx=True, logy=True)
            with TabPane("Measures", id="measures"), Grid(id="measure-grid"):
                for wid, title, _keys, logy in MEASURE_PANELS:
                    yield CurvePlot(title, id=wid, logx=True, logy=logy)
            with TabPane("Fourier", id="fourier"):
                yield FourierHeatmap("", id="heat")
            with TabPane("Log", id="log"):
                yield Log(id="worker-log", max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        self.series = self.app.store.series(self.run_id)
        self.refresh_data(force=True)

    def on_unmount(self) -> None:
        self.app.store.release(self.run_id)

    def on_screen_resume(self) -> None:
        self.refresh_data(force=self._drawn_ema != self.app.ema_weight)

    # ------------------------------------------------------------------ data
    def refresh_data(self, force: bool = False) -> None:
        """Called on every poll result: redraws only what changed (plots build lazily when shown)."""
        row = self.app.store.row(self.run_id)
        self.query_one("#run-head", Static).update(header_text(row, self.run_id))
        s = self.series
        if force or s.version != self._version:
            self._version = s.version
            self._drawn_ema = self.app.ema_weight
            self.draw_curves(row)
            self.draw_heatmap()
        new = s.log_total - self._log_written
        if new > 0:
            lines = list(s.log)
            self.query_one("#worker-log", Log).write_lines(lines[-min(new, len(lines)) :])
            self._log_written = s.log_total

    def draw_curves(self, row: Row | None) -> None:
        s, w = self.series, self.app.ema_weight
        m = s.metrics
        note = f"EMA {w:g}" if w else ""
        marks = []
        if row is not None and row.memorised_at:
            marks.append((row.memorised_at, "memorised"))
        if row is not None and row.grokked_at:
            marks.append((row.grokked_at, "grokked"))
        acc = [curve(m, "train_acc", "train", TRAIN, w), curve(m, "test_acc", "test", TEST, w)]
        tasks = sorted({k.split("/")[1] for k in s.metrics.names() if k.startswith("tasks/")})
        for i, t in enumerate(tasks):
            acc.append(curve(m, f"tasks/{t}/test_acc", f"test {t}", SERIES[(i + 2) % len(SERIES)], w))
        self.query_one("#acc", CurvePlot).plot([c for c in acc if c], logx=self.logx, vlines=marks, note=note)
        loss = [curve(m, "train_loss", "train", TRAIN, w), curve(m, "test_loss", "test", TEST, w)]
        self.query_one("#loss", CurvePlot).plot([c for c in loss if c], logx=self.logx, note=note)
        extra = [k for k in s.metrics.names() if k not in KNOWN and not k.startswith("tasks/")]
        for wid, _title, keys, _logy in MEASURE_PANELS:
            keys = keys + extra if wid == "m-norm" else keys
            cs = [curve(m, k, LABELS.get(k, k), SERIES[i % len(SERIES)], w) for i, k in enumerate(keys)]
            if wid == "m-loss":  # the final pass (final key frequencies), when the run has one
                for j, k in enumerate(("restricted_loss", "excluded_loss")):
                    cs.append(curve(s.progress, k, f"{LABELS[k]} (final K)", SERIES[4 + j], 0))
            self.query_one(f"#{wid}", CurvePlot).plot([c for c in cs if c], logx=self.logx, note=note)

    def draw_heatmap(self) -> None:
        name = self.spectrum
        got = self.series.fourier.array(name)
        what = SPECTRUM_TITLES.get(name, name)
        title = f"{what} per frequency k (rows) over steps · ◂ key frequencies · f: next spectrum"
        heat = self.query_one("#heat", FourierHeatmap)
        if got is None:
            heat.show(np.zeros(0), np.zeros((0, 0)), title=title)
            return
        steps, mat = got
        heat.show(steps, mat, key_freqs=self.key_freqs(), title=title)

    def key_freqs(self) -> list[int]:
        """Key frequencies of the last checkpoint (a mixture: the union of its tasks'), as the
        inspector shows them: stored by the worker, else recomputed from the weights."""
        cps = self.series.checkpoints
        if not cps:
            return []
        return self.app.checkpoint_view(self.run_id, cps[-1]).key_freqs

    # ------------------------------------------------------------------ actions
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_cycle_spectrum(self) -> None:
        names = list(self.series.fourier.data) or ["embed"]
        i = names.index(self.spectrum) if self.spectrum in names else -1
        self.spectrum = names[(i + 1) % len(names)]
        self.action_tab("fourier")
        self.draw_heatmap()

    def action_toggle_logx(self) -> None:
        self.logx = not self.logx
        self.refresh_data(force=True)

    def action_inspect(self) -> None:
        if not self.series.checkpoints:
            self.app.notify("this run has no checkpoints yet", severity="warning")
            return
        self.app.open_inspector(self.run_id)

    def action_stop(self) -> None:
        row = self.app.store.row(self.run_id)
        if row is None or row.state not in ("running", "queued"):
            self.app.notify(f"{self.run_id} is not running", severity="warning")
            return
        self.app.confirm_stop([self.run_id])

    def action_resume(self) -> None:
        self.app.resume([self.run_id])

    def refresh_curves(self) -> None:
        self.refresh_data(force=True)
