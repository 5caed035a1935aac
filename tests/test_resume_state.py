"""A damaged resume state is never trained on: the run falls back to the previous state, or fails in one line.

Real training (the tiny transformer and a small RFM) in this process, stopped at a known step; the resume
state is then damaged in generated ways (a flipped byte or 200 overwritten bytes inside a tensor entry,
a truncation, a flipped byte anywhere) and the run resumed. Where a previous state exists the finished
run must equal an uninterrupted one (exact resume), whatever the damage; where none does, the run must
fail with one line naming the file. Never ``done`` from garbage.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import TINY_TOML

from grok_tui import runs
from grok_tui.config import parse_config
from grok_tui.launch.local import prepare_run
from grok_tui.recorder import RESUME_DAMAGED, RunFailure
from grok_tui.training import neural
from grok_tui.training import rfm as rfm_training

pytestmark = pytest.mark.slow

DAMAGES = ("flip", "overwrite200", "truncate", "flip-anywhere")
SEEDS = (0, 1, 2)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Bit-identical runs need the same thread count; one thread is also fastest at this size."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


# --------------------------------------------------------------------------- the neural loop


@pytest.fixture(scope="module")
def neural_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An uninterrupted tiny run, the same run stopped at step 250 (states at 200 and 250), and one
    stopped at step 50 (one state, nothing to fall back to)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("neural")
    spec = parse_config(TINY_TOML.format(steps=300), root / "x.toml").runs[0]
    out = {}
    for name, stop in (("straight", None), ("stopped", 250), ("early", 50)):
        run, _ = prepare_run(spec, root / name)
        should_stop = stop_at(stop) if stop else (lambda: False)
        expected = "stopped" if stop else "done"
        assert neural.run(spec, run.path, "cpu", should_stop) == expected
        out[name] = run.path
    ckpts = out["stopped"] / runs.CKPT_DIR
    assert torch.load(ckpts / runs.RESUME, weights_only=True)["step"] == 250
    assert torch.load(ckpts / runs.RESUME_PREV, weights_only=True)["step"] == 200
    assert not (out["early"] / runs.CKPT_DIR / runs.RESUME_PREV).exists()
    out["spec"] = spec  # type: ignore[assignment]
    return out


@pytest.mark.parametrize("kind", DAMAGES)
@pytest.mark.parametrize("seed", SEEDS)
def test_damaged_state_falls_back_to_the_previous_one_and_ends_exact(
    neural_runs: dict, tmp_path: Path, kind: str, seed: int
) -> None:
    run_dir = tmp_path / "exp" / "seed0"
    shutil.copytree(neural_runs["stopped"], run_dir)
    damage(resume_files(run_dir), kind, seed)
    assert neural.run(neural_runs["spec"], run_dir, "cpu", lambda: False) == "done"
    run, straight = runs.RunDir(run_dir), runs.RunDir(neural_runs["straight"])
    assert without_time(run.metrics()) == without_time(straight.metrics())
    assert (run_dir / runs.PROGRESS).read_text() == (straight.path / runs.PROGRESS).read_text()
    warning = run.raw_status().get("warning")
    if kind != "flip-anywhere":  # a flip in zip padding is harmless, and resumes from 250 exactly
        assert warning is not None and "\n" not in warning
        assert str(resume_files(run_dir)) in warning and "resumed from step 200 (resume.prev.pt)" in warning
        assert (run_dir / runs.CKPT_DIR / RESUME_DAMAGED).exists()


def test_an_unreadable_checkpoint_is_left_out_of_the_final_pass(
    neural_runs: dict, tmp_path: Path, capfd
) -> None:
    run_dir = tmp_path / "exp" / "seed0"
    shutil.copytree(neural_runs["stopped"], run_dir)
    (run_dir / runs.CKPT_DIR / runs.ckpt_name(100)).write_bytes(b"not a zip")
    assert neural.run(neural_runs["spec"], run_dir, "cpu", lambda: False) == "done"
    assert [r["step"] for r in runs.read_jsonl(run_dir / runs.PROGRESS)] == [0, 200, 300]
    assert "final pass at step 100 skipped" in capfd.readouterr().err


@pytest.mark.parametrize("kind", DAMAGES[:3])
def test_damaged_state_without_a_previous_one_fails_in_one_line(
    neural_runs: dict, tmp_path: Path, kind: str
) -> None:
    run_dir = tmp_path / "exp" / "seed0"
    shutil.copytree(neural_runs["early"], run_dir)
    before = runs.RunDir(run_dir).metrics()
    damage(resume_files(run_dir), kind, 0)
    with pytest.raises(RunFailure) as info:
        neural.run(neural_runs["spec"], run_dir, "cpu", lambda: False)
    line = str(info.value)
    assert "\n" not in line and line.startswith(f"{resume_files(run_dir)}: damaged resume state")
    assert "no earlier resume state" in line
    assert runs.RunDir(run_dir).metrics() == before  # nothing dropped, nothing trained


def test_the_worker_reports_the_fallback_and_the_failure(neural_runs: dict, tmp_path: Path) -> None:
    """Through the real worker: one warning line in worker.log and status.json; a failed run's status
    names the file and carries no traceback."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, expect in (("stopped", "done"), ("early", "failed")):
        run_dir = tmp_path / name / "seed0"
        shutil.copytree(neural_runs[name], run_dir)
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


