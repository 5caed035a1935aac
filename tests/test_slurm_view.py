# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""Slurm runs read like local ones: `grok ls`, `grok show` and `grok logs` show their job, node, Slurm's
state and why they ended, from status.json as a run submitted to Slurm has it (no Slurm here: the tests
write those files, as the launcher and the worker would)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slurm_helpers import slurmify
from tui_helpers import RUNNING, fixture_src, fx  # noqa: F401
from typer.testing import CliRunner

from grok_tui import format as fmt
from grok_tui import runs
from grok_tui.cli import app
from grok_tui.cli.tables import summary_table
from grok_tui.recorder import write_json_atomic

JOB_OUT = "worker: device=cuda params=29,760\nstep 100 loss ok\n"
CANCELLED = "slurmstepd: error: *** JOB 123 ON node1 CANCELLED AT 2026-12-02T01:00:00 ***"


def cli(*args: str, width: int = 200):
    return CliRunner(env={"COLUMNS": str(width), "GROK_RUNS_DIR": None}).invoke(app, list(args))


def ls_json(root: Path) -> dict[str, dict[str, Any]]:
    result = cli("ls", "--json", "--runs-dir", str(root))
    assert result.exit_code == 0, result.output
    return {r["run_id"]: r for r in json.loads(result.stdout)}


def header(out: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if " run " in ln and " state " in ln)
    return [c.strip() for c in line.split("┃") if c.strip()]


def row_of(out: str, run_id: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if f" {run_id} " in ln)
    return [c.strip() for c in line.split("│") if c.strip()]


# --------------------------------------------------------------------------- grok ls


def test_ls_adds_job_and_node_only_when_a_slurm_run_is_listed(fx: Path) -> None:
    root = fx / "runs"
    local = cli("ls", "--runs-dir", str(root))
    assert local.exit_code == 0 and "job" not in header(local.stdout) and "node" not in header(local.stdout)
    slurmify(root / "add" / "seed0", host="node1", slurm_state="COMPLETED")
    out = cli("ls", "--runs-dir", str(root)).stdout
    cols = header(out)
    assert cols[:4] == ["run", "state", "job", "node"]
    row = dict(zip(cols, row_of(out, "add/seed0"), strict=True))
    assert (row["state"], row["job"], row["node"]) == ("done", "123_4", "node1")
    # a local run in the same listing: no job, its host as the node
    local_row = row_of(out, "mix/seed0")
    assert local_row[1:3] == ["done", "fixture-host"]
    rows = ls_json(root)
    assert (rows["add/seed0"]["backend"], rows["add/seed0"]["job"], rows["add/seed0"]["host"]) == (
        "slurm",
        "123_4",
        "node1",
    )
    assert (rows["mix/seed0"]["backend"], rows["mix/seed0"]["job"]) == ("local", None)


def test_ls_narrow_drops_the_node_before_the_job(fx: Path) -> None:
    root = fx / "runs"
    slurmify(root / "add" / "seed0", host="a-rather-long-node-name-17", slurm_state="COMPLETED")
    slurmify(root / "add" / "seed3", task=5, slurm_state="PENDING", slurm_reason="Resources")
    out = cli("ls", "--runs-dir", str(root), width=100).stdout
    assert all(len(line) <= 100 for line in out.splitlines())
    assert header(out)[:3] == ["run", "state", "job"] and "node" not in header(out)
    assert row_of(out, "add/seed0")[2] == "123_4"
    narrow = cli("ls", "--runs-dir", str(root), width=80).stdout
    assert all(len(line) <= 80 for line in narrow.splitlines())
    assert row_of(narrow, "add/seed3")[:2] == ["add/seed3", "queued (Slurm: PENDING, Resources)"]


def test_a_queued_slurm_run_waits_in_slurms_queue_not_for_a_scheduler(fx: Path) -> None:
    root = fx / "runs"
    queued = root / "add" / "seed3"
    assert runs.RunDir(queued).summary().orphaned  # the fixture's queued run: nothing will start it
    slurmify(queued)
    s = runs.RunDir(queued).summary()
    assert not s.orphaned and fmt.state_label(s).text == "queued (Slurm)"
    slurmify(queued, slurm_state="PENDING", slurm_reason="Resources", slurm_seen=1e9)
    s = runs.RunDir(queued).summary()
    assert fmt.state_label(s).text == "queued (Slurm: PENDING, Resources)"
    assert fmt.state_label(s).tone == fmt.STATE_TONES["queued"]
    row = ls_json(root)["add/seed3"]
    assert (row["state"], row["orphaned"]) == ("queued", False)
    out = cli("ls", "--runs-dir", str(root)).stdout
    assert "queued (Slurm: PENDING, Resources)" in out and runs.NO_SCHEDULER not in out


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("stopped", "time limit"),
        ("stopped", "preempted"),
        ("failed", "node failure"),
        ("failed", "out of memory"),
    ],
)
def test_a_run_ended_by_slurm_says_why(fx: Path, state: str, reason: str) -> None:
    root = fx / "runs"
    slurmify(root / "add" / "seed0", state=state, reason=reason, slurm_state="TIMEOUT", host="node1")
    s = runs.RunDir(root / "add" / "seed0").summary()
    assert fmt.state_label(s).text == f"{state} ({reason})"
    assert fmt.state_label(s).tone == fmt.STATE_TONES[state]
    assert f"{state} ({reason})" in cli("ls", "--runs-dir", str(root)).stdout
    assert ls_json(root)["add/seed0"]["reason"] == reason


