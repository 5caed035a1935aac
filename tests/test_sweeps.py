# ruff: noqa: F811  (pytest fixtures imported from helper modules are parameters here)
"""Sweeps as first-class objects: the model (varying keys found, seeds aggregated, the Table A.5 grid),
`grok compare` and `grok grid` on a real tiny sweep, checked against what its run directories record."""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
from pathlib import Path

import pytest
from helpers import grok

from grok_tui import runs, sweeps

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_fixtures import make_sweep_fixture  # noqa: E402


def fake(run_id: str, grokked_at: int | None, best: float, **settings) -> sweeps.RunResult:
    return sweeps.RunResult(
        run_id=run_id,
        path=Path(run_id),
        experiment=run_id.split("/")[0],
        state="done",
        settings={"p": 23, "task": "add", **settings},
        grokked_at=grokked_at,
        best_test_acc=best,
    )


# --------------------------------------------------------------------------- the model, fast


def test_varying_keys_are_found_seed_last_and_followers_dropped() -> None:
    specs = [
        {"experiment": "a", "name": "x", "task": "add", "p": 23, "seed": s, "split_seed": s, "init_seed": s,
         "optim": {"lr": 1e-3, "weight_decay": wd}, "version": "0.1"}
        for s in (0, 1) for wd in (0.3, 1.0)
    ]  # fmt: skip
    results = [
        sweeps.RunResult(f"a/{i}", Path("."), "a", "done", sweeps.settings(s)) for i, s in enumerate(specs)
    ]
    assert sweeps.varying(results) == ["optim.weight_decay", "seed"]
    assert "split_seed" not in results[0].settings and "version" not in results[0].settings
    # a split seed set apart from the seed is a setting of its own
    apart = sweeps.settings({**specs[0], "split_seed": 9})
    assert apart["split_seed"] == 9


def test_a_cell_says_k_of_n_when_seeds_disagree_and_no_when_none_grokked() -> None:
    runs_ = [
        fake("e/a0", 400, 1.0, train_frac=0.5, seed=0),
        fake("e/a1", None, 0.9, train_frac=0.5, seed=1),
        fake("e/a2", 600, 1.0, train_frac=0.5, seed=2),
        fake("e/b0", None, 0.4, train_frac=0.3, seed=0),
        fake("e/b1", None, 0.6, train_frac=0.3, seed=1),
    ]
    g = sweeps.Sweep(runs_).grid("train_frac", "seed")
    assert g.row_values == [0.3, 0.5] and g.col_values == [0, 1, 2]
    assert [c.text for c in g.cells[0]] == ["no (0.400)", "no (0.600)", ""]
    point = sweeps.Sweep(runs_).grid("train_frac", "p")
    mixed, none = point.cells[1][0], point.cells[0][0]
    assert (mixed.value, mixed.k, mixed.n, mixed.text) == (500, 2, 3, "500 2/3")
    assert (none.value, none.best_test_acc, none.text) == (None, 0.5, "no (0.500)")
    # earlier grokking is brighter; a cell that reached nothing has no shade
    assert point.shades() == [[None], [1.0]]


def test_where_matches_numbers_by_value_and_keys_by_suffix() -> None:
    s = sweeps.Sweep([fake(f"e/{i}", None, 0.5, **{"optim.weight_decay": wd, "seed": 0}) for i, wd in
                      enumerate([0.3, 1.0, 1])])  # fmt: skip
    assert [r.run_id for r in s.where(["weight_decay=1"]).runs] == ["e/1", "e/2"]
    assert [r.run_id for r in s.where(["wd=0.3"]).runs] == ["e/0"]
    for bad in ("weight_decay", "=1", "nosuch=1"):
        with pytest.raises(sweeps.SweepError):
            s.where([bad])


def test_a_grid_refuses_to_mix_the_values_of_another_varying_key() -> None:
    s = sweeps.Sweep(
        [
            fake(f"e/{i}", 100, 1.0, train_frac=f, lr=lr, seed=0)
            for i, (f, lr) in enumerate([(0.3, 1), (0.3, 2)])
        ]
    )
    with pytest.raises(sweeps.SweepError, match="'lr' also varies"):
        s.grid("train_frac", "seed")
    with pytest.raises(sweeps.SweepError, match="is a result"):
        s.grid("grokked_at", "seed")


def test_the_fixture_sweep_grid_follows_its_curves(tmp_path: Path) -> None:
    """The synthetic sweep the snapshots use: the cells the fixture means to grok do, one cell's seeds
    disagree, and the grid's steps are the first evaluation at test accuracy 0.99 of each run."""
    make_sweep_fixture(tmp_path)
    s = sweeps.Sweep.load(tmp_path / "runs", ["fr"])
    g = s.grid("train_frac", "weight_decay")
    texts = [[c.text for c in line] for line in g.cells]
    assert [t.startswith("no (") for t in texts[0]] == [True, True]
    assert texts[2][0].endswith(" 1/2")
    for line in g.cells:
        for c in line:
            steps = [runs.first_step_at(runs.RunDir(r.path).metrics(), "test_acc") for r in c.runs]
            got = [x for x in steps if x is not None]
            assert c.value == (statistics.median(got) if got else None)


