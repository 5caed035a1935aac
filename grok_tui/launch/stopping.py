"""Stopping a worker, the one way every grok process does it: SIGTERM, then SIGKILL once the grace is over.

SIGTERM asks the worker to write its checkpoint and exit as ``stopped``; a worker that has not gone when
the grace period ends is SIGKILLed (its last checkpoint stays). The scheduler keys stops by the workers it
started (their process handles), ``grok stop`` and a second Ctrl-C by run directory (the pid in
status.json): both keep their deadlines here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

#: Seconds between SIGTERM and SIGKILL unless the user says otherwise (``grok stop --grace``).
GRACE_S = 30.0


class Stopper:
    """Deadlines of the stops in progress, keyed by whatever names a worker to its caller."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._due: dict[Hashable, float] = {}
        self._killed: set[Hashable] = set()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._due

    def request(self, key: Hashable, term: Callable[[], object], grace: float = GRACE_S) -> bool:
        """SIGTERM ``key`` (``term`` sends it) unless a stop is already under way; True when it was new."""
        if key in self._due:
            return False
        term()
        self._due[key] = self.clock() + grace
        return True

    def kill_now(self, key: Hashable, kill: Callable[[], object]) -> None:
        """SIGKILL at once (a second Ctrl-C): the grace is over for ``key``."""
        self._due.setdefault(key, self.clock())
        if key not in self._killed:
            kill()
            self._killed.add(key)

    def overdue(self) -> list[Hashable]:
        """Stops whose grace is over and that were not killed yet."""
        now = self.clock()
        return [k for k, due in self._due.items() if now >= due and k not in self._killed]

    def escalate(self, kill: Callable[[Hashable], object]) -> list[Hashable]:
        """SIGKILL every overdue stop (``kill(key)`` sends it); returns the keys killed now."""
        done = self.overdue()
        for key in done:
            kill(key)
            self._killed.add(key)
        return done

    def killed_since(self, key: Hashable) -> float | None:
        """Seconds since ``key``'s deadline passed, once it was killed."""
        return self.clock() - self._due[key] if key in self._killed else None

    def forget(self, key: Hashable) -> None:
        self._due.pop(key, None)
        self._killed.discard(key)
