# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""End to end in a real terminal: tmux runs grok-tui, keys go in, capture-pane is what a person sees.

Every wait is a deadline, never an expectation (a busy 2-core machine starts Python slowly), and
what the screen must show is decided by what the run directory records.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_for
from tui_helpers import fixture_src, fx, start_replay  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (CI installs it)")
DEADLINE_S = 90.0


class Tmux:
    """A private tmux server (own socket, no user config) holding one session."""

    def __init__(self, name: str) -> None:
        self.sock = f"grok-tui-test-{os.getpid()}-{name}"

    def __call__(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.sock, "-f", "/dev/null", *args], capture_output=True, text=True
        )
        return out.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "t", *keys)

    def write(self, text: str) -> None:
        """``text`` as one write to the pane's terminal, as a burst of typing arrives over SSH."""
        self("send-keys", "-t", "t", "-l", text)

    def until(self, cond, what: str, timeout: float = DEADLINE_S) -> str:
        """Wait until ``cond(screen)`` holds; on timeout, fail showing the screen as it is then."""
        try:
            wait_for(lambda: cond(self.screen()), timeout=timeout, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}; the screen:\n{self.screen()}") from None
        return self.screen()

    def wait(self, text: str, timeout: float = DEADLINE_S) -> str:
        return self.until(lambda screen: text in screen, f"{text!r} on screen", timeout)

    def kill(self) -> None:
        self("kill-server")


def grok_tui_cmd(root: Path, env: str = "") -> str:
    script = Path(sys.executable).with_name("grok-tui")  # the console script, as a person runs it
    exe = str(script) if script.exists() else f"{sys.executable} -m grok_tui.tui.app"
    run = f"{env} TERM=xterm-256color {exe} experiments.toml --no-mouse"
    return f"cd {root} && {run}; echo GROK-TUI-EXITED; sleep 30"


PLACEHOLDER = "filter: words"  # what the empty filter box shows


def filter_text(screen: str) -> str:
    """The filter box's text while it has the focus: the last line drawn (the footer below it is blank
    then, its keys being text for the box)."""
    lines = [ln for ln in screen.split("\n") if ln.strip()]
    last = lines[-1].strip() if lines else ""
    return "" if last.startswith(PLACEHOLDER) else last


def test_filter_keys_written_at_once_arrive_in_order(fx: Path) -> None:
    """Typing with backspaces, each burst one write (tmux sends 'a\\x7fb' so): the filter reads what
    was typed, and enter, enter written with the text open the one run left."""
    tmux = Tmux("burst")
    try:
        tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", grok_tui_cmd(fx))
        tmux.wait("mix/seed0")
        rng = random.Random(11)
        for _ in range(6):
            text, typed = "", ""
            for _ in range(rng.randint(3, 9)):
                if typed and rng.random() < 0.35:
                    text, typed = text + "\x7f", typed[:-1]
                else:
                    c = rng.choice("admixse")
                    text, typed = text + c, typed + c
            tmux.keys("/")
            tmux.wait(PLACEHOLDER)
            tmux.write(text)
            tmux.until(lambda screen, t=typed: filter_text(screen) == t, f"the filter to read {typed!r}")
            tmux.keys("Escape")
            tmux.until(lambda screen: PLACEHOLDER not in screen and "/ Filter" in screen, "the footer")
        tmux.keys("/")
        tmux.wait(PLACEHOLDER)
        tmux.write("mia\x7fx\r\r")  # fix a typo, keep the filter, open the only run left: one write
        tmux.wait("1 2 3 4 Tabs")  # the run screen's footer
        assert "mix/seed0" in tmux.screen()
        tmux.keys("q")
        tmux.wait("GROK-TUI-EXITED")
    finally:
        tmux.kill()


def test_grok_tui_in_tmux_watches_a_run_grok_then_edits_and_quits(fx: Path, tmp_path: Path) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf \'\\n[experiments.added]\\ntask = "mul"\\n\' >> "$1"\n')
    editor.chmod(0o755)
    # a run that groks while we watch: the fixture's grokked history replayed at 40 rows/s
    src = fx / "runs" / "add" / "seed0"
    live = fx / "runs" / "live" / "seed0"
    replay = start_replay(src, live, 0.025)
    tmux = Tmux("e2e")
    try:
        tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", grok_tui_cmd(fx, f"EDITOR={editor}"))
        tmux.wait("add/seed0")
        tmux.wait("live/seed0")
        # the live run's row fills in: what the run directory records once the replay has ended
        replay.wait(timeout=DEADLINE_S)
        from grok_tui.runs import RunDir

        s = RunDir(live).summary()
        assert s.state == "done" and s.grokked_at is not None

        def live_line() -> str:
            return next((line for line in tmux.screen().splitlines() if "live/seed0" in line), "")

        tmux.until(lambda _: " done " in live_line() and f" {s.grokked_at} " in live_line(), "the run done")
        assert f"{s.test_acc:.3f}" in live_line()
        # open it: curves, then the Fourier heatmap
        tmux.keys("/", "live")  # filter down to the live run (typed at once), then open it
        tmux.until(lambda screen: "add/seed0" not in screen, "the filter to apply")
        tmux.keys("Enter", "Enter")
        tmux.wait("accuracy")
        assert f"grok@{s.grokked_at}" in tmux.screen() and "live/seed0 done" in tmux.screen()
        tmux.keys("3")
        tmux.wait("per frequency k")
        tmux.keys("i")
        tmux.wait("checkpoint 13/13")
        tmux.keys("Left")
        tmux.wait("checkpoint 12/13")
        tmux.keys("Escape")
        tmux.wait("1 2 3 4 Tabs")  # the run screen's footer
        tmux.keys("Escape")
        tmux.wait("/ Filter")  # the experiments screen's footer, still filtered
        tmux.keys("Escape")  # clear the filter
        tmux.wait("add/seed0")
        # $EDITOR in a suspended app: the new experiment shows up after the editor returns
        tmux.keys("E")
        tmux.wait("added/seed0")
        tmux.keys("q")
        tmux.wait("GROK-TUI-EXITED")
    finally:
        tmux.kill()
        if replay.poll() is None:
            replay.kill()
        replay.wait()
