# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""End to end in a real terminal: tmux runs grok-tui, keys go in, capture-pane is what a person sees."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_for
from tui_helpers import fixture_src, fx, start_replay  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (CI installs it)")


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

    def wait(self, text: str, timeout: float = 20.0) -> str:
        wait_for(lambda: text in self.screen(), timeout=timeout, what=f"{text!r} on screen:\n{self.screen()}")
        return self.screen()

    def kill(self) -> None:
        self("kill-server")


def test_grok_tui_in_tmux_watches_a_run_grok_then_edits_and_quits(fx: Path, tmp_path: Path) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf \'\\n[experiments.added]\\ntask = "mul"\\n\' >> "$1"\n')
    editor.chmod(0o755)
    # a run that groks while we watch: the fixture's grokked history replayed at 40 rows/s
    src = fx / "runs" / "add" / "seed0"
    live = fx / "runs" / "live" / "seed0"
    replay = start_replay(src, live, 0.025)
    tmux = Tmux("e2e")
    script = Path(sys.executable).with_name("grok-tui")  # the console script, as a person runs it
    exe = str(script) if script.exists() else f"{sys.executable} -m grok_tui.tui.app"
    cmd = f"cd {fx} && EDITOR={editor} TERM=xterm-256color {exe} experiments.toml --no-mouse"
    cmd += "; echo GROK-TUI-EXITED; sleep 30"
    try:
        tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", cmd)
        tmux.wait("add/seed0")
        tmux.wait("live/seed0")
        # the live run's row fills in: state done and a grokked-at step, as grok ls reports them
        replay.wait(timeout=60)

        def live_line() -> str:
            return next((line for line in tmux.screen().splitlines() if "live/seed0" in line), "")

        wait_for(lambda: " done " in live_line(), what="the live run to show done")
        from grok_tui.runs import RunDir

        s = RunDir(live).summary()
        assert s.state == "done" and f" {s.grokked_at} " in live_line() and f"{s.test_acc:.3f}" in live_line()
        # open it: curves, then the Fourier heatmap
        tmux.keys("/", "live")  # filter down to the live run (typed at once), then open it
        wait_for(lambda: "add/seed0" not in tmux.screen(), what="the filter to apply")
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
        tmux.wait("1 Curves")  # the run screen's footer
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
