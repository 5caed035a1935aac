"""How many workers may run where: GPU ids × runs per GPU, plus a CPU pool; and how many runs per worker."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

#: ``pack`` value that sizes each pack from the slot's free memory (packing.auto_size).
AUTO = "auto"


def pack_value(text: str | int) -> int | str:
    """``--pack`` / ``[defaults] pack`` as the scheduler takes it: a whole number from 1 to MAX_PACK, or
    "auto". ValueError with the line to show for anything else (0, -1, 1.5, "big", a huge number)."""
    from ..config.errors import shown
    from ..config.limits import MAX_PACK

    if text == AUTO:
        return AUTO
    n = 0
    if isinstance(text, int) and not isinstance(text, bool):
        n = text
    elif isinstance(text, str) and text.isascii() and text.isdigit():
        digits = text.lstrip("0") or "0"
        n = int(digits) if len(digits) <= len(str(MAX_PACK)) else MAX_PACK + 1  # int() refuses 4,300 digits
    if not 1 <= n <= MAX_PACK:
        given = shown(str(text), 40)
        raise ValueError(f"--pack '{given}' is not a whole number from 1 to {MAX_PACK}, or auto")
    return n


@dataclass(frozen=True)
class Slots:
    """``per_gpu`` workers on each GPU id, ``cpu`` in the CPU pool; each worker trains up to ``pack``
    compatible runs at once (one packed worker, one slot), or as many as fit when ``pack`` is "auto".

    Runs on device ``cpu`` (or every run when there is no GPU) use the CPU pool; the others use GPUs."""

    gpus: tuple[str, ...] = ()
    per_gpu: int = 1
    cpu: int = 1
    pack: int | str = 1

    @property
    def threads(self) -> int:
        """CPU threads per worker: the cores shared by every slot (constant, so resumes match)."""
        return max(1, (os.cpu_count() or 1) // (len(self.gpus) * self.per_gpu + self.cpu))

    @property
    def packing(self) -> bool:
        """Whether the scheduler groups runs into packs at all (pack 1: every run its own worker)."""
        return self.pack != 1

    def args(self) -> list[str]:
        """The daemon's command-line options for these slots."""
        return [
            "--gpus",
            ",".join(self.gpus) or "none",
            "--per-gpu",
            str(self.per_gpu),
            "--parallel",
            str(self.cpu),
            "--pack",
            str(self.pack),
        ]

    def describe(self) -> str:
        gpu = f"GPU {','.join(self.gpus)} × {self.per_gpu}" if self.gpus else "no GPU"
        text = f"{gpu}, {self.cpu} CPU slot{'s' if self.cpu != 1 else ''}"
        if self.pack == AUTO:
            return f"{text}, packs sized to the free memory"
        return f"{text}, packs of up to {self.pack} runs" if self.packing else text

    def as_dict(self) -> dict[str, Any]:
        return {"gpus": list(self.gpus), "per_gpu": self.per_gpu, "cpu": self.cpu, "pack": self.pack}
