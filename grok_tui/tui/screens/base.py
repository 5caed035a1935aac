"""The base of every screen that shows what the runs directory says."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen
from textual.widgets import Footer

if TYPE_CHECKING:
    from grok_tui.tui.app import GrokApp
    from grok_tui.tui.store import Store


class LiveScreen(Screen):
    """A screen that follows the poll: the app calls ``refresh_data`` after each poll result while the
    screen is on top, and the screen calls it when it comes back on top (it missed the polls in
    between). ``refresh_data`` redraws only what changed since the last call."""

    app: GrokApp

    @property
    def store(self) -> Store:
        return self.app.store

    def refresh_data(self) -> None:
        raise NotImplementedError

    def on_screen_resume(self) -> None:
        self.refresh_data()


def footer() -> Footer:
    """The footer of every screen: compact, so that help (?) and quit (q) fit at 80 columns; the
    command palette (ctrl+p) is listed in the help instead."""
    return Footer(compact=True, show_command_palette=False)
