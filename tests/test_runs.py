"""The run-directory readers never crash on damage and follow files that are appended or replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

from grok_tui import runs


def test_jsonl_tail_keeps_torn_lines_and_follows_replacement(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = runs.JsonlTail(path)
    assert tail.read_new() == []  # missing file
    path.write_text('{"step": 0}\n{"step": 1')  # a torn last line
    assert tail.read_new() == [{"step": 0}]
    with open(path, "a") as f:
        f.write(', "x": 2}\nnot json\n')
    assert tail.read_new() == [{"step": 1, "x": 2}]  # completed later; the corrupt line is skipped
    assert not tail.reset_seen
    # a resume rewrites the file through a rename: a longer new file must still be read from the start
    new = tmp_path / "new"
    new.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(10)))
    os.replace(new, path)
    assert [r["step"] for r in tail.read_new()] == list(range(10)) and tail.reset_seen


def test_summary_of_a_damaged_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "exp" / "seed0"
    run.mkdir(parents=True)
    (run / runs.SPEC).write_text("{ not json")
    (run / runs.STATUS).write_text('{"state": "running", "step": 5}')  # but no live worker holds the lock
    (run / runs.METRICS).write_text('{"step": 0, "train_acc": 0.5}\n{"step": 5, "train_acc": 1.0, "test')
    s = runs.RunDir(run).summary()
    assert (s.state, s.error, s.step, s.memorised_at) == ("failed", runs.VANISHED, 5, None)
    assert [r.run_id for r in runs.list_runs(tmp_path)] == ["exp/seed0"]
