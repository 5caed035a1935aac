"""The sweep screen: one experiment's grid (the model under `grok grid`) as a coloured heatmap.

A cell is the median over its seeds of the value shown (by default the step at which it grokked; where
none did, the best test accuracy reached, marked ``no``): a phase diagram as Power et al. and Furuta et
al. draw them. Arrow keys move over the cells, enter overlays the curves of a cell's runs.
"""

from __future__ import annotations

import os

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.reactive import var
from textual.widgets import DataTable, Static

from grok_tui import sweeps
from grok_tui.tui.screens.base import LiveScreen, footer
from grok_tui.tui.widgets.palette import ramp, tone_style, tone_variable

#: What `v` cycles through.
VALUES = ("grokked_at", "best_test_acc", "memorised_at", "final_test_acc", "final_test_loss")
LEVELS = 16


class SweepScreen(LiveScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="sweep.back"),
        Binding("enter", "open_cell", "Overlay cell", id="sweep.open"),
        Binding("v", "cycle_value", "Value", id="sweep.value"),
        Binding("t", "transpose", "Swap axes", id="sweep.transpose"),
    ]

    #: The result the cells show (one of VALUES).
    value: var[str] = var("grokked_at", init=False)
    #: Rows and columns swapped.
    swapped: var[bool] = var(False, init=False)

    def __init__(self, experiment: str) -> None:
        super().__init__(id="sweep")
        self.experiment = experiment
        self.sweep: sweeps.Sweep | None = None
        self.grid: sweeps.Grid | None = None
        self._stamp: tuple = ()

    def compose(self) -> ComposeResult:
        yield Static("", id="sweep-head")
        yield DataTable(id="sweep-grid", cursor_type="cell", zebra_stripes=False)
        yield Static("", id="sweep-note")
        yield footer()

    def on_mount(self) -> None:
        self.refresh_data()

    def watch_value(self) -> None:
        self.draw()

    def watch_swapped(self) -> None:
        self.draw()

    def _files(self) -> tuple:
        """What the grid depends on, cheaply: each run's metrics.jsonl size and mtime."""
        out = []
        for r in sweeps.select(self.store.runs_dir, [self.experiment]):
            try:
                st = os.stat(r.path / "metrics.jsonl")
                out.append((r.run_id, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((r.run_id, 0, 0))
        return tuple(out)

    def refresh_data(self) -> None:
        """On each poll: reread the runs only when one of them has new rows."""
        try:
            stamp = self._files()
        except LookupError:
            stamp = ()
        if stamp == self._stamp and self.sweep is not None:
            return
        self._stamp = stamp
        try:
            self.sweep = sweeps.Sweep.load(self.store.runs_dir, [self.experiment])
        except LookupError:
            self.sweep = sweeps.Sweep([])
        self.draw()

    def axes(self) -> tuple[str, str] | None:
        """Rows and columns: the first two settings the sweep varies (one: it against the seed)."""
        if self.sweep is None:
            return None
        keys = self.sweep.point_keys
        if len(keys) >= 2:
            rows, cols = keys[0], keys[1]
        elif len(keys) == 1 and sweeps.SEED in self.sweep.keys:
            rows, cols = keys[0], sweeps.SEED
        else:
            return None
        return (cols, rows) if self.swapped else (rows, cols)

    def draw(self) -> None:
        head = self.query_one("#sweep-head", Static)
        note = self.query_one("#sweep-note", Static)
        table = self.query_one("#sweep-grid", DataTable)
        axes = self.axes()
        self.grid = None
        if axes is None or self.sweep is None:
            table.clear(columns=True)
            head.update(f"sweep {self.experiment}: no setting varies among its runs (a grid needs a sweep)")
            note.update("")
            return
        try:
            self.grid = self.sweep.grid(*axes, value=self.value)
        except sweeps.SweepError as e:
            table.clear(columns=True)
            head.update(f"sweep {self.experiment}")
            note.update(Content.styled(str(e), tone_variable("error")))
            return
        g = self.grid
        n = len(self.sweep.runs)
        grokked = sum(r.grokked_at is not None for r in self.sweep.runs)
        head.update(
            Content.assemble(
                (f"sweep {self.experiment}", "bold"),
                f"  {self.value}: {sweeps.short(g.rows)} down, {sweeps.short(g.cols)} across  ",
                (f"{grokked}/{n} runs grokked", tone_variable("muted")),
            )
        )
        cursor = table.cursor_coordinate
        table.clear(columns=True)
        table.add_column(f"{sweeps.short(g.rows)} \\ {sweeps.short(g.cols)}", key="axis")
        for i, cv in enumerate(g.col_values):
            table.add_column(sweeps.show(cv), key=f"c{i}")
        palette = ramp(LEVELS, getattr(self.app, "palette_mode", "truecolor"))
        failed = tone_style(self.app, "error")
        for rv, line, shades in zip(g.row_values, g.cells, g.shades(), strict=True):
            cells: list[Text] = [Text(sweeps.show(rv))]
            for c, t in zip(line, shades, strict=True):
                if not c.n:
                    cells.append(Text(""))
                elif t is None:
                    cells.append(Text(f" {c.text} ", style=failed + Style(bold=True), justify="right"))
                else:
                    colour = palette[min(LEVELS - 1, int(t * LEVELS))]
                    ink = "black" if sum(colour.get_truecolor()) > 380 else "white"
                    cells.append(Text(f" {c.text} ", style=Style(color=ink, bgcolor=colour), justify="right"))
            table.add_row(*cells)
        table.move_cursor(row=cursor.row, column=max(1, cursor.column), animate=False)
        note.update(self._legend())

    def _legend(self) -> Content:
        if self.value == "grokked_at":
            words = "median step its seeds grokked at (bright: early); no (ACC): none did; k/n: k of n seeds"
        else:
            words = f"median {self.value} over the seeds (bright: better); k/n: k of n seeds have it"
        return Content.styled(words + "  ·  enter: overlay the cell's runs", tone_variable("muted"))

    def cell_runs(self) -> list[str]:
        """The run ids of the cell under the cursor (none on the axis column or an empty cell)."""
        if self.grid is None:
            return []
        coord = self.query_one("#sweep-grid", DataTable).cursor_coordinate
        if coord.column < 1 or coord.row >= len(self.grid.cells):
            return []
        return [r.run_id for r in self.grid.cells[coord.row][coord.column - 1].runs]

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        self.action_open_cell()

    def action_open_cell(self) -> None:
        run_ids = self.cell_runs()
        if run_ids:
            self.app.open_compare(run_ids)

    def action_cycle_value(self) -> None:
        self.value = VALUES[(VALUES.index(self.value) + 1) % len(VALUES)]

    def action_transpose(self) -> None:
        self.swapped = not self.swapped
