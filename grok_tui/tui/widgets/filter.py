"""The filter box: an Input that acts on keys in the order they were typed, however they arrive.

Two things in Textual reorder keys that arrive in one read (tmux writes ``a\\x7fb`` at once; a slow
SSH link delivers typing in bursts):

- the focused Input inserts printable characters at once, but leaves its bound keys (backspace,
  delete, arrows, home, end, enter) to bubble up to the app, where the binding finally runs (Textual
  issue #6605): the characters after a backspace are inserted first, and the backspace then deletes
  the wrong one ("mi" + "a⌫x" read "mia");
- the app routes every key of a read to the widget focused when it reads them, before the Input has
  handled any: the keys typed after enter or escape still reach the Input, not the table.

``FilterInput`` runs its own bindings as it receives each key, and a key it receives after it has
handed the focus back (enter, escape) is posted to the app again, which routes it to the widget that
now has the focus. Every key acts in arrival order.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class FilterInput(Input):
    BINDINGS = [Binding("escape", "cancel", "Clear the filter", show=False)]

    @dataclass
    class Cancelled(Message):
        """Escape in the box: the filter was dropped."""

        filter_input: FilterInput

        @property
        def control(self) -> FilterInput:
            return self.filter_input

    def __init__(self, *, hand_back: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hand_back = hand_back  # selector of the widget that gets the focus on enter and escape

    async def _on_key(self, event: events.Key) -> None:
        if self.screen.focused is not self:  # routed here before enter/escape moved the focus away
            event.stop()
            event.prevent_default()
            self.app.post_message(events.Key(event.key, event.character))
            return
        if not event.is_printable:
            for binding in self._bindings.key_to_bindings.get(event.key, ()):
                if not binding.priority and await self.app.run_action(binding.action, self):
                    event.stop()
                    event.prevent_default()
                    return
        await super()._on_key(event)

    def _give_focus_back(self) -> None:
        self.screen.set_focus(self.screen.query_one(self.hand_back))

    async def action_submit(self) -> None:
        await super().action_submit()
        self._give_focus_back()

    def action_cancel(self) -> None:
        self.value = ""
        self.post_message(self.Cancelled(self))
        self._give_focus_back()
