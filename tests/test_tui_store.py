# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""The TUI's poll: the table shows exactly what RunDir.summary (grok ls) says, incrementally."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from tui_helpers import RUNNING, alive, fixture_src, fx  # noqa: F401

from grok_tui import recorder, runs
from grok_tui.recorder import Recorder
from grok_tui.tui.store import NEW, LogTail, Row, Store


def _store(root: Path) -> Store:
    s = Store(root / "experiments.toml", None)
    s.poll()
    return s


def test_rows_are_the_summaries_grok_ls_prints(alive: Path) -> None:
    store = _store(alive)
    rows = {r.run_id: r for r in store.rows()}
    on_disk = runs.list_runs(alive / "runs")
    assert {r.run_id for r in on_disk} <= set(rows)
    for rd in on_disk:
        expected = Row(rd.summary(), in_config=rd.experiment != "old", on_disk=True)
        assert rows[rd.run_id] == expected, rd.run_id
    assert rows[RUNNING].state == "running"
    done = rows["add/seed0"].summary
    assert done.grokked_at is not None and done.memorised_at is not None


def test_config_runs_without_a_directory_are_listed_as_new(fx: Path) -> None:
    rows = _store(fx).rows()
    ids = [r.run_id for r in rows]
    # experiments.toml order first, then runs only on disk
    assert ids == [
        "add/seed0",
        "add/seed1",
        "add/seed2",
        "add/seed3",
        "mix/seed0",
        "sub/seed0",
        "sub/seed1",
        "old/seed0",
    ]
    sub = rows[ids.index("sub/seed0")]
    assert sub.state == NEW and not sub.on_disk
    assert sub.summary.total_steps == 6000 and sub.summary.spec["task"] == "sub"
    assert rows[-1].in_config is False


def test_a_dead_worker_shows_as_failed_within_one_poll(fx: Path) -> None:
    row = next(r for r in _store(fx).rows() if r.run_id == RUNNING)
    assert row.state == "failed" and row.summary.error == runs.VANISHED


def test_appended_rows_update_the_row_incrementally(alive: Path) -> None:
    store = _store(alive)
    run_dir = alive / "runs" / RUNNING
    rec = Recorder(run_dir)
    before = store.row(RUNNING).summary
    assert before.grokked_at is None
    rec.metrics({"step": 2550, "train_acc": 1.0, "test_acc": 0.5, "train_loss": 0.01, "test_loss": 2.0})
    assert store.poll()
    mid = store.row(RUNNING).summary
    assert (mid.test_acc, mid.grokked_at) == (0.5, None)
    rec.metrics({"step": 2600, "train_acc": 1.0, "test_acc": 0.995, "train_loss": 0.01, "test_loss": 0.01})
    rec.metrics({"step": 2650, "train_acc": 1.0, "test_acc": 0.999, "train_loss": 0.01, "test_loss": 0.01})
    recorder.update_status(run_dir, step=2650)
    store.poll()
    after = store.row(RUNNING).summary
    assert after.grokked_at == 2600 and after.step == 2650
    assert after == runs.RunDir(run_dir).summary()
    assert not store.poll() or store.row(RUNNING).summary == after  # nothing new: nothing changes


def test_rewritten_metrics_start_over(fx: Path) -> None:
    """A resume truncates metrics.jsonl (write-new-then-rename): the row forgets the dropped rows."""
    store = _store(fx)
    assert store.row("add/seed0").summary.grokked_at is not None
    Recorder(fx / "runs" / "add" / "seed0").truncate_after(1000)
    store.poll()
    row = store.row("add/seed0").summary
    assert row.grokked_at is None and row.test_acc == runs.RunDir(row.path).summary().test_acc


def test_broken_toml_keeps_the_disk_runs_and_reports_one_line(fx: Path) -> None:
    toml = fx / "experiments.toml"
    store = _store(fx)
    toml.write_text(toml.read_text() + "\n[experiments.bad\n")
    store.poll()
    assert store.config_error and "\n" not in store.config_error and "experiments.toml" in store.config_error
    assert "add/seed0" in {r.run_id for r in store.rows()}
    toml.write_text(toml.read_text().replace("[experiments.bad\n", "[experiments.bad]\ntask = 'mul'\n"))
    store.poll()
    assert store.config_error is None
    assert "bad/seed0" in {r.run_id for r in store.rows()}


def test_series_columns_fourier_and_log(fx: Path) -> None:
    store = _store(fx)
    s = store.series("mix/seed0")
    rows = runs.RunDir(fx / "runs" / "mix" / "seed0").metrics()
    assert s.metrics.n == len(rows)
    assert np.array_equal(s.metrics.get("test_acc"), [r["test_acc"] for r in rows])
    task = next(iter(rows[0]["tasks"]))
    assert np.array_equal(
        s.metrics.get(f"tasks/{task}/test_acc"), [r["tasks"][task]["test_acc"] for r in rows]
    )
    # restricted loss only at checkpoint steps: NaN elsewhere, the value at the checkpoint
    assert s.metrics.row_at(500)["restricted_loss"] == rows[10]["restricted_loss"]
    assert "restricted_loss" not in s.metrics.row_at(550)
    steps, mat = s.fourier.array("embed")
    assert mat.shape == (len(rows), 29) and steps[-1] == 4000
    assert s.checkpoints == runs.RunDir(fx / "runs" / "mix" / "seed0").checkpoint_steps()
    assert list(s.log)[-1].startswith("step")
    store.release("mix/seed0")
    assert store.watched() == []


def test_log_tail_keeps_partial_lines_and_starts_near_the_end(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("x" * 100_000 + "\nfirst\nsec")
    t = LogTail(log)
    assert t.read_new() == ["first"]  # the torn line at the 64 KiB cut and the partial "sec" are held back
    with open(log, "a") as f:
        f.write("ond\n")
    assert t.read_new() == ["second"]


def test_row_is_a_frozen_value(fx: Path) -> None:
    row = _store(fx).rows()[0]
    assert dataclasses.is_dataclass(row)
    json.dumps(dataclasses.asdict(row), default=str)  # printable as-is (no live objects inside)


def test_unreadable_lines_are_counted_as_grok_show_counts_them_and_a_rewrite_starts_over(fx: Path) -> None:
    store = _store(fx)
    run = fx / "runs" / "add" / "seed0"
    with open(run / runs.METRICS, "a") as f:
        f.write('{"step": "abc"}\nnot json\n{"no": "step"}\n')
    store.poll()
    assert store.row("add/seed0").summary.skipped_rows == 3 == runs.RunDir(run).summary().skipped_rows
    rows = runs.read_jsonl(run / runs.METRICS)
    recorder.rewrite_jsonl(run / runs.METRICS, rows)  # what a resume's truncation does
    store.poll()
    assert store.row("add/seed0").summary.skipped_rows == 0
