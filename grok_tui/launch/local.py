"""Workers on this machine: run directories prepared from specs, workers spawned detached, signalled.

A worker is started in its own session with stdin from /dev/null and output to ``worker.log`` (never a
pipe): it survives the launching terminal, an SSH hang-up and the TUI quitting. Whoever
spawned it must reap it (``Popen.poll``) while it lives; once the spawner exits, init does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .. import packing, runs
from ..recorder import open_log, refusal, request_stop, update_status, write_json_atomic
from .base import Slot
from .gpus import FAKE_ENV
from .inbox import state_dir

# Keys whose change does not make an existing run a different experiment.
_IGNORED_SPEC_KEYS = {"version", "description", "loaded_from"}
WORKER_MODULE = "grok_tui.worker"
#: What a run started here says of where it runs: a run Slurm ran before is this machine's now (`grok
#: stop` signals it here, the scheduler adopts it, no reader takes Slurm's old word for its state).
LOCAL = {"backend": "local", "slurm_state": None, "slurm_reason": None, "slurm_seen": None}


class LaunchError(RuntimeError):
    """A run that cannot be (re)started as asked; the message is one line naming the run."""


class LinkRefused(OSError):
    """A worker was to start in a run directory holding a symbolic link (an OSError, as a failed
    start is for whoever spawns workers); the message is the one line naming the link."""


def _refuse_links(run_dir: Path) -> None:
    line = refusal(run_dir)
    if line:
        raise LaunchError(line)


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose value differs; a key newer than the old spec.json counts as its default there (a run made
    before ``on_nan`` existed is the same experiment as one that leaves it at "fail")."""
    from ..config import with_added_keys

    old = with_added_keys(old)
    keys = (set(old) | set(new)) - _IGNORED_SPEC_KEYS
    return sorted(k for k in keys if old.get(k) != new.get(k))


def run_path(spec: dict[str, Any], runs_dir: Path) -> Path:
    return Path(runs_dir) / spec["experiment"] / spec["name"]


def check_spec(run: runs.RunDir, spec: dict[str, Any]) -> None:
    """Raise LaunchError when an existing run was made from a different spec (ask for --force)."""
    changed = spec_changes(run.spec(), spec)
    if changed:
        raise LaunchError(
            f"{run.path}: spec.json differs from the experiments file in {', '.join(changed)}; "
            "use --force to start this run over"
        )


def _create(path: Path, spec: dict[str, Any]) -> bool:
    """Make a run directory appear whole (spec + queued status) or not at all: build it in a staging
    directory, then rename it into place. False when another process created it first."""
    staging = (
        runs.state_dir(path.parents[1]) / "staging" / f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    )
    staging.mkdir(parents=True)
    try:
        write_json_atomic(staging / runs.SPEC, spec)
        write_json_atomic(
            staging / runs.STATUS,
            {"state": "queued", "step": 0, "total_steps": spec["steps"], "queued": time.time()},
        )
        _refuse_links(path)  # a linked experiment directory, or debris holding links
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, path)  # atomic; replaces only an empty directory
            return True
        except OSError:
            if (path / runs.SPEC).exists():
                return False
            # Debris without a spec (an old partial run directory): fill it in place.
            for name in (runs.SPEC, runs.STATUS):
                os.replace(staging / name, path / name)
            return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prepare_run(spec: dict[str, Any], runs_dir: Path, force: bool = False) -> tuple[runs.RunDir, str]:
    """Create or reuse ``runs_dir/<experiment>/<name>``; returns (run, action) with action one of
    ``new`` (fresh, state queued), ``resume`` (stopped/failed/queued: continue), ``done`` (finished,
    skip), ``live`` (a worker owns it, skip). ``force`` discards an existing run that no worker owns.
    Safe against a concurrent caller: a run directory is created exactly once. A run directory holding
    a symbolic link (runs.symlinks) is a LaunchError: nothing is written or removed through a link."""
    run = runs.RunDir(run_path(spec, runs_dir))
    for _ in range(3):
        if (run.path / runs.SPEC).exists():
            if run.alive():
                return run, "live"
            _refuse_links(run.path)
            if line := runs.untrainable(run.spec(), run.run_id):
                raise LaunchError(line)
            if force:
                shutil.rmtree(run.path)
                force = False  # once: a concurrent creator after this point wins
            else:
                check_spec(run, spec)
                state = run.status().get("state")
                return run, "done" if state == "done" else "resume"
        if _create(run.path, spec):
            return run, "new"
    raise LaunchError(f"{run.path}: could not create the run directory (created and removed concurrently?)")


