"""Messages between the poll thread and the screens."""

from __future__ import annotations

from textual.message import Message


class RunsChanged(Message):
    """The poll found new rows, a new state or a new run. Coalesced: only the newest is handled."""

    def __init__(self, served: int) -> None:
        super().__init__()
        self.served = served  # the poll request this result answers (tests wait on it)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsChanged)


class PollFailed(Message):
    """The poll raised: shown once as a notification, the poll keeps going."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PollFailed)
