"""``grok``: the headless commands. Heavy modules (torch, textual) are imported inside commands only."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .exitcodes import FAILED as EXIT_FAILED
from .exitcodes import HANGUP as EXIT_HANGUP
from .exitcodes import INTERRUPTED as EXIT_INTERRUPTED
from .exitcodes import USAGE as EXIT_USAGE

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    help="Run, watch and take apart grokking experiments (Nanda 2023, Furuta 2024, Mallinar 2024).",
)


RunsDirOpt = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Runs directory (default: runs_dir of ./experiments.toml, else ./runs)."),
]


def table_console():
    """A rich console for tables. Piped output (grep, a log file) is drawn 200 columns wide instead of
    rich's default 80, so run ids are not cut; a terminal, or $COLUMNS, sets the width as usual."""
    from rich.console import Console

    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=200 if wide else None)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise: no traceback for a user's mistake."""
    typer.echo(f"grok: error: {message}", err=True)
    return typer.Exit(code)


def load(file: Path):
    from .config import ConfigError, load_config

    try:
        return load_config(file)
    except ConfigError as e:
        raise fail(str(e)) from None


def default_runs_dir(runs_dir: Path | None) -> Path:
    """--runs-dir, else $GROK_RUNS_DIR, else [defaults].runs_dir of ./experiments.toml, else ./runs."""
    if runs_dir is not None:
        return runs_dir
    if env := os.environ.get("GROK_RUNS_DIR"):
        return Path(env)
    toml = Path("experiments.toml")
    if toml.exists():
        import tomllib

        try:
            rd = tomllib.loads(toml.read_text()).get("defaults", {}).get("runs_dir")
        except (OSError, ValueError):
            rd = None
        if isinstance(rd, str) and rd:
            return Path(rd)
    return Path("runs")


def get_run(runs_dir: Path | None, ref: str):
    from .runs import find_run

    root = default_runs_dir(runs_dir)
    try:
        return find_run(root, ref)
    except LookupError as e:
        raise fail(str(e)) from None


def _fmt_acc(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "-"


def _fmt_step(v: Any) -> str:
    return str(v) if v is not None else "-"


def summary_table(summaries, title: str | None = None):
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for col in (
        "run",
        "task",
        "state",
        "step",
        "train acc",
        "test acc",
        "memorised at",
        "grokked at",
        "device",
    ):
        table.add_column(col, justify="right" if col not in ("run", "task", "state") else "left")
    colors = {"done": "green", "running": "cyan", "failed": "red", "stopped": "yellow", "queued": "dim"}
    for s in summaries:
        state = f"[{colors.get(s.state, 'white')}]{s.state}[/]"
        if s.error and s.state == "failed":
            state += f" [dim]({s.error[:40]})[/]"
        table.add_row(
            s.run_id,
            s.task,
            state,
            f"{s.step}/{s.total_steps}",
            _fmt_acc(s.train_acc),
            _fmt_acc(s.test_acc),
            _fmt_step(s.memorised_at),
            _fmt_step(s.grokked_at),
            s.device,
        )
    return table


# --------------------------------------------------------------------------- validate


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="experiments.toml")]) -> None:
    """Check an experiments file and print the runs it expands to."""
    from rich.table import Table

    cfg = load(file)
    table = Table(title=f"{file}: {len(cfg.runs)} runs → {cfg.runs_dir}", header_style="bold")
    for col in ("run", "task", "p", "frac", "seed", "model", "steps", "eval/ckpt", "device"):
        table.add_column(col)
    for r in cfg.runs:
        m = r["model"]
        model = m["kind"] + (f" L{m['layers']} d{m['d_model']}" if m["kind"] == "transformer" else "")
        task = " | ".join(r["task"]) if isinstance(r["task"], list) else r["task"]
        table.add_row(
            f"{r['experiment']}/{r['name']}",
            task,
            str(r["p"]),
            f"{r['train_frac']:g}",
            str(r["seed"]),
            model,
            str(r["steps"]),
            f"{r['eval_every']}/{r['checkpoint_every']}",
            r["device"],
        )
    table_console().print(table)


# --------------------------------------------------------------------------- run / resume / stop / logs

