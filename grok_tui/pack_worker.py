"""``python -m grok_tui.worker RUN_DIR RUN_DIR ...``: one process trains several runs as one pack.

Each member is owned as a solo worker owns its run: its lock held while it trains, its status.json kept
current (plus ``pack``: the pack's id and members), its final state written the moment it ends while the
others train on. SIGTERM/SIGINT stop every member (each checkpointed); a member's ``stop.request`` file
stops that member alone. A member that cannot join (a damaged or incompatible spec, a live worker of its
own) is refused alone. The process's own output (a traceback of the pack's step, the pack's start) goes
to stdout, which the launcher points at the pack's log; each member's lines go to its own worker.log.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import packing, runs
from .exitcodes import FAILED as EXIT_FAILED
from .exitcodes import OK as EXIT_OK
from .exitcodes import USAGE as EXIT_USAGE
from .recorder import append_log_line, update_status
from .worker import (
    admit,
    end_fields,
    note_slurm_start,
    passive_threads,
    record_failure,
    running_fields,
    stop_on_signals,
)


def work_pack(run_dirs: list[Path]) -> int:
    """Train ``run_dirs`` as one pack: 0 when the pack ran (each member's own end is in its status.json),
    EXIT_FAILED when the pack's own training failed (every member still in it failed with it)."""
    pid = os.environ.get(packing.PACK_ID_ENV) or packing.new_pack_id()  # the launcher names it
    with contextlib.ExitStack() as outer:
        stop_all = stop_on_signals(outer)
        held: dict[Path, contextlib.ExitStack] = {}
        specs: dict[Path, dict[str, Any]] = {}
        for run_dir in dict.fromkeys(Path(d).resolve() for d in run_dirs):
            member = contextlib.ExitStack()
            spec, _ = admit(run_dir, member)
            if spec is None:
                member.close()
                continue
            held[run_dir], specs[run_dir] = member, spec
            outer.callback(member.close)  # a member still held when the pack ends is released then
        if not held:
            return EXIT_USAGE
        members = [runs.RunDir(d).run_id for d in held]
        info = {"id": pid, "members": members}
        for d, spec in specs.items():  # (the launcher cleared any stop.request older than this worker)
            update_status(d, **running_fields(d, spec), pack=info)
            note_slurm_start(d)
        print(f"grok worker: pack {pid}: {len(held)} members: {', '.join(members)}", flush=True)
        ended: dict[Path, str] = {}

        def end(run_dir: Path, state: str, exc: BaseException | None) -> None:
            ended[run_dir] = state
            name = runs.RunDir(run_dir).run_id
            if exc is None:
                fields = end_fields(run_dir, state)
                update_status(run_dir, state=state, ended=time.time(), returncode=0, **fields)
                reason = fields["reason"]
                append_log_line(
                    run_dir, f"grok worker: {run_dir.name} {state}{f' ({reason})' if reason else ''}"
                )
            else:
                line, _ = record_failure(run_dir, exc)
                append_log_line(run_dir, f"grok worker: {run_dir.name} failed: {line}")
                print(f"grok worker: {name} failed: {line}", flush=True)
            with contextlib.suppress(FileNotFoundError):
                (run_dir / runs.STOP_REQUEST).unlink()
            held.pop(run_dir).close()  # the lock goes with the final state: the run is free now

        try:
            passive_threads()
            from .training import packed
            from .training.common import pick_device

            first = next(iter(specs.values()))
            device = pick_device(os.environ.get("GROK_DEVICE") or first.get("device", "auto"))
            for d in held:
                update_status(d, device=str(device))
            packed.run(
                list(specs.values()),
                list(specs),
                device,
                stop_all,
                lambda d: (d / runs.STOP_REQUEST).exists(),
                end,
            )
        except BaseException as exc:  # noqa: BLE001 - every member still in the pack must hear of it
            import traceback

            print(traceback.format_exc(), file=sys.stderr, flush=True)
            for d in list(held):
                end(d, "failed", exc)
            return EXIT_FAILED
        print(
            f"grok worker: pack {pid} ended: "
            + ", ".join(f"{runs.RunDir(d).run_id} {s}" for d, s in ended.items()),
            flush=True,
        )
        return EXIT_OK
