"""A braille line plot drawn straight into Strips: log axes, several curves, vertical markers.

Why not plotext: its log scale breaks on the second build, it keeps a global figure, and it costs
~12 µs a point. Here each curve is smoothed at full resolution by the caller, min/max-downsampled to
the pane's dot columns, and rasterised with numpy; the frame is built lazily in ``render_line``, so
a plot in a hidden tab costs nothing and a visible one is rebuilt only when its data or size changes.
A legend that does not fit the width wraps onto more lines (the plot gives up the rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from grok_tui.series import ema, fmt_tick, log_ticks, minmax_downsample, nice_ticks, si

from .frame import FrameWidget
from .palette import series

if TYPE_CHECKING:
    from grok_tui.tui.store import Columns

# Braille dot bits by (row 0..3, column 0..1) inside a cell.
_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint8)


@dataclass
class Curve:
    label: str
    x: np.ndarray
    y: np.ndarray
    series: int  # colour: an index into the palette's series
    #: A band under the curve (seeds' min and max at each x), shaded in the curve's colour.
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None


def band(label: str, runs: list[tuple[np.ndarray, np.ndarray]], series: int) -> Curve | None:
    """The mean of several runs' curves with their min–max as a band, over the steps they all have."""
    runs = [(x, y) for x, y in runs if x is not None and y is not None and x.size]
    if not runs:
        return None
    common = runs[0][0]
    for x, _ in runs[1:]:
        common = np.intersect1d(common, x)
    if not common.size:
        return None
    ys = np.stack([y[np.searchsorted(x, common)] for x, y in runs])
    with np.errstate(all="ignore"):
        return Curve(
            label, common, np.nanmean(ys, axis=0), series, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)
        )


def curve(cols: Columns, key: str, label: str, series: int, smooth: float = 0.0) -> Curve | None:
    """Metric ``key`` of ``cols`` over steps (EMA-smoothed at full resolution when ``smooth`` > 0),
    or None when it has no finite value."""
    x, y = cols.get("step"), cols.get(key)
    if x is None or y is None or not np.isfinite(y).any():
        return None
    return Curve(label, x, ema(y, smooth) if smooth else y, series)


def legend_lines(items: list[tuple[str, Style]], w: int, max_lines: int, base: Style) -> list[Strip]:
    """Pack legend items (text, style) into at most ``max_lines`` lines of width ``w``, two spaces
    apart; an item that does not fit starts a new line, the last line is cropped."""
    lines: list[list[Segment]] = [[]]
    used = 0
    for text, style in items:
        n = len(text)
        if used and used + 2 + n > w and len(lines) < max_lines:
            lines.append([])
            used = 0
        if used:
            lines[-1].append(Segment("  ", base))
            used += 2
        lines[-1].append(Segment(text, style))
        used += n
    return [Strip(segs).crop(0, w).extend_cell_length(w, base) for segs in lines]


