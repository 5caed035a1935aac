"""How many workers may run where: GPU ids × runs per GPU, plus a CPU pool."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Slots:
    """``per_gpu`` workers on each GPU id, ``cpu`` in the CPU pool.

    Runs on device ``cpu`` (or every run when there is no GPU) use the CPU pool; the others use GPUs."""

    gpus: tuple[str, ...] = ()
    per_gpu: int = 1
    cpu: int = 1

    @property
    def threads(self) -> int:
        """CPU threads per worker: the cores shared by every slot (constant, so resumes match)."""
        return max(1, (os.cpu_count() or 1) // (len(self.gpus) * self.per_gpu + self.cpu))

    def args(self) -> list[str]:
        """The daemon's command-line options for these slots."""
        return [
            "--gpus",
            ",".join(self.gpus) or "none",
            "--per-gpu",
            str(self.per_gpu),
            "--parallel",
            str(self.cpu),
        ]

    def describe(self) -> str:
        gpu = f"GPU {','.join(self.gpus)} × {self.per_gpu}" if self.gpus else "no GPU"
        return f"{gpu}, {self.cpu} CPU slot{'s' if self.cpu != 1 else ''}"

    def as_dict(self) -> dict[str, Any]:
        return {"gpus": list(self.gpus), "per_gpu": self.per_gpu, "cpu": self.cpu}
