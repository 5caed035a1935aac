"""`grok inspect` and the progress-measure curves, on a synthetic finished run directory."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from grok_tui.analysis import live
from grok_tui.analysis.synthetic import fourier_logits, neuron_acts, transformer_arrays
from grok_tui.cli.inspecting import inspect
from grok_tui.cli.progress import progress_curves, progress_series
from grok_tui.config import ANALYSIS_DEFAULTS
from grok_tui.recorder import Recorder, write_json_atomic
from grok_tui.runs import SPEC
from grok_tui.tasks import Task, build_dataset

P = 31
KEYS = [3, 7, 12]
# (step, train_acc, test_acc, train_loss, test_loss, circuit amplitude)
HISTORY = [
    (0, 0.03, 0.03, 3.4, 3.4, 0.0),
    (100, 1.0, 0.05, 1e-4, 9.0, 0.2),
    (200, 1.0, 0.7, 1e-5, 1.0, 0.7),
    (300, 1.0, 1.0, 1e-7, 5e-7, 1.0),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run written the way the worker writes one, final pass included."""
    run = tmp_path_factory.mktemp("runs") / "nanda-add" / "seed0"
    spec = {"p": P, "task": "add", "tasks": ["add"], "steps": 300, "analysis": dict(ANALYSIS_DEFAULTS)}
    write_json_atomic(run / SPEC, spec)
    rec = Recorder(run)
    data = build_dataset([Task.parse("add", P)], P, 0.3, 0, "nanda")
    rng = np.random.default_rng(0)
    weights = transformer_arrays(P, KEYS, rng)
    noise = 5 * rng.standard_normal((len(data.labels), P + 1))
    table = fourier_logits(data.a, data.b, P, KEYS)
    acts, _ = neuron_acts(data.a, data.b, P, KEYS, rng)

    def forward(arrays):
        amp = float(arrays["amp"])
        return amp * table + (1 - amp) * noise, acts * amp + (1 - amp) * rng.random(acts.shape)

    saved = []
    for step, tr_acc, te_acc, tr_loss, te_loss, amp in HISTORY:
        arrays = {**weights, "amp": np.asarray(amp)}
        saved.append((step, arrays))
        logits, a = forward(arrays)
        scalars, spectra = live.eval_measures(arrays, spec)
        row = dict(step=step, train_acc=tr_acc, test_acc=te_acc, train_loss=tr_loss, test_loss=te_loss)
        row.update(weight_norm=100.0 - step / 10, softmax_collapse=step / 300, **scalars)
        ck_scalars, ck_arrays = live.checkpoint_measures(arrays, logits, a, data, spec)
        row.update(ck_scalars)
        rec.checkpoint(step, {**arrays, **{f"analysis/{k}": v for k, v in ck_arrays.items()}}, row)
        rec.metrics(row)
        rec.fourier({"step": step, **spectra})
    rec.progress(live.final_pass(saved[-1][1], saved, spec, forward, data))
    return run


def test_inspect_prints_the_mechanistic_picture(run_dir, capsys) -> None:
    assert inspect(run_dir, None, False) == 0
    out = capsys.readouterr().out
    assert "step 300" in out and "phase at this step: generalised" in out
    assert "key frequencies (neuron rule): 3 7 12" in out
    assert "restricted loss" in out and "excluded loss" in out and "(train pairs)" in out
    assert "with the final key frequencies (3 7 12)" in out
    assert "Gini W_E" in out and "FFD W_E" in out and "weight norm" in out
    assert "W_E: Fourier norm per frequency" in out and "W_L (neuron → logit)" in out


