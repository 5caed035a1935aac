"""Shared pytest fixtures and helpers of the TUI tests (imported by tests/test_tui_*.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_fixtures import make_fixtures  # noqa: E402

from grok_tui import runs  # noqa: E402

RUNNING = "add/seed1"  # the fixture run that looks alive while its lock is held


@pytest.fixture(scope="session")
def fixture_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture tree, generated once per session (read-only by convention: copy to modify)."""
    root = tmp_path_factory.mktemp("fixture-src")
    make_fixtures(root)
    return root


@pytest.fixture
def fx(fixture_src: Path, tmp_path: Path) -> Path:
    """A private copy of the fixture tree (tests may append, stop, edit); returns its root."""
    root = tmp_path / "fx"
    shutil.copytree(fixture_src, root)
    return root


@pytest.fixture
def alive(fx: Path) -> Iterator[Path]:
    """Hold the running fixture run's lock in this process, so it reads as alive."""
    with runs.hold_lock(fx / "runs" / RUNNING):
        yield fx


FAKE_WORKER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from grok_tui import recorder, runs
    run_dir = Path(sys.argv[2])
    with runs.hold_lock(run_dir):
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        recorder.update_status(run_dir, state="running", pid=os.getpid(), pgid=os.getpgid(0))
        print("ready", flush=True)
        while not stop:
            time.sleep(0.02)
        recorder.update_status(run_dir, state="stopped", returncode=0, ended=time.time())
    """
)


@pytest.fixture
def fake_worker(fx: Path) -> Iterator[subprocess.Popen]:
    """A real process that owns the running fixture run like a worker: holds its lock, writes its
    pid/pgid, and on SIGTERM marks the run stopped and exits (what the real worker does). Its
    command line names grok_tui.worker, which `grok stop` checks before signalling a pid."""
    run_dir = fx / "runs" / RUNNING
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_WORKER, "grok_tui.worker", str(run_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


async def settled(pilot) -> None:
    """One fresh poll handled, then the screen updated."""
    await pilot.app.settle()
    await pilot.pause()


async def until(pilot, cond, timeout: float = 30.0) -> bool:
    """Pause until ``cond()`` holds (True) or ``timeout`` seconds pass (False): a key re-posted by the
    filter, the table's RowSelected and the screen push are several message hops, and on a busy machine
    one pause returns before the last of them is handled. Assert on the outcome, not on one pause."""
    import time

    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        await pilot.pause(0.02)
    return True


def drive(*keys: str, cursor: str | None = None):
    """run_before: wait for the poll, put the cursor on ``cursor``, press ``keys``, wait again."""

    async def run_before(pilot) -> None:
        await pilot.app.settle()
        await pilot.pause()
        if cursor is not None:
            screen = pilot.app.screen
            from grok_tui.tui.screens.experiments import RunTable

            screen.query_one(RunTable).move_cursor(row=screen.visible_run_ids().index(cursor), animate=False)
            await pilot.pause()
        for k in keys:
            await pilot.press(k)
            await pilot.pause()
        await pilot.app.settle()
        await pilot.pause()

    return run_before


def cell_text(table, row_key: str, col: str) -> str:
    return str(table.get_cell(row_key, col))


def static_text(widget) -> str:
    """The plain text a Static shows (Text, Table or str content)."""
    import io

    from rich.console import Console

    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


REPLAY = textwrap.dedent(
    """
    # Replays a finished run into a new run directory like a live worker: holds the lock, appends the
    # source's metrics and spectra rows every DELAY seconds, writes its checkpoints as their steps
    # pass, keeps status.json current, ends "done".
    import json, os, shutil, sys, time
    from pathlib import Path
    from grok_tui import recorder, runs
    src, dst, delay = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / runs.SPEC, dst / runs.SPEC)
    with runs.hold_lock(dst):
        rows, spectra = runs.read_jsonl(src / runs.METRICS), runs.read_jsonl(src / runs.FOURIER)
        total = json.loads((src / runs.SPEC).read_text())["steps"]
        recorder.update_status(dst, state="running", pid=os.getpid(), pgid=os.getpgid(0), step=0,
                           total_steps=total, device="cpu", started=time.time())
        print("ready", flush=True)
        (dst / runs.CKPT_DIR).mkdir(exist_ok=True)
        for row, sp in zip(rows, spectra):
            recorder.append_jsonl(dst / runs.METRICS, row)
            recorder.append_jsonl(dst / runs.FOURIER, sp)
            ckpt = src / runs.CKPT_DIR / runs.ckpt_name(row["step"])
            if ckpt.exists():
                shutil.copy(ckpt, dst / runs.CKPT_DIR / (ckpt.name + ".tmp"))
                os.replace(dst / runs.CKPT_DIR / (ckpt.name + ".tmp"), dst / runs.CKPT_DIR / ckpt.name)
            recorder.update_status(dst, step=row["step"])
            time.sleep(delay)
        recorder.update_status(dst, state="done", returncode=0, ended=time.time())
    """
)


def start_replay(src: Path, dst: Path, delay: float) -> subprocess.Popen:
    """A real process writing ``dst`` like a worker that groks (a copy of ``src``'s history)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", REPLAY, str(src), str(dst), str(delay)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def toasts(app) -> list[str]:
    """The text of every notification on screen (title and message), newest last."""
    return [t.render().plain for t in app.screen.query("Toast")]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Replace a JSONL file whole (write-new-then-rename, as a resume does); test data only."""
    import json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a run directory under another id (``runs/<experiment>/<name>``)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst)
    return dst


def add_schedule(run_dir: Path) -> list[dict]:
    """Give every evaluation the learning rate (warmup, then cosine decay) and the key-frequency count
    a real transformer run records; returns the rows."""
    import math

    rows = runs.read_jsonl(run_dir / runs.METRICS)
    last = max(r["step"] for r in rows) or 1
    for r in rows:
        t = r["step"]
        r["lr"] = 1e-3 * min(1.0, (t + 1) / 100) * (0.1 + 0.45 * (1 + math.cos(math.pi * t / last)))
        r["n_key_freqs"] = 0 if t < last / 2 else 4
    write_jsonl(run_dir / runs.METRICS, rows)
    return rows