GpusOpt = Annotated[
    str | None,
    typer.Option(
        "--gpus",
        help="GPUs to use: 0,1 | all | none (default: all visible: CUDA_VISIBLE_DEVICES, else nvidia-smi; "
        "GROK_FAKE_GPUS=0,1 declares devices for tests).",
    ),
]
PerGpuOpt = Annotated[
    int | None, typer.Option("--per-gpu", min=1, help="Runs at once on each GPU (default 1).")
]
ParallelOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="Runs at once on CPU: device cpu, or every run when there is no GPU (default 1)."
    ),
]
DetachOpt = Annotated[
    bool,
    typer.Option(
        "--detach", "-d", help="Return at once; a detached scheduler drains the queue (no terminal)."
    ),
]
DeviceOpt = Annotated[str | None, typer.Option(help="Override every run's device: auto, cpu, cuda, cuda:N.")]


def _check_device(device: str | None) -> None:
    if device is not None:
        from .config import valid_device

        if not valid_device(device):
            raise fail(f"--device '{device}' is not auto, cpu, cuda or cuda:N")


def _slots(gpus: str | None, per_gpu: int | None, parallel: int | None):
    """Slots from the options and the GPU inventory (nvidia-smi or env; never torch)."""
    from .launch import gpus as inventory
    from .launch.scheduler import Slots

    try:
        ids = inventory.select(gpus, inventory.detect())
    except inventory.GpuError as e:
        raise fail(str(e)) from None
    return Slots(ids, per_gpu or 1, parallel or 1)


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="experiments.toml")],
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this experiment (repeatable).")
    ] = None,
    runs_dir: RunsDirOpt = None,
    device: DeviceOpt = None,
    parallel: ParallelOpt = None,
    gpus: GpusOpt = None,
    per_gpu: PerGpuOpt = None,
    detach: DetachOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Start finished or changed runs over.")] = False,
) -> None:
    """Queue experiments on GPU/CPU slots and train them in detached workers, a progress bar per run.

    Ctrl-C stops this command's runs cleanly (checkpoints written, exit 130).

    A second `grok run` on the same runs directory hands its runs to the scheduler already there.

    --detach returns at once: follow with `grok ls` or `grok logs RUN -f`, stop with `grok stop`.
    """
    from .config import ConfigError
    from .launch.local import LaunchError, check_spec, prepare_run, run_path
    from .runs import SPEC, RunDir

    cfg = load(file)
    try:
        specs = cfg.select(only)
    except ConfigError as e:
        raise fail(str(e)) from None
    _check_device(device)
    root = runs_dir or cfg.runs_dir
    slots = _slots(gpus, per_gpu, parallel)
    # Check every run before creating any, so a refusal leaves the runs directory as it was.
    for spec in specs:
        existing = RunDir(run_path(spec, root))
        if not force and (existing.path / SPEC).exists() and not existing.alive():
            try:
                check_spec(existing, spec)
            except LaunchError as e:
                raise fail(str(e)) from None
    todo: list[RunDir] = []
    skipped: list[RunDir] = []
    for spec in specs:
        try:
            r, action = prepare_run(spec, root, force)
        except LaunchError as e:
            raise fail(str(e)) from None
        if action in ("new", "resume"):
            todo.append(r)
        else:
            why = "already done (use --force to rerun)" if action == "done" else "already has a live worker"
            typer.echo(f"grok: {r.run_id}: {why}")
            skipped.append(r)
    code = _launch(root, todo, slots, device, detach, explicit=(gpus, per_gpu, parallel))
    if not detach and todo + skipped and code != EXIT_HANGUP:
        table_console().print(summary_table([r.summary() for r in todo + skipped]))
    raise typer.Exit(code)


@app.command()
def resume(
    run_refs: Annotated[list[str], typer.Argument(metavar="RUN", help="Runs to continue.")],
    runs_dir: RunsDirOpt = None,
    device: DeviceOpt = None,
    parallel: ParallelOpt = None,
    gpus: GpusOpt = None,
    per_gpu: PerGpuOpt = None,
    detach: DetachOpt = False,
) -> None:
    """Continue stopped or failed runs from their last checkpoint (exact on CPU), through the queue."""
    _check_device(device)
    targets = [get_run(runs_dir, ref) for ref in run_refs]
    roots = {r.path.resolve().parents[1] for r in targets}
    if len(roots) > 1:
        raise fail("grok resume: the runs are in different runs directories; resume them separately")
    todo = []
    for r in targets:
        st = r.status()
        if r.alive():
            typer.echo(f"grok: {r.run_id}: already running")
        elif st.get("state") == "done":
            typer.echo(f"grok: {r.run_id}: already done (use `grok run --force` to start it over)")
        elif r not in todo:
            todo.append(r)
    code = _launch(
        roots.pop(), todo, _slots(gpus, per_gpu, parallel), device, detach, (gpus, per_gpu, parallel)
    )
    if not detach and todo and code != EXIT_HANGUP:
        table_console().print(summary_table([r.summary() for r in todo]))
    raise typer.Exit(code)


