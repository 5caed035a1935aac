"""Shared fixtures (helpers live in helpers.py so test modules can import them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import TINY_TOML

#: Modules whose every test trains for real, starts real processes or drives tmux: ``-m "not slow"`` skips
#: them for a fast inner loop (a single slow test elsewhere carries ``@pytest.mark.slow`` itself).
SLOW_MODULES = {"test_train.py", "test_launch.py", "test_tui_quickrun.py", "test_tui_tmux.py"}


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
