"""The worker as a user meets it: what worker.log says, a diverged loss, the lock on every path.

Real training through the real worker process (tiny transformer), and ``worker.work`` in this process
where only its bookkeeping is under test.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import RFM_TOML, TINY_TOML

from grok_tui import runs, worker
from grok_tui.config import parse_config
from grok_tui.exitcodes import FAILED, USAGE
from grok_tui.launch.local import prepare_run
from grok_tui.recorder import RunFailure, write_json_atomic
from grok_tui.training import neural
from grok_tui.training import rfm as rfm_training

EVAL_LINE = re.compile(r"^step (\d+)/(\d+)  train loss (\S+) acc (\S+)  test loss (\S+) acc (\S+)$")


def tiny_spec(tmp_path: Path, steps: int, **optim: float) -> dict:
    text = TINY_TOML.format(steps=steps)
    if optim:
        text = text.replace("optim = { lr = 1e-2, weight_decay = 1.0 }", f"optim = {{ lr = {optim['lr']} }}")
    return parse_config(text, tmp_path / "experiments.toml").runs[0]


def run_worker(run_dir: Path) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(run_dir / runs.LOG, "ab") as log:
        return subprocess.run(
            [sys.executable, "-m", "grok_tui.worker", str(run_dir)], stdout=log, stderr=log, env=env
        ).returncode


@pytest.mark.slow
def test_worker_log_has_a_line_per_evaluation_the_resume_and_the_end(tmp_path: Path, capsys) -> None:
    spec = tiny_spec(tmp_path, 150)
    run, _ = prepare_run(spec, tmp_path / "runs")
    polls = itertools.count()
    torch.set_num_threads(1)
    assert neural.run(spec, run.path, "cpu", lambda: next(polls) >= 60) == "stopped"
    first = capsys.readouterr().out.splitlines()  # what this process's worker.log would hold
    assert [EVAL_LINE.match(ln).group(1) for ln in first] == ["0", "25", "50"]  # type: ignore[union-attr]

    assert run_worker(run.path) == 0
    lines = (run.path / runs.LOG).read_text().splitlines()
    evals = [m for ln in lines if (m := EVAL_LINE.match(ln))]
    rows = run.metrics()
    assert lines.index("grok worker: resumed from step 60") < lines.index(evals[0].group(0))
    assert (
        [int(m.group(1)) for m in evals] == [r["step"] for r in rows if r["step"] > 60] == [75, 100, 125, 150]
    )
    for m, row in zip(evals, rows[-4:], strict=True):
        assert m.group(2) == "150"
        assert float(m.group(3)) == pytest.approx(row["train_loss"], rel=1e-3)
        assert float(m.group(4)) == pytest.approx(row["train_acc"], abs=5e-4)
        assert float(m.group(5)) == pytest.approx(row["test_loss"], rel=1e-3)
        assert float(m.group(6)) == pytest.approx(row["test_acc"], abs=5e-4)
    assert lines[-1] == "grok worker: seed0 done"


@pytest.mark.slow
def test_a_diverged_loss_fails_the_run_at_that_step_and_keeps_its_checkpoints(tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path, 100, lr=1e30)
    run, _ = prepare_run(spec, tmp_path / "runs")
    assert run_worker(run.path) == FAILED
    st = run.status()
    m = re.fullmatch(r"training loss became (nan|inf|-inf) at step (\d+)", st["error"])
    assert st["state"] == "failed" and m, st
    bad_step = int(m.group(2))
    assert 0 < bad_step < spec["eval_every"]  # lr 1e30: the first update already overflows
    assert st["traceback"] is None
    assert (run.path / runs.LOG).read_text().splitlines()[-1] == f"grok worker: seed0 failed: {st['error']}"
    rows = run.metrics()
    assert rows and all(math.isfinite(r["train_loss"]) and r["step"] < bad_step for r in rows)
    assert run.checkpoint_steps() == [0]  # kept; none written from the diverged model
    assert not (run.path / runs.CKPT_DIR / runs.RESUME).exists()


@pytest.mark.slow
def test_on_nan_continue_trains_a_diverged_run_to_the_end(tmp_path: Path) -> None:
    spec = {**tiny_spec(tmp_path, 100, lr=1e30), "on_nan": "continue"}
    run, _ = prepare_run(spec, tmp_path / "runs")
    assert run_worker(run.path) == 0
    st = run.status()
    assert st["state"] == "done" and st["step"] == 100
    rows = run.metrics()
    assert rows[-1]["step"] == 100 and not math.isfinite(rows[-1]["train_loss"])
    assert run.checkpoint_steps() == [0, 100]


@pytest.mark.parametrize("kernel", ["gaussian", "laplace", "quadratic"])
def test_an_rfm_whose_loss_is_nan_fails_before_writing_that_iteration(tmp_path: Path, kernel: str) -> None:
    """A spec edited by hand (JSON allows NaN): the kernel solve gives NaN at once."""
    text = RFM_TOML.format(p=11, steps=4, every=2).replace("gaussian", kernel)
    spec = parse_config(text, tmp_path / "x.toml").runs[0]
    spec["model"] = {**spec["model"], "bandwidth": math.nan, "ridge": math.nan}
    run, _ = prepare_run(spec, tmp_path / "runs")
    with pytest.raises(RunFailure, match=r"^training loss became nan at step 0$"):
        rfm_training.run(spec, run.path, "cpu", lambda: False)
    assert run.metrics() == [] and run.checkpoint_steps() == []


# --------------------------------------------------------------------------- the lock on every path


def _bare_run(tmp_path: Path, spec: dict) -> Path:
    run_dir = tmp_path / "runs" / "exp" / "seed0"
    write_json_atomic(run_dir / runs.SPEC, spec)
    return run_dir


def _work(run_dir: Path) -> int:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    rc = worker.work(run_dir)
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # put back as found
    return rc


@pytest.mark.parametrize(
    "spec",
    [
        {"model": {"kind": "no-such-model"}, "steps": 10},  # the trainer cannot even be chosen
        {"model": {"kind": "rfm"}, "steps": 10},  # a spec without p
        {"steps": 10},  # a spec without a model
    ],
)
def test_a_damaged_spec_fails_in_one_line_and_releases_the_lock(tmp_path: Path, spec: dict) -> None:
    run_dir = _bare_run(tmp_path, spec)
    assert _work(run_dir) == USAGE
    assert not runs.lock_held(run_dir)
    st = runs.RunDir(run_dir).status()
    assert st["state"] == "failed" and st["error"].startswith(f"{run_dir / runs.SPEC}: ") and st["ended"]


def test_a_failing_run_releases_its_lock_and_says_failed(tmp_path: Path) -> None:
    """The trainer raises mid-run (here: a resume state that is not one, and none earlier to fall back on)."""
    text = '[experiments.r]\ntask = "add"\np = 7\nsteps = 2\nmodel = { kind = "rfm" }\n'
    run_dir = _bare_run(tmp_path, parse_config(text, tmp_path / "x.toml").runs[0])
    (run_dir / runs.CKPT_DIR).mkdir()
    (run_dir / runs.CKPT_DIR / runs.RESUME).write_bytes(b"not a zip")
    assert _work(run_dir) == FAILED
    assert not runs.lock_held(run_dir)
    st = runs.RunDir(run_dir).status()
    assert st["state"] == "failed" and "resume" in st["error"] and st["ended"]


def test_a_refused_run_releases_its_lock_and_says_why(tmp_path: Path) -> None:
    run_dir = _bare_run(tmp_path, {"model": {"kind": "rfm"}, "steps": 10})
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text("")
    (run_dir / runs.METRICS).symlink_to(outside)
    assert _work(run_dir) == USAGE
    assert not runs.lock_held(run_dir)
    st = runs.RunDir(run_dir).status()
    assert st["state"] == "failed" and str(run_dir / runs.METRICS) in st["error"]
    assert outside.read_text() == ""


def test_a_finished_run_releases_its_lock(tmp_path: Path) -> None:
    text = '[experiments.r]\ntask = "add"\np = 7\nsteps = 2\nmodel = { kind = "rfm" }\n'
    run_dir = _bare_run(tmp_path, parse_config(text, tmp_path / "x.toml").runs[0])
    assert _work(run_dir) == 0
    assert not runs.lock_held(run_dir) and runs.RunDir(run_dir).status()["state"] == "done"
