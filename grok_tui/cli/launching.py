"""`grok validate`, `grok run`, `grok resume`: from an experiments file to queued runs, watched or detached.

Runs go to the runs directory's one scheduler (this process when the role is free, else the live one
through its inbox); in the foreground a progress bar per run follows each run's metrics.jsonl until it ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import exitcodes
from .. import format as fmt
from .common import RunsDirOpt, default_runs_dir, fail, get_run, load, say, table_console
from .tables import runs_table, summary_table

FileArg = Annotated[Path, typer.Argument(metavar="FILE", help="The experiments file (experiments.toml).")]
GpusOpt = Annotated[
    str | None,
    typer.Option(
        "--gpus",
        metavar="IDS",
        help="GPUs to use: 0,1 | all | none (default: all visible: CUDA_VISIBLE_DEVICES, else nvidia-smi; "
        "GROK_FAKE_GPUS=0,1 declares devices for tests).",
    ),
]
PerGpuOpt = Annotated[
    int | None, typer.Option("--per-gpu", min=1, metavar="K", help="Runs at once on each GPU (default 1).")
]
ParallelOpt = Annotated[
    int | None,
    typer.Option(
        "--parallel",
        min=1,
        metavar="N",
        help="Runs at once on CPU: device cpu, or every run when there is no GPU (default 1).",
    ),
]
DetachOpt = Annotated[
    bool,
    typer.Option(
        "--detach", "-d", help="Return at once; a detached scheduler drains the queue (no terminal)."
    ),
]
PackOpt = Annotated[
    str | None,
    typer.Option(
        "--pack",
        metavar="N",
        help="Train up to N compatible runs in one worker (one slot); N = auto: as many as the free memory "
        "holds (default: [defaults] pack of the file, else 1).",
    ),
]
ResumePackOpt = Annotated[
    str | None,
    typer.Option(
        "--pack",
        metavar="N",
        help="Resume up to N compatible runs in one worker (one slot); N = auto: as many as the free "
        "memory holds (default 1).",
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        metavar="BACKEND",
        help="Where workers run: local (this machine) or slurm (batch jobs as the file's [slurm] table "
        "says; default: [defaults] backend of the file, else local; for resume, where the runs last ran).",
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", metavar="DEVICE", help="Override every run's device: auto, cpu, cuda, cuda:N."),
]


def validate(file: FileArg) -> None:
    """Check an experiments file and print the runs it expands to."""
    cfg = load(file)
    packs = f", packs of {cfg.pack}" if cfg.pack != 1 else ""
    title = f"{file}: {len(cfg.runs)} runs → {default_runs_dir(None, file)}{packs}"
    table_console().print(runs_table(cfg, title))


def _check_device(device: str | None) -> None:
    if device is not None:
        from ..config import valid_device

        if not valid_device(device):
            raise fail(f"--device '{device}' is not auto, cpu, cuda or cuda:N")


def _pack(pack: str | None, default: int | str = 1) -> int | str:
    """--pack as the scheduler takes it (the file's [defaults] pack when the option is not given)."""
    from ..launch.slots import pack_value

    if pack is None:
        return default
    try:
        return pack_value(pack)
    except ValueError as e:
        raise fail(str(e)) from None


def _slots(gpus: str | None, per_gpu: int | None, parallel: int | None, pack: int | str = 1):
    """Slots from the options and the GPU inventory (nvidia-smi or env; never torch)."""
    from ..launch import gpus as inventory
    from ..launch.slots import Slots

    try:
        ids = inventory.select(gpus, inventory.detect())
    except inventory.GpuError as e:
        raise fail(str(e)) from None
    return Slots(ids, per_gpu or 1, parallel or 1, pack)


def run(
    file: FileArg,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", metavar="NAME", help="Run only this experiment (repeatable)."),
    ] = None,
    runs_dir: RunsDirOpt = None,
    device: DeviceOpt = None,
    parallel: ParallelOpt = None,
    gpus: GpusOpt = None,
    per_gpu: PerGpuOpt = None,
    pack: PackOpt = None,
    backend: BackendOpt = None,
    detach: DetachOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Start finished or changed runs over.")] = False,
) -> None:
    """Queue experiments on GPU/CPU slots and train them in detached workers, a progress bar per run.

    Ctrl-C stops this command's runs cleanly (checkpoints written, exit 130).

    A second `grok run` on the same runs directory hands its runs to the scheduler already there.

    --detach returns at once: follow with `grok ls` or `grok logs RUN -f`, stop with `grok stop`.

    --backend slurm submits the runs as one Slurm job array (a task per worker or pack) and follows them;
    Slurm is their queue, so --detach, a hang-up or Ctrl-C-free exit leaves them running there.
    """
    from ..config import ConfigError, run_label
    from ..launch.local import LaunchError, check_spec, prepare_run, run_path
    from ..launch.slurm import held_line
    from ..runs import SPEC, RunDir

    cfg = load(file)
    try:
        specs = cfg.select(only)
    except ConfigError as e:
        raise fail(str(e)) from None
    sources = cfg.sources_of(specs)
    for spec in sources:
        say(f"{run_label(spec)}: also run, an init_from source of the runs asked for")
    added = {run_label(s) for s in sources}
    specs = sources + specs

    def forced(spec: dict[str, Any]) -> bool:
        """--force starts over the runs asked for, never a source they need (its checkpoints are theirs)."""
        return force and run_label(spec) not in added

    _check_device(device)
    where = _backend(backend, cfg.backend)
    root = default_runs_dir(runs_dir, file)
    pack_size = _pack(pack, cfg.pack)
    if where == "slurm":
        _slurm_pack(pack_size)
        slots = None
    else:
        slots = _slots(gpus, per_gpu, parallel, pack_size)
    # Check every run before creating any, so a refusal leaves the runs directory as it was.
    for spec in specs:
        existing = RunDir(run_path(spec, root))
        if not forced(spec) and (existing.path / SPEC).exists() and not existing.alive():
            try:
                check_spec(existing, spec)
            except LaunchError as e:
                raise fail(str(e)) from None
    todo: list[RunDir] = []
    skipped: list[RunDir] = []
    for spec in specs:
        try:
            r, action = prepare_run(spec, root, forced(spec))
        except LaunchError as e:
            raise fail(str(e)) from None
        if action == "resume" and (held := held_line(r)):
            say(held)
            skipped.append(r)
        elif action in ("new", "resume"):
            todo.append(r)
        else:
            why = "already done (use --force to rerun)" if action == "done" else "already has a live worker"
            say(f"{r.run_id}: {why}")
            skipped.append(r)
    if where == "slurm":
        import msgspec

        _ignored_on_slurm(gpus, per_gpu, parallel)
        opts = msgspec.structs.asdict(cfg.slurm)
        code = _launch_slurm(root, todo, opts, int(pack_size), device, detach, f"grok-{file.stem}")
    else:
        asked = pack if pack is not None or cfg.pack == 1 else str(cfg.pack)  # the file's pack too
        code = _launch(root, todo, slots, device, detach, explicit=(gpus, per_gpu, parallel, asked))
    if not detach and todo + skipped and code != exitcodes.HANGUP:
        table_console().print(summary_table([r.summary() for r in todo + skipped]))
    raise typer.Exit(code)


