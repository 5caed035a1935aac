"""Base of the drawn widgets (curves, heatmap, spectrum bars): a whole frame of Strips, built lazily.

The frame is built in ``render_line`` only when the data changed (``redraw``), the size did, or the
styles did (a theme switch), so a widget in a hidden tab costs nothing and a visible one is rebuilt
once per change, not once per line. Axis and marker colours are component classes: CSS (and so the
theme) decides them.
"""

from __future__ import annotations

from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget


class FrameWidget(Widget):
    COMPONENT_CLASSES = {"frame--axis", "frame--mark"}
    DEFAULT_CSS = """
    FrameWidget > .frame--axis { color: $foreground-muted; }
    FrameWidget > .frame--mark { color: $text-warning; text-style: bold; }
    """

    def __init__(self, title: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self._frame: list[Strip] | None = None
        self._frame_size: tuple[int, int] = (0, 0)
        self.builds = 0  # frames built (tests and the bench watch this)

    def redraw(self) -> None:
        """The data changed: drop the frame and ask for a repaint."""
        self._frame = None
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._frame = None  # new theme or CSS: the frame's colours are stale

    def _part(self, name: str) -> Style:
        """A component class as a Rich style over the widget's, its colour's alpha blended over the
        background (a muted colour is the foreground at some opacity)."""
        _, background = self.background_colors
        color = background + self.get_component_styles(name).color
        part = self.get_component_rich_style(name, partial=True)
        return self.rich_style + part + Style(color=color.rich_color)

    def part_styles(self) -> tuple[Style, Style, Style]:
        """The widget's own style, then its axis and marker styles."""
        return self.rich_style, self._part("frame--axis"), self._part("frame--mark")

    def render_line(self, y: int) -> Strip:
        w, h = self.size.width, self.size.height
        if self._frame is None or self._frame_size != (w, h):
            self._frame = self._build(w, h)
            self._frame_size = (w, h)
            self.builds += 1
        return self._frame[y] if y < len(self._frame) else Strip.blank(w, self.rich_style)

    def _build(self, w: int, h: int) -> list[Strip]:
        raise NotImplementedError
