"""Workers as Slurm batch jobs: one job array per submission, one array task per worker (or pack).

Slurm is the queue: nothing of grok-tui needs to stay alive for the runs to progress. The run directories
on the shared filesystem stay the source of truth: each array task runs the same ``python -m
grok_tui.worker DIR …`` the local launcher runs, which holds each run's lock and writes its status.json.
What only Slurm knows (a job cancelled while pending, a node that died, a job killed past its time limit
before the worker could say so) is brought into status.json by :func:`reconcile`, which the CLI calls and
the TUI calls from a thread (Slurm's commands can hang; the TUI never waits for them).

The client is Slurm's own command line (``sbatch --parsable``, ``squeue``, ``scontrol``, ``scancel``,
``sacct`` where accounting exists) through ``subprocess``: the interface Slurm keeps stable across
versions, and one that needs no accounting database to see a cancellation (submitit reads job states from
``sacct`` alone) and pickles nothing: a requeued job reruns its script, and its worker resumes from the run
directory's latest checkpoint.

Stopping: the worker is the batch step's own process (``exec``), so ``scancel --batch --signal=TERM``
reaches it and nothing else, and ``#SBATCH --signal=B:TERM@N`` warns it ``stop_before`` seconds before the
time limit: it checkpoints and ends ``stopped`` with reason "time limit". ``grok stop`` writes the run's
``stop.request`` first, so the worker can tell a stop it was asked for from one Slurm imposed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import packing, runs
from ..recorder import queued_fields, refusal, request_stop, update_status, write_json_atomic
from .inbox import state_dir
from .local import WORKER_MODULE, LaunchError, clear_stop_request, describe_exit, effective_device

BACKEND = runs.SLURM
#: Seconds any one Slurm command may take before it is given up (a hung controller must not hang grok).
COMMAND_TIMEOUT_S = 15.0
#: Job states after which the job runs no more (Slurm's JOB_STATE names, as squeue/sacct/scontrol print).
ENDED = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}
#: How an ended job whose worker could not write its last word ends its runs: (state, reason).
ENDINGS = {
    "CANCELLED": ("stopped", "cancelled in Slurm"),
    "TIMEOUT": ("stopped", "time limit"),
    "PREEMPTED": ("stopped", "preempted"),
    "DEADLINE": ("stopped", "deadline"),
    "NODE_FAIL": ("failed", "node failure"),
    "BOOT_FAIL": ("failed", "node failed to boot"),
    "OUT_OF_MEMORY": ("failed", "out of memory"),
    "FAILED": ("failed", "Slurm job failed"),
    "COMPLETED": ("failed", "the job ended without the worker's final status"),
}
#: What slurmstepd writes into a job's output when it kills it: the reason where Slurm forgot the job.
_KILLED_RE = re.compile(rb"\*\*\* (?:JOB|STEP) [0-9_.]+ ON \S+ CANCELLED AT \S+(?: DUE TO ([A-Z ]+))? \*\*\*")
_DUE = {b"TIME LIMIT": "TIMEOUT", b"PREEMPTION": "PREEMPTED", b"NODE FAILURE": "NODE_FAIL"}


class SlurmError(RuntimeError):
    """A Slurm command that failed or is missing; the message is one line naming the command."""


# --------------------------------------------------------------------------- the client


def _command(argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run one Slurm command; its stdout, or SlurmError with its first line of stderr."""
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"{argv[0]}: not found: is Slurm installed, and its commands on PATH?")
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{argv[0]}: no answer in {timeout:g} s (is slurmctld up?)") from None
    except OSError as e:
        raise SlurmError(f"{argv[0]}: cannot run: {e.strerror or e}") from None
    if done.returncode != 0:
        first = next((ln.strip() for ln in done.stderr.splitlines() if ln.strip()), "")
        raise SlurmError(f"{argv[0]} failed (code {done.returncode}): {first or 'no message'}")
    return done.stdout


def cancel(job: str, signal: str | None = None) -> None:
    """``scancel``: the whole job (SIGTERM, then SIGKILL after Slurm's KillWait), or only ``signal`` to
    its batch step (the worker itself), which then ends on its own."""
    argv = ["scancel", *(["--batch", f"--signal={signal}"] if signal else []), job]
    _command(argv)


