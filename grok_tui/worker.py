"""``python -m grok_tui.worker RUN_DIR``: train one run directory to completion, stop, or failure.

The worker owns its run: it holds the run's flock for its whole life (liveness for every reader), keeps
status.json current, turns SIGTERM/SIGINT into "checkpoint and exit with state stopped", and on any error
writes the last lines of the traceback to status.json and exits non-zero. A run with a resume.pt resumes.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from . import runs
from .exitcodes import BUSY as EXIT_BUSY
from .exitcodes import FAILED as EXIT_FAILED
from .exitcodes import USAGE as EXIT_USAGE

TRAINERS = {"transformer": "grok_tui.train", "mlp": "grok_tui.train", "rfm": "grok_tui.models.rfm"}


#: Messages torch gives when CUDA cannot be used at all (no driver, CPU-only build, no device).
_NO_CUDA = (
    "Torch not compiled with CUDA enabled",
    "Found no NVIDIA driver",
    "no CUDA-capable device",
    "CUDA driver version is insufficient",
    "NVIDIA driver on your system is too old",
)


def _error_line(exc: BaseException) -> str:
    """One line for status.json: CUDA OOM and device problems named as such."""
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if name == "OutOfMemoryError" or "CUDA out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text:
        return text if text.startswith("CUDA out of memory") else f"CUDA out of memory: {text}"
    if any(m in text for m in _NO_CUDA) and not text.startswith("CUDA unavailable"):
        return f"CUDA unavailable: {text}"
    return text if name in ("DeviceError", "RuntimeError") else f"{name}: {text}"


def work(run_dir: Path) -> int:
    spec = runs.read_json(run_dir / runs.SPEC)
    if spec is None:
        print(f"grok worker: {run_dir}: no readable {runs.SPEC}", file=sys.stderr)
        return EXIT_USAGE
    try:
        lock = runs.hold_lock(run_dir)
        lock.__enter__()
    except BlockingIOError:
        print(f"grok worker: run {run_dir} already has a live worker", file=sys.stderr)
        return EXIT_BUSY

    stop = {"requested": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    resumed = (run_dir / runs.CKPT_DIR / runs.RESUME).exists()
    runs.update_status(
        run_dir,
        state="running",
        pid=os.getpid(),
        pgid=os.getpgid(0),
        host=socket.gethostname(),
        device=spec.get("device", "auto"),
        total_steps=spec.get("steps"),
        started=time.time(),
        ended=None,
        returncode=None,
        error=None,
        traceback=None,
        resumed=resumed,
    )
    try:
        # Idle OpenMP threads sleep instead of spinning: with more busy threads than cores (several
        # workers, or any other load) spinning threads starve the ones doing work. Measured on 2 cores
        # at load 3: nanda-add 2.8 steps/s spinning, 6.3 passive. Must be set before torch loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        trainer = importlib.import_module(TRAINERS[spec["model"]["kind"]])
        device = os.environ.get("GROK_DEVICE") or spec.get("device", "auto")
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        runs.update_status(run_dir, device=device)
        state = trainer.run(spec, run_dir, device, lambda: stop["requested"], resumed)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach status.json
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
        runs.update_status(
            run_dir,
            state="failed",
            ended=time.time(),
            returncode=EXIT_FAILED,
            error=_error_line(exc),
            traceback=tb.strip().splitlines()[-12:],
        )
        return EXIT_FAILED
    finally:
        sys.stdout.flush()
    runs.update_status(run_dir, state=state, ended=time.time(), returncode=0)
    print(f"grok worker: {run_dir.name} {state}", flush=True)
    lock.__exit__(None, None, None)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m grok_tui.worker RUN_DIR", file=sys.stderr)
        return EXIT_USAGE
    return work(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
