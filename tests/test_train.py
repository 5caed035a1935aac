"""Real training through the real CLI and worker: it groks, it is deterministic, it resumes exactly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import grok, start_worker, wait_for

from grok_tui import runs
from grok_tui.checkpoints import load_checkpoint
from grok_tui.config import load_config
from grok_tui.launch.local import prepare_run


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def make_run(toml: Path, root: Path) -> runs.RunDir:
    spec = load_config(toml).runs[0]
    run, action = prepare_run(spec, root)
    assert action == "new"
    return run


def test_tiny_run_groks_and_ls_show_report_it(tiny_toml) -> None:
    toml = tiny_toml(600)
    result = grok("run", str(toml), cwd=toml.parent)
    assert result.returncode == 0, result.stderr
    listing = json.loads(grok("ls", "--json", cwd=toml.parent).stdout)
    (row,) = listing
    assert row["state"] == "done" and row["step"] == 600
    assert row["train_acc"] == 1.0 and row["test_acc"] >= 0.99
    # grokking: test accuracy reaches 0.99 well after train accuracy did
    assert row["memorised_at"] is not None and row["grokked_at"] >= 2 * row["memorised_at"]
    # the table piped to grep or a file keeps whole run ids (rich would cut them at 80 columns)
    assert "tiny/seed0" in grok("ls", cwd=toml.parent).stdout
    shown = grok("show", "tiny/seed0", cwd=toml.parent)
    assert shown.returncode == 0 and "accuracy" in shown.stdout and "grokked" in shown.stdout
    # a finished run is not run again
    again = grok("run", str(toml), cwd=toml.parent)
    assert again.returncode == 0 and "already done" in again.stdout + again.stderr
    csv = grok("export", "tiny/seed0", "--format", "csv", cwd=toml.parent).stdout.splitlines()
    assert (
        csv[0].startswith("step,time,train_loss,train_acc,test_loss,test_acc")
        and len(csv) == 1 + 600 // 25 + 1
    )


def test_same_seed_gives_identical_metrics(tiny_toml, tmp_path: Path) -> None:
    toml = tiny_toml(150)
    a, b = make_run(toml, tmp_path / "a"), make_run(toml, tmp_path / "b")
    for run in (a, b):
        assert start_worker(run).wait(timeout=120) == 0
    assert without_time(a.metrics()) == without_time(b.metrics())
    assert (a.path / runs.FOURIER).read_text() == (b.path / runs.FOURIER).read_text()


def test_sigterm_then_resume_matches_an_uninterrupted_run(tiny_toml, tmp_path: Path) -> None:
    toml = tiny_toml(300)
    straight, stopped = make_run(toml, tmp_path / "straight"), make_run(toml, tmp_path / "stopped")
    worker = start_worker(stopped)
    wait_for(lambda: any(r["step"] >= 125 for r in stopped.metrics()), "step 125", timeout=120)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    status = stopped.status()
    assert status["state"] == "stopped" and 125 <= status["step"] < 300
    assert (stopped.path / runs.CKPT_DIR / runs.RESUME).exists()
    assert start_worker(stopped).wait(timeout=120) == 0
    assert stopped.status()["state"] == "done" and stopped.status()["resumed"] is True
    assert start_worker(straight).wait(timeout=120) == 0
    assert without_time(stopped.metrics()) == without_time(straight.metrics())
    w1, _ = load_checkpoint(stopped.checkpoint_path(300))
    w2, _ = load_checkpoint(straight.checkpoint_path(300))
    assert all(np.array_equal(w1[k], w2[k]) for k in w2)


def test_second_worker_on_a_live_run_is_refused(tiny_toml, tmp_path: Path) -> None:
    run = make_run(tiny_toml(300), tmp_path)
    first = start_worker(run)
    wait_for(run.alive, "the worker's lock", timeout=120)
    second = subprocess.run(
        [sys.executable, "-m", "grok_tui.worker", str(run.path)], capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 3 and "already has a live worker" in second.stderr
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_checkpoint_is_reported_not_crashed(tiny_toml, tmp_path: Path, damage: str) -> None:
    run = make_run(tiny_toml(100), tmp_path)
    assert start_worker(run).wait(timeout=120) == 0
    path = run.checkpoint_path(100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a zip")
    with pytest.raises(ValueError, match="corrupt or unreadable checkpoint"):
        load_checkpoint(path)