def test_a_local_run_with_a_reason_shows_it_too(fx: Path) -> None:
    old = fx / "runs" / "old" / "seed0"
    write_json_atomic(old / runs.STATUS, {**runs.RunDir(old).raw_status(), "reason": "out of memory"})
    assert fmt.state_label(runs.RunDir(old).summary()).text == "stopped (out of memory)"


def test_a_running_slurm_run_whose_lock_is_not_seen_here_lives_while_slurm_says_running(fx: Path) -> None:
    """Its worker may hold the lock on a node whose flocks this machine cannot see: Slurm's RUNNING, seen
    lately (reconcile writes slurm_seen), stands in for the lock; a stale one does not."""
    import time

    run = fx / "runs" / RUNNING
    assert runs.RunDir(run).status()["state"] == "failed"  # a local worker without its lock: it died
    slurmify(run, host="node7", slurm_state="RUNNING", slurm_seen=time.time())
    s = runs.RunDir(run).summary()
    assert (s.state, s.error, s.host, s.job) == ("running", None, "node7", "123_4")
    slurmify(run, host="node7", slurm_state="RUNNING", slurm_seen=time.time() - 2 * runs.SLURM_SEEN_S)
    assert runs.RunDir(run).summary().state == "failed"  # nobody asked Slurm lately: the lock decides
    slurmify(run, host="node7", slurm_state="PENDING", slurm_seen=time.time())
    assert runs.RunDir(run).summary().state == "failed"


# --------------------------------------------------------------------------- grok show


def test_show_prints_backend_job_node_slurm_state_and_output(fx: Path) -> None:
    root = fx / "runs"
    out_file = slurmify(root / "add" / "seed0", host="node1", slurm_state="COMPLETED")
    result = cli("show", "add/seed0", "--runs-dir", str(root), "--width", "60")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "backend: slurm, job 123_4 (array 123, task 4)" in lines
    assert "node: node1" in lines
    assert "Slurm state: COMPLETED" in lines
    assert f"output: {out_file}" in lines
    # a pending job: no node yet, Slurm's reason
    slurmify(root / "add" / "seed3", task=7, slurm_state="PENDING", slurm_reason="Priority")
    lines = cli("show", "add/seed3", "--runs-dir", str(root)).stdout.splitlines()
    assert "node: - (not started)" in lines and "Slurm state: PENDING, Priority" in lines


def test_show_of_a_local_run_prints_no_slurm_lines(fx: Path) -> None:
    result = cli("show", "add/seed0", "--runs-dir", str(fx / "runs"), "--width", "60")
    assert result.exit_code == 0 and "backend:" not in result.stdout and "Slurm" not in result.stdout


# --------------------------------------------------------------------------- grok logs


def test_logs_prints_worker_log_then_the_jobs_output_file(fx: Path) -> None:
    root = fx / "runs"
    run = root / "add" / "seed0"
    out_file = slurmify(run, host="node1", slurm_state="CANCELLED")
    out_file.parent.mkdir(parents=True)
    out_file.write_text(JOB_OUT + CANCELLED + "\n")
    log = (run / runs.LOG).read_text()
    header = f"==> {out_file} (Slurm job output) <==\n"
    result = cli("logs", "add/seed0", "--runs-dir", str(root))
    assert result.exit_code == 0 and result.stdout == log + header + JOB_OUT + CANCELLED + "\n"
    last = log.splitlines()[-1] + "\n"
    assert (
        cli("logs", "add/seed0", "-n", "1", "--runs-dir", str(root)).stdout
        == last + header + CANCELLED + "\n"
    )
    # -f of a run that has ended prints both and returns
    assert cli("logs", "add/seed0", "-f", "--runs-dir", str(root)).stdout == result.stdout
    # only the job's output (the worker never started): still printed
    (run / runs.LOG).unlink()
    assert cli("logs", "add/seed0", "--runs-dir", str(root)).stdout == header + JOB_OUT + CANCELLED + "\n"
    # the local runs beside it: their worker.log, as always
    local = cli("logs", "mix/seed0", "--runs-dir", str(root))
    assert local.exit_code == 0 and local.stdout == (root / "mix" / "seed0" / runs.LOG).read_text()


