"""One run: accuracy and loss curves, progress measures, the Fourier heatmap, the worker log."""

from __future__ import annotations

import re

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.content import Content
from textual.reactive import var
from textual.widgets import Log, Static, TabbedContent, TabPane

from grok_tui import format as fmt
from grok_tui.tui.screens.base import LiveScreen, footer
from grok_tui.tui.store import Row
from grok_tui.tui.widgets.heatmap import FourierHeatmap
from grok_tui.tui.widgets.palette import TEST, TRAIN, tone_variable
from grok_tui.tui.widgets.plot import CurvePlot, curve

#: Progress-measure panels: (widget id, title, metric keys, log-y). Each other metric the run records
#: (learning rate, key-frequency count, an RFM's AGOP measures, ...) gets a panel of its own, so no
#: two quantities of different scale share an axis.
MEASURE_PANELS = [
    ("m-loss", "loss", ["train_loss", "test_loss", "restricted_loss", "excluded_loss"], True),
    ("m-racc", "restricted / excluded accuracy", ["restricted_acc", "excluded_acc"], False),
    ("m-gini", "Gini", ["gini_embed", "gini_logit"], False),
    ("m-ffd", "FFD / FCR", ["ffd_embed", "fcr_embed", "ffd_logit", "fcr_logit"], False),
    ("m-norm", "Σ w²", ["weight_norm"], False),
]
#: Titles and log-y of the panels of the other metrics the workers are known to record.
EXTRA_PANELS = {
    "lr": ("learning rate", True),
    "n_key_freqs": ("key frequencies", False),
    "softmax_collapse": ("softmax collapse (share of train pairs)", False),
}
KNOWN = {"step", "time", "train_acc", "test_acc"} | {k for _, _, keys, _ in MEASURE_PANELS for k in keys}
LABELS = {
    "train_loss": "train",
    "test_loss": "test",
    "restricted_loss": "restricted",
    "excluded_loss": "excluded",
    "restricted_acc": "restricted",
    "excluded_acc": "excluded",
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


def header_text(row: Row | None, run_id: str, phase: str | None = None) -> Content:
    """One line, the table's words: state, step, accuracies, memorised/grokked at, the phase now (as
    `grok show` names it), a Slurm run's job and node, error."""
    if row is None:
        return Content.styled(run_id, "bold")
    c, label, error = fmt.cells(row.summary), fmt.state_label(row.summary), row.summary.error
    return Content.assemble(
        (run_id, "bold"),
        " ",
        (label.text, tone_variable(label.tone)),
        f" {c['step']}",
        f" · train {c['train_acc']} test {c['test_acc']}",
        f" · mem@{c['memorised_at']} grok@{c['grokked_at']}",
        f" · {phase}" if phase else "",
        (f" · Slurm job {job}" if (job := fmt.job_label(row.summary)) else ""),
        (f" · {fmt.short_error(error, 500)}", tone_variable("error")) if error else "",
    )


#: The footer shows the four tab keys as one entry (the help lists each).
TABS = Binding.Group("Tabs")


def extra_panel_id(key: str) -> str:
    """A widget id for the panel of metric ``key`` (ids allow letters, digits, - and _)."""
    return "m-x-" + re.sub(r"[^A-Za-z0-9_-]", "_", key)


class RunScreen(LiveScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="run.back"),
        Binding("1", "tab('curves')", "Curves", id="run.tab.curves", group=TABS),
        Binding("2", "tab('measures')", "Measures", id="run.tab.measures", group=TABS),
        Binding("3", "tab('fourier')", "Fourier", id="run.tab.fourier", group=TABS),
        Binding("4", "tab('log')", "Log", id="run.tab.log", group=TABS),
        Binding("i", "inspect", "Checkpoints", id="run.inspect"),
        Binding("e", "app.cycle_ema", "EMA", id="run.ema"),
        Binding("x", "toggle_logx", "log-x", id="run.logx"),
        Binding("f", "cycle_spectrum", "Spectrum", id="run.spectrum"),
        Binding("s", "stop", "Stop", id="run.stop", show=False),
        Binding("R", "resume", "Resume", id="run.resume", show=False),
    ]

    #: Log-scaled step axis on every curve.
    logx: var[bool] = var(True, init=False)
    #: The spectrum the heatmap shows (a key of fourier.jsonl's rows).
    spectrum: var[str] = var("embed", init=False)

    def __init__(self, run_id: str) -> None:
        super().__init__(id="run")
        self.run_id = run_id
        self._version = -1
        self._phase: str | None = None
        self._log_written = 0

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
        yield footer()

    def on_mount(self) -> None:
        self.series = self.app.store.series(self.run_id)
        self.watch(self.app, "ema_weight", self.draw_curves, init=False)
        self.refresh_data()

    def on_unmount(self) -> None:
        self.app.store.release(self.run_id)

    def watch_logx(self) -> None:
        self.draw_curves()

    def watch_spectrum(self) -> None:
        self.draw_heatmap()

    # ------------------------------------------------------------------ data
    def refresh_data(self) -> None:
        """On every poll result: the header, then what changed (plots build lazily when shown)."""
        s = self.series
        if s.version != self._version:
            self._version = s.version
            self.draw_curves()
            self.draw_heatmap()
            self._phase = self.phase_now()
        row = self.app.store.row(self.run_id)
        self.query_one("#run-head", Static).update(header_text(row, self.run_id, self._phase))
        new = s.log_total - self._log_written
        if new > 0:
            lines = list(s.log)
            self.query_one("#worker-log", Log).write_lines(lines[-min(new, len(lines)) :])
            self._log_written = s.log_total

    def phase_now(self) -> str | None:
        """The phase at the last evaluation; none for an RFM (it interpolates from iteration 0)."""
        if fmt.model_label(self.app.store.run_dir(self.run_id).spec().get("model")) == "rfm":
            return None
        b = self.series.metrics.phases()
        steps = self.series.metrics.get("step")
        return None if b is None or steps is None else b.phase_at(int(steps[-1]))

    def gini_constant(self) -> bool | None:
        """The run's analysis.gini_constant (its default for a spec that predates the key)."""
        from grok_tui.analysis.live import gini_constant

        return gini_constant(self.app.store.run_dir(self.run_id).spec())

    def draw_curves(self) -> None:
        row = self.app.store.row(self.run_id)
        s, w, logx = self.series, self.app.ema_weight, self.logx
        m = s.metrics
        note = f"EMA {w:g}" if w else ""
        marks = []
        if row is not None and row.summary.memorised_at is not None:
            marks.append((row.summary.memorised_at, "memorised"))
        if row is not None and row.summary.grokked_at is not None:
            marks.append((row.summary.grokked_at, "grokked"))
        acc = [curve(m, "train_acc", "train", TRAIN, w), curve(m, "test_acc", "test", TEST, w)]
        tasks = sorted({k.split("/")[1] for k in m.names() if k.startswith("tasks/")})
        for i, t in enumerate(tasks):
            acc.append(curve(m, f"tasks/{t}/test_acc", f"test {t}", i + 2, w))
        self.query_one("#acc", CurvePlot).plot([c for c in acc if c], logx=logx, vlines=marks, note=note)
        loss = [curve(m, "train_loss", "train", TRAIN, w), curve(m, "test_loss", "test", TEST, w)]
        self.query_one("#loss", CurvePlot).plot([c for c in loss if c], logx=logx, note=note)
        for wid, _title, keys, _logy in MEASURE_PANELS:
            # one curve: the panel's title names it
            cs = [curve(m, k, LABELS.get(k, k) if len(keys) > 1 else "", i, w) for i, k in enumerate(keys)]
            if wid in ("m-loss", "m-racc"):  # the final pass (final key frequencies), when the run has one
                for j, k in enumerate(keys[-2:]):
                    cs.append(curve(s.progress, k, f"{LABELS[k]} (final K)", 4 + j, 0))
            shown = note
            if wid == "m-gini":  # which Gini: the papers leave the constant component open
                shown = ", ".join(filter(None, [note, fmt.gini_convention(self.gini_constant())]))
            self.query_one(f"#{wid}", CurvePlot).plot([c for c in cs if c], logx=logx, note=shown)
        grid = self.query_one("#measure-grid", Grid)
        for key in (k for k in m.names() if k not in KNOWN and not k.startswith("tasks/")):
            c = curve(m, key, key, 0, w)
            if c is None:
                continue
            title, logy = EXTRA_PANELS.get(key, (key, False))
            found = grid.query(f"#{extra_panel_id(key)}")
            if found:
                panel = found.first(CurvePlot)
            else:
                panel = CurvePlot(title, id=extra_panel_id(key), logx=logx, logy=logy)
                grid.mount(panel)
            c.label = ""  # the title names it: one quantity per panel
            panel.plot([c], logx=logx, note=note)

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
        return self.app.checkpoint_view(self.run_id, cps[-1], ablation=False).key_freqs

    # ------------------------------------------------------------------ actions
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_cycle_spectrum(self) -> None:
        names = list(self.series.fourier.data) or ["embed"]
        i = names.index(self.spectrum) if self.spectrum in names else -1
        self.spectrum = names[(i + 1) % len(names)]
        self.action_tab("fourier")

    def action_toggle_logx(self) -> None:
        self.logx = not self.logx

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
