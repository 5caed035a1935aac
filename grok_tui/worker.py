"""``python -m grok_tui.worker RUN_DIR``: train one run directory to completion, stop, or failure
(several: one packed worker trains them together, pack_worker.py).

The worker owns its run: it holds the run's flock for its whole life (liveness for every reader), keeps
status.json current, turns SIGTERM/SIGINT into "checkpoint and exit with state stopped", and on any error
writes one line (and for an unexpected error the last lines of the traceback) to status.json and exits
non-zero; the lock is released and the final status written on every path. A run with a resume state
resumes. A run directory holding a symbolic link is refused before anything is written into it.
worker.log (its stdout and stderr) gets one line per evaluation, the resume, and the final state.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import runs
from .exitcodes import BUSY as EXIT_BUSY
from .exitcodes import FAILED as EXIT_FAILED
from .exitcodes import USAGE as EXIT_USAGE
from .launch import slurm
from .recorder import RunFailure, append_log_line, has_resume_state, open_log, refusal, update_status

TRAINERS = {
    "transformer": "grok_tui.training.neural",
    "mlp": "grok_tui.training.neural",
    "rfm": "grok_tui.training.rfm",
}


#: Messages torch gives when CUDA cannot be used at all (no driver, CPU-only build, no device).
_NO_CUDA = (
    "Torch not compiled with CUDA enabled",
    "Found no NVIDIA driver",
    "no CUDA-capable device",
    "CUDA driver version is insufficient",
    "NVIDIA driver on your system is too old",
)


def error_line(exc: BaseException) -> str:
    """One line for status.json: CUDA OOM and device problems named as such."""
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if isinstance(exc, RunFailure):
        return text
    if name == "OutOfMemoryError" or "CUDA out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text:
        return text if text.startswith("CUDA out of memory") else f"CUDA out of memory: {text}"
    if any(m in text for m in _NO_CUDA) and not text.startswith("CUDA unavailable"):
        return f"CUDA unavailable: {text}"
    return text if name in ("DeviceError", "RuntimeError") else f"{name}: {text}"


def admit(run_dir: Path, held: contextlib.ExitStack) -> tuple[dict[str, Any] | None, int]:
    """Take ``run_dir`` for training: its spec checked, its lock held (in ``held``). Returns (spec, 0),
    or (None, exit code) with the one line printed (and status.json failed where it may be written)."""
    spec = runs.read_json(run_dir / runs.SPEC)
    if spec is None:
        print(f"grok worker: {run_dir}: no readable {runs.SPEC}", file=sys.stderr)
        return None, EXIT_USAGE
    if line := runs.untrainable(spec, runs.RunDir(run_dir).run_id):
        print(f"grok worker: {line}", file=sys.stderr)  # and nothing written: the run stays as imported
        return None, EXIT_USAGE
    refused = refusal(run_dir)
    unsafe = {run_dir.parent, run_dir, run_dir / runs.LOCK, run_dir / runs.STATUS}
    if refused and unsafe & set(runs.symlinks(run_dir)):
        # Even the lock or status.json would be written through the link: say so, write nothing.
        print(f"grok worker: {refused}", file=sys.stderr)
        return None, EXIT_USAGE
    try:
        held.enter_context(runs.hold_lock(run_dir))
    except BlockingIOError:
        print(f"grok worker: run {run_dir} already has a live worker", file=sys.stderr)
        return None, EXIT_BUSY
    refused = refused or _damaged(run_dir, spec)
    if refused:
        update_status(run_dir, state="failed", ended=time.time(), returncode=EXIT_USAGE, error=refused)
        print(f"grok worker: {refused}", file=sys.stderr)
        return None, EXIT_USAGE
    return spec, 0


def stop_on_signals(held: contextlib.ExitStack) -> Callable[[], bool]:
    """SIGTERM and SIGINT ask for a checkpoint and a clean stop (handlers restored when ``held`` closes)."""
    stop = {"requested": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["requested"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        held.callback(signal.signal, sig, signal.signal(sig, on_signal))
    return lambda: stop["requested"]


def running_fields(run_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """What status.json says of a run whose worker starts training it."""
    return {
        "state": "running",
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "host": socket.gethostname(),
        "device": spec.get("device", "auto"),
        "total_steps": spec.get("steps"),
        "started": time.time(),
        "ended": None,
        "returncode": None,
        "error": None,
        "warning": None,
        "traceback": None,
        "resumed": has_resume_state(run_dir),
        "reason": None,
        **(slurm.worker_fields() if slurm.in_job() else {}),
    }


def note_slurm_start(run_dir: Path) -> None:
    """worker.log tells each start apart, as the local launcher's line does: in Slurm, the job names it."""
    job = slurm.in_job()
    if job:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        where = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
        restarts = os.environ.get("SLURM_RESTART_COUNT")
        again = f" (requeued, restart {restarts})" if restarts and restarts != "0" else ""
        append_log_line(run_dir, f"grok: {stamp} starting worker in Slurm job {job} on {where}{again}")


