"""Colours that survive SSH: every fixed colour is an exact xterm-256 colour, and the heatmap has a
hand-picked 256-colour ramp for terminals without truecolor (gradients posterize badly
when left to automatic downgrading)."""

from __future__ import annotations

from rich.color import Color

#: Series colours (exact xterm-256 entries): blue, orange, green, magenta, yellow, red, teal, grey.
SERIES = ["#00afff", "#ff8700", "#5fd700", "#d75fd7", "#ffd700", "#ff5f5f", "#00d7af", "#afafaf"]
TRAIN = "#00afff"
TEST = "#ff8700"
AXIS = "#808080"
MARK = "#ffd700"
COS = "#00afff"
SIN = "#ff8700"

_VIRIDIS = [
    (68, 1, 84),
    (72, 40, 120),
    (62, 73, 137),
    (49, 104, 142),
    (38, 130, 142),
    (31, 158, 137),
    (53, 183, 121),
    (110, 206, 88),
    (181, 222, 43),
    (253, 231, 37),
]
#: A viridis-like ramp in the xterm-256 cube, dark purple → yellow.
RAMP_256 = [53, 54, 55, 61, 25, 31, 30, 36, 35, 71, 77, 113, 149, 185, 220, 226]


def viridis(v: float) -> tuple[int, int, int]:
    """Viridis at ``v`` in [0, 1] (linear interpolation between 10 stops)."""
    v = min(max(v, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(v), len(_VIRIDIS) - 2)
    t = v - i
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def ramp(levels: int, mode: str) -> list[Color]:
    """``levels`` colours from low to high: truecolor viridis, or the fixed 256-colour ramp."""
    if mode == "256":
        n = len(RAMP_256)
        return [Color.from_ansi(RAMP_256[min(n - 1, i * n // levels)]) for i in range(levels)]
    return [Color.from_rgb(*viridis(i / max(levels - 1, 1))) for i in range(levels)]