def test_inspect_json_at_a_step(run_dir, capsys) -> None:
    assert inspect(run_dir, 100, True) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["step"] == 100 and info["phase"] == "circuit formation"
    assert info["phase_boundaries"] == {"circuit_formation": 100, "cleanup": 200, "generalised": 300}
    assert info["ffd_embed"] == pytest.approx(2 * len(KEYS) / (2 * (P // 2)))
    assert info["structure"] == "a + b" and info["final_key_freqs"] == KEYS
    assert info["final"]["restricted_loss"] < info["train_loss"] * 1e5  # a number, from progress.jsonl
    assert len(info["spectra"]["embed"]["per_freq"]) == P // 2
    assert info["weight_norm"] == 90.0


def test_inspect_recomputes_what_an_older_checkpoint_lacks(tmp_path, capsys) -> None:
    run = tmp_path / "old" / "seed0"
    write_json_atomic(run / SPEC, {"p": P, "task": "add"})
    Recorder(run).checkpoint(50, transformer_arrays(P, KEYS, np.random.default_rng(1)), {})
    assert inspect(run, None, True) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["key_freqs"] == KEYS and info["key_freq_rule"] == "logit"
    assert info["key_freq_source"] == "recomputed" and info["run_key_freq_rule"] == "neuron"
    assert info["ffd_logit"] == pytest.approx(2 * len(KEYS) / (2 * (P // 2)))
    assert info["phase"] == "memorisation" and info["restricted_loss"] is None
    assert info["weight_norm"] > 0 and info["sources"]["weight_norm"] == "recomputed"
    # never silently another rule: the output says which, and why the run's own could not apply
    (why,) = [n for n in info["notes"] if n.startswith("logit rule")]
    assert "not the run's neuron rule" in why and "spec.json has no" in why
    assert any(n.startswith("restricted/excluded loss and accuracy not recomputed") for n in info["notes"])
    assert inspect(run, None, False) == 0
    out = capsys.readouterr().out
    assert "key frequencies (logit rule): 3 7 12   (recomputed)" in out
    assert "note: logit rule, not the run's neuron rule" in out
    assert "recomputed from the weights: key frequencies, spectra, Gini/FFD/FCR, weight norm" in out


def test_inspect_shows_a_mixture_per_task_and_their_union(tmp_path, capsys) -> None:
    run = tmp_path / "mix" / "seed0"
    tasks = ["a + b", "a - b"]
    spec = {"p": P, "task": tasks, "tasks": tasks, "analysis": dict(ANALYSIS_DEFAULTS)}
    write_json_atomic(run / SPEC, spec)
    data = build_dataset([Task.parse(t, P) for t in tasks], P, 0.3, 0, "nanda")
    rng = np.random.default_rng(3)
    acts = np.concatenate(
        [
            neuron_acts(data.a[data.task_ids == i], data.b[data.task_ids == i], P, ks, rng)[0]
            for i, ks in enumerate(([3, 7], [7, 12]))
        ]
    )
    weights = transformer_arrays(P, KEYS, rng, extra_tokens=3)
    _, out = live.checkpoint_measures(weights, None, acts, data, spec)
    Recorder(run).checkpoint(10, {**weights, **{f"analysis/{k}": v for k, v in out.items()}}, {})
    assert inspect(run, None, True) == 0
    info = json.loads(capsys.readouterr().out)
    assert (
        info["key_freqs"] == KEYS
        and info["key_freq_rule"] == "neuron"
        and info["key_freq_source"] == "stored"
    )
    assert [(t["task"], t["key_freqs"], t["rule"]) for t in info["key_freqs_per_task"]] == [
        ("a + b", [3, 7], "neuron"),
        ("a - b", [7, 12], "neuron"),
    ]
    assert inspect(run, None, False) == 0
    out = capsys.readouterr().out
    assert "key frequencies (neuron rule): 3 7 12   (stored)" in out
    assert "  a + b: 3 7   (neuron rule, stored)" in out and "  a - b: 7 12   (neuron rule, stored)" in out


def test_inspect_errors_are_one_line_with_exit_codes(run_dir, tmp_path, capsys) -> None:
    assert inspect(tmp_path / "missing", None, False) == 2
    assert inspect(run_dir, 150, False) == 2
    err = capsys.readouterr().err
    assert "no run at" in err and "no checkpoint at step 150 (nearest: 100" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2
    empty = tmp_path / "e" / "r"
    write_json_atomic(empty / SPEC, {"p": P})
    assert inspect(empty, None, False) == 2
    assert "no checkpoints" in capsys.readouterr().err
    bad = tmp_path / "b" / "r"
    write_json_atomic(bad / SPEC, {"p": P})
    (bad / "checkpoints").mkdir()
    (bad / "checkpoints" / "step_0000010.npz").write_bytes(b"PK\x03\x04 torn")
    assert inspect(bad, None, False) == 1
    err = capsys.readouterr().err
    assert "corrupt" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_progress_series_prefer_the_final_key_frequencies(run_dir, tmp_path) -> None:
    panels = progress_series(run_dir)
    title = "restricted / excluded loss (final key freqs)"
    assert title in panels
    steps, excluded = panels[title]["excluded_loss"]
    assert steps == [0.0, 100.0, 200.0, 300.0]
    assert excluded[-1] == pytest.approx(math.log(P), abs=1e-6)
    assert "FFD / FCR" in panels and "Gini of Fourier norms (constant component out)" in panels
    collapse = panels["softmax collapse (share of train pairs)"]["softmax_collapse"]
    assert collapse[0] == [0.0, 100.0, 200.0, 300.0]
    assert collapse[1] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0], abs=1e-9)  # metrics.jsonl keeps 9 digits
    charts = progress_curves(run_dir, width=80)
    assert charts[0].startswith("phase: generalised") and "clean-up from 200" in charts[0]
    assert len(charts) == len(panels) + 1 and all("step (log)" in c for c in charts[1:])
    assert progress_series(tmp_path) == {} and progress_curves(tmp_path) == []


def test_inspect_shows_a_diverged_checkpoint_and_fails(tmp_path, capsys) -> None:
    """Non-finite weights: what can be shown is (strict JSON, null for NaN), then one error line, exit 1."""
    run = tmp_path / "nan" / "seed0"
    write_json_atomic(run / SPEC, {"p": P, "task": "add"})
    arrays = transformer_arrays(P, KEYS, np.random.default_rng(2))
    arrays["W_E"][3, 0] = np.nan
    Recorder(run).checkpoint(10, arrays, {"train_loss": float("nan")})
    assert inspect(run, None, True) == 1
    out, err = capsys.readouterr()
    info = json.loads(out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert info["train_loss"] is None and None in info["spectra"]["embed"]["per_freq"]
    assert "non-finite weights in W_E" in info["error"]
    assert err.count("\n") == 1 and "step_0000010.npz: non-finite weights in W_E" in err
    assert inspect(run, None, False) == 1
    out, err = capsys.readouterr()
    assert "W_E: Fourier norm per frequency" in out and err.count("\n") == 1