def resume(
    run_refs: Annotated[list[str], typer.Argument(metavar="RUN", help="Runs to continue.")],
    runs_dir: RunsDirOpt = None,
    device: DeviceOpt = None,
    parallel: ParallelOpt = None,
    gpus: GpusOpt = None,
    per_gpu: PerGpuOpt = None,
    pack: ResumePackOpt = None,
    backend: BackendOpt = None,
    detach: DetachOpt = False,
) -> None:
    """Continue stopped or failed runs from their last checkpoint (exact on CPU), through the queue.

    --pack N resumes compatible runs together in one worker, as `grok run --pack` trains them.
    A run last submitted to Slurm is submitted again with the [slurm] options it had (--backend local
    trains it here instead)."""
    from ..recorder import refusal
    from ..runs import untrainable

    _check_device(device)
    pack_size = _pack(pack)
    targets = [get_run(runs_dir, ref) for ref in run_refs]
    from ..config import TO_TRAIN, ConfigError, check_resolved

    for r in targets:  # checked here: the scheduler is handed resolved paths, past any link
        if line := refusal(r.path) or untrainable(r.spec(), r.run_id):
            raise fail(line)
        try:  # a damaged spec.json: say so now rather than through a worker that fails on it
            check_resolved(r.spec(), r.path / "spec.json", TO_TRAIN)
        except ConfigError as e:
            raise fail(str(e)) from None
    roots = {r.path.resolve().parents[1] for r in targets}
    if len(roots) > 1:
        raise fail("grok resume: the runs are in different runs directories; resume them separately")
    from ..launch import slurm

    todo = []
    for r in targets:
        st = r.status()
        if r.alive():
            say(f"{r.run_id}: already running")
        elif held := slurm.held_line(r):
            say(held)
        elif st.get("state") == "done":
            say(f"{r.run_id}: already done (use `grok run --force` to start it over)")
        elif r not in todo:
            todo.append(r)
    last = {r.raw_status().get("backend") == slurm.BACKEND for r in todo}
    where = _backend(backend, "slurm" if last == {True} else "local")
    if where == "slurm":
        _slurm_pack(pack_size)
        _ignored_on_slurm(gpus, per_gpu, parallel)
        opts = next((o for r in todo if (o := slurm.options_of(r.raw_status()))), None) or _default_slurm()
        code = _launch_slurm(roots.pop(), todo, opts, int(pack_size), device, detach, "grok-resume")
    else:
        slots = _slots(gpus, per_gpu, parallel, pack_size)
        code = _launch(roots.pop(), todo, slots, device, detach, (gpus, per_gpu, parallel, pack))
    if not detach and todo and code != exitcodes.HANGUP:
        table_console().print(summary_table([r.summary() for r in todo]))
    raise typer.Exit(code)