def worker_env(
    device: str | None = None, threads: int | None = None, gpu: str | None = None
) -> dict[str, str]:
    """Environment of a worker. ``gpu``: a CUDA_VISIBLE_DEVICES id, "" to hide every GPU, None to leave
    the variable as inherited. ``device`` is passed as GROK_DEVICE (overrides spec.json's device)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("GROK_DEVICE", None)
    if device:
        env["GROK_DEVICE"] = device
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


def spawn_worker(run_dir: Path, env: dict[str, str] | None = None, note: str = "") -> subprocess.Popen:
    """Start ``python -m grok_tui.worker RUN_DIR`` detached from this process's terminal and session.

    A line ``grok: <time> starting worker ...`` is appended to worker.log first, so the log tells every
    start of the run apart. LinkRefused (nothing started, nothing written) for a run directory holding a
    symbolic link."""
    run_dir = Path(run_dir)
    line = refusal(run_dir)
    if line:
        raise LinkRefused(line)
    with open(open_log(run_dir), "ab", buffering=0) as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"grok: {stamp} starting worker{' ' + note if note else ''}\n".encode())
        return subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(run_dir.resolve())],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env if env is not None else worker_env(),
        )


def spawn_pack(run_dirs: list[Path], env: dict[str, str], pack_id: str, note: str = "") -> subprocess.Popen:
    """Start ``python -m grok_tui.worker RUN_DIR ...``, one packed worker for every run, detached like
    :func:`spawn_worker`. Each member's worker.log gets the ``grok: <time> starting worker in pack ...``
    line; the process's own output goes to ``<runs_dir>/.grok/packs/<pack id>.log`` (a pack's messages
    belong to no one member). LinkRefused (nothing started, nothing written) for a member holding a link."""
    run_dirs = [Path(d) for d in run_dirs]
    for d in run_dirs:
        if line := refusal(d):
            raise LinkRefused(line)
    packs = state_dir(run_dirs[0].parents[1]) / "packs"
    packs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    start = f"grok: {stamp} starting worker in pack {pack_id} ({len(run_dirs)} members)"
    start += f" {note}\n" if note else "\n"
    for d in run_dirs:
        with open(open_log(d), "ab", buffering=0) as log:
            log.write(start.encode())
    fd = os.open(packs / f"{pack_id}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    with open(fd, "ab", buffering=0) as log:
        members = " ".join(runs.RunDir(d).run_id for d in run_dirs)
        log.write(f"{start.rstrip()}: {members}\n".encode())
        return subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, *(str(d.resolve()) for d in run_dirs)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**env, packing.PACK_ID_ENV: pack_id},
        )


def clear_stop_request(run_dir: Path) -> None:
    """Remove a stop.request that no live worker will read (its run ended, or its pack died before it
    read it): left there, it would stop the run's next packed worker at once."""
    with contextlib.suppress(FileNotFoundError):
        (Path(run_dir) / runs.STOP_REQUEST).unlink()


def effective_device(run: runs.RunDir, device: str | None) -> str:
    """The device a run is started with: the override, else its spec's ("auto" when it names none)."""
    dev = run.spec().get("device")
    return device or (dev if isinstance(dev, str) and dev else str(dev or "auto"))


class LocalWorker:
    """A worker process this process started (it leads its own process group); ``pack`` is its pack id
    when it trains several runs."""

    def __init__(self, proc: subprocess.Popen, pack: str | None = None) -> None:
        self.proc = proc
        self.id = str(proc.pid)
        self.pack = pack

    def poll(self) -> int | None:
        return self.proc.poll()

    def signal(self, sig: int) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)


