"""Curve helpers shared by every plot: debiased EMA, min/max downsampling, axis ticks (numpy only).

Order matters (TensorBoard's issues #1518/#6829): smooth the full-resolution series first, then
downsample to the pixels at hand, so smoothing never depends on the pane's width.
"""

from __future__ import annotations

import math

import numpy as np


def ema(y: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (W&B/TensorBoard "smoothing" with the bias removed).

    ``weight`` in [0, 1): 0 returns ``y`` unchanged. NaNs are skipped (they stay NaN in the output and
    do not poison later points), so a metric that is only sometimes present still smooths.
    """
    y = np.asarray(y, dtype=np.float64)
    if weight <= 0 or y.size == 0:
        return y.copy()
    out = np.full_like(y, np.nan)
    acc, n = 0.0, 0
    w = float(weight)
    for i, v in enumerate(y.tolist()):
        if v != v or math.isinf(v):  # NaN or inf
            continue
        acc = acc * w + (1.0 - w) * v
        n += 1
        out[i] = acc / (1.0 - w**n)
    return out


def minmax_downsample(
    x: np.ndarray, y: np.ndarray, buckets: int, lo: float | None = None, hi: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * buckets`` points: per x-bucket the min and the max of y, in x order.

    Keeps a grokking jump (or a loss spike) visible however many points fall into one pixel column,
    and bounds the drawing cost by the pane's width rather than by the run's length.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size <= 2 * buckets or buckets <= 0:
        return x, y
    lo = float(x.min()) if lo is None else lo
    hi = float(x.max()) if hi is None else hi
    span = hi - lo if hi > lo else 1.0
    b = np.clip(((x - lo) / span * buckets).astype(np.int64), 0, buckets - 1)
    order = np.lexsort((y, b))  # grouped by bucket, ascending y inside each bucket
    bs = b[order]
    first = np.flatnonzero(np.r_[True, bs[1:] != bs[:-1]])
    last = np.r_[first[1:] - 1, bs.size - 1]
    i_min, i_max = order[first], order[last]
    idx = np.unique(np.concatenate([i_min, i_max]))  # sorted: original (x) order
    return x[idx], y[idx]


def window_mean(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (the plain alternative to the EMA)."""
    y = np.asarray(y, dtype=np.float64)
    if window <= 1 or y.size == 0:
        return y.copy()
    c = np.cumsum(np.r_[0.0, np.nan_to_num(y)])
    n = np.cumsum(np.r_[0, np.isfinite(y).astype(np.int64)])
    i = np.arange(1, y.size + 1)
    j = np.maximum(i - window, 0)
    cnt = n[i] - n[j]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (c[i] - c[j]) / np.maximum(cnt, 1), np.nan)


def si(v: float) -> str:
    """Short step label: 1, 10, 100, 1k, 10k, 2.5k, 1M."""
    a = abs(v)
    for div, suf in ((1e6, "M"), (1e3, "k")):
        if a >= div:
            s = f"{v / div:.1f}".rstrip("0").rstrip(".")
            return s + suf
    return f"{v:.0f}" if float(v).is_integer() else f"{v:g}"


def log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Ticks for a log10 axis, as (log10 position, label); decades, plus 2 and 5 on short spans."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= 0:
        return []
    lo = max(lo, 1e-12)
    a, b = math.log10(lo), math.log10(hi)
    mults = (1, 2, 5) if b - a < 3 else (1,)
    out = []
    for e in range(math.floor(a), math.ceil(b) + 1):
        for m in mults:
            v = m * 10.0**e
            lv = math.log10(v)
            if a - 1e-9 <= lv <= b + 1e-9:
                out.append((lv, si(v) if v >= 1 else f"{v:g}"))
    return out


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round (1-2-2.5-5) tick values inside [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = start
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 12))
        v += step
    return ticks


def fmt_tick(v: float) -> str:
    """Compact label for a linear tick (0.5, 1, 2.5e-3, 10k)."""
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000:
        return si(v)
    if a < 1e-2:
        return f"{v:.0e}".replace("e-0", "e-")
    return f"{v:.3g}"