def _launch(root: Path, todo, slots, device: str | None, detach: bool, explicit: tuple) -> int:
    """Hand ``todo`` to the scheduler of ``root``: detached (return at once) or watched in the foreground."""
    from .launch.scheduler import scheduler_info, send, spawn_daemon
    from .launch.session import Session

    if not todo:
        return 0
    root = Path(root).resolve()
    if not detach:
        return _drive(Session(root, slots, lambda m: typer.echo(f"grok: {m}")), todo, device)
    for r in todo:
        send(root, "queue", r.path, device=device)
    info = scheduler_info(root)
    if info is not None:
        typer.echo(
            f"grok: queued {len(todo)} run(s) with the scheduler already running in {root} "
            f"(pid {info.get('pid')})"
        )
        _note_slots(info, slots, explicit)
    else:
        proc = spawn_daemon(root, slots)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            info = scheduler_info(root)
            if info is not None and info.get("pid") == proc.pid:
                break
            time.sleep(0.05)
        typer.echo(
            f"grok: queued {len(todo)} run(s); a detached scheduler (pid {proc.pid}, {slots.describe()}) "
            "drains the queue"
        )
    typer.echo(
        "grok: follow with `grok ls` or `grok logs RUN -f`; stop with `grok stop RUN` or `grok stop --all`"
    )
    return 0


def _note_slots(info: dict[str, Any], slots, explicit: tuple) -> None:
    if any(v is not None for v in explicit) and (
        list(slots.gpus) != info.get("gpus")
        or slots.per_gpu != info.get("per_gpu")
        or slots.cpu != info.get("cpu")
    ):
        typer.echo(
            f"grok: note: the live scheduler keeps its own slots (GPU {info.get('gpus') or 'none'}, "
            f"{info.get('per_gpu')} per GPU, {info.get('cpu')} on CPU); "
            "--gpus/--per-gpu/--parallel are ignored",
            err=True,
        )


class _HangUp(Exception):
    """The terminal went away (SIGHUP): leave the runs to a detached scheduler, say nothing."""


