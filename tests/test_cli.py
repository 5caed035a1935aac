"""The `grok` and `grok-tui` command lines themselves: help pages, --version, one parser for the app."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from helpers import grok

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
