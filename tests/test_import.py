"""`grok import FILE`: peers' checkpoints (Nanda's layout, TransformerLens's, series) as run directories.

Synthetic state dicts with random weights are built here in each peer's layout, saved with torch.save
and imported through the real CLI; the imported run's logits (our numpy forward and our torch model) must
equal a straight re-implementation of each peer's own forward pass to float32 tolerance.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import grok

from grok_tui import runs
from grok_tui.analysis import forward as fwd
from grok_tui.checkpoints import load_checkpoint
from grok_tui.models.transformer import Transformer
from grok_tui.tasks import split_pairs

P, D, H, D_MLP = 11, 16, 2, 24
DH = D // H
V = P + 1


# --------------------------------------------------------------------------- the peers' layouts


def nanda_sd(seed: int = 0) -> dict[str, torch.Tensor]:
    """Nanda et al.'s 1-layer model as their code stores it: (d_out, d_in), heads split out."""
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g) / math.sqrt(D)

    return {
        "embed.W_E": r(D, V),
        "pos_embed.W_pos": r(3, D),
        "blocks.0.attn.W_K": r(H, DH, D),
        "blocks.0.attn.W_Q": r(H, DH, D),
        "blocks.0.attn.W_V": r(H, DH, D),
        "blocks.0.attn.W_O": r(D, D),
        "blocks.0.attn.mask": torch.tril(torch.ones(3, 3)),
        "blocks.0.mlp.W_in": r(D_MLP, D),
        "blocks.0.mlp.b_in": r(D_MLP),
        "blocks.0.mlp.W_out": r(D, D_MLP),
        "blocks.0.mlp.b_out": r(D),
        "unembed.W_U": r(D, V),
    }


def nanda_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Their forward pass, written as their code writes it (einsums over (d_out, d_in) weights)."""
    W_E = sd["embed.W_E"]
    r = torch.einsum("dbp->bpd", W_E[:, x]) + sd["pos_embed.W_pos"]
    k = torch.einsum("ihd,bpd->biph", sd["blocks.0.attn.W_K"], r)
    q = torch.einsum("ihd,bpd->biph", sd["blocks.0.attn.W_Q"], r)
    v = torch.einsum("ihd,bpd->biph", sd["blocks.0.attn.W_V"], r)
    scores = torch.einsum("biph,biqh->biqp", k, q)
    mask = sd["blocks.0.attn.mask"]
    scores = torch.tril(scores) - 1e10 * (1 - mask)
    attn = torch.softmax(scores / math.sqrt(DH), dim=-1)
    z = torch.einsum("biph,biqp->biqh", v, attn)
    z_flat = z.permute(0, 2, 1, 3).reshape(z.shape[0], z.shape[2], -1)  # b q (i h)
    r = r + torch.einsum("df,bqf->bqd", sd["blocks.0.attn.W_O"], z_flat)
    pre = torch.einsum("md,bpd->bpm", sd["blocks.0.mlp.W_in"], r) + sd["blocks.0.mlp.b_in"]
    post = torch.relu(pre)
    r = r + torch.einsum("dm,bpm->bpd", sd["blocks.0.mlp.W_out"], post) + sd["blocks.0.mlp.b_out"]
    return (r @ sd["unembed.W_U"])[:, -1]


def tl_sd(seed: int = 0, bias: float = 0.0) -> dict[str, torch.Tensor]:
    """TransformerLens's HookedTransformer state dict of the same model (normalization_type=None)."""
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g) / math.sqrt(D)

    return {
        "embed.W_E": r(V, D),
        "pos_embed.W_pos": r(3, D),
        "blocks.0.attn.W_Q": r(H, D, DH),
        "blocks.0.attn.W_K": r(H, D, DH),
        "blocks.0.attn.W_V": r(H, D, DH),
        "blocks.0.attn.W_O": r(H, DH, D),
        "blocks.0.attn.b_Q": torch.full((H, DH), bias),
        "blocks.0.attn.b_K": torch.zeros(H, DH),
        "blocks.0.attn.b_V": torch.zeros(H, DH),
        "blocks.0.attn.b_O": torch.zeros(D),
        "blocks.0.attn.mask": torch.tril(torch.ones(3, 3, dtype=torch.bool)),
        "blocks.0.attn.IGNORE": torch.tensor(-1e5),
        "blocks.0.mlp.W_in": r(D, D_MLP),
        "blocks.0.mlp.b_in": r(D_MLP),
        "blocks.0.mlp.W_out": r(D_MLP, D),
        "blocks.0.mlp.b_out": r(D),
        "unembed.W_U": r(D, V),
        "unembed.b_U": torch.zeros(V),
    }


