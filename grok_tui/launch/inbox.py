"""How other processes reach the scheduler of a runs directory: requests and answers on disk.

Everything lives in ``<runs_dir>/.grok/``: the role's lock (``.lock``), what the live scheduler published
(``scheduler.json``: pid, slots), its log (``scheduler.log``, written by a foreground ``grok run`` and the
detached daemon alike), and ``inbox/``: one JSON file per request (``queue`` a run, ``stop`` a run),
answered by an ``.ack`` file when asked.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

from .. import recorder, runs

INBOX = "inbox"
INFO = "scheduler.json"
LOG = "scheduler.log"


def state_dir(runs_dir: Path) -> Path:
    return runs.state_dir(runs_dir)


def _inbox(runs_dir: Path) -> Path:
    return state_dir(runs_dir) / INBOX


def send(runs_dir: Path, op: str, path: Path, ack: bool = False, **fields: Any) -> str:
    """Leave a request for the scheduler of ``runs_dir``; returns its id (for ``take_ack``)."""
    rid = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    req = {"id": rid, "op": op, "path": str(Path(path).resolve()), "ack": ack, **fields}
    recorder.write_json_atomic(_inbox(runs_dir) / f"{rid}.json", req)
    return rid


def answer(request_path: Path, action: str, message: str = "") -> None:
    """The scheduler's answer to the request in ``request_path``."""
    recorder.write_json_atomic(request_path.with_suffix(".ack"), {"action": action, "message": message})


def take_ack(runs_dir: Path, rid: str) -> dict[str, Any] | None:
    """The scheduler's answer to request ``rid`` (and forget it), or None while unanswered."""
    path = _inbox(runs_dir) / f"{rid}.ack"
    ack = runs.read_json(path)
    if ack is not None:
        with contextlib.suppress(OSError):
            path.unlink()
    return ack


def pending(runs_dir: Path) -> list[Path]:
    """Unread requests, oldest first."""
    try:
        return sorted(_inbox(runs_dir).glob("*.json"))
    except OSError:
        return []


def drop_stale_acks(runs_dir: Path, age_s: float = 86400) -> None:
    """Answers nobody collected (their requester died) go after a day."""
    for ack in _inbox(runs_dir).glob("*.ack"):
        with contextlib.suppress(OSError):
            if time.time() - ack.stat().st_mtime > age_s:
                ack.unlink()


def scheduler_info(runs_dir: Path) -> dict[str, Any] | None:
    """What the live scheduler of ``runs_dir`` published (pid, slots), or None when there is none."""
    if not runs.scheduler_alive(runs_dir):
        return None
    return runs.read_json(state_dir(runs_dir) / INFO) or {}


def log_line(runs_dir: Path, message: str) -> str:
    """Append one timestamped line to the scheduler log (``grok logs --scheduler``); returns the line."""
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{os.getpid()}] {message}"
    with contextlib.suppress(OSError):
        state_dir(runs_dir).mkdir(parents=True, exist_ok=True)
        with open(state_dir(runs_dir) / LOG, "a") as f:
            f.write(line + "\n")
    return line
