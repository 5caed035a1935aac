# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""The app and Slurm runs: the table and the run screen show a Slurm run's job, node and reason, and the
store asks Slurm about queued/running Slurm runs in a thread of its own, at most every 5 s."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from slurm_helpers import slurmify
from tui_helpers import RUNNING, cell_text, fixture_src, fx, settled, static_text, until  # noqa: F401

from grok_tui import format as fmt
from grok_tui import runs
from grok_tui.recorder import write_json_atomic
from grok_tui.tui.store import RECONCILE_EVERY_S, SlurmWatch, Store, reconcile_with_slurm


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """A reconcile that records which runs it was asked about (and can fail)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.error = error
        self.done = threading.Event()

    def __call__(self, rds: list[runs.RunDir]) -> None:
        self.calls.append(sorted(r.run_id for r in rds))
        self.done.set()
        if self.error:
            raise self.error


def _wait(watch: SlurmWatch) -> None:
    if watch._thread is not None:
        watch._thread.join(5)


def test_the_store_asks_slurm_at_most_every_5_s_and_only_about_active_slurm_runs(fx: Path) -> None:
    root = fx / "runs"
    store = Store(None, root)
    clock, seen = Clock(), Recorder()
    store.slurm = SlurmWatch(seen, clock=clock)
    store.poll()
    assert seen.calls == []  # local runs only: Slurm is never asked
    slurmify(root / "add" / "seed0", host="node1")  # done: nothing to ask
    slurmify(root / "add" / "seed3", task=5, slurm_state="PENDING")
    store.poll()
    _wait(store.slurm)
    assert seen.calls == [["add/seed3"]]
    for t in (1.0, 2.5, RECONCILE_EVERY_S - 0.1):
        clock.t = t
        store.poll()
        _wait(store.slurm)
    assert len(seen.calls) == 1
    clock.t = RECONCILE_EVERY_S
    store.poll()
    _wait(store.slurm)
    assert seen.calls == [["add/seed3"], ["add/seed3"]]
    # the job ended (reconcile wrote so): no more looks
    slurmify(root / "add" / "seed3", task=5, state="stopped", reason="cancelled in Slurm")
    clock.t = 3 * RECONCILE_EVERY_S
    store.poll()
    _wait(store.slurm)
    assert len(seen.calls) == 2
    assert fmt.state_label(store.row("add/seed3").summary).text == "stopped (cancelled in Slurm)"


def test_a_slow_slurm_never_holds_up_the_poll(fx: Path) -> None:
    root = fx / "runs"
    slurmify(root / "add" / "seed3", slurm_state="PENDING")
    release = threading.Event()
    calls = []

    def stuck(rds: list[runs.RunDir]) -> None:
        calls.append(len(rds))
        release.wait(10)

    store = Store(None, root)
    clock = Clock()
    store.slurm = SlurmWatch(stuck, clock=clock)
    try:
        store.poll()
        clock.t = 10 * RECONCILE_EVERY_S
        write_json_atomic(root / "add" / "seed0" / runs.STATUS, {"state": "stopped", "step": 1})
        store.poll()  # returns while the first look still waits on Slurm, and starts no second one
        assert store.row("add/seed0").state == "stopped" and calls == [1]
    finally:
        release.set()
        _wait(store.slurm)


def test_a_failing_look_at_slurm_is_one_error_line(fx: Path) -> None:
    root = fx / "runs"
    slurmify(root / "add" / "seed3", slurm_state="PENDING")
    store = Store(None, root)
    store.slurm = SlurmWatch(Recorder(FileNotFoundError("squeue")), clock=Clock())
    store.poll()
    _wait(store.slurm)
    store.poll()
    assert store.errors == ["Slurm: FileNotFoundError: squeue"]


def test_without_the_slurm_launcher_the_look_is_a_no_op() -> None:
    assert reconcile_with_slurm([]) is None


async def test_the_app_shows_job_node_and_reason_and_asks_slurm_in_the_background(fx: Path) -> None:
    from grok_tui.tui.app import GrokApp
    from grok_tui.tui.screens.experiments import RunTable

    root = fx / "runs"
    slurmify(root / RUNNING, host="node7", slurm_state="RUNNING", slurm_seen=time.time())
    slurmify(root / "add" / "seed3", task=5, slurm_state="PENDING", slurm_reason="Resources")
    slurmify(root / "add" / "seed0", task=6, state="stopped", reason="time limit", host="node2")
    app = GrokApp(fx / "experiments.toml", palette="truecolor")
    seen = Recorder()
    app.store.slurm.reconcile = seen
    async with app.run_test(size=(160, 32)) as pilot:
        await settled(pilot)
        table = app.screen.query_one(RunTable)
        assert cell_text(table, RUNNING, "state") == "running"
        assert (cell_text(table, RUNNING, "job"), cell_text(table, RUNNING, "node")) == ("123_4", "node7")
        assert cell_text(table, "add/seed3", "state") == "queued (Slurm: PENDING, Resources)"
        assert cell_text(table, "add/seed0", "state") == "stopped (time limit)"
        assert cell_text(table, "mix/seed0", "job") == ""
        assert cell_text(table, "mix/seed0", "node") == "fixture-host"
        assert seen.done.wait(5) and seen.calls[0] == sorted([RUNNING, "add/seed3"])
        ids = app.screen.visible_run_ids()
        table.move_cursor(row=ids.index(RUNNING), animate=False)
        await pilot.pause()
        assert "Slurm job 123_4 on node7" in static_text(app.screen.query_one("#exp-detail"))
        await pilot.press("enter")
        assert await until(pilot, lambda: app.screen.id == "run")
        await pilot.pause()
        assert "Slurm job 123_4 on node7" in static_text(app.screen.query_one("#run-head"))


async def test_the_table_drops_the_slurm_columns_when_no_slurm_run_is_left(fx: Path) -> None:
    from grok_tui.tui.app import GrokApp
    from grok_tui.tui.screens.experiments import RunTable

    root = fx / "runs"
    status = root / "add" / "seed0" / runs.STATUS
    before = status.read_text()
    slurmify(root / "add" / "seed0", host="node2")
    app = GrokApp(fx / "experiments.toml", palette="truecolor")
    async with app.run_test(size=(160, 32)) as pilot:
        await settled(pilot)
        table = app.screen.query_one(RunTable)
        assert "job" in [str(c.key.value) for c in table.columns.values()]
        status.write_text(before)
        assert await until(pilot, lambda: "job" not in [str(c.key.value) for c in table.columns.values()])
        assert cell_text(table, "add/seed0", "state") == "done" and table.row_count == 8