def test_a_grid_of_gini_says_which_convention(tmp_path: Path) -> None:
    """The papers leave open whether the constant component is in a Gini: the grid's title says it."""
    make_sweep_fixture(tmp_path)
    args = (
        "grid",
        "fr",
        "--rows",
        "train_frac",
        "--cols",
        "weight_decay",
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    r = grok(*args, "--value", "gini_embed", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("gini_embed (constant component out): train_frac down")


# --------------------------------------------------------------------------- the commands, real runs


def first_at(run: Path, key: str) -> int | None:
    return runs.first_step_at(runs.read_jsonl(run / runs.METRICS), key)


@pytest.mark.slow
def test_compare_shows_only_the_keys_that_differ_and_what_each_run_reached(tiny_sweep: Path) -> None:
    r = grok("compare", "sw", "--json", cwd=tiny_sweep)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 8
    for row in rows:
        assert list(row)[:5] == ["run_id", "state", "train_frac", "optim.weight_decay", "seed"]
        run = tiny_sweep / "runs" / row["run_id"]
        metrics = runs.read_jsonl(run / runs.METRICS)
        assert row["grokked_at"] == first_at(run, "test_acc")
        assert row["memorised_at"] == first_at(run, "train_acc")
        assert row["best_test_acc"] == max(m["test_acc"] for m in metrics)
        assert row["final_test_loss"] == metrics[-1]["test_loss"]
    assert any(row["grokked_at"] for row in rows) and not all(row["grokked_at"] for row in rows)

    # across experiments the differing keys are found: task, p stays (both 23), steps differs
    r = grok("compare", "sw", "other", "--json", cwd=tiny_sweep)
    keys = [k for k in json.loads(r.stdout)[0] if k not in ("run_id", "state") and k not in sweeps.RESULTS]
    assert {"task", "train_frac", "steps", "optim.weight_decay"} <= set(keys) and "p" not in keys

    r = grok("compare", "sw", "--by", "point", "--sort", "grokked_at", "--csv", cwd=tiny_sweep)
    assert r.returncode == 0, r.stderr
    points = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [int(p["n"]) for p in points] == [2, 2, 2, 2]
    assert points[0]["grokked_at.median"] != "" and points[-1]["grokked_at.median"] == ""
    table = grok("compare", "sw", "--by", "point", cwd=tiny_sweep).stdout
    assert "grokked" in table and "2/2" in table


@pytest.mark.slow
def test_grid_cells_are_median_grokked_steps_or_the_best_accuracy_marked(tiny_sweep: Path) -> None:
    r = grok("grid", "sw", "--rows", "train_frac", "--cols", "weight_decay", "--json", cwd=tiny_sweep)
    assert r.returncode == 0, r.stderr
    cells = json.loads(r.stdout)
    assert len(cells) == 4
    for c in cells:
        paths = [tiny_sweep / "runs" / rid for rid in c["runs"]]
        steps = [s for p in paths if (s := first_at(p, "test_acc")) is not None]
        bests = [max(m["test_acc"] for m in runs.read_jsonl(p / runs.METRICS)) for p in paths]
        assert c["n"] == 2 and c["k"] == len(steps)
        if steps:
            assert c["grokked_at"] == statistics.median(steps)
        else:
            assert c["grokked_at"] is None and c["text"] == f"no ({statistics.median(bests):.3f})"
    assert [c["text"].startswith("no") for c in cells if c["train_frac"] == 0.3] == [True, True]
    assert any(c["grokked_at"] for c in cells)

    text = grok("grid", "sw", "--rows", "train_frac", "--cols", "weight_decay", "--plot", cwd=tiny_sweep)
    assert text.returncode == 0 and "frac \\ wd" in text.stdout
    args = ["--rows", "wd", "--cols", "train_frac", "--value", "best_test_acc", "--csv"]
    csv_rows = list(csv.DictReader(io.StringIO(grok("grid", "sw", *args, cwd=tiny_sweep).stdout)))
    assert {r["optim.weight_decay"] for r in csv_rows} == {"0.3", "1.0"} and len(csv_rows) == 4


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["grid", "sw", "--rows", "p", "--cols", "train_frac"], "'optim.weight_decay' also varies"),
        (["grid", "sw", "--rows", "nosuch", "--cols", "seed"], "no key 'nosuch'"),
        (["grid", "sw", "--cols", "seed"], "needs --rows KEY and --cols KEY"),
        (["grid", "nosuch", "--rows", "p", "--cols", "seed"], "no run 'nosuch'"),
        (["compare", "sw", "--where", "train_frac"], "write KEY=VALUE"),
        (["compare", "sw", "--where", "train_frac=0.9"], "no runs matching train_frac=0.9"),
        (["compare", "sw", "--by", "nothing"], "--by 'nothing'"),
        (["compare", "sw", "--json", "--csv"], "exclude each other"),
    ],
)
def test_a_question_the_sweep_cannot_answer_is_one_line(
    tiny_sweep: Path, args: list[str], words: str
) -> None:
    r = grok(*args, cwd=tiny_sweep)
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith("grok: error: ") and words in line