def _drive(session, todo, device: str | None) -> int:
    """Foreground: submit ``todo``, draw a progress bar per run until each ends.

    Ctrl-C or SIGTERM stops these runs (checkpoints written) and returns 130; a hang-up hands every run to a
    detached scheduler and returns 129; else non-zero if any run failed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .launch.scheduler import POLL_S, scheduler_info
    from .runs import METRICS, JsonlTail

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

            def say(msg: str) -> None:
                if not hung["up"]:
                    with contextlib.suppress(OSError):
                        progress.console.print(f"grok: {msg}", highlight=False, markup=False)

            session.log = say
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
                            f"train {_fmt_acc(last.get('train_acc'))}  test {_fmt_acc(last.get('test_acc'))}"
                        )
                    state = st.get("state")
                    if state == "failed" or (m and m.action == "error"):
                        err = (
                            st.get("error") or (m.message if m else "") or f"exit code {st.get('returncode')}"
                        )
                        fields["acc"] = f"[red]failed: {err}[/]"
                    elif state == "stopped":
                        fields["acc"] = "[yellow]stopped[/]"
                    progress.update(bar, total=st.get("total_steps"), completed=st.get("step") or 0, **fields)

            try:
                session.submit([r.path for r in todo], device)
                if session.sched is None:
                    info = scheduler_info(session.runs_dir) or {}
                    say(
                        f"handed {len(todo)} run(s) to the scheduler already running here "
                        f"(pid {info.get('pid')})"
                    )
                try:
                    while not session.done():
                        session.tick()
                        redraw()
                        time.sleep(POLL_S)
                except KeyboardInterrupt:
                    interrupted = True
                    say("stopping runs (checkpoints are written)… Ctrl-C again kills them")
                    session.interrupt()
                    while not session.done():
                        try:
                            session.tick()
                            redraw()
                            time.sleep(POLL_S)
                        except KeyboardInterrupt:
                            say("killing workers (their last checkpoint stays)")
                            session.kill()
                redraw()
            finally:
                # Runs still queued or running for other `grok run`s (or, after a hang-up, for this one)
                # go to a detached successor: nothing is stranded when this process leaves.
                session.close()
    except (_HangUp, OSError):
        if not hung["up"]:
            raise
        return EXIT_HANGUP
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if interrupted:
        typer.echo("grok: stopped; `grok resume RUN` continues a run from its last checkpoint")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if session.failed() else 0


def _runs_root(r) -> Path:
    return r.path.resolve().parents[1]


@app.command()
def stop(
    run_refs: Annotated[list[str] | None, typer.Argument(metavar="RUN", help="Runs to stop.")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Stop every queued or running run.")] = False,
    runs_dir: RunsDirOpt = None,
    grace: Annotated[float, typer.Option(min=0, help="Seconds between SIGTERM and SIGKILL.")] = 30.0,
) -> None:
    """Stop runs: queued ones leave the queue; workers get SIGTERM, checkpoint and exit (SIGKILL after
    --grace). The last checkpoint stays: `grok resume RUN` continues."""
    from .launch.local import signal_run
    from .launch.scheduler import scheduler_info, send
    from .runs import ACTIVE_STATES, list_runs, update_status

    if all_runs == bool(run_refs):
        raise fail("grok stop: name runs, or --all (not both)")
    if all_runs:
        root = default_runs_dir(runs_dir)
        if not root.is_dir():
            raise fail(f"no runs directory '{root}'")
        targets = [r for r in list_runs(root) if r.alive() or r.status().get("state") in ACTIVE_STATES]
        if not targets:
            typer.echo(f"grok: nothing queued or running in {root}")
            return
    else:
        targets = []
        for ref in run_refs or []:
            r = get_run(runs_dir, ref)
            st = r.status()
            if not r.alive() and st.get("state") not in ACTIVE_STATES:
                typer.echo(f"grok: {r.run_id}: not running ({st.get('state')})")
            elif r.path not in [t.path for t in targets]:
                targets.append(r)
    signalled: dict[Path, int | None] = {}
    for r in targets:
        root = _runs_root(r)
        if scheduler_info(root) is not None:
            send(root, "stop", r.path, grace=grace)
        elif not r.alive() and r.raw_status().get("state") == "queued":
            update_status(r.path, state="stopped", ended=time.time())
        signalled[r.path] = signal_run(r, signal.SIGTERM)

    def active(r) -> bool:
        return r.alive() or r.status().get("state") in ACTIVE_STATES

    deadline = time.monotonic() + grace
    killed_at: float | None = None
    left = list(targets)
    while left:
        left = [r for r in left if active(r)]
        now = time.monotonic()
        for r in left:
            pid = r.raw_status().get("pid")
            if r.alive() and signalled.get(r.path) != pid:  # started after the first signal: signal it too
                signalled[r.path] = signal_run(r, signal.SIGTERM)
        if left and killed_at is None and now >= deadline:
            for r in left:
                signal_run(r, signal.SIGKILL)
            killed_at = now
        if left and killed_at is not None and now >= killed_at + 10:
            break
        if left:
            time.sleep(0.1)
    code = 0
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
            code = EXIT_FAILED
        else:
            typer.echo(f"grok: {r.run_id}: {st.get('state')} at step {st.get('step') or 0}")
    if code == 0 and any(r.status().get("state") == "stopped" for r in targets):
        typer.echo("grok: `grok resume RUN` continues from the last checkpoint")
    raise typer.Exit(code)


@app.command()
def logs(
    run_ref: Annotated[
        str | None, typer.Argument(metavar="RUN", help="Run whose worker.log to print.")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
    lines: Annotated[int | None, typer.Option("--lines", "-n", min=0, help="Only the last N lines.")] = None,
    scheduler: Annotated[
        bool, typer.Option("--scheduler", help="The detached scheduler's log instead of a run's.")
    ] = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Print a run's worker.log (stdout and stderr of its workers); -f follows it until the run ends."""
    from .launch.scheduler import LOG as SCHED_LOG
    from .launch.scheduler import scheduler_info, state_dir
    from .runs import ACTIVE_STATES, LOG

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

    if not path.exists() and not (follow and live()):
        raise fail(f"{what} has no {LOG if not scheduler else SCHED_LOG} yet")
    out = sys.stdout.buffer
    offset = 0
    try:
        if path.exists():
            data = path.read_bytes()
            offset = len(data)
            if lines is not None:
                data = b"".join(data.splitlines(keepends=True)[-lines:]) if lines else b""
            out.write(data)
            out.flush()
        while follow:
            running = live()
            with contextlib.suppress(OSError), open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
                offset += len(chunk)
                if chunk:
                    out.write(chunk)
                    out.flush()
            if not running:
                break
            time.sleep(0.25)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = None  # type: ignore[assignment]
        raise typer.Exit(0) from None


