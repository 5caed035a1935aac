"""Runs that belong to no terminal: detached launch, slots and queue, stop, kill -9, resume.

Real `grok` subprocesses, real workers that train, real signals; conditions are polled with deadlines.
Training is tiny (p = 11, d_model 32, a few hundred steps): a worker's cost is mostly importing torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest
from helpers import end_leftovers, like_a_terminal_job

from grok_tui import runs
from grok_tui.launch import gpus
from grok_tui.launch.inbox import INFO, pending, state_dir
from grok_tui.launch.local import LaunchError, prepare_run

DEFAULTS = """
[defaults]
device = "{device}"
"""
SPEC_TOML = """
[experiments.{name}]
task = "add"
p = {p}
train_frac = 0.5
steps = {steps}
eval_every = {eval_every}
checkpoint_every = {ckpt}
seeds = {seeds}
model = {{ d_model = 32, heads = 2, d_mlp = 64 }}
"""

BASE_ENV = {**os.environ, "GROK_FAKE_GPUS": "", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
BASE_ENV.pop("GROK_RUNS_DIR", None)
LONG = 240.0  # deadline for conditions that need workers (a loaded 2-core machine is slow to import torch)


def experiment(
    name: str, steps: int, seeds: list[int], p: int = 11, eval_every: int = 25, ckpt: int = 100
) -> str:
    return SPEC_TOML.format(name=name, p=p, steps=steps, eval_every=eval_every, ckpt=ckpt, seeds=seeds)


def write_toml(path: Path, *experiments: str, device: str = "cpu") -> Path:
    path.write_text(DEFAULTS.format(device=device) + "".join(experiments))
    return path


def grok_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "grok_tui", *map(str, args)]


def grok(*args: Any, env: dict[str, str] | None = None, timeout: float = LONG) -> subprocess.CompletedProcess:
    return subprocess.run(
        grok_argv(*args), capture_output=True, text=True, timeout=timeout, env=env or BASE_ENV, cwd="/"
    )


def wait_for(cond: Callable[[], Any], what: str, timeout: float = LONG) -> Any:
    return helpers.wait_for(cond, what, timeout)


def status(run: Path) -> dict[str, Any]:
    return runs.read_json(run / runs.STATUS) or {}


def metrics_wo_time(run: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "time"} for row in runs.read_jsonl(run / runs.METRICS)]


def new_worker(run: Path, after: float) -> int:
    """Pid of the worker that took ``run`` after time ``after`` (waits until it holds the lock)."""

    def started() -> int | None:
        st = status(run)
        if runs.lock_held(run) and st.get("state") == "running" and (st.get("started") or 0) > after:
            return int(st["pid"])
        return None

    return wait_for(started, f"a worker for {run.name}")


def pause(pid: int) -> None:
    """SIGSTOP ``pid`` and wait until it is stopped: a signal sent after this stays pending (a signal
    that arrived while SIGSTOP itself was still pending would be delivered first)."""
    os.kill(pid, signal.SIGSTOP)

    def stopped() -> bool:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"

    wait_for(stopped, f"process {pid} to stop", timeout=30)


def sigterm_pending(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & (
                1 << (signal.SIGTERM - 1)
            ):
                return True
    return False


def in_terminal(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """Start ``argv`` as the leader of a new session whose controlling terminal is a fresh pty (as sshd
    does); returns the process and the pty's master end (closing it hangs the terminal up)."""
    master, slave = pty.openpty()
    os.set_blocking(master, False)

    def own_terminal() -> None:
        # A login shell hears SIGHUP even if this test was started under nohup (SIG_IGN is inherited).
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=own_terminal,
        env=env,
    )
    os.close(slave)
    return proc, master


def zombie_children() -> list[str]:
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) == me:
            out.append(stat.strip())
    return out


@pytest.fixture(autouse=True)
def no_zombies():
    yield
    assert zombie_children() == []


def starts(run: Path) -> int:
    """How many workers were started on ``run`` (the launcher writes one line per start)."""
    try:
        return (run / runs.LOG).read_text().count("starting worker")
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------- fast: no worker