def _backend(asked: str | None, default: str) -> str:
    if asked is None:
        return default
    if asked not in ("local", "slurm"):
        raise fail(f"--backend '{asked}' is not local or slurm")
    return asked


def _slurm_pack(pack: int | str) -> None:
    if pack == "auto":
        raise fail(
            "pack = auto sizes packs from a GPU's free memory, which Slurm chooses only when the job "
            "starts: give --pack N with the slurm backend"
        )


def _ignored_on_slurm(*options: object) -> None:
    if any(o is not None for o in options):
        say(
            "note: --gpus/--per-gpu/--parallel are this machine's slots; Slurm ignores them (use the "
            "[slurm] table: gpus_per_job, max_running)",
            err=True,
        )


def _default_slurm() -> dict[str, Any]:
    import msgspec

    from ..config.schema import Slurm

    return msgspec.structs.asdict(Slurm())


def _launch_slurm(
    root: Path, todo, opts: dict[str, Any], pack: int, device: str | None, detach: bool, name: str
) -> int:
    """Submit ``todo`` to Slurm as one job array: return at once (--detach) or follow it."""
    from ..launch.local import LaunchError
    from ..launch.slurm import SlurmError, submit
    from ..launch.slurm_session import SlurmSession

    if not todo:
        return 0
    session = SlurmSession(Path(root), opts, pack, lambda m: say(m), name)
    if not detach:
        try:
            return _drive(session, todo, device)
        except (SlurmError, LaunchError) as e:
            raise fail(str(e), exitcodes.FAILED) from None
    try:
        array, tasks = submit(Path(root), todo, opts, pack, device, name)
    except (SlurmError, LaunchError) as e:
        raise fail(str(e), exitcodes.FAILED) from None
    say(f"submitted {len(todo)} run(s) to Slurm: job array {array} ({tasks} task(s))")
    say("follow with `grok ls` or `grok logs RUN -f`; stop with `grok stop RUN` or `grok stop --all`")
    return 0


def _launch(root: Path, todo, slots, device: str | None, detach: bool, explicit: tuple) -> int:
    """Hand ``todo`` to the scheduler of ``root``: detached (return at once) or watched in the foreground."""
    from ..launch.daemon import spawn_daemon
    from ..launch.inbox import scheduler_info, send
    from ..launch.session import Session

    root = Path(root).resolve()
    if not todo:
        _adopt_orphans(root, slots)
        return 0
    if not detach:
        return _drive(Session(root, slots, lambda m: say(m)), todo, device)
    for r in todo:
        send(root, "queue", r.path, device=device)
    info = scheduler_info(root)
    if info is not None:
        say(f"queued {len(todo)} run(s) with the scheduler already running in {root} (pid {info.get('pid')})")
        _note_slots(info, slots, explicit)
    else:
        proc = spawn_daemon(root, slots)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            info = scheduler_info(root)
            if info is not None and info.get("pid") == proc.pid:
                break
            time.sleep(0.05)
        if proc.poll() not in (None, 0):  # it died before it took the queue: nobody drains it
            raise fail(
                f"the detached scheduler exited at once (code {proc.returncode}); "
                f"the runs stay queued: see `grok logs --scheduler --runs-dir {root}`",
                exitcodes.FAILED,
            )
        say(
            f"queued {len(todo)} run(s); a detached scheduler (pid {proc.pid}, {slots.describe()}) "
            "drains the queue"
        )
    say("follow with `grok ls` or `grok logs RUN -f`; stop with `grok stop RUN` or `grok stop --all`")
    return 0


def _adopt_orphans(root: Path, slots) -> None:
    """Queued runs whose scheduler was killed wait for the next command that schedules: this one, even
    when it has nothing of its own to queue (every run it names is done)."""
    from ..launch.daemon import spawn_daemon
    from ..runs import SLURM, list_runs, scheduler_alive

    if scheduler_alive(root):
        return
    orphans = [
        r
        for r in list_runs(root)
        if (st := r.raw_status()).get("state") == "queued" and st.get("backend") != SLURM and not r.alive()
    ]
    if orphans:
        proc = spawn_daemon(root, slots)
        say(
            f"{len(orphans)} queued run(s) in {root} had no scheduler; "
            f"a detached scheduler (pid {proc.pid}) now drains them"
        )


