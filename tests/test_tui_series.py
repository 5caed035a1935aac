"""Curve helpers: debiased EMA, min/max downsampling, ticks."""

from __future__ import annotations

import numpy as np

from grok_tui.series import ema, log_ticks, minmax_downsample, nice_ticks, si, window_mean


def test_ema_is_debiased_so_a_constant_stays_constant() -> None:
    y = np.full(50, 3.0)
    assert np.allclose(ema(y, 0.9), 3.0)  # TensorBoard's biased EMA would start near 0.3


def test_ema_first_point_is_the_data_and_weight_zero_is_identity() -> None:
    y = np.array([1.0, 5.0, 2.0, 8.0])
    assert ema(y, 0.6)[0] == 1.0
    assert np.array_equal(ema(y, 0.0), y)
    # the second value by hand: (0.6·0.4·1 + 0.4·5) / (1 − 0.6²)
    assert np.isclose(ema(y, 0.6)[1], (0.6 * 0.4 * 1 + 0.4 * 5) / (1 - 0.36))


def test_ema_skips_nan_without_poisoning_later_points() -> None:
    y = np.array([1.0, np.nan, 1.0, 1.0])
    out = ema(y, 0.5)
    assert np.isnan(out[1]) and np.allclose(out[[0, 2, 3]], 1.0)


def test_minmax_downsample_keeps_extremes_and_bounds_points() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(100_000, dtype=float)
    y = rng.standard_normal(x.size)
    y[77_777] = 50.0  # a spike must survive
    y[12_345] = -50.0
    xs, ys = minmax_downsample(x, y, 80)
    assert xs.size <= 160
    assert ys.max() == 50.0 and ys.min() == -50.0
    assert np.all(np.diff(xs) > 0)  # still in x order


def test_minmax_downsample_leaves_short_series_alone() -> None:
    x, y = np.arange(10.0), np.arange(10.0) ** 2
    xs, ys = minmax_downsample(x, y, 80)
    assert np.array_equal(xs, x) and np.array_equal(ys, y)


def test_window_mean() -> None:
    assert np.allclose(window_mean(np.array([2.0, 4.0, 6.0, 8.0]), 2), [2.0, 3.0, 5.0, 7.0])


def test_log_ticks_and_labels() -> None:
    assert [lab for _, lab in log_ticks(1, 100_000)] == ["1", "10", "100", "1k", "10k", "100k"]
    short = [lab for _, lab in log_ticks(50, 6000)]
    assert short == ["50", "100", "200", "500", "1k", "2k", "5k"]
    assert si(2500) == "2.5k" and si(1_000_000) == "1M"


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 1, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    t = nice_ticks(3.2, 97.1, 5)
    assert t == [25.0, 50.0, 75.0]
