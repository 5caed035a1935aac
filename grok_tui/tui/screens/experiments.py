"""The experiments screen: every run of experiments.toml and of the runs directory in one table.

Imports nothing heavy (no numpy): it is what the first paint shows. Every cell is the text `grok ls`
prints for the same run (``grok_tui.format.cells``). The run and state columns are fixed: they stay
when the table scrolls sideways, and the state is never cut (a run id too long for the width is
shortened in the middle instead; the line under the table names it in full).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import var
from textual.widgets import DataTable, Input, Static

from grok_tui import format as fmt
from grok_tui.tui.screens.base import LiveScreen, footer
from grok_tui.tui.store import NEW, Row
from grok_tui.tui.widgets.filter import FilterInput
from grok_tui.tui.widgets.palette import tone_style, tone_variable

#: (column key, header, key in ``grok_tui.format.cells``), left to right.
COLUMNS = [
    ("run", "run", "run"),
    ("state", "state", "state"),
    ("progress", "step", "step"),
    ("train", "train", "train_acc"),
    ("test", "test", "test_acc"),
    ("mem", "mem@", "memorised_at"),
    ("grok", "grok@", "grokked_at"),
    ("task", "task", "task"),
    ("model", "model", "model"),
    ("p", "p", "p"),
    ("frac", "frac", "train_frac"),
    ("seed", "seed", "seed"),
    ("device", "device", "device"),
]
#: After the device while some listed run is a Slurm run (a local-only table is not widened): its job
#: id, and the node the worker runs on (each run's host).
SLURM_COLUMNS = [("job", "job", "job"), ("node", "node", "node")]
FIXED_COLUMNS = 2  # run and state
STATE_ORDER = ("running", "queued", "done", "failed", "stopped", NEW)
MIN_RUN_WIDTH = 16
SCROLL_ROOM = 24  # columns left for the scrolling part when a run id is too long for the width


def fit_id(run_id: str, width: int) -> str:
    """``run_id`` in at most ``width`` characters: whole when it fits, else its two ends around "…"."""
    if len(run_id) <= width:
        return run_id
    keep = max(width - 1, 2)
    head = keep // 2
    return run_id[:head] + "…" + run_id[len(run_id) - (keep - head) :]


def row_cells(
    row: Row,
    selected: bool,
    style_of: Callable[[str], Style],
    id_width: int,
    columns: list[tuple[str, str, str]] = COLUMNS,
) -> tuple[Text, ...]:
    """The table's cells for ``row``: the formatter's text (never markup), the state in its tone."""
    text = fmt.cells(row.summary)
    if not row.on_disk:
        text["device"] = fmt.DASH  # where it will run is decided at launch
    label = fmt.state_label(row.summary)
    out = []
    for key, _, name in columns:
        if key == "run":
            out.append(Text(f"{'●' if selected else ' '} {fit_id(text['run'], id_width)}"))
        elif key == "state":
            out.append(Text(label.text, style=style_of(label.tone)))
        else:
            out.append(Text(text[name]))
    return tuple(out)


#: An experiment with more runs than this starts collapsed into one row of aggregates (enter expands it).
GROUP_AT = 8
GROUP_PREFIX = "group:"


def group_cells(
    exp: str,
    rows: list[Row],
    collapsed: bool,
    style_of: Callable[[str], Style],
    id_width: int,
    columns: list[tuple[str, str, str]] = COLUMNS,
) -> tuple[Text, ...]:
    """The row that stands for an experiment's runs: how many, their states, k/n grokked and the median
    step at which they grokked (over the seeds and points that did)."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    grokked = [s for r in rows if (s := r.summary.grokked_at) is not None]
    run = f"{'▸' if collapsed else '▾'} {fit_id(exp, id_width - 12)}  {len(rows)} runs"
    states = ", ".join(f"{n} {st}" for st in STATE_ORDER if (n := counts.get(st)))
    tasks = {fmt.cells(r.summary)["task"] for r in rows}
    text = {
        "run": Text(run, style=Style(bold=True)),
        "state": Text(states, style=style_of("muted")),
        "progress": Text(f"{len(grokked)}/{len(rows)} grok"),
        "grok": Text(fmt.step(round(statistics.median(grokked))) if grokked else fmt.DASH),
        "task": Text(tasks.pop() if len(tasks) == 1 else "(several)"),
    }
    return tuple(text.get(key, Text("")) for key, _, _ in columns)


