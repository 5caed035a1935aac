"""Free memory where a pack would run, found without torch: what ``pack = "auto"`` divides.

A GPU slot asks nvidia-smi for its GPU's free memory (other processes' use already subtracted); a CPU slot,
the tests' declared GPUs (``GROK_FAKE_GPUS``, not there) and a machine without nvidia-smi read the
kernel's ``MemAvailable`` (what can be allocated without swapping).
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import Slot
from .gpus import FAKE_ENV, free_memory

MEMINFO = Path("/proc/meminfo")


def cpu_available(meminfo: Path = MEMINFO) -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes, or None where there is none (not Linux)."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == "MemAvailable":
            words = rest.split()
            if words and words[0].isdigit():
                return int(words[0]) * 1024  # kB
    return None


def free_bytes(slot: Slot) -> tuple[int | None, str]:
    """Free bytes for a pack on ``slot`` and where the figure comes from (for the scheduler log)."""
    if slot.gpu is not None and FAKE_ENV not in os.environ:
        free = free_memory(slot.gpu)
        if free is not None:
            return free, f"free on GPU {slot.gpu} (nvidia-smi)"
    return cpu_available(), "available on the CPU (/proc/meminfo)"