def test_gpu_inventory_from_env_and_option() -> None:
    assert gpus.detect({"GROK_FAKE_GPUS": "0,1"}).ids == ("0", "1")
    assert gpus.detect({"GROK_FAKE_GPUS": ""}).ids == ()
    assert gpus.detect({"CUDA_VISIBLE_DEVICES": "2,3"}).ids == ("2", "3")
    assert gpus.detect({"CUDA_VISIBLE_DEVICES": "-1"}).ids == ()
    inv = gpus.Inventory(("0", "1"), "test")
    assert gpus.select(None, inv) == ("0", "1")
    assert gpus.select("1", inv) == ("1",)
    assert gpus.select("none", inv) == ()
    with pytest.raises(gpus.GpuError, match="GPU 7 is not visible"):
        gpus.select("0,7", inv)


def test_bad_gpus_option_is_one_line_error(tmp_path: Path) -> None:
    toml = write_toml(tmp_path / "e.toml", experiment("x", 50, [0]))
    r = grok(
        "run", toml, "--runs-dir", tmp_path / "runs", "--gpus", "3", env={**BASE_ENV, "GROK_FAKE_GPUS": "0"}
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "grok: error: --gpus '3': GPU 3 is not visible (visible per GROK_FAKE_GPUS: 0)"
    ]
    assert not (tmp_path / "runs" / "x").exists()


def test_worker_error_lines_name_cuda_problems() -> None:
    from grok_tui.worker import error_line

    class OutOfMemoryError(RuntimeError):
        pass

    oom = OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)")
    assert error_line(oom).startswith("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert error_line(AssertionError("Torch not compiled with CUDA enabled")) == (
        "CUDA unavailable: Torch not compiled with CUDA enabled"
    )
    assert error_line(ValueError("bad\nsecond line")) == "ValueError: bad"


def test_stop_and_logs_of_a_queued_run(tmp_path: Path) -> None:
    """A run waiting in the queue with no scheduler: `grok stop` takes it out; `grok logs` says why empty."""
    from grok_tui.config import load_config

    toml = write_toml(tmp_path / "e.toml", experiment("x", 50, [0]))
    root = tmp_path / "runs"
    run, action = prepare_run(load_config(toml).runs[0], root)
    assert action == "new" and status(run.path)["state"] == "queued"
    r = grok("logs", "x/seed0", "--runs-dir", root)
    assert r.returncode == 2 and "has no worker.log yet" in r.stderr
    r = grok("stop", "x/seed0", "--runs-dir", root)
    assert r.returncode == 0, r.stderr
    assert status(run.path)["state"] == "stopped"
    assert "x/seed0: stopped at step 0" in r.stdout
    r = grok("stop", "--all", "--runs-dir", root)
    assert r.returncode == 0 and "nothing queued or running" in r.stdout
    (run.path / runs.LOG).write_text("one\ntwo\nthree\n")
    r = grok("logs", "x/seed0", "-n", "2", "--runs-dir", root)
    assert r.returncode == 0 and r.stdout == "two\nthree\n"


def test_prepare_run_creates_each_run_once_and_refuses_changed_specs(tmp_path: Path) -> None:
    from grok_tui.config import load_config

    toml = write_toml(tmp_path / "e.toml", experiment("x", 50, [0]))
    spec = load_config(toml).runs[0]
    root = tmp_path / "runs"
    assert prepare_run(spec, root)[1] == "new"
    assert prepare_run(spec, root)[1] == "resume"  # queued: continue, never create twice
    with pytest.raises(LaunchError, match="differs from the experiments file in steps"):
        prepare_run({**spec, "steps": 51}, root)
    assert prepare_run({**spec, "steps": 51}, root, force=True)[1] == "new"
    assert list((root / ".grok" / "staging").iterdir()) == []


