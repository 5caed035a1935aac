"""The experiments screen: every run of experiments.toml and of the runs directory in one table.

Imports nothing heavy (no numpy): it is what the first paint shows.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from grok_tui.tui import format as fmt
from grok_tui.tui.store import NEW, Row

COLUMNS = [
    ("run", "run"),
    ("state", "state"),
    ("progress", "step"),
    ("train", "train"),
    ("test", "test"),
    ("mem", "mem@"),
    ("grok", "grok@"),
    ("task", "task"),
    ("model", "model"),
    ("p", "p"),
    ("frac", "frac"),
    ("seed", "seed"),
    ("device", "device"),
]


def row_cells(row: Row, selected: bool) -> tuple:
    mark = "●" if selected else " "
    state = Text(row.state, style=fmt.STATE_COLORS.get(row.state, ""))
    return (
        f"{mark} {row.run_id}",
        state,
        fmt.progress(row.step, row.total_steps),
        fmt.acc(row.train_acc),
        fmt.acc(row.test_acc),
        fmt.step(row.memorised_at),
        fmt.step(row.grokked_at),
        row.task,
        row.model,
        fmt.DASH if row.p is None else str(row.p),
        fmt.frac(row.train_frac),
        fmt.DASH if row.seed is None else str(row.seed),
        row.device if row.on_disk else fmt.DASH,
    )


def matches(row: Row, query: str) -> bool:
    """Filter: every word must appear in the run id, task, model, state or device."""
    hay = f"{row.run_id} {row.task} {row.model} {row.state} {row.device}".lower()
    return all(word in hay for word in query.lower().split())


class RunTable(DataTable):
    """The runs table; ``space`` marks runs for overlay, stop and launch."""

    BINDINGS = [
        Binding("space", "screen.toggle_select", "Select", id="experiments.select"),
        Binding("down,j", "cursor_down", "Down", show=False, id="experiments.down"),
        Binding("up,k", "cursor_up", "Up", show=False, id="experiments.up"),
        Binding("g", "scroll_top", "First run", show=False, id="experiments.first"),
        Binding("G", "scroll_bottom", "Last run", show=False, id="experiments.last"),
    ]


class ExperimentsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Open run", id="experiments.open", show=False),
        # priority: the filter takes focus before the keys typed right after "/" are routed
        Binding("slash", "filter", "Filter", key_display="/", priority=True, id="experiments.filter"),
        Binding("o", "overlay", "Overlay", id="experiments.overlay"),
        Binding("r", "launch", "Launch", id="experiments.launch"),
        Binding("s", "stop", "Stop", id="experiments.stop"),
        Binding("R", "resume", "Resume", id="experiments.resume"),
        Binding("E", "edit", "Edit toml", id="experiments.edit"),
        Binding("escape", "clear", "Clear filter, then selection", show=False, id="experiments.clear"),
    ]

    def __init__(self) -> None:
        super().__init__(id="experiments")
        self.selected: set[str] = set()
        self.query_text = ""
        self._rows: list[Row] = []
        self._shown: dict[str, tuple] = {}
        self._order: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="exp-body"):
            yield Static("", id="exp-title")
            yield Static("", id="config-error")
            yield RunTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield Static("", id="exp-detail")
            yield Input(
                placeholder="filter: words in run, task, model, state (enter: keep, esc: clear)", id="filter"
            )
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(RunTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#filter").display = False
        table.focus()
        self.refresh_rows()

    def on_screen_resume(self) -> None:
        self.refresh_rows()

    # ------------------------------------------------------------------ data → table
    @property
    def store(self):
        return self.app.store

    def refresh_rows(self) -> None:
        """Bring the table in line with the store: update cells in place, rebuild only on new order."""
        store = self.store
        self._rows = store.rows()
        counts: dict[str, int] = {}
        for r in self._rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        title = [("grok-tui", "bold")]
        for state in ("running", "queued", "done", "failed", "stopped", NEW):
            if counts.get(state):
                title += ["  ", (f"{counts[state]} {state}", fmt.STATE_COLORS[state])]
        where = f"{store.config_path or '(no experiments file)'} → {store.runs_dir}"
        self.query_one("#exp-title", Static).update(Text.assemble(*title, "  ", (where, "dim")))
        err = self.query_one("#config-error", Static)
        err.update(Text(f"✗ {store.config_error}", style="bold #ff5f5f") if store.config_error else "")
        err.display = bool(store.config_error)
        visible = [r for r in self._rows if matches(r, self.query_text)] if self.query_text else self._rows
        table = self.query_one(RunTable)
        order = [r.run_id for r in visible]
        cells = {r.run_id: row_cells(r, r.run_id in self.selected) for r in visible}
        if order != self._order:
            cursor_key = self.cursor_run_id()
            table.clear()
            for rid in order:
                table.add_row(*cells[rid], key=rid)
            self._order = order
            if cursor_key in order:
                table.move_cursor(row=order.index(cursor_key), animate=False)
        else:
            for rid in order:
                old = self._shown.get(rid)
                if old == cells[rid]:
                    continue
                for (key, _), value, prev in zip(
                    COLUMNS, cells[rid], old or (None,) * len(COLUMNS), strict=True
                ):
                    if value != prev:
                        table.update_cell(rid, key, value)
        self._shown = cells
        self.update_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_detail()

    def update_detail(self) -> None:
        row = self.cursor_row()
        detail = self.query_one("#exp-detail", Static)
        if row is None:
            n = len(self._rows)
            detail.update(
                Text("no runs match the filter" if n else "no runs yet: r launches the experiment", "dim")
            )
            return
        bits = [(row.run_id, "bold")]
        if row.error:
            bits += ["  ", (row.error, "#ff5f5f")]
        elif row.state == NEW:
            bits += ["  ", ("not launched yet: r launches its experiment", "dim")]
        elif row.path is not None:
            bits += ["  ", (str(row.path), "dim")]
        if self.selected:
            bits += ["  ", (f"[{len(self.selected)} selected]", "#ffd700")]
        detail.update(Text.assemble(*bits))

    # ------------------------------------------------------------------ helpers
    def cursor_run_id(self) -> str | None:
        table = self.query_one(RunTable)
        if not self._order or table.cursor_row < 0 or table.cursor_row >= len(self._order):
            return None
        return self._order[table.cursor_row]

    def cursor_row(self) -> Row | None:
        rid = self.cursor_run_id()
        return next((r for r in self._rows if r.run_id == rid), None)

    def visible_run_ids(self) -> list[str]:
        return list(self._order)

    def targets(self) -> list[Row]:
        """The selected runs, or the one under the cursor."""
        if self.selected:
            return [r for r in self._rows if r.run_id in self.selected]
        row = self.cursor_row()
        return [row] if row else []

    # ------------------------------------------------------------------ actions
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        row = self.cursor_row()
        if row is None:
            return
        if not row.on_disk:
            self.app.notify(f"{row.run_id} has not run yet (r launches it)", severity="warning")
            return
        self.open_run(row.run_id)

    def open_run(self, run_id: str) -> None:
        self.app.open_run(run_id)

    def action_toggle_select(self) -> None:
        rid = self.cursor_run_id()
        if rid is None:
            return
        self.selected.symmetric_difference_update({rid})
        self.refresh_rows()
        table = self.query_one(RunTable)
        if table.cursor_row < len(self._order) - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)

    def action_clear(self) -> None:
        if self.query_text:
            self.query_one("#filter", Input).value = ""
            self.query_text = ""
            self.query_one("#filter").display = False
            self.refresh_rows()
        elif self.selected:
            self.selected.clear()
            self.refresh_rows()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if self.focused is box:  # "/" typed inside the filter (run ids have one)
            box.insert_text_at_cursor("/")
            return
        box.display = True
        self.set_focus(box)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self.refresh_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        table = self.query_one(RunTable)
        if self.focused is table:  # a second enter typed ahead: open the run under the cursor
            self.action_open()
            return
        if not event.value.strip():
            event.input.display = False
        self.set_focus(table)

    def on_key(self, event) -> None:
        box = self.query_one("#filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            self.query_one(RunTable).focus()
            self.action_clear()

    def action_overlay(self) -> None:
        rows = [r for r in self.targets() if r.on_disk]
        if not rows:
            self.app.notify("select runs with space, then o overlays their test accuracy", severity="warning")
            return
        self.app.open_compare([r.run_id for r in rows])

    def action_launch(self) -> None:
        rows = self.targets()
        exps = list(dict.fromkeys(r.experiment for r in rows if r.in_config))
        skipped = [r.run_id for r in rows if not r.in_config]
        if skipped and not exps:
            self.app.notify(f"{skipped[0]} is not in the experiments file; R resumes it", severity="warning")
            return
        self.app.launch(exps)

    def action_stop(self) -> None:
        rows = [r for r in self.targets() if r.state in ("running", "queued")]
        if not rows:
            self.app.notify("nothing to stop: no selected run is running or queued", severity="warning")
            return
        self.app.confirm_stop([r.run_id for r in rows])

    def action_resume(self) -> None:
        rows = [r for r in self.targets() if r.on_disk and r.state in ("stopped", "failed")]
        if not rows:
            self.app.notify("nothing to resume: pick a stopped or failed run", severity="warning")
            return
        self.app.resume([r.run_id for r in rows])

    def action_edit(self) -> None:
        self.app.edit_config()
