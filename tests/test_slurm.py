"""`--backend slurm` against a real Slurm: a single-node cluster started by tests/slurm/local_slurm.sh.

Every test submits real batch jobs, whose workers train real runs; what is asserted is what the run
directories record (state, reason, metrics), never what a poll happened to catch. The cluster has two fake
GPUs (gres backed by character devices), so jobs that ask for one get CUDA_VISIBLE_DEVICES as on a GPU node.
Skipped, with the reason, where the cluster cannot start: not root, or slurm-wlm not installed (as root:
`bash tests/slurm/local_slurm.sh install`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import grok, like_a_terminal_job, wait_for

SCRIPT = Path(__file__).parent / "slurm" / "local_slurm.sh"

TOML = """
[defaults]
runs_dir = "runs"
device = "cpu"
backend = "slurm"

[slurm]
cpus_per_task = 1
time = "{time}"
stop_before = {stop_before}
{slurm_extra}

[experiments.{name}]
task = "add"
p = 23
train_frac = 0.9
steps = {steps}
eval_every = 25
checkpoint_every = 100
seeds = {seeds}
model = {{ d_model = 32, heads = 4, d_mlp = 128 }}
optim = {{ lr = 1e-2, weight_decay = 1.0 }}
"""


def write(
    root: Path,
    name: str = "sw",
    steps: int = 500,
    seeds: str = "[0]",
    time: str = "10",
    stop_before: int = 30,
    slurm_extra: str = "",
    backend: str = "slurm",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = TOML.format(
        name=name, steps=steps, seeds=seeds, time=time, stop_before=stop_before, slurm_extra=slurm_extra
    )
    (root / "experiments.toml").write_text(text.replace('backend = "slurm"', f'backend = "{backend}"'))
    return root


def status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _cannot_start() -> str | None:
    if os.geteuid() != 0:
        return "the local Slurm needs root (its daemons run as root)"
    if not (shutil.which("slurmctld") or Path("/usr/sbin/slurmctld").exists()):
        return "slurm-wlm is not installed: as root, `bash tests/slurm/local_slurm.sh install`"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A single-node Slurm with two fake GPUs, for this module; stopped by pid afterwards."""
    if why := _cannot_start():
        pytest.skip(why)
    where = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", str(where), "2"], capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop", str(where)], timeout=60)
        pytest.fail(f"the local Slurm did not start: {started.stderr.strip()[-2000:]}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(where / "slurm.conf")
    try:
        yield where
    finally:
        subprocess.run(["scancel", "--user=root"], capture_output=True, timeout=30)
        subprocess.run(["bash", str(SCRIPT), "stop", str(where)], capture_output=True, timeout=60)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


@pytest.fixture(scope="module")
def launched(cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The jobs of the scenarios that wait on Slurm (its time-limit warning, an outside scancel, a job held
    in the queue), submitted at once (detached): Slurm is the queue and runs them side by side on the
    node's two CPUs while the tests go on; each test waits for its own runs. The scancel test comes first,
    so its endless run frees its CPU at once. Returns each scenario's directory."""
    base = tmp_path_factory.mktemp("scenarios")
    roots = {
        # a one-minute limit warned 50 s ahead: Slurm sends the warning within about 10–40 s
        "limit": write(base / "limit", steps=10**6, time="1", stop_before=50),
        "cancel": write(base / "cancel", steps=10**6),
        # each seed groks by step 325; each task asks for one of the cluster's two (fake) GPUs
        "sweep": write(base / "sweep", seeds="[0, 1, 2, 3]", steps=400, slurm_extra="gpus_per_job = 1"),
        # never starts (held until tomorrow)
        "held": write(base / "held", name="held", steps=100, slurm_extra='extra = ["--begin=now+1day"]'),
    }
    for name, root in roots.items():
        extra = ["--pack", "2", "--device", "cpu"] if name == "sweep" else []
        r = grok("run", "experiments.toml", *extra, "--detach", cwd=root)
        assert r.returncode == 0 and "job array" in r.stdout, (name, r.stdout + r.stderr)
    return roots


def ended(run: Path, timeout: float = 300) -> dict:
    """The run's status once it has its final state: its worker's, or Slurm's word, which `grok ls` (run
    every 2 s meanwhile, as a user would look) brings in for a job that ended without the worker's."""
    asked = [time.monotonic()]

    def final() -> dict | None:
        st = status(run)
        if st.get("state") in ("queued", "running") and time.monotonic() - asked[0] > 2:
            asked[0] = time.monotonic()
            grok("ls", cwd=run.parents[2])
            st = status(run)
        return st if st.get("state") not in ("queued", "running") else None

    return wait_for(final, f"{run} to end", timeout=timeout)


def test_scancel_from_outside_shows_as_cancelled_running_or_pending(launched: dict[str, Path]) -> None:
    running = launched["cancel"] / "runs" / "sw" / "seed0"
    wait_for(lambda: status(running)["state"] == "running", "the run to start", timeout=300)
    subprocess.run(["scancel", status(running)["slurm"]["job"]], check=True, timeout=30)
    st = ended(running, timeout=60)
    assert st["state"] == "stopped" and st["reason"] == "cancelled in Slurm", st

    # A job that never started: only Slurm knows it was cancelled; `grok ls` asks.
    pend = launched["held"]
    held = pend / "runs" / "held" / "seed0"
    assert status(held)["state"] == "queued"
    assert "no scheduler" not in grok("ls", cwd=pend).stdout
    for again in (["run", "experiments.toml"], ["resume", "held/seed0", "--backend", "local"]):
        r = grok(*again, cwd=pend)  # never a second job, nor a local worker, for a run Slurm has
        assert "already in Slurm" in r.stdout + r.stderr, r.stdout + r.stderr
    assert len({status(held)["slurm"]["job"]}) == 1 and status(held)["backend"] == "slurm"
    subprocess.run(["scancel", status(held)["slurm"]["job"]], check=True, timeout=30)
    ls = grok("ls", cwd=pend)
    assert status(held)["state"] == "stopped" and status(held)["reason"] == "cancelled in Slurm", status(held)
    assert "cancelled" in ls.stdout


def test_a_sweep_groks_in_one_job_array_of_gpu_jobs_and_grok_ls_names_its_jobs(
    launched: dict[str, Path],
) -> None:
    root = launched["sweep"]
    for run in sorted((root / "runs" / "sw").iterdir()):
        ended(run)
    runs = sorted((root / "runs" / "sw").iterdir())
    assert len(runs) == 4
    sts = [status(run) for run in runs]
    assert {s["state"] for s in sts} == {"done"}
    assert len({s["slurm"]["array"] for s in sts}) == 1  # one job array
    assert len({s["slurm"]["job"] for s in sts}) == 2  # two tasks: packs of two
    for run in runs:
        assert max(m["test_acc"] for m in metrics(run)) >= 0.99, f"{run.name} did not grok"
    ls = grok("ls", cwd=root)
    assert ls.returncode == 0, ls.stderr
    for s in sts:
        assert s["slurm"]["job"] in ls.stdout
        # the GPU Slurm gave the job (CUDA_VISIBLE_DEVICES), on Slurm's name of the node
        assert s["gpu"] in ("0", "1") and s["host"] == "localhost", s
    assert "--gpus=1" in Path(sts[0]["slurm"]["script"]).read_text()


def test_grok_stop_checkpoints_and_grok_resume_matches_an_uninterrupted_local_run(
    cluster: Path, tmp_path: Path
) -> None:
    root = write(tmp_path / "slurm", steps=300)
    r = grok("run", "experiments.toml", "--detach", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    run = root / "runs" / "sw" / "seed0"
    wait_for(lambda: status(run).get("step", 0) >= 50, "the Slurm run to train", timeout=300)
    stop = grok("stop", "sw/seed0", cwd=root, timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    st = status(run)
    assert st["state"] == "stopped" and st.get("reason") is None  # asked for: no reason of Slurm's
    assert (run / "checkpoints" / "resume.pt").exists()
    stopped_at = st["step"]
    res = grok("resume", "sw/seed0", cwd=root, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    st = status(run)
    assert st["state"] == "done" and st["resumed"] is True and st["backend"] == "slurm"
    assert "resumed from step" in (run / "worker.log").read_text()

    local = write(tmp_path / "local", steps=300, backend="local")
    r = grok("run", "experiments.toml", "--parallel", "2", cwd=local, timeout=600)  # one thread, as in Slurm
    assert r.returncode == 0, r.stdout + r.stderr
    want, got = metrics(local / "runs" / "sw" / "seed0"), metrics(run)
    assert stopped_at < 300
    strip = ("time", "wall", "elapsed", "steps_per_s")
    assert [{k: v for k, v in m.items() if k not in strip} for m in got] == [
        {k: v for k, v in m.items() if k not in strip} for m in want
    ]


def test_a_job_past_its_time_limit_ends_stopped_time_limit_and_resumes(launched: dict[str, Path]) -> None:
    root = launched["limit"]
    run = root / "runs" / "sw" / "seed0"
    st = ended(run)
    assert st["state"] == "stopped" and st["reason"] == "time limit", st
    assert "stopped (time limit)" in grok("ls", cwd=root).stdout
    assert (run / "checkpoints" / "resume.pt").exists()
    step = st["step"]
    # The researcher gives it more time and fewer steps to go: `grok run` picks the run up where it stopped.
    (root / "experiments.toml").write_text(
        (root / "experiments.toml").read_text().replace('time = "1"', 'time = "10"')
    )
    res = grok("run", "experiments.toml", "--detach", cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(
        lambda: status(run).get("step", 0) > step and status(run)["state"] == "running",
        "the resubmitted job to train on",
        timeout=120,
    )
    st = status(run)
    assert st["resumed"] is True and st["slurm"]["options"]["time"] == "10" and st["reason"] is None
    assert grok("stop", "sw/seed0", cwd=root, timeout=120).returncode == 0


def test_a_refused_submission_names_sbatch_s_reason_and_loses_nothing(cluster: Path, tmp_path: Path) -> None:
    root = write(tmp_path, steps=100, slurm_extra='partition = "nosuch"')
    r = grok("run", "experiments.toml", cwd=root)
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nosuch" in lines[0] and "sbatch" in lines[0], r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    st = status(root / "runs" / "sw" / "seed0")
    assert st["state"] == "failed" and "not submitted" in st["error"]


def test_ctrl_c_stops_the_runs_of_a_foreground_slurm_run(cluster: Path, tmp_path: Path) -> None:
    root = write(tmp_path, steps=2000)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "grok_tui", "run", "experiments.toml"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=like_a_terminal_job,
    )
    run = root / "runs" / "sw" / "seed0"
    try:
        wait_for(
            lambda: (run / "status.json").exists() and status(run).get("step", 0) >= 50,
            "the run to train",
            timeout=120,
        )
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    st = status(run)
    assert st["state"] == "stopped" and st.get("reason") is None, st
    assert (run / "checkpoints" / "resume.pt").exists() and "grok resume" in out


def test_a_setup_line_that_fails_fails_the_run_with_the_job_s_exit_and_output(
    cluster: Path, tmp_path: Path
) -> None:
    root = write(
        tmp_path, steps=100, slurm_extra='setup = ["echo module load cuda: no such module", "exit 3"]'
    )
    r = grok("run", "experiments.toml", cwd=root, timeout=300)
    assert r.returncode != 0
    st = status(root / "runs" / "sw" / "seed0")
    assert st["state"] == "failed" and "exited with code 3" in st["error"], st
    logs = grok("logs", "sw/seed0", cwd=root)
    assert logs.returncode == 0 and "no such module" in logs.stdout and "Slurm job output" in logs.stdout


def test_a_worker_killed_at_a_random_step_fails_named_and_resumes(cluster: Path, tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)  # named in every failure message: a failing kill point can be replayed
    at = random.Random(seed).randrange(25, 150)
    root = write(tmp_path, steps=200)
    assert grok("run", "experiments.toml", "--detach", cwd=root).returncode == 0
    run = root / "runs" / "sw" / "seed0"
    wait_for(lambda: status(run).get("step", 0) >= at, f"step {at} (seed {seed})", timeout=300)
    os.kill(status(run)["pid"], signal.SIGKILL)  # the node is this machine: its pid is ours to kill

    def listed_failed() -> str | None:
        out = grok("ls", cwd=root).stdout  # `grok ls` asks Slurm how the job ended
        return out if "failed" in out else None

    ls = wait_for(listed_failed, "the run to show failed", timeout=60)
    st = status(run)
    assert st["state"] == "failed" and "SIGKILL" in st["error"], (seed, st, ls)
    res = grok("resume", "sw/seed0", cwd=root, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert status(run)["state"] == "done" and [m["step"] for m in metrics(run)] == list(range(0, 201, 25))
