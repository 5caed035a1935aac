"""A run directory holding a symbolic link is refused by every writer, and nothing outside the runs
directory changes: the worker, spawn_worker (worker.log), prepare_run (resume, --force, a new run) and
`grok run`. The links are generated over what a real run directory holds: each of its entries, each
entry of checkpoints/, the run directory itself and its experiment directory.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import RFM_TOML, grok

from grok_tui import runs
from grok_tui.config import parse_config
from grok_tui.exitcodes import USAGE
from grok_tui.launch.local import LaunchError, LinkRefused, prepare_run, spawn_worker
from grok_tui.training import rfm as rfm_training

TOML = RFM_TOML.format(p=11, steps=6, every=2)


def spec() -> dict:
    return parse_config(TOML, Path("experiments.toml")).runs[0]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped RFM run (rows, checkpoints, resume.pt and resume.prev.pt, worker.log, .lock)."""
    root = tmp_path_factory.mktemp("base")
    run, _ = prepare_run(spec(), root / "runs")
    polls = itertools.count()
    assert rfm_training.run(spec(), run.path, "cpu", lambda: next(polls) >= 3) == "stopped"
    (run.path / runs.LOG).write_text("grok: an earlier start\n")
    with runs.hold_lock(run.path):
        pass
    assert sorted(os.listdir(run.path)) == sorted(ENTRIES)
    assert sorted(os.listdir(run.path / runs.CKPT_DIR)) == sorted(CKPT_ENTRIES)
    return root


#: Every kind of link, over what the base run holds (the fixture checks the listing against it): each entry
#: of the run directory and of checkpoints/, the run directory itself, its experiment directory.
ENTRIES = [
    runs.SPEC,
    runs.STATUS,
    runs.METRICS,
    runs.FOURIER,
    runs.PROGRESS,
    runs.LOG,
    runs.LOCK,
    runs.CKPT_DIR,
]
CKPT_ENTRIES = [runs.ckpt_name(0), runs.ckpt_name(2), runs.RESUME, runs.RESUME_PREV]
KINDS = [*ENTRIES, *(f"{runs.CKPT_DIR}/{n}" for n in CKPT_ENTRIES), "<run>", "<experiment>"]


def link(root: Path, kind: str) -> Path:
    """Move ``kind`` out of the runs directory into ``root/outside`` and leave a link in its place."""
    run = root / "runs" / "rfm-small" / "seed0"
    target = {"<run>": run, "<experiment>": run.parent}.get(kind, run / kind)
    away = root / "outside" / kind.strip("<>").replace("/", "-")
    away.parent.mkdir(exist_ok=True)
    shutil.move(target, away)
    target.symlink_to(away, target_is_directory=away.is_dir())
    return target


def snapshot(tree: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for n in dirnames:
            out[os.path.relpath(os.path.join(dirpath, n), tree)] = ("dir",)
        for n in filenames:
            p = Path(dirpath, n)
            st = p.stat()
            out[str(p.relative_to(tree))] = (
                hashlib.sha256(p.read_bytes()).hexdigest(),
                st.st_size,
                st.st_mtime_ns,
            )
    return out


@pytest.fixture(params=KINDS)
def linked(base: Path, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, Path, dict]:
    """(root, the link, a snapshot of everything outside the runs directory), for each kind of link."""
    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)
    made = link(root, request.param)
    return root, made, snapshot(root / "outside")


def run_dir(root: Path) -> Path:
    return root / "runs" / "rfm-small" / "seed0"