# --------------------------------------------------------------------------- detached, stop, kill -9, resume


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two identical runs (`ref` and `victim`) launched with `grok run --detach` from a shell in a
    terminal session of their own, after which that session is hung up and killed."""
    d = tmp_path_factory.mktemp("pair")
    toml = write_toml(d / "pair.toml", experiment("ref", 300, [0]), experiment("victim", 300, [0]))
    root = d / "runs"
    argv = " ".join(grok_argv("run", toml, "--detach", "--parallel", "2", "--runs-dir", root))
    shell, master = in_terminal(["bash", "-c", f"{argv}; exec sleep 600"], BASE_ENV)
    try:
        ref, victim = root / "ref" / "seed0", root / "victim" / "seed0"
        t0 = time.time() - 1
        pids = {"ref": new_worker(ref, t0), "victim": new_worker(victim, t0)}
        sched_pid = (runs.read_json(state_dir(root) / INFO) or {}).get("pid")
        # Pause both mid-run (past their first evaluations), so both are certainly running when the session
        # dies; the tests continue them (the victim only when the stop test takes it on).
        running = {ref: pids["ref"], victim: pids["victim"]}

        def pause_past_50() -> bool:
            for run in [r for r in running if (status(r).get("step") or 0) >= 50]:
                pause(running.pop(run))
            return not running

        wait_for(pause_past_50, "both runs to pass step 50")
        # The terminal goes away (hang-up), then everything in the launching session is killed.
        os.close(master)
        shell.wait(timeout=30)  # the hang-up ends the shell (SIGHUP)...
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)  # ...and anything left in its session is killed
        yield {"toml": toml, "root": root, "ref": ref, "victim": victim, "pids": pids, "sched": sched_pid}
    finally:  # also when the set-up itself failed: leave no paused worker or scheduler behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            shell.wait(timeout=10)
        end_leftovers(root)


def test_detached_runs_outlive_their_launching_session(pair: dict[str, Any]) -> None:
    ref, victim = pair["ref"], pair["victim"]
    for name, pid in pair["pids"].items():
        assert os.getsid(pid) == pid, f"{name}'s worker leads its own session"
    if pair["sched"]:
        assert os.getsid(pair["sched"]) == pair["sched"], "the detached scheduler leads its own session"
    assert runs.lock_held(ref) and runs.lock_held(victim), "workers survived the session"
    step = status(ref)["step"]
    assert 50 <= step < 300
    os.kill(pair["pids"]["ref"], signal.SIGCONT)
    wait_for(lambda: (status(ref).get("step") or 0) > step, "ref to make progress after the hang-up")
    wait_for(lambda: status(ref).get("state") == "done" and not runs.lock_held(ref), "ref to finish")
    st = status(ref)
    assert st["step"] == st["total_steps"] == 300 and st["returncode"] == 0
    assert starts(ref) == 1


def test_stop_kill9_resume_match_an_uninterrupted_run(pair: dict[str, Any]) -> None:
    """victim: `grok stop` → `grok resume --detach` → kill -9 (scheduler and worker) → `grok ls` says
    failed → `grok resume` + Ctrl-C (130) → `grok run` again → same metrics as ref, except wall time."""
    root, ref, victim, toml = pair["root"], pair["ref"], pair["victim"], pair["toml"]
    ls = ("ls", "--json", "--runs-dir", root)

    # 1. grok stop: SIGTERM → checkpoint at the current step, state stopped. The worker is paused (by the
    #    fixture) while the signal is in flight, so the run cannot finish first.
    pid = pair["pids"]["victim"]
    assert runs.lock_held(victim) and status(victim)["pid"] == pid
    stopper = subprocess.Popen(
        grok_argv("stop", "victim/seed0", "--runs-dir", root),
        env=BASE_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: sigterm_pending(pid), "grok stop to send SIGTERM")
    os.kill(pid, signal.SIGCONT)
    out, err = stopper.communicate(timeout=LONG)
    assert stopper.returncode == 0, err
    st = status(victim)
    assert st["state"] == "stopped" and 50 <= st["step"] < 300, st
    assert (victim / runs.CKPT_DIR / runs.RESUME).exists()
    assert f"victim/seed0: stopped at step {st['step']}" in out
    stopped_at = st["step"]

    # 2. grok resume --detach, then kill -9 the scheduler and the worker: nobody can write the status.
    t = time.time()
    r = grok("resume", "victim/seed0", "--detach", "--runs-dir", root)
    assert r.returncode == 0 and "queued 1 run(s)" in r.stdout, r.stdout + r.stderr
    pid = new_worker(victim, t)
    wait_for(lambda: (status(victim).get("step") or 0) >= stopped_at + 40, "the resumed victim to progress")
    pause(pid)
    assert status(victim)["step"] < 300
    sched = runs.read_json(state_dir(root) / INFO) or {}
    if runs.lock_held(state_dir(root)):
        os.kill(sched["pid"], signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not runs.lock_held(victim), "the killed worker's lock to go", timeout=5)
    row = next(x for x in json.loads(grok(*ls).stdout) if x["run_id"] == "victim/seed0")
    assert time.monotonic() - killed < 2.0
    assert row["state"] == "failed" and row["error"] == runs.VANISHED, row

    # 3. grok resume in the foreground, Ctrl-C (SIGINT to its process group) mid-run: exit 130, stopped.
    t = time.time()
    fg = subprocess.Popen(
        grok_argv("resume", "victim/seed0", "--runs-dir", root),
        env=BASE_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=like_a_terminal_job,
    )
    pid = new_worker(victim, t)
    resumed_from = status(victim)["step"]
    wait_for(lambda: (status(victim).get("step") or 0) > resumed_from, "the victim to progress again")
    pause(pid)
    os.killpg(fg.pid, signal.SIGINT)
    wait_for(lambda: sigterm_pending(pid), "Ctrl-C to reach the worker as SIGTERM")
    os.kill(pid, signal.SIGCONT)
    out, _ = fg.communicate(timeout=LONG)
    assert fg.returncode == 130, out
    assert status(victim)["state"] == "stopped"

    # 4. grok run again continues the stopped run to the end.
    r = grok("run", toml, "--only", "victim", "--runs-dir", root)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: status(ref).get("state") == "done", "ref to finish")
    assert status(victim)["state"] == "done" and starts(victim) == 4
    got, want = metrics_wo_time(victim), metrics_wo_time(ref)
    assert [row["step"] for row in got] == list(range(0, 301, 25))
    assert got == want


# --------------------------------------------------------------------------- slots and queue


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two `grok run` started at once on one runs directory, each in a terminal of its own: 4 runs, a
    fake 1-GPU inventory, --per-gpu 2. Once two runs train, the terminal of the process that holds the
    scheduler role hangs up (an SSH connection dropping): its runs must go on without it."""
    d = tmp_path_factory.mktemp("queue")
    toml = write_toml(
        d / "q.toml", experiment("q", 100, [0, 1, 2, 3], p=7, eval_every=50, ckpt=100), device="auto"
    )
    root = d / "runs"
    env = {**BASE_ENV, "GROK_FAKE_GPUS": "0", "TERM": "xterm"}
    terms = [in_terminal(grok_argv("run", toml, "--per-gpu", "2", "--runs-dir", root), env) for _ in range(2)]
    outs = [b"", b""]
    envs: dict[str, dict[str, str]] = {}
    hung: int | None = None
    deadline = time.monotonic() + LONG
    while time.monotonic() < deadline:
        for i, (_, master) in enumerate(terms):  # keep reading: a full terminal would block the writer
            with contextlib.suppress(OSError):
                outs[i] += os.read(master, 1 << 16)
        alive = []
        for run in runs.list_runs(root):  # look at each worker's environment while it is alive
            pid = status(run.path).get("pid")
            if run.alive() and pid:
                alive.append(run)
                with contextlib.suppress(OSError):
                    raw = Path(f"/proc/{pid}/environ").read_bytes()
                    envs.setdefault(
                        run.name, dict(kv.split("=", 1) for kv in raw.decode().split("\0") if "=" in kv)
                    )
        if hung is None and len(alive) == 2:
            sched = (runs.read_json(state_dir(root) / INFO) or {}).get("pid")
            hung = next(i for i, (p, _) in enumerate(terms) if p.pid == sched)
            os.close(terms[hung][1])  # hang-up: SIGHUP to the scheduler's process
        if all(p.poll() is not None for p, _ in terms) and not runs.lock_held(state_dir(root)):
            break  # both ended, and so did any scheduler that took over
        time.sleep(0.02)
    end_leftovers(root)
    for i, (p, master) in enumerate(terms):
        if p.poll() is None:
            p.kill()
        p.wait(timeout=5)
        if i != hung:
            with contextlib.suppress(OSError):
                outs[i] += os.read(master, 1 << 16)
            os.close(master)
    return {
        "toml": toml,
        "root": root,
        "env": env,
        "codes": [p.returncode for p, _ in terms],
        "hung": hung,
        "outs": [o.decode(errors="replace") for o in outs],
        "envs": envs,
    }