def _rasterise(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dots on the polyline through (px, py) (integer dot coordinates), every segment filled."""
    if px.size == 1:
        return px, py
    dx, dy = np.diff(px), np.diff(py)
    n = np.maximum(np.abs(dx), np.abs(dy))
    counts = n + 1
    seg = np.repeat(np.arange(n.size), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    frac = k / np.maximum(n[seg], 1)
    return np.rint(px[seg] + dx[seg] * frac).astype(np.int64), np.rint(py[seg] + dy[seg] * frac).astype(
        np.int64
    )


class CurvePlot(FrameWidget):
    """Curves over a shared x axis (steps). ``plot()`` swaps the data; drawing happens on render."""

    DEFAULT_CSS = """
    CurvePlot { width: 1fr; height: 1fr; min-height: 4; }
    """

    def __init__(
        self,
        title: str = "",
        *,
        logx: bool = False,
        logy: bool = False,
        ylim: tuple[float, float] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(title, id=id, classes=classes)
        self.logx, self.logy, self.ylim = logx, logy, ylim
        self.curves: list[Curve] = []
        self.vlines: list[tuple[float, str]] = []
        self.note = ""

    def plot(
        self,
        curves: list[Curve],
        *,
        title: str | None = None,
        logx: bool | None = None,
        logy: bool | None = None,
        vlines: list[tuple[float, str]] | None = None,
        note: str | None = None,
    ) -> None:
        self.curves = curves
        if title is not None:
            self.title = title
        if logx is not None:
            self.logx = logx
        if logy is not None:
            self.logy = logy
        if vlines is not None:
            self.vlines = vlines
        if note is not None:
            self.note = note
        self.redraw()

    # ------------------------------------------------------------------ drawing

    def _transform(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        if self.logx:
            ok &= x > 0
        if self.logy:
            ok &= y > 0
        x, y = x[ok], y[ok]
        if self.logx:
            x = np.log10(x)
        if self.logy:
            y = np.log10(y)
        return x, y

    def _legend(self, w: int, h: int) -> list[Strip]:
        """Title, one entry per curve, the note: wrapped, leaving at least two plot rows and the axis."""
        base, axis, _ = self.part_styles()
        items: list[tuple[str, Style]] = [(self.title, base + Style(bold=True))] if self.title else []
        items += [(f"━ {c.label}", base + Style(color=series(c.series))) for c in self.curves if c.label]
        if self.note:
            items.append((self.note, axis))
        return legend_lines(items, w, max(1, h - 3), base)

    def _message(self, w: int, h: int, text: str) -> list[Strip]:
        _, axis, _ = self.part_styles()
        lines = self._legend(w, h)[:h]
        for i in range(len(lines), h):
            s = text if i == max(h // 2, len(lines)) else ""
            lines.append(Strip([Segment(s.center(w)[:w], axis)]))
        return lines

    def _build(self, w: int, h: int) -> list[Strip]:
        base, axis, mark_style = self.part_styles()
        if w <= 0 or h <= 0:
            return []
        if h < 4 or w < 16:
            return self._message(w, h, "")
        data = [(c, *self._transform(c.x, c.y)) for c in self.curves]
        data = [(c, x, y) for c, x, y in data if x.size]
        if not data:
            return self._message(w, h, "no data yet")
        legend = self._legend(w, h)
        xs = np.concatenate([x for _, x, _ in data])
        ys = np.concatenate([y for _, _, y in data])
        xlo, xhi = float(xs.min()), float(xs.max())
        if xhi <= xlo:
            xlo, xhi = xlo - 0.5, xhi + 0.5
        if self.ylim is not None:
            ylo, yhi = self.ylim
            if self.logy:
                ylo, yhi = math.log10(max(ylo, 1e-300)), math.log10(max(yhi, 1e-300))
        else:
            ylo, yhi = float(ys.min()), float(ys.max())
            pad = (yhi - ylo) * 0.04
            ylo, yhi = ylo - pad, yhi + pad
        if yhi <= ylo:
            ylo, yhi = ylo - 0.5, yhi + 0.5
        ch = h - len(legend) - 1
        # y ticks decide the margin width
        if self.logy:
            yt = log_ticks(10**ylo, 10**yhi)
            ylab = [(v, lab if 10**v >= 1 else f"{10**v:.0e}".replace("e-0", "e-")) for v, lab in yt]
        else:
            ylab = [(v, fmt_tick(v)) for v in nice_ticks(ylo, yhi, max(2, min(6, ch // 2 + 1)))]
        rows_used: dict[int, str] = {}
        for v, lab in ylab:
            r = int(round((yhi - v) / (yhi - ylo) * (ch * 4 - 1))) // 4
            if 0 <= r < ch and r not in rows_used and all(abs(r - o) > 1 for o in rows_used):
                rows_used[r] = lab
        lw = max((len(s) for s in rows_used.values()), default=1)
        margin = lw + 1
        cw = w - margin
        W, H = 2 * cw, 4 * ch
        bits = np.zeros((ch, cw), dtype=np.uint8)
        owner = np.full((ch, cw), -1, dtype=np.int64)
        styles = [base + Style(color=series(c.series)) for c, _, _ in data]
        # vertical markers first: curves draw over them
        for xv, _label in self.vlines:
            xv = math.log10(xv) if self.logx and xv > 0 else xv
            if self.logx and xv <= 0:
                continue
            px = int(round((xv - xlo) / (xhi - xlo) * (W - 1)))
            if 0 <= px < W:
                ys_ = np.arange(0, H, 2)
                np.bitwise_or.at(bits, (ys_ // 4, np.full(ys_.size, px // 2)), _BITS[ys_ % 4, px % 2])
                owner[:, px // 2] = len(styles)
        styles.append(mark_style)
        # bands next, a sparse shade (every other dot) in the curve's colour, dimmed; curves draw over
        for c, _x, _y in data:
            if c.lo is None or c.hi is None:
                continue
            x, lo = self._transform(c.x, c.lo)
            _, hi = self._transform(c.x, c.hi)
            if not x.size or x.size != lo.size or x.size != hi.size:
                continue
            px = np.clip(np.rint((x - xlo) / (xhi - xlo) * (W - 1)), 0, W - 1).astype(np.int64)
            top = np.clip(np.rint((yhi - hi) / (yhi - ylo) * (H - 1)), 0, H - 1).astype(np.int64)
            bot = np.clip(np.rint((yhi - lo) / (yhi - ylo) * (H - 1)), 0, H - 1).astype(np.int64)
            styles.append(base + Style(color=series(c.series), dim=True))
            for X in range(0, W, 2):
                j = min(np.searchsorted(px, X), px.size - 1)
                for Y in range(int(top[j]) + (int(top[j]) % 2), int(bot[j]) + 1, 2):
                    bits[Y // 4, X // 2] |= _BITS[Y % 4, X % 2]
                    owner[Y // 4, X // 2] = len(styles) - 1
        for i, (_c, x, y) in enumerate(data):
            x, y = minmax_downsample(x, y, W, xlo, xhi)
            px = np.clip(np.rint((x - xlo) / (xhi - xlo) * (W - 1)), 0, W - 1).astype(np.int64)
            py = np.clip(np.rint((yhi - y) / (yhi - ylo) * (H - 1)), 0, H - 1).astype(np.int64)
            X, Y = _rasterise(px, py)
            grid = np.zeros((ch, cw), dtype=np.uint8)
            np.bitwise_or.at(grid, (Y // 4, X // 2), _BITS[Y % 4, X % 2])
            hit = grid > 0
            bits |= grid
            owner[hit] = i
        lines = legend
        chars = np.where(bits > 0, bits.astype(np.int64) + 0x2800, 0x20)
        for r in range(ch):
            lab = rows_used.get(r)
            segs = [Segment((lab.rjust(lw) + "┤") if lab is not None else " " * lw + "│", axis)]
            row_chars, row_owner = chars[r], owner[r]
            start = 0
            for j in range(1, cw + 1):
                if j == cw or row_owner[j] != row_owner[start]:
                    text = "".join(map(chr, row_chars[start:j].tolist()))
                    o = row_owner[start]
                    segs.append(Segment(text, styles[o] if o >= 0 else base))
                    start = j
            lines.append(Strip(segs, w))
        lines.append(self._xaxis(w, margin, cw, xlo, xhi, axis))
        return lines

    def _xaxis(self, w: int, margin: int, cw: int, xlo: float, xhi: float, style: Style) -> Strip:
        if self.logx:
            ticks = log_ticks(10**xlo, 10**xhi)
        else:
            ticks = [(v, si(v)) for v in nice_ticks(xlo, xhi, max(2, min(8, cw // 10)))]
        buf = [" "] * w
        last_end = -1
        for v, lab in ticks:
            col = margin + int(round((v - xlo) / (xhi - xlo) * (2 * cw - 1))) // 2
            start = min(max(col - len(lab) // 2, margin), w - len(lab))
            if start <= last_end + 1 or start < 0:
                continue
            buf[start : start + len(lab)] = list(lab)
            last_end = start + len(lab) - 1
        return Strip([Segment("".join(buf), style)], w)
