"""Every reader command on a matrix of damaged run directories: one line and an exit code, never a traceback.

Each file of a real run directory (written by the real writer: tests/fixtures) is made missing, truncated,
garbled, valid-but-wrong JSON (or a wrong-shaped array) or full of NaN/inf, one file at a time, and every
reader command is run on it in-process through the real CLI parser (fast enough for the whole matrix).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_fixtures import make_fixtures  # noqa: E402

from grok_tui import runs  # noqa: E402
from grok_tui.cli import app  # noqa: E402

RUN = "add/seed0"
FILES = ("spec.json", "status.json", "metrics.jsonl", "fourier.jsonl", "progress.jsonl", "ckpt", "worker.log")
DAMAGES = ("missing", "truncated", "garbled", "wrong", "nan")
WRONG = {
    "spec.json": {"model": 5, "p": "x", "task": [1, 2], "steps": "abc", "train_frac": [0.3], "seed": True},
    "status.json": {"state": 5, "step": "abc", "device": 7, "error": {"a": 1}, "total_steps": -4},
}
WRONG_ROWS = [
    {"step": "abc", "train_acc": 0.5},
    {"train_acc": 0.5},
    {"step": True, "test_acc": 1.0},
    {"step": 10, "train_acc": "x", "test_acc": [1], "train_loss": {"a": 1}, "tasks": 5},
    {"step": 20, "embed": "x", "restricted_loss": [1], "key_freqs": "abc"},
    [1, 2, 3],
    "just a string",
]
HUGE = "1" + "0" * 400  # valid JSON, a Python int no float holds
NAN_ROWS = [
    '{"step": 30, "train_acc": NaN, "test_acc": Infinity, "train_loss": 1e400, "test_loss": -Infinity}',
    '{"step": 40, "embed": [NaN, 1e400], "restricted_loss": NaN, "key_freqs": [NaN]}',
    f'{{"step": {HUGE}, "train_acc": 1.0}}',
    f'{{"step": 45, "test_loss": {HUGE}, "embed": [{HUGE}, 1.0], "restricted_loss": -{HUGE}, '
    f'"tasks": {{"a": {{"test_acc": {HUGE}}}}}}}',
]
COMMANDS = {
    "ls": ["ls"],
    "ls-json": ["ls", "--json"],
    "show": ["show", RUN, "--width", "60"],
    "export-csv": ["export", RUN, "--format", "csv"],
    "export-jsonl": ["export", RUN, "--format", "jsonl"],
    "inspect": ["inspect", RUN, "--width", "60"],
    "inspect-json": ["inspect", RUN, "--json"],
    "logs": ["logs", RUN, "-n", "5"],
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("damaged-src")
    make_fixtures(root)
    run = root / "runs" / RUN
    with open(run / runs.PROGRESS, "w") as f:  # what the final pass writes (the fixtures have none)
        for step in runs.RunDir(run).checkpoint_steps():
            row = {"step": step, "restricted_loss": 0.5, "excluded_loss": 4.0, "key_freqs": [4, 11]}
            f.write(json.dumps(row) + "\n")
    return root / "runs"


def _target(run: Path, name: str) -> Path:
    if name == "ckpt":
        return max((run / runs.CKPT_DIR).glob("step_*.npz"))
    return run / name


def damage(run: Path, name: str, how: str, rng: np.random.Generator) -> None:
    path = _target(run, name)
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbled":
        data = bytearray(path.read_bytes())
        for i in rng.integers(0, len(data), size=max(8, len(data) // 50)):
            data[i] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))
    elif name == "ckpt":
        arrays = dict(np.load(path, allow_pickle=False))
        if how == "wrong":
            arrays = {k: np.zeros((3,) * (v.ndim + 1)) for k, v in arrays.items() if k != "meta_json"}
            arrays["meta_json"] = np.asarray("5")
        else:
            arrays = {k: (np.full_like(v, np.nan) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
        np.savez(path.with_suffix(".tmp.npz"), **arrays)
        path.with_suffix(".tmp.npz").replace(path)
    elif name.endswith(".json"):
        if how == "wrong":
            path.write_text(json.dumps(WRONG[name]))
        else:
            path.write_text(
                '{"state": "done", "step": NaN, "p": NaN, "train_frac": Infinity, "steps": 1e400}'
            )
    elif name == "worker.log":
        path.write_bytes(bytes(rng.integers(0, 256, size=2000, dtype=np.uint8)))
    else:  # a JSONL file: bad rows appended after the good ones
        lines = [json.dumps(r) for r in WRONG_ROWS] if how == "wrong" else NAN_ROWS
        with open(path, "a") as f:
            f.write("\n".join(lines) + "\n")


def strict(text: str):
    def refuse(const: str):
        raise ValueError(f"not strict JSON: {const}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow  # the whole generated matrix: 35 damaged directories × 8 commands
@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", FILES)
def test_every_reader_command_survives_a_damaged_file(
    source: Path, tmp_path: Path, name: str, how: str
) -> None:
    root = tmp_path / "runs"
    shutil.copytree(source, root)
    damage(root / RUN, name, how, np.random.default_rng(hash((name, how)) % 2**32))
    runner = CliRunner(env={"COLUMNS": "120", "GROK_RUNS_DIR": None})
    for label, args in COMMANDS.items():
        result = runner.invoke(app, [*args, "--runs-dir", str(root)])
        where = f"{label} on {name} {how}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            where,
            "".join(__import__("traceback").format_exception(result.exception)),
        )
        assert result.exit_code in (0, 1, 2), where
        assert "Traceback" not in result.stdout + result.stderr, where
        if result.exit_code:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("grok: error:"), (where, result.stderr)
        if label in ("ls-json", "inspect-json") and result.exit_code == 0:
            strict(result.stdout)
        if label == "export-jsonl" and result.exit_code == 0:
            for line in result.stdout.splitlines():
                strict(line)
    # the app's reader: every run is still listed, the damaged one's curves load, nothing is unreadable
    from grok_tui.tui.store import Store

    store = Store(None, root)
    store.poll()
    assert store.errors == [] and {r.run_id for r in store.rows()} == {r.run_id for r in runs.list_runs(root)}
    store.series(RUN)
    store.poll()
    assert store.errors == []


def test_a_finished_run_without_status_is_unknown_not_queued(source: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(source, root)
    (root / RUN / runs.STATUS).unlink()
    result = CliRunner().invoke(app, ["ls", "--json", "--runs-dir", str(root)])
    row = next(r for r in strict(result.stdout) if r["run_id"] == RUN)
    assert row["state"] == "unknown" and row["step"] == row["total_steps"]


def test_bad_rows_are_skipped_and_counted_and_good_ones_kept(source: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(source, root)
    before = runs.RunDir(root / RUN).summary()
    damage(root / RUN, "metrics.jsonl", "wrong", np.random.default_rng(0))
    damage(root / RUN, "metrics.jsonl", "nan", np.random.default_rng(0))
    after = runs.RunDir(root / RUN).summary()
    # of the 7 wrong rows two ({"step": 10, ...}, {"step": 20, ...}) have a step; one NaN row has a huge one
    assert after.skipped_rows == 6
    assert (after.memorised_at, after.grokked_at) == (before.memorised_at, before.grokked_at)
    # the last valid row (step 45) has no accuracies: unknown, never NaN or inf
    assert after.train_acc is None and after.test_acc is None
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in vars(after).values())


@pytest.mark.slow  # real workers
@pytest.mark.parametrize(
    ("name", "how"),
    [("spec.json", "wrong"), ("spec.json", "nan"), ("status.json", "wrong"), ("metrics.jsonl", "wrong"),
     ("metrics.jsonl", "nan"), ("fourier.jsonl", "garbled")],
)  # fmt: skip
def test_grok_resume_of_a_damaged_run_is_one_line_or_resumes(
    source: Path, tmp_path: Path, name: str, how: str
) -> None:
    """A damaged spec.json is refused before anything is queued; damaged rows are skipped and the run
    resumes from its last checkpoint (here: a stopped copy of the fixture run, which has none: it starts
    over), and ends done."""
    from helpers import end_leftovers, grok, stop_queued_runs

    root = tmp_path / "runs"
    shutil.copytree(source, root)
    stop_queued_runs(root)  # only old/seed0 is under test
    run = root / "old" / "seed0"  # stopped, not in experiments.toml: resumable
    spec = runs.read_json(run / runs.SPEC)
    short = {**spec, "steps": 40, "eval_every": 20, "checkpoint_every": 40}  # seconds, not minutes
    (run / runs.SPEC).write_text(json.dumps(short))
    damage(run, name, how, np.random.default_rng(7))
    try:
        out = grok("resume", "old/seed0", "--runs-dir", str(root), timeout=600)
        assert "Traceback" not in out.stdout + out.stderr
        if name == "spec.json":
            assert out.returncode == 2
            (line,) = out.stderr.splitlines()
            assert line.startswith(f"grok: error: {run / 'spec.json'}: ")
            assert not (root / ".grok" / "inbox").exists() or not list((root / ".grok" / "inbox").iterdir())
        else:
            assert out.returncode == 0, out.stdout + out.stderr
            assert runs.RunDir(run).status()["state"] == "done"
    finally:
        end_leftovers(root)


@pytest.mark.parametrize("how", ["wrong", "nan", "truncated"])
def test_the_worker_fails_a_damaged_spec_in_one_line_before_training(
    source: Path, tmp_path: Path, how: str
) -> None:
    import subprocess
    import sys

    root = tmp_path / "runs"
    shutil.copytree(source, root)
    run = root / "old" / "seed0"
    damage(run, "spec.json", how, np.random.default_rng(3))
    out = subprocess.run([sys.executable, "-m", "grok_tui.worker", str(run)], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    st = runs.read_json(run / runs.STATUS)
    if how == "truncated":  # not JSON at all: the worker cannot even name the state, and writes nothing
        assert "no readable spec.json" in out.stderr
    else:
        assert st["state"] == "failed" and st["error"].startswith(f"{run / runs.SPEC}: ")
        assert "\n" not in st["error"]
