# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""Checkpoint inspection (numpy only): the spectra are the analysis package's, stored or computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tui_helpers import fixture_src  # noqa: F401

from grok_tui.analysis.fourier import cos_sin_norms
from grok_tui.recorder import load_checkpoint
from grok_tui.runs import RunDir
from grok_tui.tui.ckpt import inspect_checkpoint


def test_spectra_computed_from_weights_match_the_fourier_basis(fixture_src: Path) -> None:
    rd = RunDir(fixture_src / "runs" / "add" / "seed1")  # weights only, no analysis arrays
    path = rd.checkpoint_path(rd.checkpoint_steps()[-1])
    arrays, _ = load_checkpoint(path)
    view = inspect_checkpoint(path, 59)
    cos, sin, _ = cos_sin_norms(arrays["W_E"][:59], axis=0)
    assert np.allclose(view.embed.cos, cos) and np.allclose(view.embed.sin, sin)
    W_L = (arrays["blocks.0.W_out"] @ arrays["W_U"][:, :59]).T
    cos, sin, _ = cos_sin_norms(W_L, axis=0)
    assert np.allclose(view.logit.cos, cos) and np.allclose(view.logit.sin, sin)
    assert view.key_freqs == [4, 11, 17, 23]  # from meta
    # the key frequencies are where the embedding's norm is
    assert set(np.argsort(view.embed.total)[-4:] + 1) == {4, 11, 17, 23}


def test_stored_analysis_arrays_win(fixture_src: Path) -> None:
    rd = RunDir(fixture_src / "runs" / "add" / "seed0")
    path = rd.checkpoint_path(6000)
    arrays, _ = load_checkpoint(path)
    view = inspect_checkpoint(path, 59, row={"test_acc": 0.999})
    assert np.array_equal(view.embed.cos, arrays["analysis/embed_cos"].astype(float))
    assert view.key_freqs == arrays["analysis/key_freqs"].tolist()
    assert view.measures["test_acc"] == 0.999  # the metrics row wins over meta
    assert view.measures["restricted_loss"] > 0  # from meta when the row lacks it


def test_a_damaged_checkpoint_is_reported_not_raised(tmp_path: Path) -> None:
    bad = tmp_path / "step_0000100.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    view = inspect_checkpoint(bad, 59, row={"train_loss": 1.0})
    assert view.step == 100 and view.embed is None and "step_0000100.npz" in view.error
    assert view.measures == {"train_loss": 1.0}
