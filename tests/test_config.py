"""Malformed experiment files: each gives exactly one line naming file/experiment/key, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from grok_tui.cli import app
from grok_tui.config import ConfigError, load_config, parse_config

GOOD = """
[defaults]
eval_every = 50

[experiments.ok]
task = "add"
p = 13
train_frac = 0.5
seeds = [0, 1]
steps = 100
"""


def exp(body: str) -> str:
    return "[experiments.e]\n" + body


BAD = {
    "bad toml": ("[experiments.e\np = 3", "not valid TOML"),
    "duplicate key (TOML)": (exp("p = 7\np = 11"), "not valid TOML"),
    "unknown top-level table": ("[experimnts.e]\np = 7", "did you mean 'experiments'"),
    "no experiments": ("[defaults]\np = 7", "no experiments"),
    "unknown key with typo": (exp("trian_frac = 0.3"), "did you mean 'train_frac'"),
    "unknown defaults key": ("[defaults]\nsteeps = 3\n" + exp("p = 7"), "key 'defaults.steeps'"),
    "wrong type p": (exp('p = "113"'), "key 'p': must be an integer"),
    "bool for int": (exp("steps = true"), "key 'steps'"),
    "p < 2": (exp("p = 1"), "key 'p': must be an integer from 2 to"),
    "train_frac = 0": (exp("train_frac = 0.0"), "must be a number in (0, 1)"),
    "train_frac = 1.5": (exp("train_frac = 1.5"), "must be a number in (0, 1)"),
    "unknown operation": (exp('task = "addition"'), "unknown operation 'addition'"),
    "division with composite p": (exp('task = "a / b"\np = 12'), "p must be prime"),
    "alias division composite p": (exp('task = "div"\np = 15'), "p must be prime"),
    "unparsable expression": (exp('task = "a +"'), "cannot parse task"),
    "non-literal exponent": (exp('task = "a ** b"'), "exponent"),
    "function call": (exp('task = "__import__(\\"os\\")"'), "not an expression"),
    "unknown variable": (exp('task = "a + c"'), "unknown variable 'c'"),
    "empty seeds": (exp("seeds = []"), "key 'seeds': must be a list of 1 to"),
    "negative seed": (exp("seeds = [-1]"), "key 'seeds': must be an integer from 0"),
    "repeated seed": (exp("seeds = [1, 1]"), "seed listed twice"),
    "duplicate run names": (
        exp("[experiments.e.sweep]\ntask = ['a/b', 'a*b']\n"),
        "two runs would both be named",
    ),
    "name with slash": ('[experiments."a/b"]\np = 7', "no '/'"),
    "name with dotdot": ('[experiments."a..b"]\np = 7', "no '..'"),
    "unknown model kind": (exp('model = { kind = "lstm" }'), "'lstm' is not one of transformer, mlp, rfm"),
    "unknown model key": (exp("model = { d_modle = 64 }"), "did you mean 'd_model'"),
    "heads do not divide d_model": (exp("model = { d_model = 30, heads = 4 }"), "not divisible"),
    "negative lr": (exp("optim = { lr = -1.0 }"), "key 'optim.lr'"),
    "bad betas": (exp("optim = { betas = [0.9] }"), "key 'optim.betas'"),
    "unknown layout": (exp('layout = "power"'), "key 'layout'"),
    "bad device": (exp('device = "tpu"'), "key 'device'"),
    "negative batch size": (exp("batch_size = -3"), "key 'batch_size'"),
    "zero steps": (exp("steps = 0"), "key 'steps'"),
    "sweep of unknown key": (exp("[experiments.e.sweep]\nlr = [1e-3]\n"), "key 'sweep.lr'"),
    "sweep value not a list": (exp("[experiments.e.sweep]\np = 7\n"), "non-empty list"),
    "mixture repeats a task": (exp('task = ["add", "a + b"]'), "same operation twice"),
    "unknown analysis rule": (exp('analysis = { key_freq_rule = "max" }'), "key 'analysis.key_freq_rule'"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_file_gives_one_line_and_exit_2(name: str, tmp_path: Path) -> None:
    text, expected = BAD[name]
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert str(path) in lines[0]
    assert expected in lines[0], lines[0]
    if text.startswith("[experiments.e]\n") and "TOML" not in expected:
        assert "experiment 'e'" in lines[0]


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("no such file")


def test_unknown_only_name_suggests(tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(GOOD)
    result = CliRunner().invoke(app, ["run", str(path), "--only", "okk"])
    assert result.exit_code == 2
    assert "no experiment 'okk'" in result.stderr and "did you mean 'ok'" in result.stderr


def test_validate_prints_expanded_run_table(tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(
        GOOD + "[experiments.ok.sweep]\ntrain_frac = [0.3, 0.5]\noptim.weight_decay = [0.1, 1.0]\n"
    )
    result = CliRunner().invoke(app, ["validate", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "8 runs" in result.stdout
    assert "ok/train_frac=0.3-weight_decay=0.1-seed0" in result.stdout


def test_defaults_sweeps_and_seeds_expand() -> None:
    cfg = parse_config(GOOD + "[experiments.ok.sweep]\ntrain_frac = [0.3, 0.5]\n", Path("x.toml"))
    runs = cfg.experiments["ok"]
    assert [(r["train_frac"], r["seed"]) for r in runs] == [(0.3, 0), (0.3, 1), (0.5, 0), (0.5, 1)]
    assert all(r["eval_every"] == 50 and r["split_seed"] == r["init_seed"] == r["seed"] for r in runs)
    assert runs[0]["model"]["pos_embed"] is True and runs[0]["optim"]["warmup"] == 10


def test_furuta_layout_defaults_follow_the_paper() -> None:
    spec = parse_config('[experiments.f]\nlayout = "furuta"\np = 97\n', Path("x.toml")).runs[0]
    assert spec["model"]["pos_embed"] is False and spec["model"]["biases"] == "none"
    assert spec["model"]["init"] == "furuta" and spec["optim"]["warmup"] == 0


def test_shipped_experiments_file_is_valid() -> None:
    cfg = load_config(Path(__file__).parent.parent / "experiments.toml")
    assert "quick" in cfg.experiments and "nanda-add" in cfg.experiments
    nanda = cfg.experiments["nanda-add"][0]
    assert (nanda["p"], nanda["train_frac"], nanda["optim"]["weight_decay"]) == (113, 0.3, 1.0)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ConfigError):
        parse_config("", Path("empty.toml"))