def tl_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """TransformerLens's attention and MLP, as HookedTransformer computes them (x @ W, biases added)."""
    r = sd["embed.W_E"][x] + sd["pos_embed.W_pos"]
    a = "blocks.0.attn."
    q = torch.einsum("bpd,hde->bphe", r, sd[a + "W_Q"]) + sd[a + "b_Q"]
    k = torch.einsum("bpd,hde->bphe", r, sd[a + "W_K"]) + sd[a + "b_K"]
    v = torch.einsum("bpd,hde->bphe", r, sd[a + "W_V"]) + sd[a + "b_V"]
    scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(DH)
    scores = torch.where(sd[a + "mask"], scores, sd[a + "IGNORE"])
    z = torch.einsum("bhqk,bkhe->bqhe", scores.softmax(-1), v)
    r = r + torch.einsum("bqhe,hed->bqd", z, sd[a + "W_O"]) + sd[a + "b_O"]
    post = torch.relu(r @ sd["blocks.0.mlp.W_in"] + sd["blocks.0.mlp.b_in"])
    r = r + post @ sd["blocks.0.mlp.W_out"] + sd["blocks.0.mlp.b_out"]
    return (r @ sd["unembed.W_U"] + sd["unembed.b_U"])[:, -1]


def all_tokens() -> torch.Tensor:
    return torch.tensor([(a, b, P) for a in range(P) for b in range(P)])


ASSERT = ["--task", "add", "--p", str(P), "--train-frac", "0.3", "--seed", "1"]


class Out:
    """What a user sees of one `grok` command: exit code, stdout, stderr."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(*args: str) -> Out:
    """The real CLI in this process (torch is loaded once for the module); an exception that escapes
    it, what a user would see as a traceback, fails the test."""
    from typer.testing import CliRunner

    from grok_tui.cli import app

    r = CliRunner(env={"GROK_RUNS_DIR": None}).invoke(app, list(args))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Out(r.exit_code, r.stdout, r.stderr)


def do_import(tmp_path: Path, obj, *args: str, name: str = "peer", subprocess: bool = False) -> Out:
    path = tmp_path / f"{name}.pth"
    torch.save(obj, path)
    argv = ("import", str(path), "--runs-dir", str(tmp_path / "runs"), "--name", name, *args)
    if subprocess:  # as a user runs it: `grok import` in its own process
        return grok(*argv)
    return cli(*argv)


def our_logits(run_dir: Path, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The imported checkpoint's logits by our numpy forward and by our torch model."""
    arrays, _ = load_checkpoint(runs.RunDir(run_dir).checkpoint_path(step))
    weights = {k: v for k, v in arrays.items() if not k.startswith("analysis/")}
    spec = json.loads((run_dir / "spec.json").read_text())
    x = all_tokens().numpy()
    np_logits, _ = fwd.transformer(weights, x, heads=spec["model"]["heads"], act="relu")
    model = Transformer(V, V, spec["model"])
    model.load_arrays(weights)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x)).numpy()
    return np_logits, torch_logits


# --------------------------------------------------------------------------- the mapping


