"""The worker's entry points (eval_measures, checkpoint_measures, final_pass) on synthetic runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from grok_tui.analysis import live
from grok_tui.analysis.synthetic import fourier_logits, neuron_acts, transformer_arrays
from grok_tui.config import ANALYSIS_DEFAULTS
from grok_tui.tasks import Task, build_dataset

P = 31
KEYS = [3, 7, 12]


def make_spec(task="add", **analysis) -> dict:
    tasks = task if isinstance(task, list) else [task]
    return {"p": P, "task": task, "tasks": tasks, "analysis": {**ANALYSIS_DEFAULTS, **analysis}}


def make_data(task="add"):
    tasks = task if isinstance(task, list) else [task]
    return build_dataset([Task.parse(t, P) for t in tasks], P, 0.3, 0, "nanda")


def test_eval_measures_writes_the_cheap_scalars_and_the_logit_spectrum() -> None:
    arrays = transformer_arrays(P, KEYS, np.random.default_rng(0))
    scalars, spectra = live.eval_measures(arrays, make_spec())
    assert set(scalars) == {"gini_embed", "gini_logit", "ffd_embed", "fcr_embed", "ffd_logit", "fcr_logit"}
    assert scalars["ffd_embed"] == pytest.approx(2 * len(KEYS) / (2 * (P // 2)))
    assert scalars["ffd_logit"] == pytest.approx(2 * len(KEYS) / (2 * (P // 2)))
    assert scalars["gini_embed"] == pytest.approx(1 - 2 * len(KEYS) / (P - 1), abs=1e-4)
    assert list(spectra) == ["logit"] and len(spectra["logit"]) == P // 2
    top = sorted(np.argsort(spectra["logit"])[-3:] + 1)
    assert top == KEYS
    json.dumps([scalars, spectra])  # JSON-able as is


def test_eval_measures_adds_the_discrete_log_basis_for_multiplication() -> None:
    arrays = transformer_arrays(P, KEYS, np.random.default_rng(1), basis="dlog")
    scalars, spectra = live.eval_measures(arrays, make_spec("mul"))
    assert {"ffd_embed_dlog", "gini_logit_dlog", "fcr_logit_dlog"} <= set(scalars)
    assert set(spectra) == {"logit", "embed_dlog", "logit_dlog"}
    assert scalars["ffd_embed_dlog"] < 0.3 < scalars["ffd_embed"]  # sparse only in the log basis
    off, _ = live.eval_measures(arrays, make_spec("mul", discrete_log="off"))
    assert "ffd_embed_dlog" not in off
    on, _ = live.eval_measures(
        transformer_arrays(P, KEYS, np.random.default_rng(1)), make_spec(discrete_log="on")
    )
    assert "ffd_embed_dlog" in on


def test_eval_measures_never_raises(capsys) -> None:
    assert live.eval_measures({}, make_spec()) == ({}, {})
    assert live.eval_measures({"W_E": np.ones(3)}, make_spec()) == ({}, {})
    assert live.eval_measures({"W_E": np.ones((P, 3))}, {"task": "add"}) == ({}, {})  # no p
    assert "eval measures skipped" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["add", "sub", "mul", "div"])
def test_checkpoint_measures_on_a_grokked_synthetic_model(task: str) -> None:
    data = make_data(task)
    rng = np.random.default_rng(2)
    basis = "dlog" if task in ("mul", "div") else "standard"
    sign = -1 if task in ("sub", "div") else 1
    arrays = transformer_arrays(P, KEYS, rng, basis=basis)
    logits = fourier_logits(data.a, data.b, P, KEYS, sign, basis)
    acts, _ = neuron_acts(data.a, data.b, P, KEYS, rng, basis=basis)
    scalars, out = live.checkpoint_measures(arrays, logits, acts, data, make_spec(task))
    assert scalars["n_key_freqs"] == 3
    assert out["key_freqs"].tolist() == KEYS and str(out["key_freq_rule"]) == "neuron"
    assert scalars["restricted_acc"] == 1.0
    assert scalars["excluded_loss"] == pytest.approx(math.log(P), abs=1e-6)
    assert out["excluded_loss_all_freqs"].shape == (P // 2 if basis == "standard" else (P - 1) // 2,)
    assert {"embed_cos", "embed_sin", "logit_cos", "logit_sin", "neuron_freq", "neuron_frac"} <= set(out)
    assert ("embed_cos_dlog" in out) == (basis == "dlog")
    # the arrays survive an npz round trip without pickle
    np.savez(__import__("io").BytesIO(), **{f"analysis/{k}": v for k, v in out.items()})


def test_checkpoint_measures_without_activations_uses_the_logit_rule() -> None:
    data = make_data()
    arrays = transformer_arrays(P, KEYS, np.random.default_rng(3))
    logits = fourier_logits(data.a, data.b, P, KEYS)
    scalars, out = live.checkpoint_measures(arrays, logits, None, data, make_spec())
    assert str(out["key_freq_rule"]) == "logit" and out["key_freqs"].tolist() == KEYS
    _, out = live.checkpoint_measures(arrays, logits, None, data, make_spec(key_freq_rule="embed"))
    assert str(out["key_freq_rule"]) == "embed" and out["key_freqs"].tolist() == KEYS


def test_checkpoint_measures_for_tasks_without_structure_and_mixtures(capsys) -> None:
    rng = np.random.default_rng(4)
    arrays = transformer_arrays(P, KEYS, rng)
    data = make_data("a**2 + b")
    logits = rng.standard_normal((len(data.labels), P + 1))
    scalars, out = live.checkpoint_measures(arrays, logits, None, data, make_spec("a**2 + b"))
    assert "restricted_loss" not in scalars and out["key_freqs"].tolist() == KEYS
    mix = make_data(["add", "sub"])
    acts, _ = neuron_acts(mix.a, mix.b, P, KEYS, rng)
    logits = rng.standard_normal((len(mix.labels), P + 3))
    scalars, out = live.checkpoint_measures(arrays, logits, acts, mix, make_spec(["add", "sub"]))
    assert scalars == {} and "embed_cos" in out
    assert out["key_freqs_task0"].tolist() == KEYS
    # garbage in: a warning on stderr, never an exception
    scalars, out = live.checkpoint_measures(arrays, logits[:5], acts, make_data(), make_spec())
    assert "restricted_loss" not in scalars
    assert "checkpoint measures skipped" in capsys.readouterr().err


def _synthetic_run(amps, failing_step=None):
    """Checkpoints of a finished run whose model at checkpoint i has logits amp_i·(Fourier table) +
    (1-amp_i)·noise, as the trainer hands them to final_pass (the last one is the final model)."""
    spec = make_spec()
    data = make_data()
    rng = np.random.default_rng(5)
    noise = rng.standard_normal((len(data.labels), P + 1)) * 5
    table = fourier_logits(data.a, data.b, P, KEYS)
    acts, _ = neuron_acts(data.a, data.b, P, KEYS, rng)
    weights = transformer_arrays(P, KEYS, rng)
    ckpts = [
        (i * 100, {**weights, "amp": np.asarray(amp), "analysis/key_freqs": np.array([1])})
        for i, amp in enumerate(amps)
    ]

    def forward(arrays):
        assert not any(k.startswith("analysis/") for k in arrays)
        amp = float(arrays["amp"])
        if failing_step is not None and amp == amps[failing_step // 100]:
            raise ValueError("this checkpoint's weights do not fit the model")
        return amp * table + (1 - amp) * noise, acts * amp + (1 - amp)

    return ckpts, spec, forward, data


def test_final_pass_rescores_every_checkpoint_with_the_final_key_frequencies() -> None:
    ckpts, spec, forward, data = _synthetic_run([0.0, 0.3, 0.7, 1.0])
    rows = live.final_pass(ckpts[-1][1], iter(ckpts), spec, forward, data)
    json.dumps(rows)  # what the trainer writes as progress.jsonl
    assert [r["step"] for r in rows] == [0, 100, 200, 300]
    assert all(r["key_freqs"] == KEYS and r["rule"] == "neuron" for r in rows)
    assert rows[0]["structure"] == "a + b" and rows[0]["split"] == "all"
    restricted = [r["restricted_loss"] for r in rows]
    assert restricted == sorted(restricted, reverse=True)  # the circuit grows
    excluded = [r["excluded_loss"] for r in rows]
    assert excluded[-1] == pytest.approx(math.log(P), abs=1e-6)
    assert rows[-1]["restricted_acc"] == 1.0


def test_final_pass_skips_a_checkpoint_it_cannot_score_and_never_raises(capsys) -> None:
    ckpts, spec, forward, data = _synthetic_run([0.0, 0.5, 1.0], failing_step=100)
    rows = live.final_pass(ckpts[-1][1], iter(ckpts), spec, forward, data)
    assert [r["step"] for r in rows] == [0, 200]
    assert "step 100" in capsys.readouterr().err
    assert live.final_pass(ckpts[-1][1], iter([]), spec, forward, data) == []  # no checkpoints: no rows
    mixture = make_spec(["add", "sub"])
    assert live.final_pass(ckpts[-1][1], iter(ckpts), mixture, forward, make_data(["add", "sub"])) == []
