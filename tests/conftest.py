"""Shared fixtures (helpers live in helpers.py so test modules can import them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TINY_TOML


@pytest.fixture
def tiny_toml(tmp_path: Path):
    def make(steps: int = 600) -> Path:
        path = tmp_path / "experiments.toml"
        path.write_text(TINY_TOML.format(steps=steps))
        return path

    return make
