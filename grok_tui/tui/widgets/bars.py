"""Bars over the frequencies k: the cos and sin norm of each k of one weight matrix at one checkpoint
(SpectrumBars), and one value per k such as the Fourier ablations' loss with k removed (LossBars).

Vertical bars with eighth-block resolution; two columns per k (cos, sin) when the pane is wide
enough, else one column of the total norm (pooled by max when even that does not fit). Key
frequencies are labelled under their bar.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from .frame import FrameWidget
from .palette import COS, SIN, series

_EIGHTHS = " ▁▂▃▄▅▆▇█"


class SpectrumBars(FrameWidget):
    DEFAULT_CSS = """
    SpectrumBars { width: 1fr; height: 1fr; min-height: 4; }
    """

    def __init__(self, title: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(title, id=id, classes=classes)
        self.cos: np.ndarray | None = None
        self.sin: np.ndarray | None = None
        self.key_freqs: list[int] = []
        self.note = ""

    def show(
        self, cos: np.ndarray | None, sin: np.ndarray | None, key_freqs: list[int], note: str = ""
    ) -> None:
        self.cos, self.sin, self.key_freqs, self.note = cos, sin, key_freqs, note
        self.redraw()

    def _build(self, w: int, h: int) -> list[Strip]:
        base, axis, mark = self.part_styles()
        cos_s, sin_s = base + Style(color=series(COS)), base + Style(color=series(SIN))
        head = [Segment(self.title, base + Style(bold=True))]
        if self.cos is None or self.sin is None or h < 3:
            head.append(Segment(f"  {self.note or 'not available'}", axis))
            return [Strip(head).crop(0, w).extend_cell_length(w, base)] + [Strip.blank(w, base)] * (h - 1)
        K = len(self.cos)
        cos, sin = np.asarray(self.cos, float), np.asarray(self.sin, float)
        if w >= 2 * K:
            mode, per = "pair", 1
            head += [Segment("  ▇ cos", cos_s), Segment("  ▇ sin", sin_s)]
            vals = [cos, sin]
        else:
            per = max(1, -(-K // w))
            total = np.sqrt(cos**2 + sin**2)
            pad = np.full(-(-K // per) * per, 0.0)
            pad[:K] = total
            vals = [pad.reshape(-1, per).max(axis=1)]
            mode = "total"
            head.append(
                Segment("  ▇ √(cos²+sin²)" + (f" (max of {per} k per column)" if per > 1 else ""), cos_s)
            )
        if self.note:
            head.append(Segment(f"  {self.note}", axis))
        vmax = max(float(np.nanmax(v)) for v in vals) or 1.0
        ch = h - 2
        if mode == "pair":
            colv = np.empty(2 * K)
            colv[0::2], colv[1::2] = cos, sin
            styles = [cos_s, sin_s] * K
        else:
            colv = vals[0]
            styles = [cos_s] * colv.size
        lines = [Strip(head).crop(0, w).extend_cell_length(w, base)]
        lines += bar_rows(colv / vmax, styles, ch, w, base)
        cols_per_k = 2 if mode == "pair" else 1
        lines.append(k_axis(w, K, self.key_freqs, cols_per_k, per, axis, mark))
        return lines


def k_axis(
    w: int, K: int, key_freqs: list[int], cols_per_k: int, per: int, axis: Style, mark: Style
) -> Strip:
    """The k axis under bars of k = 1..K: key frequencies first (in the marker colour), then every
    5th k where there is room. ``cols_per_k`` columns per k, or one column per ``per`` k's."""
    buf: list[tuple[str, Style]] = [(" ", axis)] * w
    taken = [False] * (w + 1)
    key = set(key_freqs)
    ordered = sorted(key & set(range(1, K + 1))) + [
        k for k in range(1, K + 1) if k not in key and (k % 5 == 0 or k == 1)
    ]
    for k in ordered:
        col = (k - 1) * cols_per_k if cols_per_k > 1 else (k - 1) // per
        lab = str(k)
        lo, hi = max(col - 1, 0), min(col + len(lab) + 1, w)
        if col + len(lab) > w or any(taken[lo:hi]):
            continue
        for i, ch_ in enumerate(lab):
            buf[col + i] = (ch_, mark if k in key else axis)
        for i in range(col, col + len(lab)):
            taken[i] = True
    return Strip(Strip([Segment(t, s) for t, s in buf]).simplify(), w)


