"""Shared fixtures (helpers live in helpers.py so test modules can import them)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import TINY_TOML, processes_under
from sweep_helpers import tiny_sweep  # noqa: F401  (here, not in each module: one training per session)

#: Modules whose every test trains for real, starts real processes or drives tmux, or feeds a generated
#: class of inputs through them: ``-m "not slow"`` skips them for a fast inner loop (a single slow test
#: elsewhere carries ``@pytest.mark.slow`` itself).
SLOW_MODULES = {
    "test_train.py",
    "test_launch.py",
    "test_tui_quickrun.py",
    "test_tui_tmux.py",
    "test_tui_imports.py",  # fresh interpreters driving every screen
    "test_config_malformed.py",  # hundreds of generated files through the real CLI
    "test_sweep_export.py",  # trains the tiny sweep
    "test_transfer.py",  # trains sources and the runs that load from them
    "test_packed.py",  # trains every kind of run packed and solo
    "test_slurm.py",  # a real Slurm: batch jobs that train
}


@pytest.fixture(autouse=True)
def _denormals_back() -> Iterator[None]:
    """A trainer run inside the test process flushes float32 denormals to zero for the whole process (as
    a worker does): give it back after each test, or a later test's subnormal arithmetic would change.
    Torch is never imported here for it (the TUI tests keep their process free of it)."""
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_flush_denormal(False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread: bit-identical runs need the same count, and two spin against each other on a
    busy 2-core box at these sizes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_toml(tmp_path: Path):
    def make(steps: int = 600) -> Path:
        path = tmp_path / "experiments.toml"
        path.write_text(TINY_TOML.format(steps=steps))
        return path

    return make


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(tmp_path_factory: pytest.TempPathFactory):
    """After the suite, no worker, scheduler or `grok` a test started may still run: a test that leaves
    one behind costs every later test its CPU (and CI a process that outlives it)."""
    import os
    import signal
    import time

    yield
    root = tmp_path_factory.getbasetemp()
    left = processes_under(root)
    deadline = time.monotonic() + 10  # a worker finishing its last evaluation may take a moment
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_under(root)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, "processes left running by the tests:\n" + "\n".join(c for _, c in left)