# --------------------------------------------------------------------------- ls / show / export


@app.command("ls")
def ls(
    runs_dir: RunsDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Table of runs: state, step, accuracies, memorised at and grokked at."""
    from .runs import list_runs

    root = default_runs_dir(runs_dir)
    if not root.is_dir():
        raise fail(f"no runs directory '{root}' (start runs with `grok run experiments.toml`)")
    summaries = [r.summary() for r in list_runs(root)]
    if as_json:
        keys = (
            "run_id",
            "state",
            "step",
            "total_steps",
            "train_acc",
            "test_acc",
            "memorised_at",
            "grokked_at",
            "device",
            "error",
        )
        typer.echo(json.dumps([{k: getattr(s, k) for k in keys} for s in summaries], indent=1))
        return
    table_console().print(summary_table(summaries, title=str(root)))


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


@app.command()
def show(
    run_ref: Annotated[
        str, typer.Argument(metavar="RUN", help="experiment/run, a unique run or experiment name, or a path.")
    ],
    runs_dir: RunsDirOpt = None,
    width: Annotated[int, typer.Option(help="Plot width in columns.")] = 100,
) -> None:
    """Summary of one run and its curves: accuracy (log-x), loss (log-y), progress measures."""

    from . import plots

    r = get_run(runs_dir, run_ref)
    rows = r.metrics()
    s = r.summary(rows)
    console = table_console()
    console.print(summary_table([s]))
    if not rows:
        console.print("no evaluations yet")
        return
    acc = {k.split("_")[0]: _series(rows, k) for k in ("train_acc", "test_acc")}
    print(plots.curves(acc, f"{s.run_id}: accuracy", width=width, ylim=(0, 1)))
    loss = {k.split("_")[0]: _series(rows, k) for k in ("train_loss", "test_loss")}
    print(plots.curves(loss, f"{s.run_id}: loss", width=width, log_y=True))
    from .inspect_cmd import progress_curves

    for chart in progress_curves(r.path, width):
        print(chart)


def flatten_row(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(flatten_row(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out[prefix + k] = json.dumps(v)
        else:
            out[prefix + k] = v
    return out


@app.command()
def export(
    run_ref: Annotated[str, typer.Argument(metavar="RUN")],
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")
    ] = None,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Export a run's metrics (every evaluation, every measure) as CSV or JSON lines."""
    if fmt not in ("csv", "jsonl"):
        raise fail(f"--format '{fmt}' is not csv or jsonl")
    r = get_run(runs_dir, run_ref)
    rows = [flatten_row(row) for row in r.metrics()]
    out = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == "jsonl":
            for row in rows:
                out.write(json.dumps(row) + "\n")
        else:
            cols: list[str] = []
            for row in rows:
                cols.extend(k for k in row if k not in cols)
            writer = csv.DictWriter(out, fieldnames=cols)
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if output:
            out.close()


@app.command("inspect")
def inspect_cmd(
    run_ref: Annotated[
        str, typer.Argument(metavar="RUN", help="experiment/run, a unique run or experiment name, or a path.")
    ],
    step: Annotated[int | None, typer.Option("--step", help="Checkpoint step (default: the last).")] = None,
    last: Annotated[bool, typer.Option("--last", help="The last checkpoint (the default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text and charts.")] = False,
    runs_dir: RunsDirOpt = None,
    width: Annotated[int, typer.Option(help="Chart width in columns.")] = 100,
) -> None:
    """Key frequencies, W_E/W_L spectra, restricted/excluded loss, Gini, FFD/FCR and phase of a checkpoint."""
    from .inspect_cmd import inspect

    if step is not None and last:
        raise fail("--step and --last exclude each other")
    r = get_run(runs_dir, run_ref)
    code = inspect(r.path, None if last else step, as_json, width)
    if code:
        raise typer.Exit(code)


@app.command()
def tui(
    file: Annotated[
        Path | None, typer.Argument(help="experiments.toml (default: ./experiments.toml if present)")
    ] = None,
    runs_dir: RunsDirOpt = None,
    no_mouse: Annotated[bool, typer.Option("--no-mouse", help="Leave the mouse to the terminal.")] = False,
) -> None:
    """Watch, steer and take apart runs in the terminal UI (= `grok-tui`); quitting never stops a run."""
    from .tui.app import run_app

    raise typer.Exit(run_app(file, runs_dir, mouse=not no_mouse))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
