"""Terminal plots for the headless commands (plotext 5): accuracy curves on a log-x axis.

plotext 5's own ``xscale("log")`` transforms data in place and breaks on a rebuild, so the
x values are log10'd here and the ticks labelled by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def log_ticks(max_step: float) -> tuple[list[float], list[str]]:
    """Decade ticks (positions in log10 space, labels 1, 10, 100, 1k, …) up to ``max_step``."""
    names = {0: "1", 1: "10", 2: "100", 3: "1k", 4: "10k", 5: "100k", 6: "1M", 7: "10M"}
    top = max(1, math.ceil(math.log10(max(max_step, 1))))
    return [float(i) for i in range(top + 1)], [names.get(i, f"1e{i}") for i in range(top + 1)]


def curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    width: int = 100,
    height: int = 20,
    log_x: bool = True,
    log_y: bool = False,
    ylim: tuple[float, float] | None = None,
) -> str:
    """Render named (x, y) series to a string (ANSI colours only for a terminal); x = step.

    On a log-x axis step 0 (the initialisation) has no place and is left out; a log-y axis is labelled
    with powers of ten.
    """
    import sys

    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("clear")
    top = 1.0
    lows: list[float] = []
    highs: list[float] = []
    for label, (xs, ys) in series.items():
        pts = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None and not math.isnan(y)]
        if log_x:
            pts = [(x, y) for x, y in pts if x > 0]
        if log_y:
            pts = [(x, math.log10(y)) for x, y in pts if y > 0]
        if not pts:
            continue
        px = [math.log10(x) if log_x else x for x, _ in pts]
        top = max(top, max(x for x, _ in pts))
        lows.append(min(y for _, y in pts))
        highs.append(max(y for _, y in pts))
        plt.plot(px, [y for _, y in pts], label=label, marker="braille")
    if log_x:
        plt.xticks(*log_ticks(top))
        plt.xlabel("step (log)")
    else:
        plt.xlabel("step")
    if ylim:
        plt.ylim(*ylim)
    elif log_y and lows:
        decades = range(math.floor(min(lows)), math.ceil(max(highs)) + 1)
        step = max(1, len(decades) // 6)
        ticks = [d for d in decades][::step]
        plt.yticks([float(d) for d in ticks], [f"1e{d}" for d in ticks])
    plt.title(title)
    out = plt.build()
    return out if sys.stdout.isatty() else plt.uncolorize(out)
