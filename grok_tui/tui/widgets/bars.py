"""Spectrum bars: the cos and sin norm of each frequency k of one weight matrix at one checkpoint.

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
        eighths = np.rint(np.nan_to_num(colv) / vmax * ch * 8).astype(np.int64)
        lines = [Strip(head).crop(0, w).extend_cell_length(w, base)]
        for r in range(ch):
            level_base = (ch - 1 - r) * 8
            segs = []
            for c in range(colv.size):
                e = int(min(max(eighths[c] - level_base, 0), 8))
                segs.append(Segment(_EIGHTHS[e], styles[c]))
            lines.append(Strip(Strip(segs).simplify()).extend_cell_length(w, base).crop(0, w))
        # k axis: key frequencies first (in the marker colour), then every 5th k where there is room
        cols_per_k = 2 if mode == "pair" else 1
        buf: list[tuple[str, Style]] = [(" ", axis)] * w
        taken = [False] * (w + 1)
        key = set(self.key_freqs)
        ordered = sorted(key & set(range(1, K + 1))) + [
            k for k in range(1, K + 1) if k not in key and (k % 5 == 0 or k == 1)
        ]
        for k in ordered:
            col = (k - 1) * cols_per_k if mode == "pair" else (k - 1) // per
            lab = str(k)
            lo, hi = max(col - 1, 0), min(col + len(lab) + 1, w)
            if col + len(lab) > w or any(taken[lo:hi]):
                continue
            for i, ch_ in enumerate(lab):
                buf[col + i] = (ch_, mark if k in key else axis)
            for i in range(col, col + len(lab)):
                taken[i] = True
        lines.append(Strip(Strip([Segment(t, s) for t, s in buf]).simplify(), w))
        return lines