def to_own_log(run_dir: Path) -> None:
    """A solo worker in a Slurm job writes to its run's worker.log, as a local one does (its stdout was
    the job's output file, which keeps what came before and Slurm's own lines)."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = open_log(run_dir)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


@functools.cache
def _slurm_reason(job: str, lead: float) -> str:
    return slurm.stop_reason(job, lead)


def end_fields(run_dir: Path, state: str) -> dict[str, Any]:
    """What a worker adds to a run's final status. ``reason``: why a run ended "stopped" when nobody asked
    through grok: inside a Slurm job without a stop.request, Slurm did (time limit, cancellation,
    preemption; asked of Slurm once per process). A Slurm job's state goes with its worker."""
    job = slurm.in_job()
    if job is None:
        return {"reason": None}
    reason = None
    if state == "stopped" and not (run_dir / runs.STOP_REQUEST).exists():
        opts = slurm.options_of(runs.read_json(run_dir / runs.STATUS) or {}) or {}
        lead = opts.get("stop_before")
        reason = _slurm_reason(job, float(lead) if isinstance(lead, (int, float)) else 120.0)
    return {"reason": reason, "slurm_state": None, "slurm_reason": None}


def work(run_dir: Path) -> int:
    with contextlib.ExitStack() as held:  # closes in reverse: status written, lock released, handlers back
        should_stop = stop_on_signals(held)
        spec, code = admit(run_dir, held)
        if spec is None:
            return code
        if slurm.in_job():
            to_own_log(run_dir)
        note_slurm_start(run_dir)
        return _train(run_dir, spec, should_stop)


def _damaged(run_dir: Path, spec: dict[str, Any]) -> str | None:
    """The one line for a spec.json this worker cannot train from (a value the experiments file could not
    have held, a key missing), else None."""
    from .config import TO_TRAIN, ConfigError, check_resolved

    try:
        check_resolved(spec, run_dir / runs.SPEC, TO_TRAIN)
    except ConfigError as e:
        return str(e)
    return None


def record_failure(run_dir: Path, exc: BaseException) -> tuple[str, str | None]:
    """status.json says failed, with the error's one line and, for an error the run cannot name (not a
    RunFailure), the traceback's last lines. Returns (line, the whole traceback or None)."""
    line = error_line(exc)
    tb = None if isinstance(exc, RunFailure) else "".join(traceback.format_exception(exc))
    update_status(
        run_dir,
        state="failed",
        ended=time.time(),
        returncode=EXIT_FAILED,
        error=line,
        traceback=tb.strip().splitlines()[-12:] if tb else None,
    )
    return line, tb


def passive_threads() -> None:
    """Idle OpenMP threads sleep instead of spinning: with more busy threads than cores (several
    workers, or any other load) spinning threads starve the ones doing work. Measured on 2 cores at
    load 3: nanda-add 2.8 steps/s spinning, 6.3 passive. Must be set before torch loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _train(run_dir: Path, spec: dict[str, Any], should_stop: Callable[[], bool]) -> int:
    """Train under the held lock: status.json says running, then the final state on every path."""
    try:
        update_status(run_dir, **running_fields(run_dir, spec))
        passive_threads()
        trainer = importlib.import_module(TRAINERS[spec["model"]["kind"]])
        from .training.common import pick_device

        device = str(pick_device(os.environ.get("GROK_DEVICE") or spec.get("device", "auto")))
        update_status(run_dir, device=device)
        state = trainer.run(spec, run_dir, device, should_stop)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach status.json
        line, tb = record_failure(run_dir, exc)
        print(tb or f"grok worker: {run_dir.name} failed: {line}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    finally:
        sys.stdout.flush()
    end = update_status(run_dir, state=state, ended=time.time(), returncode=0, **end_fields(run_dir, state))
    reason = end.get("reason")
    print(f"grok worker: {run_dir.name} {state}{f' ({reason})' if reason else ''}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m grok_tui.worker RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return EXIT_USAGE
    if len(args) > 1:
        from .pack_worker import work_pack

        return work_pack([Path(a) for a in args])
    return work(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
