"""A damaged resume state is never trained on: the run falls back to the previous state, or fails in one line.

Real training (the tiny transformer and a small RFM) in this process, stopped at a known step; the resume
state is then damaged in generated ways (a flipped byte or 200 overwritten bytes inside a tensor entry,
a truncation, a flipped byte anywhere) and the run resumed. Where a previous state exists the finished
run must equal an uninterrupted one (exact resume), whatever the damage; where none does, the run must
fail with one line naming the file. Never ``done`` from garbage.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import RFM_TOML, TINY_TOML

from grok_tui import runs
from grok_tui.config import parse_config
from grok_tui.launch.local import prepare_run
from grok_tui.recorder import RESUME_DAMAGED, RunFailure
from grok_tui.training import neural
from grok_tui.training import rfm as rfm_training

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

DAMAGES = ("flip", "overwrite200", "truncate", "flip-anywhere")
SEEDS = (0, 1, 2)


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def stop_at(step: int):
    """should_stop for an in-process trainer: polled once per step (neural) or iteration (RFM)."""
    polls = itertools.count()
    return lambda: next(polls) >= step


def tensor_entries(path: Path) -> list[tuple[int, int]]:
    """(start, size) in the file of each tensor's bytes inside torch's zip archive."""
    out = []
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        for zi in z.infolist():
            if re.search(r"/data/\d+$", zi.filename) and zi.file_size >= 200:
                f.seek(zi.header_offset)
                name_len, extra_len = struct.unpack("<HH", f.read(30)[26:30])
                out.append((zi.header_offset + 30 + name_len + extra_len, zi.compress_size))
    assert out, f"{path}: no tensor entries found"
    return out


def damage(path: Path, kind: str, seed: int) -> None:
    rng = random.Random(f"{kind}-{seed}")
    data = bytearray(path.read_bytes())
    if kind == "truncate":
        del data[rng.randrange(len(data)) :]
    elif kind == "flip-anywhere":
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    else:
        start, size = rng.choice(tensor_entries(path))
        if kind == "flip":
            data[start + rng.randrange(size)] ^= 1 << rng.randrange(8)
        else:  # 200 bytes overwritten inside one tensor entry, as the audit did
            at = start + rng.randrange(size - 200 + 1)
            data[at : at + 200] = bytes(rng.randrange(1, 256) for _ in range(200))
    path.write_bytes(bytes(data))


def resume_files(run_dir: Path) -> Path:
    return run_dir / runs.CKPT_DIR / runs.RESUME


# --------------------------------------------------------------------------- both loops


@dataclass(frozen=True)
class Loop:
    """A training loop and where its states land: stopped at ``stop`` it holds states at ``prev`` and
    ``stop``; stopped at ``early`` it holds one state only."""

    name: str
    toml: str
    train: Callable[..., str]
    stop: int
    prev: int
    early: int

    def spec(self) -> dict:
        return parse_config(self.toml, Path("experiments.toml")).runs[0]


LOOPS = {
    "neural": Loop("neural", TINY_TOML.format(steps=300), neural.run, stop=250, prev=200, early=50),
    # RFM checkpoints every 3 iterations; a state saved at iteration t resumes at t + 1
    "rfm": Loop("rfm", RFM_TOML.format(p=13, steps=10, every=3), rfm_training.run, stop=8, prev=7, early=0),
}


@pytest.fixture(scope="module", params=list(LOOPS))
def made(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Loop, dict]:
    """An uninterrupted run, the same run stopped with two states, and one stopped with a single state."""
    loop = LOOPS[request.param]
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp(loop.name)
    out = {}
    for name, stop in (("straight", None), ("stopped", loop.stop), ("early", loop.early)):
        run, _ = prepare_run(loop.spec(), root / name / "runs")
        expected = "done" if stop is None else "stopped"
        assert (
            loop.train(loop.spec(), run.path, "cpu", (lambda: False) if stop is None else stop_at(stop))
            == expected
        )
        out[name] = run.path
    ckpts = out["stopped"] / runs.CKPT_DIR
    assert torch.load(ckpts / runs.RESUME, weights_only=True)["step"] == loop.stop
    assert torch.load(ckpts / runs.RESUME_PREV, weights_only=True)["step"] == loop.prev
    assert not (out["early"] / runs.CKPT_DIR / runs.RESUME_PREV).exists()
    return loop, out


def copied(src: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / src.parent.name / src.name
    shutil.copytree(src, run_dir)
    return run_dir


@pytest.mark.parametrize("kind", DAMAGES)
@pytest.mark.parametrize("seed", SEEDS)
def test_damaged_state_falls_back_to_the_previous_one_and_ends_exact(
    made, tmp_path: Path, kind: str, seed: int
) -> None:
    loop, out = made
    run_dir = copied(out["stopped"], tmp_path)
    damage(resume_files(run_dir), kind, seed)
    assert loop.train(loop.spec(), run_dir, "cpu", lambda: False) == "done"
    run, straight = runs.RunDir(run_dir), runs.RunDir(out["straight"])
    assert without_time(run.metrics()) == without_time(straight.metrics())
    assert runs.read_jsonl(run_dir / runs.PROGRESS) == runs.read_jsonl(straight.path / runs.PROGRESS)
    warning = run.raw_status().get("warning")
    if kind != "flip-anywhere":  # a flip in zip padding is harmless: that run resumes exactly from `stop`
        assert warning is not None and "\n" not in warning
        assert str(resume_files(run_dir)) in warning
        assert f"resumed from step {loop.prev} (resume.prev.pt)" in warning
        assert (run_dir / runs.CKPT_DIR / RESUME_DAMAGED).exists()


@pytest.mark.parametrize("kind", DAMAGES[:3])
def test_damaged_state_without_a_previous_one_fails_in_one_line(made, tmp_path: Path, kind: str) -> None:
    loop, out = made
    run_dir = copied(out["early"], tmp_path)
    before = runs.RunDir(run_dir).metrics()
    damage(resume_files(run_dir), kind, 0)
    with pytest.raises(RunFailure) as info:
        loop.train(loop.spec(), run_dir, "cpu", lambda: False)
    line = str(info.value)
    assert "\n" not in line and line.startswith(f"{resume_files(run_dir)}: damaged resume state")
    assert "no earlier resume state" in line
    assert runs.RunDir(run_dir).metrics() == before  # nothing dropped, nothing trained


def test_a_state_of_another_spec_is_refused_like_a_damaged_one(made, tmp_path: Path) -> None:
    """An intact state that does not fit the run (wrong shapes) is never applied."""
    loop, out = made
    run_dir = copied(out["early"], tmp_path)
    state = torch.load(resume_files(run_dir), weights_only=True)
    if loop.name == "rfm":
        state["M"] = torch.eye(5, dtype=torch.float64)
    else:
        state["model"] = {k: v[..., :1] for k, v in state["model"].items()}
    torch.save(state, resume_files(run_dir))
    with pytest.raises(RunFailure, match="does not fit this run") as info:
        loop.train(loop.spec(), run_dir, "cpu", lambda: False)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- the neural loop's own


@pytest.mark.parametrize("made", ["neural"], indirect=True)
def test_an_unreadable_checkpoint_is_left_out_of_the_final_pass(made, tmp_path: Path, capfd) -> None:
    run_dir = copied(made[1]["stopped"], tmp_path)
    (run_dir / runs.CKPT_DIR / runs.ckpt_name(100)).write_bytes(b"not a zip")
    assert neural.run(LOOPS["neural"].spec(), run_dir, "cpu", lambda: False) == "done"
    assert [r["step"] for r in runs.read_jsonl(run_dir / runs.PROGRESS)] == [0, 200, 300]
    said = capfd.readouterr()  # the worker's stdout and stderr are both worker.log
    assert "final pass at step 100 skipped" in said.out + said.err


@pytest.mark.parametrize("made", ["neural"], indirect=True)
def test_the_worker_reports_the_fallback_and_the_failure(made, tmp_path: Path) -> None:
    """Through the real worker: one warning line in worker.log and status.json; a failed run's status
    names the file and carries no traceback."""
    _, neural_runs = made
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, expect in (("stopped", "done"), ("early", "failed")):
        run_dir = copied(neural_runs[name], tmp_path / name)
        damage(resume_files(run_dir), "overwrite200", 7)
        with open(run_dir / runs.LOG, "ab") as log:
            rc = subprocess.run(
                [sys.executable, "-m", "grok_tui.worker", str(run_dir)], stdout=log, stderr=log, env=env
            ).returncode
        status = runs.RunDir(run_dir).status()
        log_text = (run_dir / runs.LOG).read_text()
        assert status["state"] == expect, log_text
        if expect == "done":
            assert rc == 0 and "resumed from step 200 (resume.prev.pt)" in status["warning"]
            assert [ln for ln in log_text.splitlines() if "warning" in ln] == [
                f"grok worker: warning: {status['warning']}"
            ]
            straight = runs.RunDir(neural_runs["straight"])
            assert without_time(runs.RunDir(run_dir).metrics()) == without_time(straight.metrics())
        else:
            assert rc == 1 and status["error"].startswith(f"{resume_files(run_dir)}: damaged resume state")
            assert status["traceback"] is None and "Traceback" not in log_text
            assert log_text.splitlines()[-1] == f"grok worker: seed0 failed: {status['error']}"
