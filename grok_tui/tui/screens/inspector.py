"""Checkpoint inspector: ←/→ (h/l) walk the checkpoints; spectra, key frequencies, measures and the
step's mark on the Fourier heatmap follow; ``a`` swaps the spectra and the heatmap for the Fourier
ablations (train loss with each frequency removed alone, key frequencies marked; restricted and
excluded loss; the neuron clusters). What it shows is ``grok_tui.checkpoints.CheckpointView``,
the same view ``grok inspect`` prints: stored by the worker, else recomputed from the weights, saying
which (values recomputed here carry a ``*``)."""

from __future__ import annotations

import numpy as np
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from grok_tui import format as fmt
from grok_tui.checkpoints import RECOMPUTED, CheckpointView
from grok_tui.tui.screens.base import LiveScreen, footer
from grok_tui.tui.widgets.bars import LossBars, SpectrumBars
from grok_tui.tui.widgets.heatmap import FourierHeatmap
from grok_tui.tui.widgets.palette import tone_style

LABELS = {
    "train_loss": "train loss",
    "test_loss": "test loss",
    "train_acc": "train acc",
    "test_acc": "test acc",
    "restricted_loss": "restricted loss",
    "restricted_acc": "restricted acc",
    "excluded_loss": "excluded loss",
    "excluded_acc": "excluded acc",
    "gini_embed": "Gini W_E",
    "gini_logit": "Gini W_L",
    "ffd_embed": "FFD W_E",
    "fcr_embed": "FCR W_E",
    "ffd_logit": "FFD W_L",
    "fcr_logit": "FCR W_L",
    "weight_norm": "Σ w²",
    "gini_embed_dlog": "Gini W_E log",
    "ffd_embed_dlog": "FFD W_E log",
    "fcr_embed_dlog": "FCR W_E log",
    "gini_logit_dlog": "Gini W_L log",
    "ffd_logit_dlog": "FFD W_L log",
    "fcr_logit_dlog": "FCR W_L log",
}


def label(view: CheckpointView, key: str) -> str:
    """A measure's name; a Gini says whether the constant component is in (analysis.gini_constant)."""
    name = LABELS[key]
    if key.startswith("gini_") and view.gini_constant is not None:
        name += " +const" if view.gini_constant else " −const"
    return name


def ablation_text(view: CheckpointView) -> Text:
    """The Fourier ablations and neuron clusters in `grok inspect`'s words, or why there are none."""
    if view.ablation is None:
        return Text(f"Fourier ablations: {view.ablation_note or 'not available'}", "dim")
    head = f"Fourier ablations ({view.ablation_source}; logits over the c = {view.structure} grid)"
    out = Text(head, "bold")
    clusters = None if view.clusters is None else view.clusters.to_json()
    for line in fmt.ablation_lines(view.ablation.to_json(), clusters):
        out.append(f"\n{line}")
    return out


def measure_value(view: CheckpointView, key: str) -> str:
    """A measure as shown: ``fmt.num``, with a ``*`` when it was recomputed from the weights."""
    shown = fmt.acc if key.endswith("_acc") else fmt.num  # as `grok inspect` prints them
    return shown(view.measures[key]) + ("*" if view.sources.get(key) == RECOMPUTED else "")