def test_per_gpu_2_on_one_fake_gpu_runs_at_most_2_at_once(queue: dict[str, Any]) -> None:
    root = queue["root"]
    assert queue["hung"] is not None, "never saw two runs at once"
    codes = queue["codes"]
    assert codes[queue["hung"]] == 129 and codes[1 - queue["hung"]] == 0, queue["outs"]
    statuses = [status(r.path) for r in runs.list_runs(root)]
    assert len(statuses) == 4 and {s["state"] for s in statuses} == {"done"}
    assert {s["gpu"] for s in statuses} == {"0"}
    # Overlap from the workers' own timestamps: started after the lock is taken, ended before release.
    events = sorted([(s["started"], 1) for s in statuses] + [(s["ended"], -1) for s in statuses])
    running, most = 0, 0
    for _, delta in events:
        running += delta
        most = max(most, running)
    assert most == 2
    assert queue["envs"], "saw no worker alive"
    for env in queue["envs"].values():
        assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert {s["device"] for s in statuses} == {"cpu"}  # the fake GPU is not a real one: torch said cpu


def test_two_grok_runs_on_one_runs_dir_start_each_run_once(queue: dict[str, Any]) -> None:
    root, outs, other = queue["root"], queue["outs"], 1 - queue["hung"]
    # One process took the scheduler role; the other handed its runs to it (or found them live) and
    # watched. When the scheduler's terminal hung up, its queue went on: a detached successor or the
    # other `grok run` took the role over.
    assert "handed" in outs[other] or "already has a live worker" in outs[other], outs[other]
    sched_log = (
        (state_dir(root) / "scheduler.log").read_text()
        if (state_dir(root) / "scheduler.log").exists()
        else ""
    )
    if "handed" in outs[other]:
        # It queued through the inbox of the scheduler that then hung up: a successor took its queue.
        assert "took over" in outs[other] or "adopted 2 queued run(s)" in sched_log, (outs[other], sched_log)
    else:
        # It was still preparing its runs when the first scheduler hung up and took the free role when it
        # submitted them, adopting the hung one's queue: the detached successor adopted nothing.
        assert "adopted" not in sched_log, (outs[other], sched_log)
    for run in runs.list_runs(root):
        log = (run.path / runs.LOG).read_text()
        assert starts(run.path) == 1, log
        assert "already has a live worker" not in log
        assert [row["step"] for row in runs.read_jsonl(run.path / runs.METRICS)] == [0, 50, 100]
    # Finished runs are not run again without --force.
    r = grok("run", queue["toml"], "--per-gpu", "2", "--runs-dir", root, env=queue["env"])
    assert r.returncode == 0 and r.stdout.count("already done (use --force to rerun)") == 4
    assert all(starts(run.path) == 1 for run in runs.list_runs(root))


