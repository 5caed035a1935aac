"""The typed schema resolves every valid file to the spec the hand-written checks made, and round-trips.

``fixtures/config_golden.json`` holds 120 seeded valid files (tests/valid_configs.py) with the SHA-256 of
the specs that main resolved from them at 91647ce, before the schema replaced the hand-written checks
(canonical JSON, sorted keys, without ``version``): so ``spec.json`` of every existing run still matches.
The only new keys are ``on_nan``, ``grokfast`` (``{kind = "none"}`` unless a file sets it), ``init_from``
(None unless a file sets it), ``tf32`` (false) and an RFM's ``model.features`` ("agop").
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
import valid_configs
from hypothesis import given, settings
from hypothesis import strategies as st
from malformed_configs import dumps

from grok_tui.config import (
    ADDED_SPEC_KEYS,
    ANALYSIS_DEFAULTS,
    ConfigError,
    load_config,
    parse_config,
    read_runs_dir,
    valid_device,
)

GOLDEN = Path(__file__).parent / "fixtures" / "config_golden.json"


def canonical(experiments: dict[str, list[dict[str, Any]]]) -> str:
    return json.dumps(
        {k: [{x: y for x, y in s.items() if x != "version"} for s in v] for k, v in experiments.items()},
        sort_keys=True,
    )


def test_valid_files_resolve_to_the_specs_main_made() -> None:
    golden = json.loads(GOLDEN.read_text())
    assert len(golden) == 120
    for entry in golden:
        cfg = parse_config(entry["text"], Path("experiments.toml"))
        for runs in cfg.experiments.values():
            for spec in runs:
                assert spec.pop("on_nan") == "fail", entry["text"]
                assert spec.pop("grokfast") == {"kind": "none"}, entry["text"]
                assert spec.pop("init_from") is None, entry["text"]
                assert spec.pop("tf32") is False, entry["text"]
                if spec["model"]["kind"] == "rfm":
                    assert spec["model"].pop("features") == "agop", entry["text"]
        assert str(cfg.runs_dir) == entry["runs_dir"]
        assert hashlib.sha256(canonical(cfg.experiments).encode()).hexdigest() == entry["sha256"], entry[
            "text"
        ]


def _as_experiment(spec: dict[str, Any]) -> dict[str, Any]:
    """The experiment table that says everything a resolved spec says."""
    keys = ("description", "task", "p", "train_frac", "split_seed", "steps", "eval_every", "checkpoint_every",
            "batch_size", "layout", "loss", "device", "on_nan", "tf32", "model", "optim", "analysis",
            "grokfast")  # fmt: skip
    table = {k: spec[k] for k in keys}
    table["seeds"] = [spec["seed"]]
    if spec["model"]["kind"] == "rfm":
        table.pop("loss")  # an RFM's loss is mse whatever the file says
    return table


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_a_resolved_spec_written_back_resolves_to_itself(seed: int) -> None:
    """Plain JSON (no NaN, no types of ours), and a fixed point: spec → experiment table → the same spec."""
    cfg = parse_config(valid_configs.text(random.Random(seed)), Path("experiments.toml"))
    for spec in cfg.runs:
        assert json.loads(json.dumps(spec, allow_nan=False)) == spec
        again = parse_config(dumps({"experiments": {"x": _as_experiment(spec)}}), Path("y.toml")).runs[0]
        expected = {**spec, "experiment": "x", "name": f"seed{spec['seed']}"}
        assert json.dumps(again) == json.dumps(expected)  # same values, same types (1 stays 1, not 1.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), data=st.data())
def test_defaults_apply_like_the_experiments_own_keys(seed: int, data) -> None:
    """A key set in [defaults] resolves as if each experiment set it (tables merge key by key)."""
    table = valid_configs.experiment(random.Random(seed))
    moved = data.draw(st.lists(st.sampled_from(sorted(table)), unique=True))
    inline = parse_config(dumps({"experiments": {"e": table}}), Path("x.toml")).runs
    defaults = {k: table[k] for k in moved}
    rest = {k: v for k, v in table.items() if k not in moved}
    split = parse_config(dumps({"defaults": defaults, "experiments": {"e": rest}}), Path("x.toml")).runs
    assert split == inline


def test_on_nan_defaults_to_fail_and_is_set_per_experiment_or_in_defaults() -> None:
    text = (
        '[defaults]\non_nan = "continue"\n[experiments.a]\np = 7\n[experiments.b]\np = 7\non_nan = "fail"\n'
    )
    a, b = (parse_config(text, Path("x.toml")).experiments[k][0] for k in "ab")
    assert (a["on_nan"], b["on_nan"]) == ("continue", "fail")
    assert parse_config("[experiments.c]\np = 7\n", Path("x.toml")).runs[0]["on_nan"] == "fail"
    with pytest.raises(ConfigError, match=r"key 'on_nan': 'ignore' is not one of"):
        parse_config('[experiments.c]\non_nan = "ignore"\n', Path("x.toml"))


def test_numbers_keep_the_type_they_were_written_with() -> None:
    spec = parse_config(
        "[experiments.e]\noptim = { lr = 1, weight_decay = 0, betas = [0, 0.5], eps = 1 }\n", Path("x.toml")
    ).runs[0]
    assert json.dumps(spec["optim"]) == (
        '{"kind": "adamw", "lr": 1, "weight_decay": 0, "betas": [0, 0.5], "eps": 1, "warmup": 10}'
    )


def test_analysis_defaults_are_the_schemas() -> None:
    spec = parse_config("[experiments.e]\n", Path("x.toml")).runs[0]
    assert spec["analysis"] == ANALYSIS_DEFAULTS
    assert ANALYSIS_DEFAULTS["key_freq_rule"] == "neuron" and ANALYSIS_DEFAULTS["key_freq_threshold"] == 0.85


@pytest.mark.parametrize(
    ("device", "ok"),
    [("auto", True), ("cpu", True), ("cuda", True), ("cuda:0", True), ("cuda:12", True), ("cpu\n", False),
     ("cuda:", False), ("CUDA", False), (" cpu", False), ("cuda:0:1", False), ("tpu", False)],
)  # fmt: skip
def test_valid_device_matches_the_whole_string(device: str, ok: bool) -> None:
    assert valid_device(device) is ok


def test_the_file_is_read_with_a_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_bytes(b"[experiments.e]\n" + b"#" * (2 << 20) + b"\n")
    with pytest.raises(ConfigError, match="larger than 1,048,576 bytes"):
        load_config(path)
    path.write_bytes(b"[experiments.e]\np = 7\n")
    assert load_config(path).runs[0]["p"] == 7


@pytest.mark.parametrize("key", ["on_nan", "grokfast"])
def test_a_spec_from_before_a_key_reads_as_its_default(key: str) -> None:
    spec = parse_config("[experiments.e]\np = 7\n", Path("x.toml")).runs[0]
    older = {k: v for k, v in spec.items() if k != key}
    assert {**ADDED_SPEC_KEYS, **older} == spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [('[defaults]\nruns_dir = "out"\n', "out"), ("[defaults]\nruns_dir = 5\n", None),
     ("defaults = 1\n", None), ("x = " + "[" * 1000 + "]" * 1000 + "\n", None), ("[defaults\n", None),
     ("", None)],
)  # fmt: skip
def test_read_runs_dir_never_raises(text: str, expected: str | None, tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    assert read_runs_dir(path) == expected
    assert read_runs_dir(tmp_path / "missing.toml") is None


@pytest.mark.parametrize(
    ("defaults", "own", "expected"),
    [
        ('grokfast = { kind = "ma", window = 50 }', 'grokfast = { kind = "none" }', {"kind": "none"}),
        ('grokfast = { kind = "ma", window = 50 }', "grokfast = { lamb = 1 }",
         {"kind": "ma", "window": 50, "lamb": 1}),
        ('grokfast = { kind = "ema", alpha = 0.9 }', 'grokfast = { kind = "ema", lamb = 1 }',
         {"kind": "ema", "alpha": 0.9, "lamb": 1}),
        ("grokfast = { alpha = 0.9 }", "", None),  # a key of no kind's table: refused, naming it
    ],
)  # fmt: skip
def test_an_experiment_naming_another_kind_replaces_the_defaults_table(defaults, own, expected) -> None:
    """[defaults] grokfast = {kind = "ma", window = 50}: an experiment that says kind = "none" (or another
    kind) gets that table alone, since the default's keys belong to another filter; one that names the
    same kind, or none, merges key by key as every table does."""
    text = f"[defaults]\n{defaults}\n[experiments.e]\np = 7\n{own}\n"
    if expected is None:
        with pytest.raises(ConfigError, match=r"key 'grokfast.alpha'"):
            parse_config(text, Path("x.toml"))
        return
    got = parse_config(text, Path("x.toml")).runs[0]["grokfast"]
    full = {"ema": {"alpha": 0.98, "lamb": 2.0}, "ma": {"window": 100, "lamb": 5.0}, "none": {}}
    assert got == {"kind": expected["kind"], **full[expected["kind"]], **expected}


def test_a_model_of_another_kind_replaces_the_defaults_model_table() -> None:
    text = (
        '[defaults]\nmodel = { kind = "transformer", d_model = 32, heads = 4 }\n'
        '[experiments.t]\np = 7\nmodel = { kind = "transformer", d_mlp = 64 }\n'
        '[experiments.m]\np = 7\nmodel = { kind = "mlp", hidden = [16] }\n'
    )
    t, m = (parse_config(text, Path("x.toml")).experiments[k][0]["model"] for k in "tm")
    assert (t["d_model"], t["heads"], t["d_mlp"]) == (32, 4, 64)  # same kind: merged
    assert m == {"kind": "mlp", "hidden": [16], "act": "quadratic", "bias": False}
    # a [defaults] table naming no kind merges into the experiment's kind, and its keys are checked there
    with pytest.raises(ConfigError, match=r"key 'model.d_model'"):
        parse_config(
            '[defaults]\nmodel = { d_model = 32 }\n[experiments.m]\nmodel = { kind = "mlp" }\n',
            Path("x.toml"),
        )