@dataclass(frozen=True)
class JobState:
    """What Slurm says of one job (an array task): its state, why it is pending, its node, its exit."""

    state: str
    reason: str = ""
    node: str = ""
    exit_code: str = ""


def _job_key(job: str) -> str:
    return job.strip()


SQUEUE_FORMAT = "%A|%K|%T|%r|%N"


def parse_squeue(text: str) -> dict[str, JobState]:
    """Rows of ``squeue -h -r -t all -o SQUEUE_FORMAT``: array job id, task id ("N/A" for a job that is
    no array, and for an array's own record: a whole array cancelled while pending), state, reason, node."""
    out: dict[str, JobState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 5 and parts[0]:
            key = f"{parts[0]}_{parts[1]}" if parts[1].isdigit() else parts[0]
            out[_job_key(key)] = JobState(parts[2].split()[0] if parts[2] else "", parts[3], parts[4])
    return out


def parse_sacct(text: str) -> dict[str, JobState]:
    """Rows of ``sacct -n -P -X -o JobID,State,NodeList,ExitCode``; "CANCELLED by 0" is CANCELLED."""
    out: dict[str, JobState] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 4 and parts[0]:
            state = parts[1].split()[0] if parts[1] else ""
            out[_job_key(parts[0])] = JobState(state, "", parts[2], parts[3])
    return out


_no_accounting: set[str] = set()


def query(jobs: Iterable[str]) -> dict[str, JobState]:
    """Slurm's state of ``jobs`` (array task ids such as ``12_3``): from ``sacct`` where accounting
    exists (it remembers every job), else from ``squeue`` (which forgets a job MinJobAge seconds after it
    ends). A job missing from the answer is one Slurm no longer knows. SlurmError when Slurm cannot be
    asked at all."""
    wanted = sorted({_job_key(j) for j in jobs})
    if not wanted:
        return {}
    found: dict[str, JobState] = {}
    conf = os.environ.get("SLURM_CONF", "")
    if conf not in _no_accounting:
        try:
            text = _command(
                ["sacct", "-n", "-P", "-X", "-o", "JobID,State,NodeList,ExitCode", "-j", ",".join(wanted)]
            )
            found = parse_sacct(text)
        except SlurmError:
            _no_accounting.add(conf)  # accounting_storage/none: sacct says so; squeue it is from now on
    if not all(j in found for j in wanted):
        live = parse_squeue(_command(["squeue", "-h", "-r", "-t", "all", "-o", SQUEUE_FORMAT]))
        for j in wanted:
            # a task Slurm lists on its own, else its array's own record (the whole array cancelled)
            if j not in found and (js := live.get(j) or live.get(j.split("_")[0])):
                found[j] = js
    return {j: found[j] for j in wanted if j in found}


def killed_in_output(output: Path) -> str | None:
    """The job state slurmstepd's last "*** JOB … CANCELLED AT … ***" line names in a job's output, or
    None: how a job is known to have been killed once Slurm has forgotten it."""
    try:
        with open(output, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read()
    except OSError:
        return None
    hits = list(_KILLED_RE.finditer(tail))
    if not hits:
        return None
    due = hits[-1].group(1)
    if due and due.strip() == b"JOB REQUEUE":
        return None  # killed to run again: not an end
    return _DUE.get(due.strip(), "CANCELLED") if due else "CANCELLED"


# --------------------------------------------------------------------------- submission


def sbatch_options(opts: dict[str, Any]) -> list[str]:
    """The ``[slurm]`` table as sbatch options (array, output and signal are the submission's own)."""
    out = []
    for key, flag in (("partition", "partition"), ("account", "account"), ("qos", "qos"), ("time", "time")):
        if opts.get(key):
            out.append(f"--{flag}={opts[key]}")
    if opts.get("mem"):
        out.append(f"--mem={opts['mem']}")
    out.append(f"--cpus-per-task={int(opts.get('cpus_per_task') or 1)}")
    if opts.get("gpus_per_job"):
        out.append(f"--gpus={int(opts['gpus_per_job'])}")
    out.extend(str(x) for x in opts.get("extra") or [])
    return out


def _task_device(run: runs.RunDir, device: str | None, gpus: int) -> str | None:
    """GROK_DEVICE of a task: the override, or "cuda" for an "auto" run in a GPU job (a job given a GPU
    never trains on the CPU unnoticed). LaunchError for a run that asks for CUDA in a job without one."""
    dev = effective_device(run, device)
    if gpus and dev == "auto":
        return "cuda"
    if not gpus and dev.startswith("cuda"):
        raise LaunchError(
            f"{run.run_id}: device {dev} needs a GPU, but [slurm] gpus_per_job is 0 (set it, or --device cpu)"
        )
    return device


def script(
    groups: list[tuple[str | None, list[runs.RunDir]]],
    opts: dict[str, Any],
    output: Path,
    name: str,
    devices: list[str | None],
) -> str:
    """The batch script of a job array: task i trains ``groups[i]`` (a pack id and its run directories)."""
    cap = f"%{int(opts['max_running'])}" if opts.get("max_running") else ""
    head = [
        "#!/bin/bash",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --array=0-{len(groups) - 1}{cap}",
        f"#SBATCH --output={output}",
        "#SBATCH --open-mode=append",  # a requeued task adds to its output instead of replacing it
        f"#SBATCH --signal=B:TERM@{int(opts.get('stop_before', 120))}",
        *(f"#SBATCH {o}" for o in sbatch_options(opts)),
        "# written by grok-tui: each array task trains its run directories with one worker",
        *[str(line) for line in opts.get("setup") or []],
        "export PYTHONUNBUFFERED=1",
        f"export OMP_NUM_THREADS={int(opts.get('cpus_per_task') or 1)}",
        f"export MKL_NUM_THREADS={int(opts.get('cpus_per_task') or 1)}",
        "unset GROK_DEVICE GROK_PACK_ID",
        'case "$SLURM_ARRAY_TASK_ID" in',
    ]
    if not opts.get("gpus_per_job"):
        head.insert(head.index("unset GROK_DEVICE GROK_PACK_ID"), "export CUDA_VISIBLE_DEVICES=")
    body = []
    for i, ((pack, members), dev) in enumerate(zip(groups, devices, strict=True)):
        env = []
        if pack:
            env.append(f"export {packing.PACK_ID_ENV}={shlex.quote(pack)}")
        if dev:
            env.append(f"export GROK_DEVICE={shlex.quote(dev)}")
        dirs = " ".join(shlex.quote(str(r.path)) for r in members)
        body.append(f"{i}) {'; '.join([*env, f'set -- {dirs}'])} ;;")
    tail = [
        '*) echo "grok: array task $SLURM_ARRAY_TASK_ID has no runs" >&2; exit 2 ;;',
        "esac",
        f'exec {shlex.quote(sys.executable)} -m {WORKER_MODULE} "$@"',
        "",
    ]
    return "\n".join(head + body + tail)


def groups_of(members: list[runs.RunDir], size: int) -> list[tuple[str | None, list[runs.RunDir]]]:
    """Runs grouped into workers: up to ``size`` runs of one packing.pack_key each (a run that never
    packs, or whose spec cannot be keyed, alone), in the order given."""
    if size <= 1:
        return [(None, [r]) for r in members]
    open_: dict[str, list[runs.RunDir]] = {}
    out: list[list[runs.RunDir]] = []
    for r in members:
        spec = r.spec()
        try:
            key = None if packing.solo_reason(spec) else packing.pack_key(spec)
        except (AttributeError, KeyError, TypeError, ValueError):
            key = None
        if key is None:
            out.append([r])
            continue
        group = open_.get(key)
        if group is None or len(group) >= size:
            group = open_[key] = []
            out.append(group)
        group.append(r)
    return [(packing.new_pack_id() if len(g) > 1 else None, g) for g in out]


def submit(
    root: Path,
    todo: list[runs.RunDir],
    opts: dict[str, Any],
    pack: int,
    device: str | None = None,
    name: str = "grok",
) -> tuple[str, int]:
    """Submit ``todo`` as one job array; returns (array job id, tasks). Each run's status.json says
    queued with ``backend`` slurm and its job before Slurm can start it; when sbatch fails, the runs say
    failed with sbatch's line (``grok resume`` submits them again) and SlurmError is raised."""
    root = Path(root).resolve()
    groups = groups_of(todo, pack)
    devices = []
    for _, members in groups:
        devices.append(_task_device(members[0], device, int(opts.get("gpus_per_job") or 0)))
    for r in todo:
        if line := refusal(r.path):
            raise LaunchError(line)
    where = state_dir(root) / "slurm"
    where.mkdir(parents=True, exist_ok=True)
    sub = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    path = where / f"{sub}.sh"
    output = where / "%A_%a.out"
    path.write_text(script(groups, opts, output, name, devices))
    now = time.time()
    infos = [
        {
            "job": None,
            "array": None,
            "task": i,
            "script": str(path),
            "pack": pack_id,
            "submitted": now,
            "options": opts,
        }
        for i, (pack_id, _) in enumerate(groups)
    ]
    for info, (_, members) in zip(infos, groups, strict=True):
        for r in members:
            clear_stop_request(r.path)
            update_status(
                r.path,
                **queued_fields(device, now),
                backend=BACKEND,
                slurm=info,
                slurm_state=None,
                slurm_reason=None,
                slurm_seen=None,
            )
    try:
        array = _command(["sbatch", "--parsable", str(path)]).strip().split(";")[0]
    except SlurmError as e:
        for r in todo:
            update_status(r.path, state="failed", ended=time.time(), error=f"not submitted: {e}")
        raise
    for info, (_, members) in zip(infos, groups, strict=True):
        job = f"{array}_{info['task']}"
        submitted = {**info, "job": job, "array": array, "output": str(where / f"{job}.out")}
        for r in members:
            update_status(r.path, slurm=submitted)
    write_json_atomic(where / f"{sub}.json", {"array": array, "runs": [str(r.path) for r in todo]})
    return array, len(groups)


# --------------------------------------------------------------------------- reading it back


def job_of(status: dict[str, Any]) -> str | None:
    """The Slurm job (array task) id a run's status.json names, or None (a local run, or damage): digits
    only, since it goes on scancel's command line."""
    sj = runs.slurm_job(status)
    job = sj.job if sj else None
    return job if job and re.fullmatch(r"[0-9]+(_[0-9]+)?", job) else None


def queued_in(status: dict[str, Any]) -> str | None:
    """The Slurm job that will train (or trains) a queued or running run, else None: a run Slurm has
    must not be submitted again, nor queued here."""
    job = job_of(status)
    return job if job and status.get("state") in runs.ACTIVE_STATES else None


def held_line(r: runs.RunDir) -> str | None:
    """The one line refusing to submit again, or queue here, a run Slurm still has; None otherwise."""
    job = queued_in(r.raw_status())
    return (
        f"{r.run_id}: already in Slurm (job {job}); `grok stop {r.run_id}` first to start it again"
        if job
        else None
    )


def options_of(status: dict[str, Any]) -> dict[str, Any] | None:
    """The ``[slurm]`` options a run was last submitted with (``grok resume`` submits it with them)."""
    slurm = status.get("slurm")
    opts = slurm.get("options") if isinstance(slurm, dict) else None
    return opts if isinstance(opts, dict) else None


def reconcile(targets: Iterable[runs.RunDir]) -> list[str]:
    """Bring what Slurm knows into the status.json of queued or running Slurm runs whose worker is not
    alive: pending reasons, and the end of a job whose worker could not write it (cancelled while
    pending, killed past its time limit, node failure, out of memory, requeued). Returns one line per
    run whose state changed. Silent when Slurm cannot be asked (the next call tries again)."""
    pending: dict[str, list[runs.RunDir]] = {}
    for r in targets:
        st = r.raw_status()
        job = job_of(st)
        if job and st.get("state") in runs.ACTIVE_STATES and not r.alive():
            pending.setdefault(job, []).append(r)
    if not pending:
        return []
    try:
        states = query(pending)
    except SlurmError:
        return []
    lines = []
    for job, members in pending.items():
        js = states.get(job)
        for r in members:
            if line := _settle(r, job, js):
                lines.append(line)
    return lines


def failure(job: str, exit_code: str = "") -> str:
    """Why a FAILED job failed, from its ExitCode (``code:signal``; scontrol has it where squeue does
    not): a worker killed by a signal is named so, a script that exited early by its code."""
    if not exit_code:
        with contextlib.suppress(SlurmError):
            text = _command(["scontrol", "show", "job", "-o", job], timeout=5)
            exit_code = m.group(1) if (m := re.search(r"\bExitCode=(\S+)", text)) else ""
    code, _, sig = exit_code.partition(":")
    if sig.isdigit() and int(sig):
        return describe_exit(-int(sig))
    if code.isdigit() and int(code):
        return f"the job exited with code {code} (see the job's output: `grok logs`)"
    return "Slurm job failed"


def _settle(r: runs.RunDir, job: str, js: JobState | None) -> str | None:
    st = r.raw_status()
    if r.alive() or st.get("state") not in runs.ACTIVE_STATES:
        return None  # its worker took it, or wrote its last word, since the first look
    now = time.time()
    if js is None:
        out = sj.output if (sj := runs.slurm_job(st)) else None
        if out is not None and not out.exists() and st.get("state") == "queued":
            # Never started (a job that ran has its output file), and gone from Slurm's queue: a pending
            # task cancelled alone (squeue forgets those at once), or purged.
            if now - (runs.finite(st.get("queued")) or now) < 5:
                return None  # just submitted: give the controller a moment
            js = JobState("CANCELLED", "forgotten")
        else:
            js = JobState(killed_in_output(out) or "" if out else "", "forgotten")
    if js.state not in ENDED:
        fields: dict[str, Any] = {
            "slurm_state": js.state,
            "slurm_reason": js.reason or None,
            "slurm_seen": now,
        }
        if js.node:
            fields["host"] = js.node
        if st.get("state") == "running" and js.state not in ("RUNNING", "COMPLETING"):
            fields.update(state="queued", reason="requeued")  # its worker died; Slurm runs the job again
            update_status(r.path, **fields)
            return f"{r.run_id}: requeued by Slurm (job {job})"
        # A running run whose lock this host cannot see (a filesystem without cluster-wide flock): Slurm's
        # RUNNING, seen now, is its liveness (runs.RunDir.status) until the next look.
        heartbeat = st.get("state") == "running"
        if heartbeat or any(st.get(k) != v for k, v in fields.items() if k != "slurm_seen"):
            update_status(r.path, **fields)
        return None
    state, reason = ENDINGS.get(js.state, ("failed", "the Slurm job was lost"))
    if js.state == "FAILED":
        reason = failure(job, js.exit_code)
    if not js.state:
        state, reason = "failed", f"Slurm no longer knows job {job}, and its output says nothing of its end"
    update_status(
        r.path,
        state=state,
        ended=now,
        reason=reason,
        slurm_state=js.state or None,
        slurm_seen=now,
        error=None if state == "stopped" else reason,
    )
    return f"{r.run_id}: {state} ({reason}; Slurm job {job})"


# --------------------------------------------------------------------------- stopping


def _pack_of(r: runs.RunDir) -> str | None:
    sj = runs.slurm_job(r.raw_status())
    return sj.pack if sj else None


def _pack_task_members(r: runs.RunDir) -> list[runs.RunDir]:
    """The other runs of the array task that trains ``r`` (its pack), from their status.json."""
    pack = _pack_of(r)
    if not pack:
        return []
    return [o for o in runs.list_runs(r.path.parents[1]) if o.path != r.path and _pack_of(o) == pack]


def stop_run(r: runs.RunDir) -> bool:
    """Stop a Slurm run as ``grok stop`` does a local one: its ``stop.request`` says the stop was asked
    for; a running solo worker gets SIGTERM (it checkpoints and ends ``stopped``), a running pack member
    is stopped alone by its pack, a pending task leaves Slurm's queue (state stopped at once). Whether
    Slurm took the request; SlurmError when it cannot be asked."""
    st = r.raw_status()
    job = job_of(st)
    if job is None or st.get("state") not in runs.ACTIVE_STATES:
        return False
    request_stop(r.path)
    if st.get("state") == "running" or r.alive():
        if not _pack_of(r):
            cancel(job, "TERM")
        return True
    # Pending: the task goes when none of its runs is still waiting for it.
    update_status(r.path, state="stopped", ended=time.time(), reason=None)
    others = _pack_task_members(r)
    if not any(o.raw_status().get("state") in runs.ACTIVE_STATES for o in others):
        with contextlib.suppress(SlurmError):  # it may have just ended: the reconcile says how
            cancel(job)
    return True


def kill_run(r: runs.RunDir) -> bool:
    """``scancel`` the job of ``r`` at once (a pack's task with every member): the stop's grace is over."""
    job = job_of(r.raw_status())
    if job is None:
        return False
    with contextlib.suppress(SlurmError):
        cancel(job)
        return True
    return False


# --------------------------------------------------------------------------- the worker's side


def in_job() -> str | None:
    """The job (array task) id of the Slurm job this process runs in, else None."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def worker_fields() -> dict[str, Any]:
    """What a worker inside a Slurm job adds to status.json: the GPU Slurm gave it, Slurm's view."""
    out: dict[str, Any] = {"slurm_state": "RUNNING", "slurm_reason": None, "slurm_seen": None}
    if node := os.environ.get("SLURMD_NODENAME"):
        out["host"] = node  # Slurm's name of the node (squeue's, sinfo's), which its hostname need not be
    if (gpu := os.environ.get("CUDA_VISIBLE_DEVICES")) is not None and os.environ.get("SLURM_JOB_GPUS"):
        out["gpu"] = gpu
    with contextlib.suppress(ValueError):
        if (n := int(os.environ.get("SLURM_RESTART_COUNT") or 0)) > 0:
            out["slurm_restarts"] = n
    return out


_FIELD_RE = re.compile(r"\b(JobState|StartTime|EndTime|TimeLimit)=(\S+)")
#: Slurm sends ``--signal`` up to a minute before the time asked for.
_EARLY_S = 65.0


def _clock(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def limit_seconds(text: str) -> float | None:
    """A Slurm time limit as scontrol prints it ([D-]HH:MM:SS, MM:SS), in seconds; None for UNLIMITED."""
    m = re.fullmatch(r"(?:([0-9]+)-)?(?:([0-9]+):)?([0-9]+):([0-9]+)", text)
    if not m:
        return None
    d, h, mi, sec = (int(x) if x else 0 for x in m.groups())
    return float(((d * 24 + h) * 60 + mi) * 60 + sec)


def stop_reason(job: str, lead: float) -> str:
    """Why Slurm sent this job's worker SIGTERM, asked by nobody through grok: its time limit (the
    ``stop_before`` warning while the job still runs, or the limit itself: the job then ends at its start
    plus its limit), a preemption, or a cancellation (it ends now, before its limit)."""
    try:
        text = _command(["scontrol", "show", "job", "-o", job], timeout=5)
    except SlurmError:
        return "stopped by Slurm"
    f = dict(_FIELD_RE.findall(text))
    state = f.get("JobState", "")
    if state in ("PREEMPTED", "TIMEOUT", "DEADLINE"):
        return ENDINGS[state][1]
    if state not in ("RUNNING", "COMPLETING", "CANCELLED"):  # PENDING again: `scontrol requeue`, a node
        return "requeued"
    start, end = _clock(f.get("StartTime", "")), _clock(f.get("EndTime", ""))
    limit = limit_seconds(f.get("TimeLimit", ""))
    if start is None or limit is None:
        return "cancelled in Slurm" if state != "RUNNING" else "stopped by Slurm"
    deadline = start + limit
    if state == "RUNNING":  # the warning comes while the job runs on
        return "time limit" if deadline - time.time() <= lead + _EARLY_S else "stopped by Slurm"
    if end is not None and abs(end - deadline) <= 2:
        return "time limit"
    return "cancelled in Slurm"
