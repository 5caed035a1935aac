"""Colours that survive SSH, and the theme's names for the formatter's tones.

Two kinds of colour live here as data, on purpose: the curve series and the heatmap ramp. Curves are
told apart by hue, so their colours are fixed xterm-256 palette entries (exact on a 256-colour
terminal, the same on truecolor, whatever the theme); the heatmap is a perceptual ramp (viridis, and a
hand-picked 256-colour ramp for terminals without truecolor: gradients posterize badly when left to
automatic downgrading). Everything else (axes, markers, states, errors) comes from the theme, via the
widgets' component classes in CSS, or ``tone_style`` / ``tone_variable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.color import Color
from rich.style import Style

if TYPE_CHECKING:
    from textual.app import App

#: Curve series as xterm-256 entries: blue, orange, green, magenta, yellow, red, teal, grey.
SERIES = [39, 208, 76, 170, 220, 203, 43, 145]
TRAIN = 0  # series index of train curves (blue)
TEST = 1  # series index of test curves (orange)
COS, SIN = TRAIN, TEST  # the spectrum bars reuse the pair

#: The theme variable that colours each tone of ``grok_tui.format`` (text on the app's background).
TONE_VARIABLES = {
    "primary": "text-primary",
    "success": "text-success",
    "error": "text-error",
    "warning": "text-warning",
    "accent": "text-accent",
    "muted": "foreground-muted",
}

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


def series(i: int) -> Color:
    """The colour of curve series ``i`` (wrapping around)."""
    return Color.from_ansi(SERIES[i % len(SERIES)])


def series_style(i: int) -> str:
    """Series ``i`` as a Content style (text naming a curve in its colour)."""
    return series(i).get_truecolor().hex


def tone_variable(tone: str) -> str:
    """A tone of ``grok_tui.format`` as a theme variable reference, for Content styles (``$text-error``)."""
    return "$" + TONE_VARIABLES.get(tone, "foreground")


def tone_style(app: App, tone: str) -> Style:
    """A tone as a Rich style in the app's current theme (for Rich Text, e.g. DataTable cells), its
    alpha blended over the theme's background."""
    from textual.color import Color as ThemeColor
    from textual.color import ColorParseError

    variables = app.theme_variables
    try:
        fg = ThemeColor.parse(variables[TONE_VARIABLES.get(tone, "foreground")])
        bg = ThemeColor.parse(variables["background"])
    except (KeyError, ColorParseError):  # a theme without the variable: the terminal's own colour
        return Style()
    return Style(color=(bg + fg).rich_color)


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