def test_logs_of_a_job_whose_output_is_not_here_is_one_line(fx: Path) -> None:
    root = fx / "runs"
    (root / "add" / "seed3" / runs.LOG).unlink(missing_ok=True)
    out_file = slurmify(root / "add" / "seed3", state="stopped")
    result = cli("logs", "add/seed3", "--runs-dir", str(root))
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grok: error: add/seed3")
    line = runs.RunDir(root / "add" / "seed3").missing_log()
    assert str(out_file) in line and "123_4" in line and "add/seed3" in line and "not started" not in line
    slurmify(root / "add" / "seed3", state="queued")
    assert "the job has not started" in runs.RunDir(root / "add" / "seed3").missing_log()
    # a local run without its worker.log: as always
    assert runs.RunDir(root / "add" / "seed1").missing_log() == "add/seed1 has no worker.log yet"


# --------------------------------------------------------------------------- damaged fields

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
SLURM_FIELD = st.sampled_from(["job", "array", "task", "output", "submitted", "pack"])
STATUS_FIELD = st.sampled_from(["host", "reason", "slurm_state", "slurm_reason", "slurm_seen", "state"])


@st.composite
def damaged_status(draw) -> dict[str, Any]:
    """A Slurm run's status.json with some of its Slurm fields replaced by any JSON value."""
    slurm: Any = {"job": "123_4", "array": "123", "task": 4, "output": "/abs/123_4.out", "pack": None}
    if draw(st.booleans()):
        slurm = draw(JSON)  # not an object at all
    else:
        for key in draw(st.lists(SLURM_FIELD, max_size=4)):
            slurm[key] = draw(JSON)
    status: dict[str, Any] = {"state": "running", "backend": "slurm", "slurm": slurm, "step": 10}
    for key in draw(st.lists(STATUS_FIELD, max_size=4)):
        status[key] = draw(JSON)
    return status


def _plain(text: str) -> bool:
    return text.isprintable()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=damaged_status())
def test_damaged_slurm_fields_never_crash_a_reader(fx: Path, status: dict[str, Any]) -> None:
    run = fx / "runs" / "add" / "seed0"
    (run / runs.STATUS).write_text(json.dumps(status))
    rd = runs.RunDir(run)
    s = rd.summary()
    label = fmt.state_label(s)
    assert _plain(label.text) and label.tone in fmt.RICH_STYLES
    for text in [*fmt.cells(s).values(), fmt.job_label(s), *fmt.slurm_lines(s)]:
        assert isinstance(text, str) and _plain(text)
    assert s.job is None or (isinstance(s.job, str) and _plain(s.job))
    assert s.host is None or isinstance(s.host, str)
    assert rd.log_path() == run / runs.LOG
    out = rd.job_output()
    assert out is None or out.is_absolute()
    assert _plain(rd.missing_log())
    summary_table([s], width=80)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=damaged_status())
def test_damaged_slurm_fields_are_one_line_or_output_in_every_reader_command(
    fx: Path, status: dict[str, Any]
) -> None:
    root = fx / "runs"
    (root / "add" / "seed0" / runs.STATUS).write_text(json.dumps(status))
    for args in (["ls"], ["show", "add/seed0", "--width", "60"], ["logs", "add/seed0", "-n", "3"]):
        result = cli(*args, "--runs-dir", str(root), width=100)
        assert result.exception is None or isinstance(result.exception, SystemExit), args
        assert result.exit_code in (0, 1, 2) and "Traceback" not in result.output, args
        if result.exit_code:
            assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)


def test_an_output_file_that_is_a_fifo_is_never_opened(fx: Path) -> None:
    """A status.json naming a FIFO (damaged or hostile) would block `grok logs` and the app's log tail
    on open: it reads as an empty log."""
    import os

    root = fx / "runs"
    fifo = root / "job.out"
    os.mkfifo(fifo)
    run = root / "add" / "seed0"
    old = runs.read_json(run / runs.STATUS) or {}
    slurm = {"job": "123_4", "output": str(fifo)}
    write_json_atomic(run / runs.STATUS, {**old, "backend": "slurm", "slurm": slurm})
    assert runs.RunDir(run).job_output() == fifo
    (run / runs.LOG).unlink()
    result = cli("logs", "add/seed0", "--runs-dir", str(root))
    assert result.exit_code == 0 and result.stdout == ""