def bar_rows(colv: np.ndarray, styles: list[Style], ch: int, w: int, base: Style) -> list[Strip]:
    """``ch`` rows of vertical eighth-block bars, one column per value of ``colv`` (already scaled so
    that 1 is the full height)."""
    eighths = np.rint(np.nan_to_num(np.clip(colv, 0, 1)) * ch * 8).astype(np.int64)
    lines = []
    for r in range(ch):
        level_base = (ch - 1 - r) * 8
        segs = [
            Segment(_EIGHTHS[int(min(max(eighths[c] - level_base, 0), 8))], styles[c])
            for c in range(colv.size)
        ]
        lines.append(Strip(Strip(segs).simplify()).extend_cell_length(w, base).crop(0, w))
    return lines


class LossBars(FrameWidget):
    """One value per frequency k (the Fourier ablations: how much removing k alone raises the train
    loss), key frequencies drawn and labelled in the marker colour, one column per k (pooled by max
    when the pane is narrower than K). The scale runs to the largest value, but never below ``floor``:
    round-off is not drawn as a bar."""

    DEFAULT_CSS = """
    LossBars { width: 1fr; height: 1fr; min-height: 4; }
    """

    def __init__(
        self, title: str = "", *, floor: float = 0.0, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(title, id=id, classes=classes)
        self.floor = floor
        self.values: np.ndarray | None = None
        self.key_freqs: list[int] = []
        self.note = ""

    def show(self, values: list[float] | np.ndarray | None, key_freqs: list[int], note: str = "") -> None:
        self.values = None if values is None else np.asarray(values, dtype=float)
        self.key_freqs, self.note = list(key_freqs), note
        self.redraw()

    def _build(self, w: int, h: int) -> list[Strip]:
        base, axis, mark = self.part_styles()
        plain = base + Style(color=series(COS))
        head = [Segment(self.title, base + Style(bold=True))]
        if self.values is None or self.values.size == 0 or h < 3:
            head.append(Segment(f"  {self.note or 'not available'}", axis))
            return [Strip(head).crop(0, w).extend_cell_length(w, base)] + [Strip.blank(w, base)] * (h - 1)
        K = self.values.size
        per = max(1, -(-K // max(w, 1)))
        pad = np.zeros(-(-K // per) * per)
        pad[:K] = np.nan_to_num(self.values)
        colv = pad.reshape(-1, per).max(axis=1)
        keys = set(self.key_freqs)
        styles = [
            mark if any(k in keys for k in range(c * per + 1, c * per + per + 1)) else plain
            for c in range(colv.size)
        ]
        top = float(colv.max())
        vmax = max(top, self.floor)
        head.append(Segment(f"  max {top:.3g}" + (f" (max of {per} k per column)" if per > 1 else ""), axis))
        if self.note:
            head.append(Segment(f"  {self.note}", axis))
        lines = [Strip(head).crop(0, w).extend_cell_length(w, base)]
        # room to spare: each k a bar of (cols − 1) columns and a gap, so that labels fit under them
        cols = max(1, min(3, w // K)) if per == 1 else 1
        if cols > 1:
            colv = np.repeat(colv, cols)
            colv[cols - 1 :: cols] = 0.0
            styles = [s for s in styles for _ in range(cols)]
        lines += bar_rows(colv / (vmax or 1.0), styles, h - 2, w, base)
        lines.append(k_axis(w, K, self.key_freqs, cols, per, axis, mark))
        return lines
