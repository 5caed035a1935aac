"""What both training loops need: the device, numpy's BLAS threads, the rule for a loss that diverged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..recorder import RunFailure


class DeviceError(RunFailure):
    """The requested device cannot be used."""


class Diverged(RunFailure):
    """The training loss became NaN or infinite, and the spec says to stop (``on_nan = "fail"``)."""


def pick_device(requested: str) -> torch.device:
    """``auto`` → CUDA when torch sees a GPU, else the CPU; a CUDA device torch cannot use → DeviceError."""
    if requested in ("auto", ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"CUDA unavailable: the run asks for device '{requested}' but torch sees no GPU")
    return torch.device(requested)


def set_matmul_precision(spec: dict[str, Any]) -> None:
    """float32 matmuls in full precision, or TF32 where the spec opts in (``tf32 = true``; it changes
    nothing on a CPU or a GPU without TF32). Process-wide: a pack's members share the key."""
    torch.set_float32_matmul_precision("high" if spec.get("tf32") else "highest")


def stops_on_nan(spec: dict[str, Any]) -> bool:
    """``on_nan``: "fail" (the default, also for specs written before the key existed) or "continue"."""
    return spec.get("on_nan", "fail") != "continue"


def diverged(value: float, step: int) -> Diverged:
    return Diverged(f"training loss became {value} at step {step}")


def limit_blas_threads(n: int = 1) -> int | None:
    """Set numpy's own BLAS (not torch's) to ``n`` threads; returns the previous count, to restore it,
    or None where threadpoolctl finds no BLAS library shipped with numpy.

    The trainers' numpy work (analysis, the RFM's Gram matrix) runs beside torch's thread pool, and
    numpy's OpenBLAS threads contend with it (measured on 2 busy cores: eval_measures 23 ms instead of
    1.7 ms, checkpoint_measures 6 s instead of 0.7 s, in runs of the same process). The matrices are
    small, so one thread loses nothing. Only libraries inside numpy's installation are touched: where
    torch links an OpenBLAS of its own (aarch64 wheels), its threads stay as they are.
    """
    import numpy
    from threadpoolctl import ThreadpoolController

    home = Path(numpy.__file__).resolve().parent
    homes = (home, home.with_name("numpy.libs"))
    ctl = ThreadpoolController()
    paths = [
        lib["filepath"]
        for lib in ctl.info()
        if lib["user_api"] == "blas" and any(Path(lib["filepath"]).resolve().is_relative_to(h) for h in homes)
    ]
    if not paths:
        return None
    mine = ctl.select(filepath=paths)
    prev = int(mine.info()[0]["num_threads"])
    mine.limit(limits=int(n))
    return prev