@pytest.mark.slow
def test_the_worker_refuses_and_writes_nothing_through_the_link(linked) -> None:
    root, made, before = linked
    proc = subprocess.run(
        [sys.executable, "-m", "grok_tui.worker", str(run_dir(root))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == USAGE, proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert str(made) in line and "symbolic link" in line
    assert snapshot(root / "outside") == before
    st = runs.read_json(run_dir(root) / runs.STATUS) or {}
    assert st.get("state") not in ("running", "done")
    if not {made} & {
        run_dir(root),
        run_dir(root).parent,
        run_dir(root) / runs.STATUS,
        run_dir(root) / runs.LOCK,
    }:
        assert st["state"] == "failed" and str(made) in st["error"]


def test_spawn_worker_refuses_and_starts_nothing(linked) -> None:
    root, made, before = linked
    with pytest.raises(LinkRefused, match="symbolic link") as info:
        spawn_worker(run_dir(root))
    assert str(made) in str(info.value) and isinstance(info.value, OSError)
    assert snapshot(root / "outside") == before


@pytest.mark.parametrize("force", [False, True])
def test_prepare_run_refuses_resume_and_force(linked, force: bool) -> None:
    root, made, before = linked
    with pytest.raises(LaunchError, match="symbolic link") as info:
        prepare_run(spec(), root / "runs", force=force)
    assert str(made) in str(info.value)
    assert snapshot(root / "outside") == before
    assert (run_dir(root) / runs.SPEC).exists()  # --force removed nothing


def test_a_new_run_in_a_linked_experiment_directory_is_refused(base: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)
    made = link(root, "<experiment>")
    before = snapshot(root / "outside")
    with pytest.raises(LaunchError, match="symbolic link") as info:
        prepare_run({**spec(), "name": "seed1"}, root / "runs")
    assert str(made) in str(info.value)
    assert snapshot(root / "outside") == before


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["<run>", runs.CKPT_DIR, runs.LOG])
@pytest.mark.parametrize("force", [False, True])
def test_grok_run_on_a_linked_run_says_one_line(base: Path, tmp_path: Path, kind: str, force: bool) -> None:
    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)
    (root / "experiments.toml").write_text(TOML)
    made = link(root, kind)
    before = snapshot(root / "outside")
    result = grok("run", "experiments.toml", *(["--force"] if force else []), cwd=root, timeout=120)
    assert result.returncode == USAGE
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"grok: error: {made.relative_to(root)}: ") and "symbolic link" in line
    assert "Traceback" not in result.stdout + result.stderr
    assert snapshot(root / "outside") == before


@pytest.mark.parametrize("kind", ["<run>", "<experiment>", runs.CKPT_DIR, f"{runs.CKPT_DIR}/{runs.RESUME}"])
def test_grok_resume_of_a_linked_run_says_one_line(base: Path, tmp_path: Path, kind: str) -> None:
    """The scheduler is handed resolved paths, so `grok resume` must refuse before it queues anything."""
    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)
    made = link(root, kind)
    before = snapshot(root / "outside")
    result = grok("resume", "rfm-small/seed0", "--runs-dir", "runs", cwd=root, timeout=120)
    assert result.returncode == USAGE, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("grok: error: ") and "symbolic link" in line and made.name in line
    assert snapshot(root / "outside") == before
    assert not (root / "runs" / runs.STATE_DIR / "inbox").exists() or not list(
        (root / "runs" / runs.STATE_DIR / "inbox").iterdir()
    )


#: Links the scheduler meets in a queued run it adopts (a linked run or experiment directory, spec.json or
#: status.json keep the run from being listed as a queued run at all: the worker tests cover those).
ADOPTED_KINDS = [k for k in KINDS if k not in ("<run>", "<experiment>", runs.SPEC, runs.STATUS)]


@pytest.mark.parametrize("kind", ADOPTED_KINDS)
def test_the_scheduler_starts_no_adopted_run_that_holds_a_link(base: Path, tmp_path: Path, kind: str) -> None:
    """A queued run found on disk (a killed scheduler's queue) that holds a link: not started, nothing
    written through the link, one line in the scheduler log."""
    import json

    from grok_tui.launch.inbox import LOG, state_dir
    from grok_tui.launch.scheduler import Scheduler
    from grok_tui.launch.slots import Slots
    from grok_tui.recorder import refusal

    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)
    run = run_dir(root)
    status = runs.read_json(run / runs.STATUS)
    (run / runs.STATUS).write_text(json.dumps({**status, "state": "queued"}))
    link(root, kind)
    before = snapshot(root / "outside")
    sched = Scheduler.acquire(root / "runs", Slots())
    assert sched is not None
    try:
        sched.step()
        assert not sched.active
    finally:
        sched.release()
    assert snapshot(root / "outside") == before
    assert runs.read_json(run / runs.STATUS)["state"] == "queued"
    assert f"not started: {refusal(run)}" in (state_dir(root / "runs") / LOG).read_text()
