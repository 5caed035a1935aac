"""``init_from``: a run that starts from parts of another run (Furuta et al. 2024's PG-E and PG-T) or
freezes its own random embedding (their App. F), through the real CLI, scheduler and workers.

What a user relies on: frozen parts are bit-identical at every checkpoint (no gradient, no weight decay),
loaded parts are the source's at the step asked for, spec.json says what was loaded (with a digest that
matches the source's arrays), a run waits for its source, and a source that cannot serve it is one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import grok

from grok_tui import runs, transfer
from grok_tui.checkpoints import load_checkpoint

BASE = """
[defaults]
runs_dir = "runs"
device = "cpu"
p = 11
layout = "furuta"
train_frac = 0.5
steps = 60
eval_every = 20
checkpoint_every = 20
model = { d_model = 32, heads = 4, d_mlp = 64 }
optim = { lr = 3e-3, weight_decay = 1.0 }
"""

SOURCE = """
[experiments.src]
task = "add"
"""

RUNS = """
[experiments.pge]
task = "2*a+b"
init_from = { run = "src/seed{seed}", load = ["embed"], freeze = true }

[experiments.pgt]
task = "2*a+b"
init_from = { run = "src/seed0", load = ["block"], freeze = true, step = 40 }

[experiments.ft]
task = "2*a+b"
init_from = { run = "src/seed0", load = ["all"] }

[experiments.rand]
task = "2*a+b"
init_from = { freeze = ["embed"] }

