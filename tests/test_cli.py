# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""The `grok` and `grok-tui` command lines themselves: help pages, --version, one parser for the app."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from helpers import grok
from tui_helpers import fixture_src, fx  # noqa: F401

from grok_tui import __version__
from grok_tui.cli import app

COMMANDS = sorted(c.name for c in app.registered_commands)
GROK_TUI = [sys.executable, "-c", "from grok_tui.cli.tui import main; main()"]


def _grok_tui(*args: str, cwd: Path | None = None):
    import subprocess

    return subprocess.run([*GROK_TUI, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_real_option_names_and_no_type_placeholders(command: str | None) -> None:
    out = grok(*([command] if command else []), "--help")
    assert out.returncode == 0, out.stderr
    page = out.stdout
    assert page.startswith("Usage: grok")
    # Typer's own pages print <bool>, <list[str]> and {file}: none of that here.
    assert not re.search(r"<[a-z][a-z \[\]|,]*>|\{[a-z]+\}", page), page
    if command:
        opts = [ln.split()[0] for ln in page.splitlines() if ln.startswith("  -")]
        assert "--help" in opts
        for line in page.splitlines():  # an option that takes a value names it in capitals
            m = re.match(r"  (--[a-z-]+) (\S+)", line)
            if m and not m.group(2).startswith(("-", "/")):
                assert m.group(2).rstrip(".").isupper(), line


def test_version() -> None:
    out = grok("--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"grok-tui {__version__}")


def test_grok_tui_and_grok_tui_subcommand_share_one_parser(tmp_path: Path) -> None:
    a, b = _grok_tui("--help"), grok("tui", "--help")
    assert a.returncode == b.returncode == 0

    def same(page: str) -> str:
        return page.replace("grok-tui", "PROG").replace("grok tui", "PROG")

    assert same(a.stdout) == same(b.stdout)
    for opt in ("--runs-dir", "--no-mouse", "--palette", "--interval"):
        assert opt in a.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nope.toml"], "nope.toml: no such file"),
        (["--palette", "16"], "--palette '16'"),
        (["--interval", "0"], "--interval must be positive"),
        (["--interval", "-1"], "--interval must be positive"),
    ],
)
def test_bad_app_options_are_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    for out in (_grok_tui(*args, cwd=tmp_path), grok("tui", *args, cwd=tmp_path)):
        assert out.returncode == 2, out
        assert out.stderr.count("\n") == 1 and needle in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


# --------------------------------------------------------------------------- export -o, ls at 80 columns


def _cli(*args: str, env: dict[str, str | None] | None = None):
    from typer.testing import CliRunner

    return CliRunner(env={"GROK_RUNS_DIR": None, **(env or {})}).invoke(app, list(args))


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        ("/", "is a directory"),
        ("{tmp}", "is a directory"),
        ("{tmp}/new-dir/", "is a directory"),
        ("{tmp}/missing/out.csv", "no directory"),
    ],
)
def test_export_to_a_bad_output_is_one_line_and_writes_nothing(
    fx: Path, tmp_path: Path, output: str, needle: str
) -> None:
    out = output.format(tmp=tmp_path)
    before = sorted(tmp_path.rglob("*"))
    r = _cli("export", "add/seed0", "-o", out, "--runs-dir", str(fx / "runs"))
    assert r.exit_code == 2 and r.exception is None or isinstance(r.exception, SystemExit)
    assert r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_export_writes_the_whole_file_and_refuses_a_run_without_evaluations(fx: Path, tmp_path: Path) -> None:
    import csv

    target = tmp_path / "m.csv"
    target.write_text("old contents\n")
    r = _cli("export", "add/seed0", "-o", str(target), "--runs-dir", str(fx / "runs"))
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(target.open()))
    assert rows and {"step", "train_acc", "test_acc"} <= set(rows[0])
    r = _cli("export", "add/seed3", "--runs-dir", str(fx / "runs"))  # queued: no evaluations
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == "grok: error: add/seed3 has no evaluations yet: nothing to export\n"


def test_ls_at_80_columns_never_cuts_a_run_id(tmp_path: Path) -> None:
    from grok_tui.recorder import write_json_atomic

    root = tmp_path / "runs"
    names = ["train_frac=0.3-weight_decay=0.3-seed0", "train_frac=0.35-weight_decay=1-seed12"]
    for name in names:
        d = root / "furuta-quick-mul-sweep" / name
        write_json_atomic(d / "spec.json", {"task": "a * b + a**2 - b", "steps": 30000, "device": "cuda:0"})
        write_json_atomic(d / "status.json", {"state": "failed", "step": 12000, "error": "x" * 200})
    r = _cli("ls", "--runs-dir", str(root), env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, r.stdout
    for name in names:
        assert f"furuta-quick-mul-sweep/{name}" in r.stdout
    assert r.stdout.count("failed") == 2  # the state stays: other columns went first
    wide = _cli("ls", "--runs-dir", str(root), env={"COLUMNS": "100"})
    assert "test acc" in wide.stdout and "grokked at" in wide.stdout  # the verdict goes last


def test_every_command_finds_the_same_runs_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--runs-dir, else $GROK_RUNS_DIR, else the experiments file's runs_dir, else ./runs: `grok run`
    (through validate's title, which names where runs would go), `grok ls` and the app agree."""
    from grok_tui.cli.common import default_runs_dir
    from grok_tui.tui.store import Store

    proj = tmp_path / "proj"
    proj.mkdir()
    toml = proj / "experiments.toml"
    toml.write_text('[defaults]\nruns_dir = "mine"\n[experiments.x]\nsteps = 10\n')
    monkeypatch.delenv("GROK_RUNS_DIR", raising=False)
    assert f"→ {proj / 'mine'}" in _cli("validate", str(toml), env={"COLUMNS": "300"}).stdout
    assert Store(toml, None).runs_dir == proj / "mine"  # the app's first frame, before the file is parsed
    assert default_runs_dir(None, toml) == proj / "mine"
    assert default_runs_dir(tmp_path / "opt", toml) == tmp_path / "opt"
    env = tmp_path / "from-env"
    monkeypatch.setenv("GROK_RUNS_DIR", str(env))
    assert f"→ {env}" in _cli("validate", str(toml), env={"COLUMNS": "300", "GROK_RUNS_DIR": str(env)}).stdout
    assert default_runs_dir(None, toml) == env == default_runs_dir(None)
