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


def test_a_sweep_groks_in_one_job_array_and_grok_ls_names_its_jobs(cluster: Path, tmp_path: Path) -> None:
    root = write(tmp_path, seeds="[0, 1, 2, 3]", steps=400)  # each groks by step 325
    r = grok("run", "experiments.toml", "--pack", "2", cwd=root, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "job array" in r.stdout
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


def test_grok_stop_checkpoints_and_grok_resume_matches_an_uninterrupted_local_run(
    cluster: Path, tmp_path: Path
) -> None:
    root = write(tmp_path / "slurm", steps=600)
    r = grok("run", "experiments.toml", "--detach", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    run = root / "runs" / "sw" / "seed0"
    wait_for(lambda: status(run).get("step", 0) >= 100, "the Slurm run to train", timeout=120)
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

    local = write(tmp_path / "local", steps=600, backend="local")
    r = grok("run", "experiments.toml", "--parallel", "2", cwd=local, timeout=600)  # one thread, as in Slurm
    assert r.returncode == 0, r.stdout + r.stderr
    want, got = metrics(local / "runs" / "sw" / "seed0"), metrics(run)
    assert stopped_at < 600
    strip = ("time", "wall", "elapsed", "steps_per_s")
    assert [{k: v for k, v in m.items() if k not in strip} for m in got] == [
        {k: v for k, v in m.items() if k not in strip} for m in want
    ]


def test_a_job_past_its_time_limit_ends_stopped_time_limit_and_resumes(cluster: Path, tmp_path: Path) -> None:
    # A one-minute limit, warned 50 s ahead: Slurm sends the warning within about 10–40 s.
    root = write(tmp_path, steps=10**6, time="1", stop_before=50)
    r = grok("run", "experiments.toml", cwd=root, timeout=300)
    run = root / "runs" / "sw" / "seed0"
    st = status(run)
    assert r.returncode != 0  # not done
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


def test_scancel_from_outside_shows_as_cancelled_running_or_pending(cluster: Path, tmp_path: Path) -> None:
    root = write(tmp_path, steps=10**6, seeds="[0, 1]", slurm_extra="")
    r = grok("run", "experiments.toml", "--only", "sw", "--detach", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    running, _ = (root / "runs" / "sw" / "seed0"), (root / "runs" / "sw" / "seed1")
    wait_for(lambda: status(running)["state"] == "running", "the run to start", timeout=120)
    subprocess.run(["scancel", status(running)["slurm"]["job"]], check=True, timeout=30)
    wait_for(lambda: status(running)["state"] == "stopped", "the cancelled run to end", timeout=60)
    assert status(running)["reason"] == "cancelled in Slurm"
    assert grok("stop", "--all", cwd=root, timeout=120).returncode == 0

    # A job that never started (held until tomorrow): only Slurm knows it was cancelled; `grok ls` asks.
    pend = write(tmp_path / "pending", name="held", steps=100, slurm_extra='extra = ["--begin=now+1day"]')
    r = grok("run", "experiments.toml", "--detach", cwd=pend)
    assert r.returncode == 0, r.stdout + r.stderr
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


def test_fake_gpu_jobs_see_the_gpu_slurm_gave_them(cluster: Path, tmp_path: Path) -> None:
    root = write(tmp_path, steps=100, seeds="[0, 1]", slurm_extra="gpus_per_job = 1")
    r = grok("run", "experiments.toml", "--device", "cpu", cwd=root, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for seed in (0, 1):
        st = status(root / "runs" / "sw" / f"seed{seed}")
        assert st["state"] == "done" and st["gpu"] in ("0", "1"), st
        assert st["host"] == "localhost"  # Slurm's node name


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


@pytest.mark.parametrize("seed", [random.Random().randrange(1 << 30)])
def test_a_worker_killed_at_a_random_step_fails_named_and_resumes(
    cluster: Path, tmp_path: Path, seed: int
) -> None:
    at = random.Random(seed).randrange(25, 300)
    root = write(tmp_path, steps=400)
    assert grok("run", "experiments.toml", "--detach", cwd=root).returncode == 0
    run = root / "runs" / "sw" / "seed0"
    wait_for(lambda: status(run).get("step", 0) >= at, f"step {at}", timeout=180)
    os.kill(status(run)["pid"], signal.SIGKILL)  # the node is this machine: its pid is ours to kill

    def listed_failed() -> str | None:
        out = grok("ls", cwd=root).stdout  # `grok ls` asks Slurm how the job ended
        return out if "failed" in out else None

    ls = wait_for(listed_failed, "the run to show failed", timeout=60)
    st = status(run)
    assert st["state"] == "failed" and "SIGKILL" in st["error"], (seed, st, ls)
    res = grok("resume", "sw/seed0", cwd=root, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert status(run)["state"] == "done" and [m["step"] for m in metrics(run)] == list(range(0, 401, 25))