[experiments.scratch]
task = "2*a+b"
"""


def _arrays(run: runs.RunDir, step: int) -> dict[str, np.ndarray]:
    arrays, _ = load_checkpoint(run.checkpoint_path(step))
    return {k: v for k, v in arrays.items() if not k.startswith("analysis/")}


def _names(arrays: dict[str, np.ndarray], part: str) -> list[str]:
    return [k for k in arrays if k == part or (part == "blocks" and k.startswith("blocks."))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every kind of transfer run and a scratch run, trained once by one `grok run`."""
    root = tmp_path_factory.mktemp("transfer")
    (root / "experiments.toml").write_text(BASE + SOURCE + RUNS)
    out = grok("run", "experiments.toml", "--parallel", "2", cwd=root, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return root / "runs"


def test_frozen_loaded_embedding_is_the_source_s_at_every_checkpoint(trained: Path) -> None:
    src, pge = runs.RunDir(trained / "src/seed0"), runs.RunDir(trained / "pge/seed0")
    source = _arrays(src, 60)
    first, last = _arrays(pge, 0), _arrays(pge, 60)
    for step in pge.checkpoint_steps():
        assert np.array_equal(_arrays(pge, step)["W_E"], source["W_E"]), step
    # the rest trains (weight decay and gradient both act on it)
    assert all(not np.array_equal(first[k], last[k]) for k in first if k != "W_E")


def test_frozen_loaded_block_is_the_source_s_at_the_step_asked_for(trained: Path) -> None:
    src, pgt = runs.RunDir(trained / "src/seed0"), runs.RunDir(trained / "pgt/seed0")
    at40, final = _arrays(src, 40), _arrays(src, 60)
    blocks = _names(at40, "blocks")
    assert blocks and any(not np.array_equal(at40[k], final[k]) for k in blocks)  # step 40 is not the end
    for step in pgt.checkpoint_steps():
        arrays = _arrays(pgt, step)
        assert all(np.array_equal(arrays[k], at40[k]) for k in blocks), step
    assert not np.array_equal(_arrays(pgt, 0)["W_E"], _arrays(pgt, 60)["W_E"])


def test_loaded_unfrozen_parts_start_as_the_source_and_then_train(trained: Path) -> None:
    src, ft = runs.RunDir(trained / "src/seed0"), runs.RunDir(trained / "ft/seed0")
    source, start, end = _arrays(src, 60), _arrays(ft, 0), _arrays(ft, 60)
    assert all(np.array_equal(start[k], source[k]) for k in source)
    assert all(not np.array_equal(end[k], source[k]) for k in source)


def test_frozen_random_embedding_is_the_run_s_own_init_throughout(trained: Path) -> None:
    rand, scratch = runs.RunDir(trained / "rand/seed0"), runs.RunDir(trained / "scratch/seed0")
    init = _arrays(scratch, 0)["W_E"]  # the same seed draws the same initial weights
    for step in rand.checkpoint_steps():
        assert np.array_equal(_arrays(rand, step)["W_E"], init), step
    assert not np.array_equal(_arrays(scratch, 60)["W_E"], init)
    assert "frozen (no gradient, no weight decay): W_E" in rand.log_path().read_text()


def test_spec_json_records_the_source_step_and_a_digest_of_the_loaded_arrays(trained: Path) -> None:
    src = runs.RunDir(trained / "src/seed0")
    for name, step, part in (("pge", 60, "W_E"), ("pgt", 40, "blocks")):
        spec = runs.RunDir(trained / f"{name}/seed0").spec()
        source = _arrays(src, step)
        loaded = {k: source[k] for k in _names(source, part)}
        assert spec["loaded_from"] == {
            "run": "src/seed0",
            "step": step,
            "arrays": sorted(loaded),
            "sha256": transfer.digest(loaded),
        }
    assert "loaded_from" not in runs.RunDir(trained / "rand/seed0").spec()  # it loads nothing


def test_a_run_starts_only_after_its_source_has_ended(trained: Path) -> None:
    ended = runs.RunDir(trained / "src/seed0").raw_status()["ended"]
    for name in ("pge", "ft"):  # "last": the source must be done
        assert runs.RunDir(trained / f"{name}/seed0").raw_status()["started"] >= ended
    log = grok("logs", "--scheduler", "--runs-dir", str(trained)).stdout
    assert "pge/seed0: waits for init_from run 'src/seed0'" in log


def test_a_second_run_of_the_file_finds_everything_done(trained: Path) -> None:
    """loaded_from, added to spec.json by the worker, does not make the run another experiment."""
    out = grok("run", "experiments.toml", cwd=trained.parent)
    assert out.returncode == 0, out.stderr
    assert "pge/seed0: already done" in out.stdout + out.stderr


def test_force_starts_over_the_runs_asked_for_and_never_their_source(trained: Path) -> None:
    src = runs.RunDir(trained / "src/seed0")
    before = (src.raw_status()["ended"], src.checkpoint_path(60).stat().st_mtime_ns)
    out = grok("run", "experiments.toml", "--only", "pge", "--force", cwd=trained.parent, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "src/seed0: also run, an init_from source" in out.stdout + out.stderr  # not asked for, needed
    assert (src.raw_status()["ended"], src.checkpoint_path(60).stat().st_mtime_ns) == before
    pge = runs.RunDir(trained / "pge/seed0")
    assert pge.status()["state"] == "done" and pge.raw_status()["started"] > before[0]
    assert np.array_equal(_arrays(pge, 60)["W_E"], _arrays(src, 60)["W_E"])


# --------------------------------------------------------------------------- a source that cannot serve


def test_a_source_that_cannot_serve_fails_the_run_with_one_line(trained: Path, tmp_path: Path) -> None:
    """Checked when the run starts, for sources the experiments file does not define (they are only in
    the runs directory): another shape, no such run, a source that ended (stopped) without the checkpoint
    and so will never write it. Each run fails at once with one line rather than waiting for ever; the
    sources are left as they were."""
    from grok_tui.config import parse_config
    from grok_tui.launch.local import prepare_run
    from grok_tui.recorder import update_status

    cfg = parse_config(BASE + SOURCE.replace("src", "src2"), tmp_path / "src2.toml")
    stopped, _ = prepare_run(cfg.runs[0], trained)
    update_status(stopped.path, state="stopped")
    loads = 'task = "2*a+b"\ninit_from = {{ run = "{}", load = ["embed"] }}\n'
    (tmp_path / "other.toml").write_text(
        BASE
        + "[experiments.wrong-p]\np = 13\n" + loads.format("src/seed0")
        + "[experiments.gone]\n" + loads.format("vanished/seed0")
        + "[experiments.after-stopped]\n" + loads.format("src2/seed0")
    )  # fmt: skip
    out = grok("run", "other.toml", "--runs-dir", str(trained), "--parallel", "2", cwd=tmp_path, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    for run_id, fragments in (
        ("wrong-p/seed0", ("src/seed0", "W_E of 16×32", "18×32")),
        ("gone/seed0", ("'vanished/seed0' does not exist",)),
        ("after-stopped/seed0", ("src2/seed0", "is stopped")),
    ):
        st = runs.RunDir(trained / run_id).status()
        assert st["state"] == "failed" and "\n" not in st["error"], st
        assert all(f in st["error"] for f in fragments), st["error"]
    assert stopped.status()["state"] == "stopped"
    assert runs.RunDir(trained / "src/seed0").status()["state"] == "done"


def test_a_damaged_init_from_in_spec_json_is_one_line(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "runs" / "rand" / "seed0"
    shutil.copytree(trained / "rand/seed0", copy)
    spec = json.loads((copy / runs.SPEC).read_text())
    for bad in ({"load": "embed"}, {"freeze": ["all"]}, {"step": -1}, {"load": ["wings"]}):
        (copy / runs.SPEC).write_text(json.dumps({**spec, "init_from": {**spec["init_from"], **bad}}))
        out = grok("resume", "rand/seed0", "--runs-dir", str(tmp_path / "runs"))
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "init_from" in out.stderr and "Traceback" not in out.stderr


def test_compare_shows_where_each_run_started(trained: Path) -> None:
    out = grok("compare", "pge", "pgt", "ft", "rand", "scratch", "--runs-dir", str(trained), "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["run_id"]: r for r in json.loads(out.stdout)}
    pge, pgt, rand, scratch = (rows[f"{n}/seed0"] for n in ("pge", "pgt", "rand", "scratch"))
    assert [pge[f"init_from.{k}"] for k in ("load", "run", "step")] == [["embed"], "src/seed0", "last"]
    # freeze = true ("what is loaded") is one value whatever the parts, so a grid over load stays 2-D
    assert [pgt[f"init_from.{k}"] for k in ("load", "freeze", "step")] == [["block"], True, 40]
    assert rows["ft/seed0"]["init_from.freeze"] is False
    assert rand["init_from.freeze"] == ["embed"] and rand["init_from.run"] is None  # it loads nothing
    assert all(scratch[k] is None for k in pge if k.startswith("init_from."))
    assert not any(k.startswith("loaded_from") for r in rows.values() for k in r)  # a record, not a setting