@pytest.mark.parametrize("layout", ["nanda", "transformerlens"])
def test_imported_logits_equal_the_peers_forward_pass(tmp_path: Path, layout: str) -> None:
    sd = nanda_sd(3) if layout == "nanda" else tl_sd(3)
    peer = (nanda_forward if layout == "nanda" else tl_forward)(sd, all_tokens()).numpy()
    r = do_import(tmp_path, sd, *ASSERT, "--step", "40", subprocess=True)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "runs" / "imported" / "peer"
    spec = json.loads((run_dir / "spec.json").read_text())
    assert spec["imported"]["layout"] == layout and spec["imported"]["format"] == "state_dict"
    assert spec["imported"]["sha256"] and spec["imported"]["asserted"]["seed"] == 1
    assert spec["model"] == {"kind": "transformer", "layers": 1, "d_model": D, "heads": H, "d_mlp": D_MLP,
                             "act": "relu", "pos_embed": True, "biases": "mlp", "init": "nanda"}  # fmt: skip
    np_logits, torch_logits = our_logits(run_dir, 40)
    assert np.abs(peer).max() > 0.1  # random weights: logits that differ when the mapping is wrong
    np.testing.assert_allclose(np_logits, peer, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(torch_logits, peer, rtol=1e-4, atol=1e-5)
    # the metrics row is the forward pass scored on Nanda's split
    row = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    labels = np.array([(a + b) % P for a in range(P) for b in range(P)])
    is_train = split_pairs(P, 0.3, 1).reshape(-1)
    correct = peer.argmax(-1) == labels
    assert row["step"] == 40
    assert row["train_acc"] == pytest.approx(correct[is_train].mean(), abs=1e-9)
    assert row["test_acc"] == pytest.approx(correct[~is_train].mean(), abs=1e-9)
    logp = torch.log_softmax(torch.from_numpy(peer).double(), -1).numpy()
    assert row["train_loss"] == pytest.approx(-logp[is_train, labels[is_train]].mean(), rel=1e-4)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "done" and status["step"] == 40


def test_split_is_nandas_gen_train_test() -> None:
    """Nanda's rule literally (progress-measures-paper gen_train_test) against tasks.split_pairs."""
    for p, frac, seed in ((113, 0.3, 1), (113, 0.3, 0), (31, 0.5, 7)):
        pairs = [(i, j, p) for i in range(p) for j in range(p)]
        random.seed(seed)
        random.shuffle(pairs)
        train = pairs[: int(frac * len(pairs))]
        theirs = np.zeros((p, p), dtype=bool)
        for i, j, _ in train:
            theirs[i, j] = True
        assert (split_pairs(p, frac, seed) == theirs).all()


def test_a_saved_run_takes_its_step_and_settings_from_the_file(tmp_path: Path) -> None:
    """Nanda's saved-run dict: step from the scheduler, task/p/frac/seed from its config, the peer's
    loss curves kept apart in peer_losses.jsonl; an option that contradicts the config is a note."""
    obj = {
        "model": nanda_sd(1), "epoch": 6, "train_losses": [4.0, 3.0, 2.0, 1.0, 0.5, 0.25, 0.125],
        "test_losses": [4.5, 3.5, 2.5, 1.5, 1.0, 0.75, 0.5],
        "scheduler": {"last_epoch": 7}, "config": {"p": P, "fn_name": "add", "frac_train": 0.3, "seed": 1},
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "weight_decay": 0.1, "params": [0]}]},
    }  # fmt: skip
    r = do_import(tmp_path, obj, "--seed", "2")
    assert r.returncode == 0, r.stderr
    assert "--seed 2 overrides the file's config (seed = 1)" in r.stderr
    run_dir = tmp_path / "runs" / "imported" / "peer"
    spec = json.loads((run_dir / "spec.json").read_text())
    assert spec["p"] == P and spec["train_frac"] == 0.3 and spec["split_seed"] == 2 and spec["task"] == "add"
    assert spec["imported"]["file_optimizer"]["weight_decay"] == 0.1
    assert runs.RunDir(run_dir).checkpoint_steps() == [7]
    peer = [json.loads(line) for line in (run_dir / "peer_losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in peer] == list(range(7)) and peer[6] == {
        "step": 6,
        "train_loss": 0.125,
        "test_loss": 0.5,
    }


# --------------------------------------------------------------------------- series


def test_a_full_run_series_gives_checkpoints_metrics_and_progress_at_its_steps(tmp_path: Path) -> None:
    sds = [nanda_sd(s) for s in range(3)]
    obj = {"state_dicts": sds, "checkpoint_epochs": [0, 10, 20], "train_losses": [1.0] * 21}
    r = do_import(tmp_path, obj, *ASSERT)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "runs" / "imported" / "peer"
    run = runs.RunDir(run_dir)
    assert run.checkpoint_steps() == [1, 11, 21]  # saved after the epoch's optimizer step
    assert [m["step"] for m in run.metrics()] == [1, 11, 21]
    assert [f["step"] for f in run.fourier()] == [1, 11, 21]
    assert [p["step"] for p in run.progress()] == [1, 11, 21]
    assert all("restricted_loss" in p and "excluded_loss" in p for p in run.progress())
    for step, sd in zip([1, 11, 21], sds, strict=True):  # each checkpoint holds its own state dict
        np_logits, _ = our_logits(run_dir, step)
        np.testing.assert_allclose(np_logits, nanda_forward(sd, all_tokens()).numpy(), rtol=1e-4, atol=1e-5)
    show = cli("show", "imported/peer", "--runs-dir", str(tmp_path / "runs"))
    assert show.returncode == 0 and "imported/peer" in show.stdout
    inspect = cli("inspect", "imported/peer", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert inspect.returncode == 0, inspect.stderr
    info = json.loads(inspect.stdout)
    assert info["step"] == 21 and info["final"] is not None


def test_a_plain_list_needs_its_steps(tmp_path: Path) -> None:
    sds = [nanda_sd(s) for s in range(2)]
    r = do_import(tmp_path, sds, *ASSERT)
    assert r.returncode == 2 and "give --every N" in r.stderr and "Traceback" not in r.stderr
    r = do_import(tmp_path, sds, *ASSERT, "--step", "5")
    assert r.returncode == 2 and "--step is for a single one" in r.stderr
    r = do_import(tmp_path, sds[0], *ASSERT, "--every", "5")
    assert r.returncode == 2 and "--every and --first are for a list" in r.stderr
    r = do_import(tmp_path, sds, *ASSERT, "--every", "5", "--first", "100")
    assert r.returncode == 0, r.stderr
    assert runs.RunDir(tmp_path / "runs" / "imported" / "peer").checkpoint_steps() == [100, 105]


# --------------------------------------------------------------------------- refusals


def test_full_unpickling_is_refused_unless_trusted(tmp_path: Path) -> None:
    obj = {"model": nanda_sd(0), "config": {"p": P, "fn_name": "add", "frac_train": 0.3, "seed": 1},
           "extra": np.arange(3)}  # fmt: skip  # a numpy array: unpickling it calls numpy's reconstructor
    r = do_import(tmp_path, obj, "--step", "1")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "needs full unpickling" in r.stderr
    assert "--trust" in r.stderr and "peer.pth" in r.stderr
    assert not (tmp_path / "runs" / "imported" / "peer").exists()
    r = do_import(tmp_path, obj, "--step", "1", "--trust")
    assert r.returncode == 0, r.stderr


def test_nonzero_attention_bias_is_refused(tmp_path: Path) -> None:
    r = do_import(tmp_path, tl_sd(0, bias=0.5), *ASSERT)
    assert r.returncode == 2 and "blocks.0.attn.b_Q" in r.stderr and "non-zero bias" in r.stderr
    sd = tl_sd(0)
    sd["unembed.W_U"], sd["unembed.b_U"] = sd["unembed.W_U"][:, :P], sd["unembed.b_U"][:P]
    r = do_import(tmp_path, sd, *ASSERT)  # TransformerLens's demo reads out p classes, not p + 1
    assert r.returncode == 2 and "unembed.W_U" in r.stderr and "d_vocab_out = p" in r.stderr


def test_an_existing_run_is_replaced_only_with_force(tmp_path: Path) -> None:
    assert do_import(tmp_path, nanda_sd(0), *ASSERT).returncode == 0
    r = do_import(tmp_path, nanda_sd(1), *ASSERT)
    assert r.returncode == 2 and "already exists" in r.stderr and "--force" in r.stderr
    r = do_import(tmp_path, nanda_sd(1), *ASSERT, "--force")
    assert r.returncode == 0, r.stderr
    np_logits, _ = our_logits(tmp_path / "runs" / "imported" / "peer", 0)
    np.testing.assert_allclose(
        np_logits, nanda_forward(nanda_sd(1), all_tokens()).numpy(), rtol=1e-4, atol=1e-5
    )


def test_a_linked_experiment_directory_is_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "imported").symlink_to(outside)
    r = do_import(tmp_path, nanda_sd(0), *ASSERT)
    assert r.returncode == 2 and "symbolic link" in r.stderr and len(r.stderr.splitlines()) == 1
    assert list(outside.iterdir()) == []


def test_an_imported_run_is_never_trained(tmp_path: Path) -> None:
    assert do_import(tmp_path, nanda_sd(0), *ASSERT).returncode == 0
    run_dir = tmp_path / "runs" / "imported" / "peer"
    before = (run_dir / "status.json").read_text()
    r = cli("resume", "imported/peer", "--runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2 and "was imported from" in r.stderr and "never trained" in r.stderr
    import subprocess

    w = subprocess.run(
        [sys.executable, "-m", "grok_tui.worker", str(run_dir)], capture_output=True, text=True
    )
    assert w.returncode == 2 and "was imported from" in w.stderr
    assert (run_dir / "status.json").read_text() == before  # the worker wrote nothing
    from grok_tui.launch.local import LaunchError, prepare_run

    spec = json.loads((run_dir / "spec.json").read_text())
    with pytest.raises(LaunchError, match="was imported from"):
        prepare_run(spec, tmp_path / "runs", force=True)  # grok run --force, the app's launch key
    from grok_tui.launch.scheduler import Scheduler
    from grok_tui.launch.slots import Slots

    sched = Scheduler.acquire(tmp_path / "runs", Slots())
    assert sched is not None
    try:
        action, message = sched.submit(run_dir)  # a request that reaches the scheduler anyway
        assert action == "error" and "was imported from" in message and not sched.queue
    finally:
        sched.release()
    from grok_tui.tui.actions import ActionError, resume

    with pytest.raises(ActionError, match="was imported from"):
        resume([run_dir], tmp_path / "runs")  # the app's R key: refused before anything is spawned
    assert (run_dir / "status.json").read_text() == before


def _bad_files(tmp: Path) -> list[tuple[Path, str]]:
    """A generated class of files that must each be refused with one line naming the file (and the key)."""
    tmp.mkdir(parents=True, exist_ok=True)
    out: list[tuple[Path, str]] = []

    def save(name: str, obj, expect: str) -> None:
        path = tmp / f"{name}.pth"
        torch.save(obj, path)
        out.append((path, expect))

    for name, data in (("random", bytes(range(256)) * 8), ("empty", b""), ("text", b"hello\n")):
        path = tmp / f"{name}.pth"
        path.write_bytes(data)
        out.append((path, ""))
    good = tmp / "good.pth"
    torch.save(nanda_sd(0), good)
    (tmp / "truncated.pth").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out.append((tmp / "truncated.pth", ""))
    sd = nanda_sd(0)
    for key in sd:  # every key of the layout, one dimension off
        if key.endswith("mask"):
            continue
        bad = dict(sd)
        t = bad[key]
        bad[key] = torch.zeros(*t.shape[:-1], t.shape[-1] + 1)
        save(f"shape-{key}", bad, key)
    for key in ("embed.W_E", "blocks.0.attn.W_V", "blocks.0.mlp.W_out"):  # a key missing
        save(f"missing-{key}", {k: v for k, v in sd.items() if k != key}, key)
    save("unknown-key", {**sd, "blocks.0.attn.W_X": torch.zeros(3)}, "blocks.0.attn.W_X")
    save("layernorm", {**sd, "blocks.0.ln1.w": torch.ones(D)}, "blocks.0.ln1.w")
    save("nan", {**sd, "blocks.0.mlp.b_in": torch.full((D_MLP,), float("nan"))}, "blocks.0.mlp.b_in")
    save("not-causal", {**sd, "blocks.0.attn.mask": torch.ones(3, 3)}, "blocks.0.attn.mask")
    save("a-string", "hello", "")
    save("no-model", {"losses": [1.0, 2.0]}, "")
    save("model-not-tensors", {"model": {"embed.W_E": "x"}}, "embed.W_E")
    save("series-damaged", {"state_dicts": [sd, {**sd, "unembed.W_U": torch.zeros(2, 2)}],
                            "checkpoint_epochs": [0, 1]}, "entry 1")  # fmt: skip
    save("series-epochs", {"state_dicts": [sd, sd], "checkpoint_epochs": [0]}, "checkpoint_epochs")
    save("series-not-increasing", {"state_dicts": [sd, sd], "checkpoint_epochs": [5, 5]}, "checkpoint_epochs")
    bigger = {k: v for k, v in nanda_sd(0).items()}
    bigger["embed.W_E"] = torch.zeros(D, V + 2)
    save("vocab-vs-p", bigger, "embed.W_E")
    return out


def test_bad_files_get_one_line_and_leave_nothing(tmp_path: Path) -> None:
    cases = _bad_files(tmp_path / "bad")
    root = tmp_path / "runs"
    for i, (path, expect) in enumerate(cases):
        r = cli("import", str(path), "--runs-dir", str(root), "--name", f"n{i}", *ASSERT)
        assert r.returncode == 2, (path.name, r.stdout, r.stderr)
        assert len(r.stderr.splitlines()) == 1, (path.name, r.stderr)
        assert r.stderr.startswith("grok: error: ") and str(path) in r.stderr, (path.name, r.stderr)
        assert expect in r.stderr, (path.name, expect, r.stderr)
    assert not (root / "imported").exists() or not any((root / "imported").iterdir())
    staging = root / ".grok" / "staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_missing_file_and_bad_options(tmp_path: Path) -> None:
    root = str(tmp_path / "runs")
    r = cli("import", str(tmp_path / "nope.pth"), "--runs-dir", root)
    assert r.returncode == 2 and "nope.pth: no such file" in r.stderr
    torch.save(nanda_sd(0), tmp_path / "x.pth")
    r = cli("import", str(tmp_path / "x.pth"), "--runs-dir", root, "--p", str(P))
    assert r.returncode == 2 and "does not say the task: give --task" in r.stderr
    r = cli("import", str(tmp_path / "x.pth"), "--runs-dir", root, *ASSERT, "--name", "../x")
    assert r.returncode == 2 and "is not a run name" in r.stderr
    r = cli("import", str(tmp_path / "x.pth"), "--runs-dir", root, "--task", "nope", "--p", str(P),
             "--train-frac", "0.3", "--seed", "1")  # fmt: skip
    assert r.returncode == 2 and "unknown operation 'nope'" in r.stderr


# --------------------------------------------------------------------------- a generated class of state dicts

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from grok_tui.importing.layouts import LayoutError, map_state_dict  # noqa: E402

_KEYS = sorted(nanda_sd(0))


@settings(max_examples=60, deadline=None)
@given(
    layout=st.sampled_from(["nanda", "tl"]),
    key=st.integers(0, 100),
    change=st.sampled_from(["drop", "grow", "shrink", "rank", "int", "inf", "none"]),
)
def test_any_damaged_state_dict_is_one_error_naming_its_key(layout: str, key: int, change: str) -> None:
    """Each key of either layout dropped, resized, of another rank or dtype, or non-finite: the mapping
    refuses it naming that key (LayoutError), or maps it exactly when nothing changed."""
    sd = {k: v.numpy() for k, v in (nanda_sd(0) if layout == "nanda" else tl_sd(0)).items()}
    keys = sorted(k for k in sd if not k.endswith(("mask", "IGNORE")))
    k = keys[key % len(keys)]
    a = sd[k]
    if change == "drop":
        del sd[k]
    elif change == "grow":
        sd[k] = np.zeros((*a.shape[:-1], a.shape[-1] + 1), dtype=a.dtype) if a.ndim else np.zeros(2)
    elif change == "shrink":
        sd[k] = np.zeros((*a.shape[:-1], max(a.shape[-1] - 1, 0)), dtype=a.dtype) if a.ndim else np.zeros(0)
    elif change == "rank":
        sd[k] = a.reshape(-1)[:, None] if a.ndim != 2 else a.reshape(-1)
    elif change == "int":
        sd[k] = a.astype(np.int64)
    elif change == "inf":
        sd[k] = np.full_like(a, np.inf)
    if change == "none":
        m = map_state_dict(sd, P)
        assert set(m.arrays) >= {"W_E", "W_U", "blocks.0.W_Q"}
        return
    if change == "drop" and k.startswith(("blocks.0.attn.b_", "unembed.b_")):  # TL's zero biases are optional
        assert "W_E" in map_state_dict(sd, P).arrays
        return
    with pytest.raises(LayoutError) as e:
        map_state_dict(sd, P)
    assert len(str(e.value).splitlines()) == 1
    # the key named is the one damaged, or the one whose sizes it no longer fits, naming the damaged one
    assert k in str(e.value), (
        k,
        change,
        e.value,
    )


# --------------------------------------------------------------------------- the app


async def test_the_app_lists_an_imported_run_and_inspects_it(tmp_path: Path) -> None:
    """The app reads an imported run like its own: a row in its table, the inspector with the key
    frequencies the import stored (random weights: none pass the neuron rule's 0.85 cut)."""
    from tui_helpers import settled, static_text, until

    from grok_tui.tui.app import GrokApp
    from grok_tui.tui.screens.experiments import RunTable

    assert do_import(tmp_path, nanda_sd(0), *ASSERT, "--step", "40").returncode == 0
    run_dir = tmp_path / "runs" / "imported" / "peer"
    from grok_tui.checkpoints import run_view

    line = run_view(run_dir, 40).key_freq_line()  # what `grok inspect` reads: the stored analysis
    assert "(neuron rule, stored)" in line
    app = GrokApp(None, tmp_path / "runs", palette="truecolor")
    async with app.run_test(size=(110, 32)) as pilot:
        await settled(pilot)
        screen = app.screen
        assert screen.visible_run_ids() == ["imported/peer"]
        screen.query_one(RunTable).move_cursor(row=0, animate=False)
        await pilot.press("enter")
        assert await until(pilot, lambda: app.screen.id == "run")
        await pilot.press("i")
        assert await until(pilot, lambda: app.screen.id == "inspector")
        assert await until(pilot, lambda: line in static_text(app.screen.query_one("#insp-keys")))


def test_a_bias_our_model_lacks_is_refused_in_nandas_layout_too(tmp_path: Path) -> None:
    """Nanda's layout has no attention or unembedding biases; a file that adds one is not silently cut."""
    from grok_tui.importing.layouts import LayoutError, map_state_dict

    sd = {k: v.numpy() for k, v in nanda_sd(0).items()}
    assert map_state_dict({**sd, "unembed.b_U": np.zeros(V, np.float32)}, P).dropped == ["unembed.b_U"]
    for key in ("unembed.b_U", "blocks.0.attn.b_O"):
        with pytest.raises(LayoutError, match=key.replace(".", r"\.")):
            map_state_dict({**sd, key: np.full(V, 0.5, np.float32)}, P)


def test_losses_that_disagree_with_the_files_own_curve_are_named(tmp_path: Path) -> None:
    """The peer's own last losses against ours on the asserted split: equal, no note; ten times off
    (a grokked model's two splits differ by orders of magnitude), a note on the split."""
    sd = nanda_sd(5)
    logp = torch.log_softmax(nanda_forward(sd, all_tokens()).double(), -1).numpy()
    labels = np.array([(a + b) % P for a in range(P) for b in range(P)])
    loss = -logp[np.arange(len(labels)), labels]
    is_train = split_pairs(P, 0.3, 1).reshape(-1)
    train, test = float(loss[is_train].mean()), float(loss[~is_train].mean())
    for factor, noted in ((1.0, False), (0.1, True)):
        curve = [9.0] * 7 + [train * factor]  # train_losses[7]: measured on the weights after 7 steps
        obj = {
            "model": sd,
            "scheduler": {"last_epoch": 7},
            "train_losses": curve,
            "test_losses": [9.0] * 7 + [test],
        }
        r = do_import(tmp_path, obj, *ASSERT, "--force")
        assert r.returncode == 0, r.stderr  # imported as asked either way
        note = "the file was probably trained on another split (check --train-frac and --seed)"
        assert (note in r.stderr) == noted, r.stderr
        assert ("test loss" in r.stderr) is False  # the test loss agrees: only the train loss is named


@pytest.mark.slow
def test_a_run_can_start_from_an_imported_peer_s_parts(tmp_path: Path) -> None:
    """init_from reads an imported run like one of ours: a peer's embedding and block, frozen, in a
    run of our own on another task."""
    assert do_import(tmp_path, nanda_sd(3), *ASSERT).returncode == 0
    (tmp_path / "experiments.toml").write_text(
        f"""
[experiments.from-peer]
device = "cpu"
task = "sub"
p = {P}
steps = 20
eval_every = 10
checkpoint_every = 10
model = {{ d_model = {D}, heads = {H}, d_mlp = {D_MLP} }}
init_from = {{ run = "imported/peer", load = ["embed", "block"], freeze = true }}
"""
    )
    out = grok("run", "experiments.toml", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    run = runs.RunDir(tmp_path / "runs/from-peer/seed0")
    peer = runs.RunDir(tmp_path / "runs/imported/peer")
    assert run.spec()["loaded_from"]["run"] == "imported/peer"
    assert run.spec()["loaded_from"]["step"] == peer.checkpoint_steps()[-1]
    final, _ = load_checkpoint(run.checkpoint_path(20))
    assert np.array_equal(final["W_E"], nanda_sd(3)["embed.W_E"].T.numpy())
    imported, _ = load_checkpoint(peer.checkpoint_path(peer.checkpoint_steps()[-1]))
    assert all(np.array_equal(final[k], imported[k]) for k in imported if k.startswith("blocks."))