def matches(row: Row, query: str) -> bool:
    """Filter: every word must appear in the run id, task, model, state, device, Slurm job or node."""
    c = fmt.cells(row.summary)
    hay = " ".join((c["run"], c["task"], c["model"], c["state"], c["device"], c["job"], c["node"])).lower()
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


class ExperimentsScreen(LiveScreen):
    BINDINGS = [
        Binding("enter", "open", "Open run", id="experiments.open", show=False),
        # priority: the app runs it as it reads the key, so the keys read with it go to the filter
        Binding("slash", "filter", "Filter", key_display="/", priority=True, id="experiments.filter"),
        Binding("r", "launch", "Launch", id="experiments.launch"),
        Binding("s", "stop", "Stop", id="experiments.stop"),
        Binding("R", "resume", "Resume", id="experiments.resume"),
        Binding("o", "overlay", "Overlay", id="experiments.overlay"),
        Binding("w", "sweep", "Sweep grid", id="experiments.sweep", show=False),  # 80 columns: in ? help
        Binding("E", "edit", "Edit", id="experiments.edit"),
        Binding("escape", "clear", "Clear filter, then selection", show=False, id="experiments.clear"),
    ]

    #: Runs marked with space (frozen: assign a new set, the watcher redraws the marks).
    selected: var[frozenset[str]] = var(frozenset(), init=False)
    #: The filter's words; empty shows every run.
    query_text: var[str] = var("", init=False)
    #: Experiments shown as one row of aggregates (large ones start so; enter on the row toggles).
    collapsed: var[frozenset[str]] = var(frozenset(), init=False)

    def __init__(self) -> None:
        super().__init__(id="experiments")
        self._rows: list[Row] = []
        self._shown: dict[str, tuple] = {}
        self._order: list[str] = []
        self._groups: dict[str, list[Row]] = {}  # experiments shown under a group row, by name
        self._seen: set[str] = set()  # experiments already given their default (collapsed when large)
        self._columns: list[tuple[str, str, str]] = COLUMNS  # with SLURM_COLUMNS while Slurm runs are listed

    def compose(self) -> ComposeResult:
        with Vertical(id="exp-body"):
            yield Static("", id="exp-title")
            yield Static("", id="config-error")
            yield RunTable(id="runs", cursor_type="row", zebra_stripes=True, fixed_columns=FIXED_COLUMNS)
            yield Static("", id="exp-detail")
            yield FilterInput(
                placeholder="filter: words in run, task, model, state (enter: keep, esc: clear)",
                id="filter",
                hand_back="#runs",
            )
        yield footer()

    def on_mount(self) -> None:
        table = self.query_one(RunTable)
        for key, label, _ in self._columns:
            table.add_column(label, key=key)
        self.query_one("#filter").display = False
        table.focus()
        self.app.theme_changed_signal.subscribe(self, self._restyle)
        self.refresh_data()

    def _restyle(self, _theme: object = None) -> None:
        self._shown = {}  # every state cell takes the new theme's colours
        self.refresh_data()

    def watch_selected(self) -> None:
        self.refresh_data()

    def watch_query_text(self) -> None:
        self.refresh_data()

    def watch_collapsed(self) -> None:
        self.refresh_data()

    def on_resize(self) -> None:
        self.refresh_data()

    # ------------------------------------------------------------------ data → table
    def _id_width(self, table: DataTable) -> int:
        """Room for a run id: the table's width less the state column, the cells' padding, the mark
        and some room for the columns that scroll."""
        state_w = max([len("state"), *(len(fmt.state_label(r.summary).text) for r in self._rows)])
        room = (table.size.width or self.app.size.width) - state_w - 4 * table.cell_padding - 2 - SCROLL_ROOM
        return max(MIN_RUN_WIDTH, room)

    def refresh_data(self) -> None:
        """Bring the table in line with the store: update cells in place, rebuild only on new order."""
        store = self.store
        self._rows = store.rows()
        counts: dict[str, int] = {}
        for r in self._rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        title: list = [("grok-tui", "bold")]
        for state in STATE_ORDER:
            if counts.get(state):
                title += ["  ", (f"{counts[state]} {state}", tone_variable(fmt.STATE_TONES[state]))]
        where = f"{store.config_path or '(no experiments file)'} → {store.runs_dir}"
        title += ["  ", (where, tone_variable("muted"))]
        self.query_one("#exp-title", Static).update(Content.assemble(*title))
        err = self.query_one("#config-error", Static)
        err.update(Content(f"✗ {store.config_error}") if store.config_error else "")
        err.display = bool(store.config_error)
        query = self.query_text
        visible = [r for r in self._rows if matches(r, query)] if query else self._rows
        table = self.query_one(RunTable)
        at = table.cursor_row
        cursor_key = self._order[at] if 0 <= at < len(self._order) else None
        rebuilt = self._fit_columns(table)
        width = self._id_width(table)
        style_cache: dict[str, Style] = {}

        def style_of(tone: str) -> Style:
            if tone not in style_cache:
                style_cache[tone] = tone_style(self.app, tone)
            return style_cache[tone]

        cells = self._entries(visible, bool(query), style_of, width)
        order = list(cells)
        if rebuilt or order != self._order:
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
                for (key, _, _), value, prev in zip(
                    self._columns, cells[rid], old or (None,) * len(self._columns), strict=True
                ):
                    if value != prev:
                        table.update_cell(rid, key, value, update_width=True)
        self._shown = cells
        self.update_detail()

    def _fit_columns(self, table: DataTable) -> bool:
        """The job and node columns while some listed run is a Slurm run; True when that changed (the
        table lost its columns and rows: every row is added again)."""
        want = COLUMNS + SLURM_COLUMNS if any(r.summary.slurm for r in self._rows) else COLUMNS
        if want == self._columns:
            return False
        self._columns = want
        table.clear(columns=True)
        for key, label, _ in want:
            table.add_column(label, key=key)
        return True

    def _entries(
        self, visible: list[Row], filtered: bool, style_of: Callable[[str], Style], width: int
    ) -> dict[str, tuple[Text, ...]]:
        """The table's rows in order, by key: each run, and for an experiment of more than GROUP_AT runs
        a group row before them (only the group row while it is collapsed). A filter shows runs only."""
        by_exp: dict[str, list[Row]] = {}
        for r in visible:
            by_exp.setdefault(r.experiment, []).append(r)
        self._groups = {} if filtered else {e: rs for e, rs in by_exp.items() if len(rs) > GROUP_AT}
        fresh = {e for e in self._groups if e not in self._seen}
        if fresh:
            self._seen |= fresh
            self.set_reactive(ExperimentsScreen.collapsed, self.collapsed | fresh)
        out: dict[str, tuple[Text, ...]] = {}
        for exp, rows in by_exp.items():
            shut = exp in self._groups and exp in self.collapsed
            if exp in self._groups:
                out[GROUP_PREFIX + exp] = group_cells(exp, rows, shut, style_of, width, self._columns)
            if not shut:
                for r in rows:
                    selected = r.run_id in self.selected
                    out[r.run_id] = row_cells(r, selected, style_of, width, self._columns)
        return out

    def cursor_group(self) -> str | None:
        """The experiment whose group row is under the cursor, if it is one."""
        table = self.query_one(RunTable)
        if not self._order or not 0 <= table.cursor_row < len(self._order):
            return None
        key = self._order[table.cursor_row]
        return key[len(GROUP_PREFIX) :] if key.startswith(GROUP_PREFIX) else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.update_detail()

    def update_detail(self) -> None:
        row = self.cursor_row()
        detail = self.query_one("#exp-detail", Static)
        muted = tone_variable("muted")
        if (exp := self.cursor_group()) is not None:
            n = len(self._groups.get(exp, []))
            how = "enter: show them" if exp in self.collapsed else "enter: fold them into this row"
            detail.update(
                Content.assemble((exp, "bold"), "  ", (f"{n} runs; {how}; w: its sweep grid", muted))
            )
            return
        if row is None:
            empty = "no runs match the filter" if self._rows else "no runs yet: r launches the experiment"
            detail.update(Content.styled(empty, muted))
            return
        bits: list = [(row.run_id, "bold")]
        if job := fmt.job_label(row.summary):
            bits += ["  ", (f"Slurm job {job}", tone_variable("accent"))]
        if row.summary.error:
            bits += ["  ", (fmt.short_error(row.summary.error, 500), tone_variable("error"))]
        elif row.state == NEW:
            bits += ["  ", ("not launched yet: r launches its experiment", muted)]
        elif row.on_disk:
            bits += ["  ", (str(row.summary.path), muted)]
        if row.summary.skipped_rows:
            bits += ["  ", (f"{row.summary.skipped_rows} unreadable line(s) of metrics.jsonl skipped", muted)]
        if self.selected:
            bits += ["  ", (f"[{len(self.selected)} selected]", tone_variable("accent"))]
        detail.update(Content.assemble(*bits))

    # ------------------------------------------------------------------ helpers
    def cursor_run_id(self) -> str | None:
        table = self.query_one(RunTable)
        if not self._order or table.cursor_row < 0 or table.cursor_row >= len(self._order):
            return None
        key = self._order[table.cursor_row]
        return None if key.startswith(GROUP_PREFIX) else key

    def cursor_row(self) -> Row | None:
        rid = self.cursor_run_id()
        return next((r for r in self._rows if r.run_id == rid), None)

    def visible_run_ids(self) -> list[str]:
        return list(self._order)

    def targets(self) -> list[Row]:
        """The selected runs, or the one under the cursor."""
        if self.selected:
            return [r for r in self._rows if r.run_id in self.selected]
        if (exp := self.cursor_group()) is not None:
            return list(self._groups.get(exp, []))
        row = self.cursor_row()
        return [row] if row else []

    # ------------------------------------------------------------------ actions
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        if (exp := self.cursor_group()) is not None:
            self.collapsed = self.collapsed ^ {exp}
            return
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
        self.selected = self.selected ^ {rid}
        table = self.query_one(RunTable)
        if table.cursor_row < len(self._order) - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter":  # "/" typed in the filter is text (run ids have one): the box takes it
            return self.focused is not self.query_one("#filter", FilterInput)
        return True

    def action_filter(self) -> None:
        box = self.query_one("#filter", FilterInput)
        box.display = True
        self.set_focus(box)

    def _drop_filter(self) -> None:
        box = self.query_one("#filter", FilterInput)
        box.value = ""
        box.display = False
        self.query_text = ""

    def action_clear(self) -> None:
        """Escape on the table: drop the filter, else the selection."""
        if self.query_text or self.query_one("#filter").display:
            self._drop_filter()
        elif self.selected:
            self.selected = frozenset()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the filter: keep it (the box goes when empty); the table has the focus again."""
        if not event.value.strip():
            event.input.display = False

    def on_filter_input_cancelled(self, event: FilterInput.Cancelled) -> None:
        self._drop_filter()

    def action_overlay(self) -> None:
        rows = [r for r in self.targets() if r.on_disk]
        if not rows:
            self.app.notify("select runs with space, then o overlays their test accuracy", severity="warning")
            return
        self.app.open_compare([r.run_id for r in rows])

    def action_sweep(self) -> None:
        """The grid of the experiment under the cursor (its sweep points × seeds)."""
        if (exp := self.cursor_group()) is not None:
            self.app.open_sweep(exp)
            return
        row = self.cursor_row()
        if row is None:
            return
        self.app.open_sweep(row.experiment)

    def action_launch(self) -> None:
        rows = self.targets()
        exps = list(dict.fromkeys(r.experiment for r in rows if r.in_config))
        skipped = [r.run_id for r in rows if not r.in_config]
        if skipped and not exps:
            self.app.notify(f"{skipped[0]} is not in the experiments file; R resumes it", severity="warning")
            return
        self.app.request_launch(exps)

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