def _note_slots(info: dict[str, Any], slots, explicit: tuple) -> None:
    if any(v is not None for v in explicit) and (
        list(slots.gpus) != info.get("gpus")
        or slots.per_gpu != info.get("per_gpu")
        or slots.cpu != info.get("cpu")
        or slots.pack != info.get("pack", 1)
    ):
        say(
            f"note: the live scheduler keeps its own slots (GPU {info.get('gpus') or 'none'}, "
            f"{info.get('per_gpu')} per GPU, {info.get('cpu')} on CPU, packs of {info.get('pack', 1)}); "
            "--gpus/--per-gpu/--parallel/--pack and [defaults] pack are ignored",
            err=True,
        )


class _HangUp(Exception):
    """The terminal went away (SIGHUP): leave the runs to a detached scheduler, say nothing."""


def _drive(session, todo, device: str | None) -> int:
    """Foreground: submit ``todo``, draw a progress bar per run until each ends.

    Ctrl-C or SIGTERM stops these runs (checkpoints written) and returns 130; a hang-up hands every run to a
    detached scheduler and returns 129; else non-zero if any run failed."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    def tone(state: str) -> str:
        return fmt.RICH_STYLES[fmt.STATE_TONES[state]]

    from ..launch.scheduler import POLL_S
    from ..runs import METRICS, JsonlTail, is_step

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[acc]}"),
        TimeRemainingColumn(),
    )
    hung = {"up": False}

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def on_hup(signum: int, frame: Any) -> None:
        hung["up"] = True
        # The terminal is gone: writes to it would fail (EIO). Send everything to /dev/null instead.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        raise _HangUp

    old = {s: signal.signal(s, h) for s, h in ((signal.SIGTERM, on_term), (signal.SIGHUP, on_hup))}
    interrupted = False
    try:
        with Progress(*columns, refresh_per_second=4, transient=False) as progress:

            def tell(msg: str) -> None:
                if not hung["up"]:
                    with contextlib.suppress(OSError):
                        progress.console.print(f"grok: {msg}", highlight=False, markup=False)

            session.log = tell
            bars = {r.path.resolve(): progress.add_task(r.run_id, total=None, acc="queued") for r in todo}
            tails = {p: JsonlTail(p / METRICS) for p in bars}

            def redraw() -> None:
                for p, bar in bars.items():
                    m = session.mine.get(p)
                    st = m.run.status() if m else {}
                    fields: dict[str, Any] = {}
                    if rows := tails[p].read_new():
                        last = rows[-1]
                        fields["acc"] = (
                            f"train {fmt.acc(last.get('train_acc'))}  test {fmt.acc(last.get('test_acc'))}"
                        )
                    state = st.get("state")
                    if state == "failed" or (m and m.action == "error"):
                        err = (
                            st.get("error") or (m.message if m else "") or f"exit code {st.get('returncode')}"
                        )
                        fields["acc"] = f"[{tone('failed')}]failed: {escape(str(err))}[/]"
                    elif state == "stopped":
                        why = f" ({escape(str(st['reason']))})" if st.get("reason") else ""
                        fields["acc"] = f"[{tone('stopped')}]stopped{why}[/]"
                    total, step = (v if is_step(v) else None for v in (st.get("total_steps"), st.get("step")))
                    progress.update(bar, total=total, completed=step or 0, **fields)

            try:
                session.submit([r.path for r in todo], device)
                if note := session.submitted_note():
                    tell(note)
                try:
                    while not session.done():
                        session.tick()
                        redraw()
                        time.sleep(POLL_S)
                except KeyboardInterrupt:
                    interrupted = True
                    tell("stopping runs (checkpoints are written)… Ctrl-C again kills them")
                    session.interrupt()
                    while not session.done():
                        try:
                            session.tick()
                            redraw()
                            time.sleep(POLL_S)
                        except KeyboardInterrupt:
                            tell("killing workers (their last checkpoint stays)")
                            session.kill()
                redraw()
            finally:
                # Runs still queued or running for other `grok run`s (or, after a hang-up, for this one)
                # go to a detached successor: nothing is stranded when this process leaves.
                session.close()
    except (_HangUp, OSError):
        if not hung["up"]:
            raise
        return exitcodes.HANGUP
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if interrupted:
        say("stopped; `grok resume RUN` continues a run from its last checkpoint")
        return exitcodes.INTERRUPTED
    unfinished = session.unfinished()
    for m in unfinished:
        if m.run.status().get("state") == "stopped":
            say(f"{m.run.run_id}: stopped before it finished; `grok resume {m.run.run_id}` continues it")
    return exitcodes.FAILED if unfinished else exitcodes.OK
