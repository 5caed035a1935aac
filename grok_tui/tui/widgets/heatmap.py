"""The Fourier heatmap: frequency k (rows) × step (columns), two frequencies per terminal row.

Each cell is '▀' with the upper frequency as foreground and the lower as background colour, so
p = 113 (56 frequencies) needs 28 rows; when the pane is shorter, neighbouring frequencies are
max-pooled (a bright key frequency never disappears). Key frequencies appear as bright rows as the
run groks. O(visible cells) per frame, no plotting library involved.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from grok_tui.series import nice_ticks, si

from .frame import FrameWidget
from .palette import ramp

LEVELS = 64


class FourierHeatmap(FrameWidget):
    DEFAULT_CSS = """
    FourierHeatmap { width: 1fr; height: 1fr; min-height: 5; }
    """

    def __init__(self, title: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(title, id=id, classes=classes)
        self.steps: np.ndarray = np.zeros(0)
        self.matrix: np.ndarray = np.zeros((0, 0))
        self.key_freqs: list[int] = []
        self.cursor: int | None = None  # a step to mark (the inspected checkpoint)

    def show(
        self,
        steps: np.ndarray,
        matrix: np.ndarray,
        *,
        key_freqs: list[int] | None = None,
        cursor: int | None = None,
        title: str | None = None,
    ) -> None:
        """``matrix``: one row per step, one column per frequency k = 1..K."""
        self.steps = np.asarray(steps)
        self.matrix = (
            np.asarray(matrix, dtype=np.float64).reshape(len(self.steps), -1)
            if len(steps)
            else np.zeros((0, 0))
        )
        if key_freqs is not None:
            self.key_freqs = key_freqs
        self.cursor = cursor
        if title is not None:
            self.title = title
        self.redraw()

    def _palette(self) -> list[Style]:
        mode = getattr(self.app, "palette_mode", "truecolor")
        return [Style(color=c) for c in ramp(LEVELS, mode)]

    def _build(self, w: int, h: int) -> list[Strip]:
        base, axis, mark = self.part_styles()
        title = Strip([Segment(self.title, base + Style(bold=True))]).crop(0, w).extend_cell_length(w, base)
        n, K = self.matrix.shape if self.matrix.size else (0, 0)
        if n == 0 or K == 0 or h < 4 or w < 12:
            msg = "no spectrum yet" if n == 0 else ""
            return [title] + [
                Strip([Segment((msg if i == h // 2 else "").center(w)[:w], axis)]) for i in range(1, h)
            ]
        ch = h - 2  # title row + step axis row
        half = 2 * ch
        pool = max(1, -(-K // half))  # frequencies per half-row when they do not fit
        nbins = -(-K // pool)
        padded = np.full((n, nbins * pool), np.nan)
        padded[:, :K] = self.matrix
        pooled = np.nanmax(padded.reshape(n, nbins, pool), axis=2)  # (n, nbins)
        rep = max(1, half // nbins)  # half-rows per bin when there is room to spare
        nrows = nbins * rep
        lab_w = len(str(K)) + 1
        cw = w - lab_w
        if n < cw:  # fewer evaluations than columns: stretch
            cols = np.minimum((np.arange(cw) + 0.5) * n / cw, n - 1).astype(np.int64)
        else:  # more: the last evaluation of each bucket
            cols = np.minimum(((np.arange(cw) + 1) * n) // cw - 1, n - 1)
        img = np.repeat(pooled[cols].T, rep, axis=0)  # (nrows, cw)
        finite = img[np.isfinite(img)]
        vmax = float(finite.max()) if finite.size else 1.0
        vmin = float(min(finite.min(), 0.0)) if finite.size else 0.0
        span = vmax - vmin if vmax > vmin else 1.0
        lvl = np.clip(((img - vmin) / span * (LEVELS - 1)), 0, LEVELS - 1)
        lvl = np.where(np.isfinite(lvl), lvl, 0).astype(np.int64)
        pal = self._palette()
        key_bins = {(k - 1) // pool for k in self.key_freqs if 1 <= k <= K}
        lines = [title]
        shown: set[int] = set()
        for r in range(ch):
            top, bot = 2 * r, 2 * r + 1
            if top >= nrows:
                lines.append(Strip.blank(w, base))
                continue
            bins = {top // rep} | ({bot // rep} if bot < nrows else set())
            new_bins = sorted(bins - shown)
            shown |= bins
            is_key = bool(bins & key_bins)
            label = ""
            if new_bins:
                b = next((b for b in new_bins if b in key_bins), new_bins[0])
                if b in key_bins or r % 2 == 0 or rep > 1:
                    label = str(b * pool + 1)
            segs = [Segment(label.rjust(lab_w - 1) + ("◂" if is_key else " "), mark if is_key else axis)]
            for c in range(cw):
                fg = pal[lvl[top, c]].color
                bg = pal[lvl[bot, c]].color if bot < nrows else None
                segs.append(Segment("▀", base + Style(color=fg, bgcolor=bg)))
            lines.append(Strip(Strip(segs).simplify(), w))
        # step axis, with the cursor marked
        buf = [" "] * w
        smin, smax = float(self.steps[0]), float(self.steps[-1])
        last = -1
        for v in nice_ticks(smin, smax, max(2, min(6, cw // 12))):
            col = lab_w + (int((v - smin) / (smax - smin) * (cw - 1)) if smax > smin else 0)
            lab = si(v)
            start = min(max(col - len(lab) // 2, lab_w), w - len(lab))
            if start > last + 1:
                buf[start : start + len(lab)] = list(lab)
                last = start + len(lab) - 1
        segs = [Segment("".join(buf), axis)]
        if self.cursor is not None and smax >= self.cursor >= smin:
            col = lab_w + (int((self.cursor - smin) / (smax - smin) * (cw - 1)) if smax > smin else 0)
            line = "".join(buf)
            segs = [Segment(line[:col], axis), Segment("▲", mark), Segment(line[col + 1 :], axis)]
        lines.append(Strip(segs, w))
        return lines
