"""Damaged input for the checkpoint readers (``grok inspect`` and the TUI inspector), as a generated matrix:
each file a reader reads × missing / truncated / garbled / valid-but-wrong / NaN.

The base run is written the way the worker writes one (Recorder + the worker's analysis functions, the
numpy forward pass standing in for torch). Expected: a damaged checkpoint or spec.json gives one line on
stderr naming the file and a non-zero exit, never a traceback; a damaged metrics or progress file costs
its rows, not the command; ``--json`` is strict JSON (null, not NaN) whenever it is printed; the TUI
inspector shows the error line instead of crashing.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import grok
from tui_helpers import static_text

from grok_tui import recorder, runs
from grok_tui.analysis import forward, live
from grok_tui.analysis.synthetic import fourier_logits, neuron_acts, transformer_arrays
from grok_tui.checkpoints import CheckpointError, load_checkpoint, run_view
from grok_tui.cli.inspecting import inspect
from grok_tui.config import ANALYSIS_DEFAULTS
from grok_tui.recorder import Recorder
from grok_tui.tasks import Task, build_dataset

P = 31
KEYS = [3, 7, 12]
MODEL = {
    "kind": "transformer",
    "layers": 1,
    "d_model": 32,
    "heads": 4,
    "d_mlp": 64,
    "act": "relu",
    "pos_embed": True,
    "biases": "mlp",
    "init": "nanda",
}
SPEC = {
    "experiment": "dmg",
    "name": "base",
    "task": "add",
    "tasks": ["a + b"],
    "p": P,
    "train_frac": 0.3,
    "split_seed": 0,
    "steps": 100,
    "layout": "nanda",
    "model": MODEL,
    "analysis": dict(ANALYSIS_DEFAULTS),
}
STEPS = (0, 100)
LAST = f"step_{STEPS[-1]:07d}.npz"


def write_base(run: Path) -> None:
    """Two checkpoints, metrics, spectra and the final pass, by the worker's own functions (the
    stored analysis from a grokked model's logits and activations: key frequencies KEYS)."""
    recorder.write_json_atomic(run / runs.SPEC, SPEC)
    rec = Recorder(run)
    data = build_dataset([Task.parse("add", P)], P, 0.3, 0, "nanda")
    rng = np.random.default_rng(0)

    def fwd(arrays):
        return forward.forward(arrays, MODEL, data)

    saved = []
    for step in STEPS:
        arrays = transformer_arrays(P, KEYS, rng)
        saved.append((step, arrays))
        logits, acts = fourier_logits(data.a, data.b, P, KEYS), neuron_acts(data.a, data.b, P, KEYS, rng)[0]
        row = {"step": step, "train_loss": 1.5, "test_loss": 2.5, "train_acc": 0.5, "test_acc": 0.25}
        scalars, spectra = live.eval_measures(arrays, SPEC)
        ck_scalars, ck_arrays = live.checkpoint_measures(arrays, logits, acts, data, SPEC)
        row.update(scalars, **ck_scalars, weight_norm=100.0)
        rec.checkpoint(step, {**arrays, **{f"analysis/{k}": v for k, v in ck_arrays.items()}}, row)
        rec.metrics(row)
        rec.fourier({"step": step, "embed": [1.0] * (P // 2), **spectra})
    rec.progress(live.final_pass(saved[-1][1], saved, SPEC, fwd, data))


# --------------------------------------------------------------------------- the damage


def garble(path: Path, at: float, n: int = 200, seed: int = 0) -> None:
    """Overwrite ``n`` bytes at fraction ``at`` of the file with seeded random bytes."""
    data = bytearray(path.read_bytes())
    start = min(int(at * len(data)), max(len(data) - n, 0))
    data[start : start + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def rewrite_ckpt(run: Path, change: Callable[[dict], None]) -> None:
    """Re-save the last checkpoint (arrays + meta_json as stored) after ``change`` edits its members."""
    path = run / runs.CKPT_DIR / LAST
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    change(members)
    np.savez(path, **members)


def huge_header(run: Path) -> None:
    """A member whose npy header claims 10¹² float64s: refused before numpy allocates 8 TB."""
    path = run / runs.CKPT_DIR / LAST
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }".ljust(117) + "\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("analysis/huge.npy", member)


def set_meta(**fields) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        meta = json.loads(str(m["meta_json"]))
        meta.update(fields)
        m["meta_json"] = np.asarray(json.dumps(meta))

    return change


def put(key: str, value) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        if value is None:
            del m[key]
        else:
            m[key] = np.asarray(value)

    return change


def with_nan(key: str, value: float) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        a = np.array(m[key])
        a.flat[3] = value
        m[key] = a

    return change


def edit_spec(**fields) -> Callable[[Path], None]:
    """Set spec.json keys (``model.heads`` reaches into a table), written as Python writes JSON."""

    def apply(run: Path) -> None:
        spec = json.loads((run / runs.SPEC).read_text())
        for k, v in fields.items():
            head, _, sub = k.partition(".")
            if sub:
                spec[head] = {**spec[head], sub: v}
            else:
                spec[k] = v
        (run / runs.SPEC).write_text(json.dumps(spec))

    return apply


def drop_spec_key(key: str) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        spec = json.loads((run / runs.SPEC).read_text())
        head, _, sub = key.partition(".")
        (spec[head].pop(sub) if sub else spec.pop(head))
        (run / runs.SPEC).write_text(json.dumps(spec))

    return apply


def jsonl(name: str, lines: list[str]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        with open(run / name, "a") as f:
            f.write("".join(line + "\n" for line in lines))

    return apply


def replace_jsonl(name: str, text: str) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / name).write_text(text)

    return apply


@dataclass(frozen=True)
class Case:
    name: str
    file: str  # the damaged file: "checkpoint", spec.json, metrics.jsonl, progress.jsonl
    kind: str  # missing | truncated | garbled | wrong | nan
    damage: Callable[[Path], None]
    fails: bool  # True: one line naming the file, non-zero exit


def _ckpt(run: Path) -> Path:
    return run / runs.CKPT_DIR / LAST


def _cases() -> list[Case]:
    ck, out = "checkpoint", []

    def add(name, file, kind, damage, fails):
        out.append(Case(name, file, kind, damage, fails))

    # the checkpoint
    add("ckpt-missing", ck, "missing", lambda r: shutil.rmtree(r / runs.CKPT_DIR), True)
    add("ckpt-truncated", ck, "truncated", lambda r: truncate(_ckpt(r)), True)
    add("ckpt-empty", ck, "truncated", lambda r: _ckpt(r).write_bytes(b""), True)
    for at in (0.0, 0.5, 0.999):
        add(f"ckpt-garbled-{at}", ck, "garbled", lambda r, at=at: garble(_ckpt(r), at), True)
    add("ckpt-a-directory", ck, "garbled", lambda r: (_ckpt(r).unlink(), _ckpt(r).mkdir()), True)
    add("ckpt-plain-npy", ck, "wrong", lambda r: _ckpt(r).write_bytes(_npy(np.ones(3))), True)
    wrong = {
        "no-W_U": put("W_U", None),
        "no-b_in": put("blocks.0.b_in", None),
        "W_E-shape": put("W_E", np.ones((5, 32), np.float32)),
        "W_E-1d": put("W_E", np.ones(32, np.float32)),
        "W_E-ints": put("W_E", np.ones((P + 1, 32), np.int64)),
        "W_E-strings": put("W_E", np.full((P + 1, 32), "x")),
        "W_in-shape": put("blocks.0.W_in", np.ones((32, 7), np.float32)),
        "meta-not-json": put("meta_json", "{oops"),
        "meta-a-list": put("meta_json", "[1, 2]"),
        "meta-bytes": put("meta_json", np.frombuffer(b"{}", np.uint8)),
        "meta-other-step": set_meta(step=999),
        "key-freqs-range": put("analysis/key_freqs", np.array([99])),
        "key-freqs-2d": put("analysis/key_freqs", np.array([[3, 7]])),
        "key-freqs-floats": put("analysis/key_freqs", np.array([3.5])),
        "rule-not-text": put("analysis/key_freq_rule", np.array([1, 2])),
        "spectrum-length": put("analysis/embed_cos", np.ones(3, np.float32)),
    }
    for name, change in wrong.items():
        add(f"ckpt-{name}", ck, "wrong", lambda r, c=change: rewrite_ckpt(r, c), True)
    add("ckpt-huge-header", ck, "wrong", huge_header, True)
    add("ckpt-object-array", ck, "wrong", _object_array, True)
    for key, value in (("W_E", math.nan), ("W_U", math.inf), ("blocks.0.W_in", -math.inf)):
        add(
            f"ckpt-nonfinite-{key}",
            ck,
            "nan",
            lambda r, k=key, v=value: rewrite_ckpt(r, with_nan(k, v)),
            True,
        )
    add("ckpt-nan-meta", ck, "nan", lambda r: rewrite_ckpt(r, set_meta(gini_embed=math.nan)), False)
    # spec.json
    sp = runs.SPEC
    add("spec-missing", sp, "missing", lambda r: (r / sp).unlink(), True)
    add("spec-truncated", sp, "truncated", lambda r: truncate(r / sp), True)
    add("spec-empty", sp, "truncated", lambda r: (r / sp).write_text(""), True)
    add("spec-garbled", sp, "garbled", lambda r: garble(r / sp, 0.3, n=40), True)
    add("spec-binary", sp, "garbled", lambda r: (r / sp).write_bytes(b"\xff\xfe\x00{"), True)
    wrong_spec = {
        "p-text": edit_spec(p="x"),
        "p-bool": edit_spec(p=True),
        "p-float": edit_spec(p=31.0),
        "p-huge": edit_spec(p=10**30),
        "p-one": edit_spec(p=1),
        "p-other": edit_spec(p=29),
        "model-int": edit_spec(model=5),
        "model-kind": edit_spec(**{"model.kind": "cnn"}),
        "model-heads-text": edit_spec(**{"model.heads": "4"}),
        "model-heads-divisor": edit_spec(**{"model.heads": 5}),
        "model-act": edit_spec(**{"model.act": True}),
        "model-d_mlp-other": edit_spec(**{"model.d_mlp": 65}),
        "model-layers-huge": edit_spec(**{"model.layers": 10**9}),
        "model-widths-huge": edit_spec(**{"model.d_model": 2**40, "model.heads": 2**10}),
        "tasks-int": edit_spec(tasks=7),
        "tasks-empty": edit_spec(tasks=[]),
        "tasks-unknown": edit_spec(tasks=["nope"]),
        "task-list-of-ints": edit_spec(task=[1, 2]),
        "layout": edit_spec(layout=3),
        "analysis-int": edit_spec(analysis=1),
        "analysis-rule": edit_spec(**{"analysis.key_freq_rule": "bogus"}),
        "analysis-frac": edit_spec(**{"analysis.key_freq_frac": 2}),
        "a-list": lambda r: (r / sp).write_text("[1, 2]"),
        "no-p": drop_spec_key("p"),
        "no-model-field": drop_spec_key("model.d_mlp"),
    }
    for name, damage in wrong_spec.items():
        add(f"spec-{name}", sp, "wrong", damage, True)
    for name, damage in {
        "p-nan": edit_spec(p=math.nan),
        "train_frac-nan": edit_spec(train_frac=math.nan),
        "frac-inf": edit_spec(**{"analysis.key_freq_frac": math.inf}),
    }.items():
        add(f"spec-{name}", sp, "nan", damage, True)
    # spec keys a hand-written spec may lack: less is recomputed, and the view says so (no failure)
    add("spec-no-model", sp, "missing", drop_spec_key("model"), False)
    # metrics.jsonl and progress.jsonl: a bad row is skipped, never fatal
    for name in (runs.METRICS, runs.PROGRESS):
        tag = name.split(".")[0]
        add(f"{tag}-missing", name, "missing", lambda r, n=name: (r / n).unlink(), False)
        add(f"{tag}-truncated", name, "truncated", lambda r, n=name: truncate(r / n), False)
        add(f"{tag}-garbled", name, "garbled", lambda r, n=name: garble(r / n, 0.4, n=60), False)
        bad_rows = [
            '{"step": "abc", "train_loss": 1}',
            '{"train_loss": 2}',
            "[1, 2]",
            "7",
            '{"step": true, "test_acc": 1}',
            '{"step": 100, "train_loss": "x", "test_acc": [1], "restricted_loss": {"a": 1},'
            ' "key_freqs": "abc", "gini_embed": 1e400}',
            '{"step": 1e400}',
            '{"step": null}',
        ]
        add(f"{tag}-wrong-rows", name, "wrong", jsonl(name, bad_rows), False)
        add(
            f"{tag}-wrong-key-freqs",
            name,
            "wrong",
            jsonl(name, ['{"step": 100, "restricted_loss": 1, "key_freqs": [99, "x"]}']),
            False,
        )
        nan_row = '{"step": 100, "train_loss": NaN, "test_acc": Infinity, "restricted_loss": -Infinity}'
        add(f"{tag}-nan", name, "nan", jsonl(name, [nan_row]), False)
        add(f"{tag}-only-garbage", name, "garbled", replace_jsonl(name, "\x00\x01garbage\n{"), False)
    return out


def _npy(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _object_array(run: Path) -> None:
    """A member holding a pickle: never loaded (``allow_pickle=False``), the file is refused."""
    path = _ckpt(run)
    with zipfile.ZipFile(path, "a") as zf:
        buf = __import__("io").BytesIO()
        np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
        zf.writestr("analysis/pickled.npy", buf.getvalue())


CASES = _cases()


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/dmg/<case> for every case, each a damaged copy of one worker-written run."""
    root = tmp_path_factory.mktemp("damaged")
    base = root / "base"
    write_base(base)
    for case in CASES:
        run = root / "runs" / "dmg" / case.name
        shutil.copytree(base, run)
        case.damage(run)
    return root


def strict_json(text: str):
    def refuse(name: str):
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def names_the_file(line: str, case: Case, run: Path) -> bool:
    if case.file == "checkpoint":
        return LAST in line or "no checkpoints" in line
    return case.file in line or (case.kind == "missing" and str(run) in line)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_grok_inspect_on_damaged_input(case: Case, damaged: Path, capsys: pytest.CaptureFixture) -> None:
    run = damaged / "runs" / "dmg" / case.name
    for as_json in (True, False):
        code = inspect(run, None, as_json)
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        if case.fails:
            assert code != 0, out
            (line,) = err.strip().splitlines()  # exactly one line
            assert line.startswith("grok: error: ") and names_the_file(line, case, run), line
        else:
            assert code == 0 and err == "", err
        if as_json and out:
            info = strict_json(out)
            assert info["step"] == STEPS[-1]
            assert (info["error"] is not None) == case.fails
    if case.name == "spec-no-model":  # nothing silent: the view says what it could not recompute
        assert code == 0


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.kind == "nan" and c.file == "checkpoint" and c.fails], ids=lambda c: c.name
)
def test_non_finite_weights_still_show_as_strict_json(case: Case, damaged: Path, capsys) -> None:
    run = damaged / "runs" / "dmg" / case.name
    assert inspect(run, None, True) == 1
    out, err = capsys.readouterr()
    info = strict_json(out)
    assert "non-finite weights" in info["error"] and "non-finite weights" in err
    assert info["key_freqs"] == KEYS and info["key_freq_source"] == "stored"


def test_the_view_never_raises_and_names_the_damage(damaged: Path) -> None:
    for case in CASES:
        run = damaged / "runs" / "dmg" / case.name
        steps = runs.RunDir(run).checkpoint_steps() or [STEPS[-1]]
        v = run_view(run, steps[-1])
        if case.fails and case.name not in ("ckpt-missing", "spec-missing"):
            assert v.error and names_the_file(v.error, case, run), (case.name, v.error)
        elif not case.fails:
            assert v.error is None, (case.name, v.error)


def test_load_checkpoint_refuses_before_allocating(damaged: Path) -> None:
    with pytest.raises(CheckpointError, match="claims"):
        load_checkpoint(damaged / "runs" / "dmg" / "ckpt-huge-header" / runs.CKPT_DIR / LAST)
    with pytest.raises(CheckpointError, match="objects"):
        load_checkpoint(damaged / "runs" / "dmg" / "ckpt-object-array" / runs.CKPT_DIR / LAST)
    arrays, meta = load_checkpoint(damaged / "base" / runs.CKPT_DIR / LAST)
    assert meta["step"] == STEPS[-1] and "W_E" in arrays and "meta_json" not in arrays


#: One case of each (file, kind): the fast loop's share of the matrix (each screen costs ~0.4 s).
ONE_PER_CLASS = [
    next(c for c in CASES if (c.file, c.kind) == key)
    for key in dict.fromkeys((c.file, c.kind) for c in CASES)
]


async def inspect_in_the_tui(damaged: Path, cases: list[Case], tag: str) -> None:
    """Open each damaged run in the real app's inspector: the error line shows, nothing crashes."""
    from grok_tui.tui.app import GrokApp

    tui_runs = damaged / f"tui-runs-{tag}"
    for case in cases:
        shutil.copytree(damaged / "runs" / "dmg" / case.name, tui_runs / "dmg" / case.name)
    app = GrokApp(None, tui_runs, palette="truecolor")
    async with app.run_test(size=(100, 30)) as pilot:
        await app.settle()
        await pilot.pause()
        for case in cases:
            run_id = f"dmg/{case.name}"
            app.open_inspector(run_id)
            await pilot.pause()
            screen = app.screen
            assert screen.id == "inspector"
            keys = static_text(screen.query_one("#insp-keys"))
            head = static_text(screen.query_one("#insp-head"))
            if case.name == "ckpt-missing":
                assert "no checkpoints yet" in head
            elif case.fails:
                assert "damaged" in head and names_the_file(keys.replace("\n", ""), case, damaged), (
                    case.name,
                    keys,
                )
            else:
                assert "damaged" not in head, (case.name, keys)
            app.pop_screen()
            await pilot.pause()
        assert app.screen.id == "experiments"


@pytest.mark.slow  # a fresh interpreter or a long generated input
async def test_the_tui_inspector_shows_the_error_line(damaged: Path) -> None:
    """The fast share: one case of each kind of damaged checkpoint and spec.json (the slow test below
    takes the whole matrix, metrics and progress files included)."""
    await inspect_in_the_tui(damaged, [c for c in ONE_PER_CLASS if c.fails], "fast")


@pytest.mark.slow
async def test_the_tui_inspector_on_the_whole_matrix(damaged: Path) -> None:
    await inspect_in_the_tui(damaged, CASES, "all")


@pytest.mark.slow
@pytest.mark.parametrize("case", ONE_PER_CLASS, ids=lambda c: c.name)
def test_the_real_cli_on_damaged_input(case: Case, damaged: Path) -> None:
    """One case of each (file, kind) through `grok inspect` in a subprocess, text and --json."""
    run = damaged / "runs" / "dmg" / case.name
    for extra in ((), ("--json",)):
        r = grok("inspect", str(run), *extra, cwd=damaged, timeout=120)
        assert "Traceback" not in r.stderr
        if case.fails:
            (line,) = r.stderr.strip().splitlines()
            assert r.returncode != 0 and names_the_file(line, case, run), line
        else:
            assert r.returncode == 0, r.stderr
        if extra and r.stdout:
            strict_json(r.stdout)