def measures_table(view: CheckpointView, width: int) -> Table:
    """Measures in as many name/value column pairs as the width allows (3 at 80 columns)."""
    items = [
        (label(view, k), measure_value(view, k))
        for k in view.shown_measures()
        if view.measures.get(k) is not None
    ]
    pairs = max(1, min(4, width // 26))
    t = Table.grid(padding=(0, 1), expand=True)
    for _ in range(pairs):
        t.add_column(style="dim", no_wrap=True)
        t.add_column(no_wrap=True)
    rows = -(-len(items) // pairs) if items else 0
    for r in range(rows):
        cells = []
        for c in range(pairs):
            i = c * rows + r
            cells += list(items[i]) if i < len(items) else ["", ""]
        t.add_row(*cells)
    return t


def keys_text(view: CheckpointView, error: Style, mark: Style) -> Text:
    """The error line of a damaged input, then key frequencies with the rule that gave them and their
    source; what was recomputed; notes."""
    out = Text(f"{view.error}\n", error) if view.error else Text()
    out.append_text(Text.assemble(("key frequencies ", "dim"), (view.key_freq_line(), mark)))
    recomputed = view.recomputed()
    if recomputed:
        out.append(f"  *recomputed from the weights: {', '.join(recomputed)}", "dim")
    for note in view.rule_notes() + view.notes:
        out.append(f"\n{note}", "dim")
    return out


class InspectorScreen(LiveScreen):
    DEFAULT_CSS = """
    InspectorScreen #insp-keys { height: auto; max-height: 4; padding: 0 1; }
    InspectorScreen #insp-heat { height: 1fr; min-height: 5; padding: 0 1; }
    InspectorScreen #insp-ablation { height: auto; padding: 0 1; }
    InspectorScreen .ablation { display: none; }
    InspectorScreen.ablations .ablation { display: block; }
    InspectorScreen.ablations .spectra { display: none; }
    """

    BINDINGS = [
        Binding("left,h", "step(-1)", "Prev ckpt", key_display="←/h", id="inspector.prev"),
        Binding("right,l", "step(1)", "Next ckpt", key_display="→/l", id="inspector.next"),
        Binding("home,g", "first", "First", show=False, id="inspector.first"),
        Binding("end,G", "last", "Last", show=False, id="inspector.last"),
        Binding("a", "ablations", "Ablations", id="inspector.ablations"),
        Binding("escape", "app.pop_screen", "Back", id="inspector.back"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__(id="inspector")
        self.run_id = run_id
        self.index = -1
        self.view: CheckpointView | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="insp-body"):
            yield Static("", id="insp-head")
            yield Static("", id="insp-keys")
            yield SpectrumBars("W_E (embedding)", id="bars-embed", classes="spectra")
            yield SpectrumBars("W_L (neuron → logit)", id="bars-logit", classes="spectra")
            yield LossBars(
                "log10(train loss with k removed / train loss)",
                floor=1.0,
                id="bars-ablation",
                classes="ablation",
            )
            yield Static("", id="insp-ablation", classes="ablation")
            yield FourierHeatmap("", id="insp-heat", classes="spectra")
            yield Static("", id="insp-measures")
        yield footer()

    def on_mount(self) -> None:
        self.series = self.app.store.series(self.run_id)
        self.index = len(self.series.checkpoints) - 1
        self._n = len(self.series.checkpoints)
        self._version = self.series.version
        self.show()

    def on_unmount(self) -> None:
        self.app.store.release(self.run_id)

    @property
    def steps(self) -> list[int]:
        return self.series.checkpoints

    @property
    def step(self) -> int | None:
        return self.steps[self.index] if 0 <= self.index < len(self.steps) else None

    def show(self) -> None:
        head = self.query_one("#insp-head", Static)
        step = self.step
        if step is None:
            head.update(Text(f"{self.run_id}: no checkpoints yet", style="bold"))
            self.draw_heatmap()
            return
        view = self.app.checkpoint_view(self.run_id, step, row=self.series.metrics.row_at(step))
        self.view = view
        error, mark = tone_style(self.app, "error"), tone_style(self.app, "warning") + Style(bold=True)
        head.update(
            Text.assemble(
                (self.run_id, "bold"),
                f"  checkpoint {self.index + 1}/{len(self.steps)}",
                ("  step ", ""),
                (fmt.step(step), mark),
                f"  phase {phase}" if (phase := self.phase_at(step)) else "",
                ("  damaged", error) if view.error else "",
            )
        )
        self.query_one("#insp-keys", Static).update(keys_text(view, error, mark))
        e, lg = view.embed, view.logit
        why = "" if view.readable else "checkpoint unreadable"
        self.query_one("#bars-embed", SpectrumBars).show(
            e.cos if e else None,
            e.sin if e else None,
            view.key_freqs,
            "" if e else why or "no W_E in this checkpoint",
        )
        self.query_one("#bars-logit", SpectrumBars).show(
            lg.cos if lg else None,
            lg.sin if lg else None,
            view.key_freqs,
            "" if lg else why or "no W_U/W_out in this checkpoint",
        )
        ab = view.ablation
        self.query_one("#bars-ablation", LossBars).show(
            None if ab is None else fmt.excess_decades(list(ab.per_freq), ab.train_loss),
            view.key_freqs,
            "" if ab is not None else why or view.ablation_note or "",
        )
        self.query_one("#insp-ablation", Static).update(ablation_text(view))
        self.query_one("#insp-measures", Static).update(measures_table(view, self.size.width or 80))
        self.draw_heatmap()

    def action_ablations(self) -> None:
        """Spectra and heatmap, or the Fourier ablations, in the same place (both fit 80×24 alone)."""
        self.toggle_class("ablations")

    def phase_at(self, step: int) -> str | None:
        """The phase at the inspected step, in hindsight, as `grok inspect` names it (none for an RFM)."""
        if fmt.model_label(self.app.store.run_dir(self.run_id).spec().get("model")) == "rfm":
            return None
        b = self.series.metrics.phases()
        return None if b is None else b.phase_at(step)

    def draw_heatmap(self) -> None:
        """W_E's spectrum over the run, the inspected step marked (▲ under the step axis)."""
        heat = self.query_one("#insp-heat", FourierHeatmap)
        title = "‖W_E‖ per frequency k (rows) over steps · ▲ this checkpoint · ◂ key frequencies"
        got = self.series.fourier.array("embed")
        if got is None:
            heat.show(np.zeros(0), np.zeros((0, 0)), title=title)
            return
        steps, mat = got
        keys = self.view.key_freqs if self.view is not None else []
        heat.show(steps, mat, key_freqs=keys, cursor=self.step, title=title)

    def on_resize(self) -> None:
        if self.view is not None:
            self.query_one("#insp-measures", Static).update(measures_table(self.view, self.size.width))

    def refresh_data(self) -> None:
        """New checkpoints arrived: follow the newest if we were on the last one, else stay put; new
        evaluations extend the heatmap."""
        n = len(self.steps)
        if n != self._n:
            if self.index == self._n - 1 or self.index >= n:
                self.index = n - 1
            self._n = n
            self.show()
        elif self.series.version != self._version:
            self.draw_heatmap()
        self._version = self.series.version

    def action_step(self, delta: int) -> None:
        if not self.steps:
            return
        new = min(max(self.index + delta, 0), len(self.steps) - 1)
        if new != self.index:
            self.index = new
            self.show()

    def action_first(self) -> None:
        self.action_step(-len(self.steps))

    def action_last(self) -> None:
        self.action_step(len(self.steps))
