"""`grok stop` and `grok logs`: steering and following runs that belong to no terminal."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from .. import exitcodes
from ..launch.stopping import GRACE_S
from .common import RunsDirOpt, default_runs_dir, fail, get_run, runs_root, say

#: Seconds `grok stop` waits for a SIGKILLed worker to vanish before it reports the run as still live.
KILL_WAIT_S = 10.0
#: Seconds between looks at a followed log.
FOLLOW_S = 0.25


def stop(
    run_refs: Annotated[list[str] | None, typer.Argument(metavar="RUN", help="Runs to stop.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Stop every queued or running run.")] = False,
    runs_dir: RunsDirOpt = None,
    grace: Annotated[
        float, typer.Option("--grace", min=0, metavar="S", help="Seconds between SIGTERM and SIGKILL.")
    ] = GRACE_S,
) -> None:
    """Stop runs: queued ones leave the queue; workers get SIGTERM, checkpoint and exit (SIGKILL after
    --grace). The last checkpoint stays: `grok resume RUN` continues."""
    from ..launch.inbox import scheduler_info, send
    from ..launch.local import signal_run
    from ..launch.stopping import Stopper
    from ..recorder import update_status
    from ..runs import ACTIVE_STATES, SLURM, list_runs

    if all_runs == bool(run_refs):
        raise fail("grok stop: name runs, or --all (not both)")
    if all_runs:
        root = default_runs_dir(runs_dir)
        if not root.is_dir():
            raise fail(f"no runs directory '{root}'")
        targets = [r for r in list_runs(root) if r.alive() or r.status().get("state") in ACTIVE_STATES]
        if not targets:
            say(f"nothing queued or running in {root}")
            return
    else:
        targets = []
        for ref in run_refs or []:
            r = get_run(runs_dir, ref)
            st = r.status()
            if not r.alive() and st.get("state") not in ACTIVE_STATES:
                say(f"{r.run_id}: not running ({st.get('state')})")
            elif r.path not in [t.path for t in targets]:
                targets.append(r)
    # SIGTERM now, SIGKILL after --grace: the scheduler's stopper, keyed here by run directory.
    stopper = Stopper()
    pids: dict[Path, int | None] = {}
    by_path = {r.path: r for r in targets}

    def term(r) -> None:
        if r.raw_status().get("backend") == SLURM:  # Slurm's queue, Slurm's signals: no scheduler here
            pids[r.path] = signal_run(r, signal.SIGTERM)
            if pids[r.path] is None and r.status().get("state") in ACTIVE_STATES:
                typer.echo(
                    f"grok: error: {r.run_id}: Slurm did not take the stop (see `grok show`)", err=True
                )
            return
        root = runs_root(r)
        if scheduler_info(root) is not None:
            send(root, "stop", r.path, grace=grace)
        elif not r.alive() and r.raw_status().get("state") == "queued":
            update_status(r.path, state="stopped", ended=time.time())
        pids[r.path] = signal_run(r, signal.SIGTERM)

    def active(r) -> bool:
        return r.alive() or r.status().get("state") in ACTIVE_STATES

    for r in targets:
        stopper.request(r.path, lambda r=r: term(r), grace)
    left = list(targets)
    while left:
        left = [r for r in left if active(r)]
        for r in left:
            if r.alive() and pids.get(r.path) != r.raw_status().get("pid"):
                pids[r.path] = signal_run(r, signal.SIGTERM)  # started after the first signal: signal it too
        stopper.escalate(lambda path: signal_run(by_path[path], signal.SIGKILL))
        waited = [stopper.killed_since(r.path) for r in left]
        if left and all(w is not None and w >= KILL_WAIT_S for w in waited):
            break
        if left:
            time.sleep(0.1)
    code = exitcodes.OK
    for r in targets:
        st = r.raw_status()
        if not r.alive() and st.get("state") == "running":  # SIGKILLed: it could not say so itself
            update_status(
                r.path,
                state="stopped",
                ended=time.time(),
                error=f"killed: SIGTERM not answered in {grace:g} s",
            )
        st = r.status()
        if st.get("state") in ACTIVE_STATES:
            typer.echo(f"grok: error: {r.run_id}: still {st.get('state')}", err=True)
            code = exitcodes.FAILED
        else:
            say(f"{r.run_id}: {st.get('state')} at step {st.get('step') or 0}")
    if code == exitcodes.OK and any(r.status().get("state") == "stopped" for r in targets):
        say("`grok resume RUN` continues from the last checkpoint")
    raise typer.Exit(code)


def logs(
    run_ref: Annotated[
        str | None, typer.Argument(metavar="RUN", help="Run whose worker.log to print.")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
    lines: Annotated[
        int | None, typer.Option("--lines", "-n", min=0, metavar="N", help="Only the last N lines.")
    ] = None,
    scheduler: Annotated[
        bool, typer.Option("--scheduler", help="The scheduler's log instead of a run's.")
    ] = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Print a run's worker.log (stdout and stderr of its workers); -f follows it until the run ends.

    A Slurm run's job output file follows (Slurm's own lines: a cancel, a time limit)."""
    from ..launch.inbox import LOG as SCHED_LOG
    from ..launch.inbox import scheduler_info, state_dir
    from ..runs import ACTIVE_STATES, LineTail

    if scheduler == bool(run_ref):
        raise fail("grok logs: name a run, or --scheduler")
    if scheduler:
        root = default_runs_dir(runs_dir)
        path, what = state_dir(root) / SCHED_LOG, f"{root}: the scheduler"

        def live() -> bool:
            return scheduler_info(root) is not None
    else:
        r = get_run(runs_dir, run_ref or "")
        path, what = r.log_path(), r.run_id

        def live() -> bool:
            return r.alive() or r.status().get("state") in ACTIVE_STATES

    # A Slurm run: after its worker.log, its job's output file (Slurm's lines, the job's own output).
    job_out = None if scheduler else r.job_output()
    if not path.exists() and not (job_out and job_out.exists()) and not (follow and live()):
        raise fail(f"{what} has no {SCHED_LOG} yet" if scheduler else r.missing_log())
    out = sys.stdout.buffer
    tail = LineTail(path)

    def write(lines: list[bytes]) -> None:
        if lines:
            out.write(b"".join(line + b"\n" for line in lines))
            out.flush()

    try:
        first = tail.read_lines()
        write(first if lines is None else first[-lines:] if lines else [])
        while follow:
            running = live()
            write(tail.read_lines())  # a log rewritten under a new inode is read again from its start
            if not running:
                break
            time.sleep(FOLLOW_S)
        if rest := tail.rest():
            out.write(rest)
            out.flush()
        if job_out is not None and job_out.exists():
            job = LineTail(job_out).read_lines()
            if job and lines != 0:
                header = f"==> {job_out} (Slurm job output) <=="
                write([header.encode(), *(job if lines is None else job[-lines:])])
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = None  # type: ignore[assignment]
        raise typer.Exit(0) from None
