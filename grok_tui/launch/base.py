"""The launcher interface: the scheduler decides *when* and *where*, a launcher decides *how*.

A launcher starts ``python -m grok_tui.worker RUN_DIR`` somewhere (this machine now; Slurm later), or one
packed worker for several run directories, and returns a handle the scheduler polls and signals.
Everything else (liveness, progress, results) is read from the run directory, so a run outlives its
launcher, its scheduler and any terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..runs import RunDir


@dataclass(frozen=True)
class Slot:
    """Where a worker runs: one GPU (its CUDA_VISIBLE_DEVICES id) or the CPU pool (``gpu=None``)."""

    gpu: str | None = None

    @property
    def key(self) -> str:
        return f"gpu:{self.gpu}" if self.gpu is not None else "cpu"

    def describe(self) -> str:
        return f"GPU {self.gpu}" if self.gpu is not None else "CPU"


class Worker(Protocol):
    """A started worker as its launcher sees it."""

    #: Process id (local) or job id: for messages only; liveness comes from the run's lock.
    id: str
    #: The pack id of a worker that trains several runs (their status.json names it), else None.
    pack: str | None

    def poll(self) -> int | None:
        """Exit code once finished (negative: killed by that signal), else None. Reaps it."""
        ...

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker and everything it started; no error if it is gone."""
        ...


class Launcher(Protocol):
    def start(self, run: RunDir, slot: Slot, device: str | None, threads: int) -> Worker:
        """Start a worker for ``run`` on ``slot``; ``device`` overrides the spec's device when given."""
        ...

    def start_pack(self, members: list[RunDir], slot: Slot, device: str | None, threads: int) -> Worker:
        """Start one packed worker that trains every run of ``members`` (same packing.pack_key) on
        ``slot``: one process, one slot; each member still writes its own run directory."""
        ...