# --------------------------------------------------------------------------- orphaned queue, stop escalation

IGNORES_TERM = """
import os, signal, sys, time
from pathlib import Path
from grok_tui import recorder, runs
run_dir = Path(sys.argv[1])
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with runs.hold_lock(run_dir):
    recorder.update_status(run_dir, state="running", pid=os.getpid(), pgid=os.getpgid(0))
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
"""


def test_stop_sigkills_a_worker_that_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    from grok_tui.config import load_config

    toml = write_toml(tmp_path / "e.toml", experiment("x", 50, [0]))
    run, _ = prepare_run(load_config(toml).runs[0], tmp_path / "runs")
    # a stand-in worker: the module name in its argv is how signal_run tells a worker from a reused pid
    script = tmp_path / "grok_tui.worker.py"
    script.write_text(IGNORES_TERM)
    argv = [sys.executable, str(script), str(run.path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        r = grok("stop", "x/seed0", "--grace", "0.5", "--runs-dir", tmp_path / "runs")
        assert r.returncode == 0, r.stderr
        assert proc.wait(timeout=30) == -signal.SIGKILL
        st = status(run.path)
        assert st["state"] == "stopped" and st["error"] == "killed: SIGTERM not answered in 0.5 s"
        assert "x/seed0: stopped" in r.stdout
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_a_killed_schedulers_queue_is_shown_and_adopted_by_the_next_command(tmp_path: Path) -> None:
    """kill -9 of the detached scheduler leaves its queued runs with nobody to start them: `grok ls` says
    so, and the next command that schedules (here a `grok run` with nothing left to do) adopts them."""
    toml = write_toml(tmp_path / "e.toml", experiment("a", 50, [0]), experiment("b", 150, [0, 1, 2]))
    root = tmp_path / "runs"
    try:
        r = grok("run", toml, "--only", "a", "--runs-dir", root)
        assert r.returncode == 0, r.stderr
        r = grok("run", toml, "--only", "b", "--detach", "--parallel", "1", "--runs-dir", root)
        assert r.returncode == 0, r.stderr
        sched = wait_for(lambda: (runs.read_json(state_dir(root) / INFO) or {}).get("pid"), "the scheduler")
        os.kill(sched, signal.SIGKILL)
        wait_for(lambda: not runs.scheduler_alive(root), "the scheduler's lock to go")

        # a worker the scheduler spawned just before it died may still be importing torch: let it take its
        # run's lock, so that what is left queued is exactly what nobody will start
        def settled() -> bool:
            return all(
                runs.lock_held(r.path) or starts(r.path) == 0 or status(r.path).get("state") != "queued"
                for r in runs.list_runs(root)
            )

        wait_for(settled, "every started worker to hold its run")
        # a worker holding its lock may not have written "running" yet: its run is not orphaned
        queued = [
            r
            for r in runs.list_runs(root)
            if status(r.path).get("state") == "queued" and not runs.lock_held(r.path)
        ]
        assert len(queued) >= 2  # parallel 1: at most one of b's three runs had started
        listed = {row["run_id"]: row for row in json.loads(grok("ls", "--json", "--runs-dir", root).stdout)}
        for q in queued:
            assert listed[q.run_id]["state"] == "queued" and listed[q.run_id]["orphaned"] is True
        table = grok("ls", "--runs-dir", root).stdout
        assert table.count("queued (no scheduler)") == len(queued)

        r = grok("run", toml, "--only", "a", "--runs-dir", root)  # a is done: nothing of its own to queue
        assert r.returncode == 0, r.stderr
        assert f"{len(queued)} queued run(s) in {root.resolve()} had no scheduler" in r.stdout
        for q in queued:
            wait_for(lambda q=q: status(q.path).get("state") == "done", f"{q.run_id} to finish")
            assert starts(q.path) == 1
    finally:
        end_leftovers(root)


def test_a_second_grok_run_exits_1_when_its_run_is_stopped_by_the_first_ones_ctrl_c(tmp_path: Path) -> None:
    """Terminal 1 runs x then y (one CPU slot); terminal 2 asks for y, which waits in terminal 1's queue;
    Ctrl-C in terminal 1 stops both. Terminal 2's run did not finish: it exits 1 and says so."""
    toml = write_toml(tmp_path / "e.toml", experiment("x", 20_000, [0]), experiment("y", 50, [0]))
    root = tmp_path / "runs"
    out1, out2 = tmp_path / "first.out", tmp_path / "second.out"

    def start(argv: list[str], out: Path) -> subprocess.Popen:
        with open(out, "w") as f:
            return subprocess.Popen(
                grok_argv(*argv),
                env=BASE_ENV,
                stdout=f,
                stderr=subprocess.STDOUT,
                preexec_fn=like_a_terminal_job,
            )

    first = start(["run", toml, "--parallel", "1", "--runs-dir", root], out1)
    second = None
    try:
        x, y = root / "x" / "seed0", root / "y" / "seed0"
        wait_for(lambda: runs.lock_held(x) and status(y).get("state") == "queued", "x running, y queued")
        second = start(["run", toml, "--only", "y", "--runs-dir", root], out2)
        wait_for(lambda: "handed 1 run(s)" in out2.read_text(), "the second run to hand y over")
        wait_for(lambda: not pending(root), "the first run's scheduler to take the request")
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=LONG) == 130, out1.read_text()
        assert second.wait(timeout=LONG) == 1, out2.read_text()
        assert status(y)["state"] == "stopped" and status(x)["state"] == "stopped"
        assert "y/seed0: stopped before it finished" in out2.read_text()
        # the foreground scheduler (the first grok run) wrote the scheduler log too
        log = grok("logs", "--scheduler", "--runs-dir", root)
        assert log.returncode == 0 and "x/seed0: started on CPU" in log.stdout, log
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        end_leftovers(root)


def test_gpus_on_a_machine_that_shows_none_is_refused_not_run_on_the_cpu(tmp_path: Path) -> None:
    toml = write_toml(tmp_path / "e.toml", experiment("x", 50, [0]))
    env = {k: v for k, v in BASE_ENV.items() if k not in ("GROK_FAKE_GPUS", "CUDA_VISIBLE_DEVICES")}
    env["PATH"] = str(tmp_path)  # no nvidia-smi to ask
    r = grok("run", toml, "--runs-dir", tmp_path / "runs", "--gpus", "0", env=env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "grok: error: --gpus '0': no GPU is visible here (no nvidia-smi, and CUDA_VISIBLE_DEVICES is not set)"
    ]
    assert not (tmp_path / "runs" / "x").exists()
    assert gpus.select("none", gpus.Inventory((), "no nvidia-smi", known=False)) == ()


def test_a_run_on_a_gpu_slot_that_torch_cannot_use_fails_instead_of_training_on_the_cpu(
    tmp_path: Path,
) -> None:
    toml = write_toml(tmp_path / "e.toml", experiment("x", 50, [0]), device="auto")
    env = {k: v for k, v in BASE_ENV.items() if k != "GROK_FAKE_GPUS"}
    env["CUDA_VISIBLE_DEVICES"] = "0"  # the user says GPU 0 exists; torch here has none
    r = grok("run", toml, "--runs-dir", tmp_path / "runs", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    st = status(tmp_path / "runs" / "x" / "seed0")
    assert st["state"] == "failed" and st["error"].startswith("CUDA unavailable"), st
    assert not (tmp_path / "runs" / "x" / "seed0" / runs.METRICS).exists()


def test_a_run_made_before_a_spec_key_existed_still_matches_its_experiment(tmp_path: Path) -> None:
    from grok_tui.config import load_config
    from grok_tui.recorder import write_json_atomic

    toml = write_toml(tmp_path / "e.toml", experiment("x", 50, [0]))
    spec = load_config(toml).runs[0]
    run, _ = prepare_run(spec, tmp_path / "runs")
    old = {k: v for k, v in spec.items() if k != "on_nan"}  # a spec.json written by an older version
    write_json_atomic(run.path / runs.SPEC, old)
    assert prepare_run(spec, tmp_path / "runs")[1] == "resume"
    with pytest.raises(LaunchError, match="differs from the experiments file in on_nan"):
        prepare_run({**spec, "on_nan": "continue"}, tmp_path / "runs")


def test_a_queue_with_damaged_status_files_is_still_served(tmp_path: Path) -> None:
    """Valid JSON, wrong values in a queued run's status.json (or a device that is not one): the run is
    started or failed with one line, and the scheduler goes on serving the others."""
    from grok_tui.config import load_config
    from grok_tui.recorder import update_status, write_json_atomic

    toml = write_toml(tmp_path / "e.toml", experiment("x", 40, [0, 1, 2]))
    root = tmp_path / "runs"
    made = [prepare_run(spec, root)[0] for spec in load_config(toml).runs]
    update_status(made[0].path, queued="abc", request="not a table")
    update_status(made[1].path, queued=[1], request={"device": 5})
    spec = runs.read_json(made[2].path / runs.SPEC)
    write_json_atomic(made[2].path / runs.SPEC, {**spec, "device": 5})  # a spec.json device that is not one
    try:
        r = grok("resume", "x/seed0", "--runs-dir", root, "--detach")
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: all(status(m.path).get("state") in ("done", "failed") for m in made), "the queue")
        assert [status(m.path)["state"] for m in made] == ["done", "done", "failed"]
        assert (
            status(made[2].path)["error"]
            == "x/seed2: device '5' in its spec.json is not auto, cpu, cuda or cuda:N"
        )
        assert "Traceback" not in (root / ".grok" / "scheduler.log").read_text()
    finally:
        end_leftovers(root)
