"""What `--backend slurm` submits and how it reads Slurm's answers, without a cluster: the batch script
of any valid [slurm] table and any run paths, the parsers of squeue/sacct/scontrol text as Slurm 22.05
prints it, and the refusals a user meets before anything is submitted. tests/test_slurm.py runs the real
thing against a real Slurm."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import msgspec
import pytest
from helpers import grok
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grok_tui.config import load_config
from grok_tui.config.schema import Slurm
from grok_tui.launch import slurm
from grok_tui.launch.local import prepare_run
from grok_tui.runs import RunDir

TOML = """
[defaults]
device = "{device}"
[experiments.{name}]
p = 11
steps = 10
seeds = [0, 1, 2]
model = {{ d_model = 8, heads = 2, d_mlp = 16 }}
[experiments.wide]
p = 13
steps = 10
model = {{ d_model = 8, heads = 2, d_mlp = 16 }}
"""


def prepared(tmp_path: Path, runs_dir: str = "runs") -> list[RunDir]:
    path = tmp_path / "experiments.toml"
    path.write_text(TOML.format(name="e", device="cpu"))
    cfg = load_config(path)
    return [prepare_run(spec, tmp_path / runs_dir)[0] for spec in cfg.runs]


LINE = st.text(st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp"]) | st.just("\t"), max_size=40)
WORD = st.from_regex(r"\A[A-Za-z0-9_.,:+=@%/-]{1,20}\Z")
TABLES = st.fixed_dictionaries(
    {},
    optional={
        "partition": WORD,
        "account": WORD,
        "qos": WORD,
        "time": st.from_regex(r"\A([0-9]{1,2}-)?[0-9]{1,3}(:[0-9]{2}){0,2}\Z"),
        "mem": st.from_regex(r"\A[0-9]{1,6}[KMGT]?\Z"),
        "gpus_per_job": st.integers(0, 64),
        "cpus_per_task": st.integers(1, 1024),
        "max_running": st.integers(1, 100_000),
        "stop_before": st.integers(0, 86_400),
        "extra": st.lists(LINE.map(lambda s: "-" + s), max_size=4),
        "setup": st.lists(LINE, max_size=4),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=TABLES, name=st.sampled_from(["e", "with space", "q'uote", "d$ollar", "semi;colon", "b`ack"]))
def test_the_batch_script_of_any_valid_table_holds_each_option_on_its_line(
    tmp_path_factory: pytest.TempPathFactory, table: dict, name: str
) -> None:
    opts = msgspec.structs.asdict(msgspec.convert(table, Slurm))
    tmp = tmp_path_factory.mktemp("s")
    groups = slurm.groups_of(prepared(tmp, f"runs {name}"), 2)  # run paths that need quoting
    gpus = int(opts["gpus_per_job"])
    text = slurm.script(
        groups, opts, tmp / "out" / "%A_%a.out", "grok-x", ["cuda" if gpus else None] * len(groups)
    )
    lines = text.split("\n")  # bash's lines
    directives = [ln for ln in lines if ln.startswith("#SBATCH ")]
    assert directives[:2] == [
        "#SBATCH --job-name=grok-x",
        f"#SBATCH --array=0-{len(groups) - 1}" + (f"%{opts['max_running']}" if opts["max_running"] else ""),
    ]
    assert f"#SBATCH --signal=B:TERM@{opts['stop_before']}" in directives
    for extra in opts["extra"]:
        assert f"#SBATCH {extra}" in lines
    for line in opts["setup"]:
        assert line in lines
    assert ("export CUDA_VISIBLE_DEVICES=" in lines) == (gpus == 0)
    # each task's `set --` gives back exactly its run directories, however odd their paths
    sets = [ln for ln in lines if re.match(r"[0-9]+\) ", ln)]
    assert len(sets) == len(groups)
    for (pack, members), ln in zip(groups, sets, strict=True):
        body = ln.split(") ", 1)[1].rsplit(" ;;", 1)[0]
        words = shlex.split(body.split("set -- ", 1)[1])
        assert words == [str(m.path) for m in members]
        assert (pack is not None) == ("GROK_PACK_ID=" in body)
    assert lines[-1] == "" and lines[-2].startswith("exec ") and lines[-2].endswith('-m grok_tui.worker "$@"')


def test_runs_are_grouped_by_pack_key_up_to_the_pack_size(tmp_path: Path) -> None:
    todo = prepared(tmp_path)  # e/seed0..2 (p 11) and wide/seed0 (p 13)
    groups = slurm.groups_of(todo, 2)
    assert [[m.run_id for m in ms] for _, ms in groups] == [
        ["e/seed0", "e/seed1"],
        ["e/seed2"],
        ["wide/seed0"],
    ]
    assert groups[0][0] is not None and groups[1][0] is None and groups[2][0] is None
    assert [[m.run_id for m in ms] for _, ms in slurm.groups_of(todo, 1)] == [[r.run_id] for r in todo]


def test_squeue_sacct_and_scontrol_answers_are_read_as_slurm_prints_them() -> None:
    squeue = "21|0|PENDING|BeginTime|\n21|2|RUNNING|None|node7\n20|N/A|CANCELLED|None|localhost\n"
    got = slurm.parse_squeue(squeue)
    assert got == {
        "21_0": slurm.JobState("PENDING", "BeginTime", ""),
        "21_2": slurm.JobState("RUNNING", "None", "node7"),
        "20": slurm.JobState("CANCELLED", "None", "localhost"),
    }
    sacct = "5_0|COMPLETED|localhost|0:0\n5_1|CANCELLED by 0|localhost|0:15\n"
    assert slurm.parse_sacct(sacct)["5_1"] == slurm.JobState("CANCELLED", "", "localhost", "0:15")
    assert slurm.limit_seconds("00:01:00") == 60 and slurm.limit_seconds("1-02:03:04") == 93784
    assert slurm.limit_seconds("05:00") == 300 and slurm.limit_seconds("UNLIMITED") is None


@pytest.mark.parametrize(
    ("tail", "state"),
    [
        ("slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-12-02T00:25:19 ***", "CANCELLED"),
        (
            "slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-12-02T00:25:19 DUE TO TIME LIMIT ***",
            "TIMEOUT",
        ),
        (
            "slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-12-02T00:25:19 DUE TO PREEMPTION ***",
            "PREEMPTED",
        ),
        (
            "slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-12-02T00:25:19 DUE TO NODE FAILURE ***",
            "NODE_FAIL",
        ),
        ("slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-12-02T00:25:19 DUE TO JOB REQUEUE ***", None),
        ("step 100/400  train loss 0.1", None),
    ],
)
def test_the_end_slurmstepd_wrote_in_a_job_s_output(tmp_path: Path, tail: str, state: str | None) -> None:
    out = tmp_path / "7_0.out"
    out.write_text("grok worker: starting\n" + tail + "\n")
    assert slurm.killed_in_output(out) == state
    assert slurm.killed_in_output(tmp_path / "missing.out") is None


def test_without_slurm_a_submission_is_one_line_and_the_runs_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "experiments.toml").write_text(TOML.format(name="e", device="cpu"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere on it
    r = grok("run", "experiments.toml", "--backend", "slurm", "--detach", cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "sbatch: not found" in lines[0], r.stderr
    st = json.loads((tmp_path / "runs" / "e" / "seed0" / "status.json").read_text())
    assert st["state"] == "failed" and st["error"].startswith("not submitted: sbatch: not found")


@pytest.mark.parametrize(
    ("args", "device", "says"),
    [
        (["--pack", "auto"], "cpu", "pack = auto"),
        (["--backend", "pbs"], "cpu", "--backend 'pbs'"),
        ([], "cuda", "gpus_per_job is 0"),
    ],
)
def test_refusals_before_anything_is_submitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], device: str, says: str
) -> None:
    (tmp_path / "experiments.toml").write_text(TOML.format(name="e", device=device))
    monkeypatch.setenv("PATH", str(tmp_path))
    r = grok("run", "experiments.toml", "--backend", "slurm", *args, "--detach", cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and says in lines[0], r.stderr
    assert "Traceback" not in r.stderr
