"""How numbers look in the table and headers: exactly as `grok ls` prints them (plain strings, no
Textual, so the CLI could import this too)."""

from __future__ import annotations

import math

DASH = "-"

# The colours of `grok ls` (done green, running cyan, failed red, stopped yellow, queued dim),
# as exact xterm-256 entries.
STATE_COLORS = {
    "running": "#00d7d7",
    "queued": "#a8a8a8",
    "done": "#5fd700",
    "failed": "#ff5f5f",
    "stopped": "#d7af00",
    "new": "#808080",
}


def acc(v: float | None) -> str:
    """Accuracy to three decimals (0.990 is the memorised/grokked threshold)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return DASH
    return f"{v:.3f}"


def step(v: int | None) -> str:
    return DASH if v is None else str(v)


def progress(s: int, total: int) -> str:
    return f"{s}/{total}"


def frac(v: float | None) -> str:
    return DASH if v is None else f"{v:g}"


def num(v: float | None) -> str:
    """A measure: 4 significant digits, exponent for tiny or huge values."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return DASH
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        return f"{v:.3e}"
    return f"{v:.4g}"
