"""Messages from the poll thread to the app."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class RunsChanged(Message):
    """The poll found new rows, a new state or a new run. Coalesced: only the newest is handled."""

    served: int  # the poll request this result answers (tests wait on it)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsChanged)


@dataclass
class PollFailed(Message):
    """The poll raised: shown once as a notification, the poll keeps going."""

    error: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PollFailed)