# --------------------------------------------------------------------------- the RFM loop


def rfm_spec() -> dict:
    text = """
[experiments.rfm-small]
task = "add"
p = 13
train_frac = 0.8
steps = 10
checkpoint_every = 3
model = { kind = "rfm", kernel = "gaussian" }
"""
    return parse_config(text, Path("x.toml")).runs[0]


@pytest.fixture(scope="module")
def rfm_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rfm")
    spec = rfm_spec()
    out = {}
    for name, stop in (("straight", None), ("stopped", 8), ("early", 0)):
        run, _ = prepare_run(spec, root / name)
        should_stop = stop_at(stop) if stop is not None else (lambda: False)
        rfm_training.run(spec, run.path, "cpu", should_stop)
        out[name] = run.path
    ckpts = out["stopped"] / runs.CKPT_DIR
    assert torch.load(ckpts / runs.RESUME, weights_only=True)["step"] == 8
    assert torch.load(ckpts / runs.RESUME_PREV, weights_only=True)["step"] == 7
    assert not (out["early"] / runs.CKPT_DIR / runs.RESUME_PREV).exists()
    return out


@pytest.mark.parametrize("kind", DAMAGES)
@pytest.mark.parametrize("seed", SEEDS)
def test_rfm_damaged_state_falls_back_and_ends_exact(
    rfm_runs: dict, tmp_path: Path, kind: str, seed: int
) -> None:
    run_dir = tmp_path / "rfm-small" / "seed0"
    shutil.copytree(rfm_runs["stopped"], run_dir)
    damage(resume_files(run_dir), kind, seed)
    assert rfm_training.run(rfm_spec(), run_dir, "cpu", lambda: False) == "done"
    run, straight = runs.RunDir(run_dir), runs.RunDir(rfm_runs["straight"])
    assert without_time(run.metrics()) == without_time(straight.metrics())
    assert runs.read_jsonl(run_dir / runs.PROGRESS) == runs.read_jsonl(straight.path / runs.PROGRESS)
    if kind != "flip-anywhere":
        assert "resumed from step 7 (resume.prev.pt)" in run.raw_status()["warning"]


def test_rfm_damaged_state_without_a_previous_one_fails(rfm_runs: dict, tmp_path: Path) -> None:
    run_dir = tmp_path / "rfm-small" / "seed0"
    shutil.copytree(rfm_runs["early"], run_dir)
    damage(resume_files(run_dir), "truncate", 3)
    with pytest.raises(RunFailure, match="damaged resume state.*no earlier resume state"):
        rfm_training.run(rfm_spec(), run_dir, "cpu", lambda: False)


def test_a_state_of_another_spec_is_refused_like_a_damaged_one(rfm_runs: dict, tmp_path: Path) -> None:
    """An intact state that does not fit the run (here: p = 11's matrices for p = 13) is never applied."""
    run_dir = tmp_path / "rfm-small" / "seed0"
    shutil.copytree(rfm_runs["early"], run_dir)
    state = torch.load(resume_files(run_dir), weights_only=True)
    torch.save({**state, "M": torch.eye(22, dtype=torch.float64)}, resume_files(run_dir))
    with pytest.raises(RunFailure, match="does not fit this run"):
        rfm_training.run(rfm_spec(), run_dir, "cpu", lambda: False)
    json.dumps(runs.RunDir(run_dir).raw_status())