class LocalLauncher:
    """Workers as detached processes of this machine; a GPU slot becomes CUDA_VISIBLE_DEVICES."""

    @staticmethod
    def _env(run: runs.RunDir, slot: Slot, device: str | None, threads: int) -> dict[str, str]:
        dev = effective_device(run, device)
        if slot.gpu is not None:
            # One GPU visible: "cuda:N" of the spec is that GPU, now called "cuda". A run on a GPU slot
            # never falls back to the CPU unnoticed: "auto" becomes "cuda", so a GPU torch cannot use fails
            # the run with "CUDA unavailable" (except for the tests' declared GPUs, which are not there).
            fake = FAKE_ENV in os.environ
            on_gpu = dev.startswith("cuda") or (dev == "auto" and not fake)
            return worker_env("cuda" if on_gpu else device, threads, slot.gpu)
        # CPU pool: hide GPUs, so a run here never takes one the scheduler did not hand out.
        return worker_env(device, threads, "")

    def start(self, run: runs.RunDir, slot: Slot, device: str | None, threads: int) -> LocalWorker:
        env = self._env(run, slot, device, threads)
        if line := refusal(run.path):  # before anything is written into it
            raise LinkRefused(line)
        clear_stop_request(run.path)
        # pack None: a solo worker, so `grok stop` signals it rather than asking a pack that is gone
        update_status(run.path, gpu=slot.gpu, scheduler_pid=os.getpid(), pack=None, **LOCAL)
        return LocalWorker(
            spawn_worker(run.path, env, note=f"on {slot.describe()} (scheduler {os.getpid()})")
        )

    def start_pack(
        self, members: list[runs.RunDir], slot: Slot, device: str | None, threads: int
    ) -> LocalWorker:
        """One packed worker for ``members`` (the scheduler checked they share a packing.pack_key)."""
        env = self._env(members[0], slot, device, threads)
        for run in members:
            if line := refusal(run.path):
                raise LinkRefused(line)
        pack_id = packing.new_pack_id()
        for run in members:
            clear_stop_request(run.path)
            update_status(run.path, gpu=slot.gpu, scheduler_pid=os.getpid(), **LOCAL)
        note = f"on {slot.describe()} (scheduler {os.getpid()})"
        return LocalWorker(spawn_pack([r.path for r in members], env, pack_id, note), pack=pack_id)


# --------------------------------------------------------------------------- signalling a run


def _is_worker(pid: int) -> bool:
    """Guard against a recycled pid in status.json: the process must be a grok worker."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return WORKER_MODULE.encode() in f.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc (not Linux): trust the lock that said the run is alive


def live_pack(status: dict[str, Any]) -> str | None:
    """The pack id a live run's status.json names (its worker trains other runs too), else None."""
    pack = status.get("pack")
    ident = pack.get("id") if isinstance(pack, dict) else None
    return ident if isinstance(ident, str) and ident else None


def signal_run(run: runs.RunDir, sig: int) -> int | None:
    """Send ``sig`` to the live worker of ``run`` (its whole process group when it leads one).

    A member of a pack is stopped alone: SIGTERM becomes its stop.request (a signal would stop every
    member); SIGKILL still kills the pack's whole process group (the others stay resumable).
    Returns the pid signalled, or None when no live worker could be signalled (not running, or its
    status.json does not name it yet: call again on the next poll)."""
    st = run.raw_status()
    if st.get("backend") == runs.SLURM:  # its worker may be on another node: Slurm delivers the signal
        return _signal_slurm(run, sig, st)
    if not run.alive():
        return None
    pid, pgid = st.get("pid"), st.get("pgid")
    if not isinstance(pid, int) or pid <= 1 or not _is_worker(pid):
        return None
    if sig == signal.SIGTERM and live_pack(st):
        try:
            request_stop(run.path)
        except OSError:
            return None
        return pid
    try:
        if isinstance(pgid, int) and pgid == pid and pgid != os.getpgid(0):
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return None
    return pid


def _signal_slurm(run: runs.RunDir, sig: int, st: dict[str, Any]) -> int | None:
    from . import slurm

    try:
        sent = slurm.kill_run(run) if sig == signal.SIGKILL else slurm.stop_run(run)
    except slurm.SlurmError:
        return None
    pid = st.get("pid")
    return (pid if isinstance(pid, int) else 0) if sent else None


def describe_exit(returncode: int) -> str:
    """Why a worker ended without writing its final status, in one line."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        extra = " (kill -9, or the kernel's out-of-memory killer)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{extra}"
    return f"worker exited with code {returncode} before writing its status; see {runs.LOG}"
