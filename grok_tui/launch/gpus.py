"""Which GPUs a scheduler may hand out, found without importing torch.

The scheduler runs in ``grok run`` and in a detached daemon; neither may import torch (seconds of start-up,
and a CUDA context it does not need). The inventory therefore comes from, in order:

1. ``GROK_FAKE_GPUS`` ("0" or "0,1"; "" for none): declared devices, so CI without a GPU exercises the queue;
2. ``CUDA_VISIBLE_DEVICES`` when set: its entries verbatim ("" or "-1": none);
3. ``nvidia-smi --query-gpu=index``: every GPU of the machine;
4. otherwise none, and runs go to CPU slots.

IDs are what each worker gets as ``CUDA_VISIBLE_DEVICES`` (with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, so an index
means the same GPU to nvidia-smi and to CUDA).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

FAKE_ENV = "GROK_FAKE_GPUS"
NO_GPU_WORDS = ("none", "cpu", "")


class GpuError(ValueError):
    """A --gpus value that names devices this machine does not show; one line."""


@dataclass(frozen=True)
class Inventory:
    """The GPUs visible to this process, and where that knowledge came from (for messages)."""

    ids: tuple[str, ...]
    source: str
    #: False when nothing could be asked (no nvidia-smi, no CUDA_VISIBLE_DEVICES): a --gpus list is then
    #: refused rather than trusted, so no run is said to start on a GPU that is not there.
    known: bool = True


def split_ids(value: str) -> tuple[str, ...]:
    """GPU ids of a comma-separated list ("" and "-1": none, as CUDA_VISIBLE_DEVICES reads them)."""
    items = tuple(x.strip() for x in value.split(",") if x.strip())
    return () if items in ((), ("-1",)) else items


def _nvidia_smi(args: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    """nvidia-smi's answer to ``args``, or None when nvidia-smi is missing or hangs."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        return subprocess.run(
            [exe, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None


def nvidia_smi_ids(timeout: float = 10.0) -> tuple[str, ...] | None:
    """GPU indices from nvidia-smi, or None when nvidia-smi is missing or broken."""
    out = _nvidia_smi(["--query-gpu=index", "--format=csv,noheader"], timeout)
    if out is None:
        return None
    if out.returncode != 0:
        return ()  # e.g. "No devices were found" / driver not loaded: no usable GPU
    return tuple(line.strip() for line in out.stdout.splitlines() if line.strip().isdigit())


def free_memory(gpu: str, timeout: float = 10.0) -> int | None:
    """Free bytes on GPU ``gpu`` (an index or UUID, as CUDA_VISIBLE_DEVICES names it) per nvidia-smi,
    or None when nvidia-smi cannot say."""
    out = _nvidia_smi(["--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", gpu], timeout)
    if out is None or out.returncode != 0:
        return None
    lines = out.stdout.split()
    return int(lines[0]) << 20 if len(lines) == 1 and lines[0].isdigit() else None  # MiB


def detect(env: Mapping[str, str] | None = None) -> Inventory:
    env = os.environ if env is None else env
    if FAKE_ENV in env:
        return Inventory(split_ids(env[FAKE_ENV]), FAKE_ENV)
    if "CUDA_VISIBLE_DEVICES" in env:
        return Inventory(split_ids(env["CUDA_VISIBLE_DEVICES"]), "CUDA_VISIBLE_DEVICES")
    ids = nvidia_smi_ids()
    if ids is None:
        return Inventory((), "no nvidia-smi", known=False)
    return Inventory(ids, "nvidia-smi")


def select(option: str | None, inventory: Inventory) -> tuple[str, ...]:
    """The GPUs to use for ``--gpus option``: None/"all" → every visible one; "none"/"cpu" → none."""
    if option is None or option.strip().lower() == "all":
        return inventory.ids
    if option.strip().lower() in NO_GPU_WORDS:
        return ()
    wanted = split_ids(option)
    if len(set(wanted)) != len(wanted):
        raise GpuError(f"--gpus '{option}' names a GPU twice")
    if wanted and not inventory.known:
        raise GpuError(
            f"--gpus '{option}': no GPU is visible here (no nvidia-smi, and CUDA_VISIBLE_DEVICES is not set)"
        )
    if inventory.known:
        missing = [g for g in wanted if g not in inventory.ids]
        if missing:
            shown = ",".join(inventory.ids) or "none"
            raise GpuError(
                f"--gpus '{option}': GPU {','.join(missing)} is not visible "
                f"(visible per {inventory.source}: {shown})"
            )
    return wanted
