"""`grok export` of a whole sweep and `grok ls` filters, on a real trained 2×2×2 sweep, through the real CLI.

The exported table is read back with the stdlib (csv, json) and checked number by number against the run
directories' own files: a sweep exported for a dataframe must be exactly what the runs recorded.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import grok

from grok_tui import runs
from grok_tui.cli.exporting import flatten_row

SETTINGS = {"train_frac", "optim.weight_decay", "seed"}


def _runs(root: Path, *experiments: str) -> list[runs.RunDir]:
    return [r for r in runs.list_runs(root / "runs") if r.experiment in experiments]


def _table(text: str, fmt: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of an export: a CSV's header, or the keys of the JSON lines in order of appearance."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        return list(reader.fieldnames or []), list(reader)
    rows = [json.loads(line) for line in text.splitlines()]
    cols: list[str] = []
    for row in rows:
        cols.extend(k for k in row if k not in cols)
    return cols, rows


def _cell(v: Any, fmt: str) -> Any:
    """What a value of a run's file reads as in the export."""
    if fmt == "jsonl":
        return v
    return "" if v is None else str(v)


def _one_line_error(r, needle: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("grok: error:") and needle in r.stderr, r.stderr
    assert r.stdout == ""


# --------------------------------------------------------------------------- export


def _check_rows(rows: list[dict[str, Any]], selected: list[runs.RunDir], fmt: str) -> None:
    """Each run's rows are its metrics.jsonl rows, in order, every value as recorded."""
    assert len(rows) == sum(len(r.metrics()) for r in selected)
    for run in selected:
        mine = [row for row in rows if row["run_id"] == run.run_id]
        spec = run.spec()
        want = [flatten_row(m) for m in run.metrics()]
        assert len(mine) == len(want) > 0, run.run_id
        for got, metrics in zip(mine, want, strict=True):
            for k, v in metrics.items():
                assert got[k] == _cell(v, fmt), (run.run_id, k)
            assert got["train_frac"] == _cell(spec["train_frac"], fmt)
            assert got["optim.weight_decay"] == _cell(spec["optim"]["weight_decay"], fmt)
            assert got["seed"] == _cell(spec["seed"], fmt)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_experiment_exports_as_one_long_table(tiny_sweep: Path, fmt: str) -> None:
    r = grok("export", "sw", "--format", fmt, cwd=tiny_sweep)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    cols, rows = _table(r.stdout, fmt)
    assert cols[0] == "run_id" and set(cols[1:4]) == SETTINGS and cols[4] == "step", cols
    assert {"train_acc", "test_acc", "train_loss", "test_loss", "weight_norm", "restricted_loss"} <= set(cols)
    _check_rows(rows, _runs(tiny_sweep, "sw"), fmt)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_runs_of_two_experiments_export_with_every_setting_that_differs(tiny_sweep: Path, fmt: str) -> None:
    out = tiny_sweep / f"both.{fmt}"
    r = grok("export", "sw", "other", "--format", fmt, "-o", str(out), cwd=tiny_sweep)
    assert r.returncode == 0 and r.stdout == r.stderr == "", r.stderr
    cols, rows = _table(out.read_text(), fmt)
    assert cols[0] == "run_id" and cols.index("step") == 6, cols
    assert set(cols[1:6]) == SETTINGS | {"task", "steps"}  # other: a − b for 300 steps
    _check_rows(rows, _runs(tiny_sweep, "sw", "other"), fmt)
    assert {row["task"] for row in rows if row["run_id"] == "other/seed0"} == {"sub"}


def test_one_run_exports_its_metrics_columns_as_before(tiny_sweep: Path) -> None:
    run = _runs(tiny_sweep, "other")[0]
    r = grok("export", run.run_id, cwd=tiny_sweep)
    assert r.returncode == 0, r.stderr
    cols, rows = _table(r.stdout, "csv")
    assert cols == list(flatten_row(run.metrics()[0])) and len(rows) == len(run.metrics())


def test_measures_adds_progress_jsonl_on_the_rows_of_its_checkpoints(tiny_sweep: Path) -> None:
    r = grok("export", "sw", "--measures", "--format", "jsonl", cwd=tiny_sweep)
    assert r.returncode == 0, r.stderr
    _, rows = _table(r.stdout, "jsonl")
    selected = _runs(tiny_sweep, "sw")
    assert len(rows) == sum(len(run.metrics()) for run in selected)  # progress steps are evaluations
    for run in selected:
        progress = {p["step"]: p for p in run.progress()}
        assert progress, run.run_id
        for row in (row for row in rows if row["run_id"] == run.run_id):
            p = progress.get(row["step"])
            assert row.get("progress.restricted_loss") == (p and p["restricted_loss"])
            assert row.get("progress.key_freqs") == (p and json.dumps(p["key_freqs"]))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_fourier_is_a_long_table_of_norms_per_frequency(tiny_sweep: Path, fmt: str) -> None:
    r = grok("export", "sw", "other", "--fourier", "--format", fmt, cwd=tiny_sweep)
    assert r.returncode == 0, r.stderr
    cols, rows = _table(r.stdout, fmt)
    assert cols[0] == "run_id" and cols[6:] == ["step", "which", "freq", "norm"], cols
    want = {}
    for run in _runs(tiny_sweep, "sw", "other"):
        for f in run.fourier():
            for which in ("embed", "logit"):
                for k, norm in enumerate(f[which], start=1):
                    want[(run.run_id, _cell(f["step"], fmt), which, _cell(k, fmt))] = _cell(norm, fmt)
    got = {(row["run_id"], row["step"], row["which"], row["freq"]): row["norm"] for row in rows}
    assert len(rows) == len(got) == len(want) and got == want


def test_a_ref_that_names_nothing_is_one_line_and_writes_nothing(tiny_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    r = grok("export", "sw", "nope", "-o", str(out), cwd=tiny_sweep)
    _one_line_error(r, "no run 'nope'")
    assert not out.exists()


def test_runs_without_rows_are_left_out_with_a_note(tiny_sweep: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(tiny_sweep / "runs", root, ignore=shutil.ignore_patterns("checkpoints"))
    selected = runs.list_runs(root)
    (selected[0].path / runs.METRICS).write_text("")
    r = grok("export", "sw", "other", "--runs-dir", str(root))
    assert r.returncode == 0
    assert r.stderr == f"grok: note: {selected[0].run_id} has no evaluations yet: left out\n"
    _, rows = _table(r.stdout, "csv")
    assert selected[0].run_id not in {row["run_id"] for row in rows}
    assert len(rows) == sum(len(run.metrics()) for run in selected)
    for run in selected:
        (run.path / runs.METRICS).write_text("")
    r = grok("export", "sw", "other", "--runs-dir", str(root))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "grok: error: none of the 9 runs has evaluations: nothing to export\n"


# --------------------------------------------------------------------------- ls


def _ls(root: Path, *args: str) -> list[dict[str, Any]]:
    r = grok("ls", "--json", *args, cwd=root)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_ls_filters_by_experiment_state_and_setting(tiny_sweep: Path) -> None:
    sw = {r.run_id: r.spec() for r in _runs(tiny_sweep, "sw")}
    assert [row["run_id"] for row in _ls(tiny_sweep, "--experiment", "sw")] == sorted(sw)
    both = _ls(tiny_sweep, "--experiment", "other", "--experiment", "sw")
    assert len(both) == 9 and all("settings" not in row for row in both)  # two experiments: no columns
    assert len(_ls(tiny_sweep, "--state", "done")) == 9
    assert _ls(tiny_sweep, "--state", "failed", "--state", "queued") == []
    frac = [row["run_id"] for row in _ls(tiny_sweep, "--where", "train_frac=0.3")]
    assert frac == sorted(k for k, spec in sw.items() if spec["train_frac"] == 0.3) and len(frac) == 4
    wd = [row["run_id"] for row in _ls(tiny_sweep, "--where", "weight_decay=1")]  # optim.weight_decay
    assert wd == ["other/seed0"] + sorted(k for k, spec in sw.items() if spec["optim"]["weight_decay"] == 1)
    both = _ls(tiny_sweep, "--where", "weight_decay=1", "--where", "train_frac=0.3", "--experiment", "sw")
    assert len(both) == 2


def test_ls_of_one_experiment_has_its_settings(tiny_sweep: Path) -> None:
    listed = _ls(tiny_sweep, "--experiment", "sw", "--where", "train_frac=0.7")
    for row in listed:  # the experiment's varying keys, also the one this selection holds fixed
        spec = runs.RunDir(tiny_sweep / "runs" / row["run_id"]).spec()
        want = {"train_frac": 0.7, "optim.weight_decay": spec["optim"]["weight_decay"], "seed": spec["seed"]}
        assert row["settings"] == want
    r = grok("ls", "--experiment", "sw", cwd=tiny_sweep)
    header = next(line for line in r.stdout.splitlines() if "run" in line and "state" in line)
    assert [c.strip() for c in header.split("┃")[1:5]] == ["run", "frac", "wd", "seed"], header


def test_ls_of_a_sweep_at_80_columns_never_cuts_a_run_id(tiny_sweep: Path) -> None:
    from typer.testing import CliRunner

    from grok_tui.cli import app

    runner = CliRunner(env={"COLUMNS": "80", "GROK_RUNS_DIR": None})
    r = runner.invoke(app, ["ls", "--experiment", "sw", "--runs-dir", str(tiny_sweep / "runs")])
    assert r.exit_code == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80, r.stdout
    for run in _runs(tiny_sweep, "sw"):
        assert run.run_id in r.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--where", "nokey=1"], "no key 'nokey'"),
        (["--where", "weight_decay"], "write KEY=VALUE"),
        (["--state", "finished"], "--state 'finished' is not one of queued, running, done"),
        (["--experiment", "nope"], "no experiment 'nope'"),
    ],
)
def test_ls_bad_filters_are_one_line_and_exit_2(tiny_sweep: Path, args: list[str], needle: str) -> None:
    _one_line_error(grok("ls", *args, cwd=tiny_sweep), needle)


def test_spectra_rows_take_named_frequencies_and_leave_non_finite_norms_empty() -> None:
    from grok_tui.cli.exporting import spectra_rows

    row = {"step": 5, "freqs": [2, 4], "embed": [1.5, float("nan")], "logit": [1e400, 2, 3], "note": "x"}
    assert spectra_rows(row) == [
        {"step": 5, "which": "embed", "freq": 2, "norm": 1.5},
        {"step": 5, "which": "embed", "freq": 4, "norm": None},
        {"step": 5, "which": "logit", "freq": 1, "norm": None},  # 3 norms, 2 named frequencies: k = 1..3
        {"step": 5, "which": "logit", "freq": 2, "norm": 2.0},
        {"step": 5, "which": "logit", "freq": 3, "norm": 3.0},
    ]
