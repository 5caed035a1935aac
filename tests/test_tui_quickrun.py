"""A real run, launched from the TUI with `r`, that groks while the TUI watches the run directory.

The experiment is a tiny transformer on p = 23 that memorises within ~100 steps and groks a few
hundred steps later (seeds 0 and 1 grok by step 300; about 15 s of CPU training plus the worker's
torch import). `r` runs `grok run FILE --only quick --detach`: the launcher's scheduler starts the
worker, the TUI only watches the run directory. What the test asserts is what the run directory
records and what the TUI shows once the run has ended (the table's numbers are the ones `grok ls
--json` prints), never what a poll happened to catch on the way: on a busy machine the TUI may see
only a few of the evaluations. Then `r` again: the run has finished, so the TUI asks before a rerun
and says what `grok run --force` did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import wait_for
from tui_helpers import cell_text, toasts

from grok_tui import format as fmt
from grok_tui import runs
from grok_tui.tui.app import GrokApp
from grok_tui.tui.screens.experiments import RunTable

QUICK_TOML = """\
[defaults]
runs_dir = "runs"
device = "cpu"
eval_every = 20
checkpoint_every = 100

[experiments.quick]
task = "add"
p = 23
train_frac = 0.7
steps = 600
model = { kind = "transformer", d_model = 32, heads = 4, d_mlp = 128 }
optim = { lr = 1e-2, weight_decay = 1.0, warmup = 10 }
"""
RUN = "quick/seed0"
TIMEOUT_S = 300  # generous: a loaded 2-core CI box can be several times slower than idle


def _kill_session(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


async def test_launch_from_the_tui_and_watch_it_grok(tmp_path: Path) -> None:
    toml = tmp_path / "experiments.toml"
    toml.write_text(QUICK_TOML)
    run_dir = tmp_path / "runs" / "quick" / "seed0"
    app = GrokApp(toml, palette="truecolor", poll_interval=0.5)
    try:
        async with app.run_test(size=(110, 30), notifications=True) as pilot:
            await app.settle()
            await pilot.pause()
            table = app.screen.query_one(RunTable)
            assert cell_text(table, RUN, "state") == "new"
            await pilot.press("r")
            await pilot.pause()
            assert len(app.launched) == 1
            loop = asyncio.get_running_loop()
            end = loop.time() + TIMEOUT_S
            while (row := app.store.row(RUN)).state not in ("done", "failed", "stopped"):
                assert loop.time() < end, f"run did not finish in {TIMEOUT_S}s (last seen: {row.state})"
                await asyncio.sleep(0.5)
                await app.settle()
                await pilot.pause()
            s = row.summary
            assert row.state == "done", (s.error, (run_dir / runs.LOG).read_text()[-2000:])
            # what the run directory records: it memorised, then generalised well after
            rows = runs.RunDir(run_dir).metrics()
            assert s.memorised_at is not None and s.grokked_at is not None
            assert s.grokked_at > s.memorised_at
            before = [r["test_acc"] for r in rows if r["step"] < s.grokked_at]
            assert min(before) < 0.5 and max(r["test_acc"] for r in rows) >= 0.99
            # the table shows exactly what `grok ls` reports
            ls = subprocess.run(
                [sys.executable, "-m", "grok_tui", "ls", "--runs-dir", str(tmp_path / "runs"), "--json"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert ls.returncode == 0, ls.stderr
            listed = {r["run_id"]: r for r in json.loads(ls.stdout)}[RUN]
            for col, key, f in (
                ("train", "train_acc", fmt.acc),
                ("test", "test_acc", fmt.acc),
                ("mem", "memorised_at", fmt.step),
                ("grok", "grokked_at", fmt.step),
                ("state", "state", str),
            ):
                assert cell_text(table, RUN, col) == f(listed[key]), col
            # the real checkpoints open in the inspector: spectra and key frequencies present
            await pilot.press("enter", "i")
            await pilot.pause()
            screen = app.screen
            assert screen.id == "inspector" and screen.step == 600
            view = screen.view
            assert view.error is None and view.embed is not None and view.logit is not None
            assert np.all(np.isfinite(view.embed.cos)) and len(view.embed.cos) == 11
            # r again: everything has finished, so the TUI asks, then reruns and says what happened
            await pilot.press("escape", "escape", "r")
            await pilot.pause()
            assert app.screen.id == "confirm"
            ended = runs.RunDir(run_dir).raw_status()["ended"]
            await pilot.press("y")
            while not any("queued 1 run(s)" in t for t in toasts(app)):
                assert loop.time() < end + TIMEOUT_S, f"no report of the rerun; on screen: {toasts(app)}"
                await pilot.pause(0.1)
            assert len(app.launched) == 2

            def started_over() -> bool:
                st = runs.RunDir(run_dir).raw_status()
                return st.get("state") != "done" or st.get("ended", 0) > ended

            wait_for(started_over, timeout=TIMEOUT_S, what="the run directory to start over")
    finally:  # this test's launchers, scheduler and (after the rerun) worker
        from grok_tui.launch.inbox import scheduler_info

        for pid in app.launched:
            _kill_session(pid)
        sched = scheduler_info(tmp_path / "runs")
        if sched:
            _kill_session(sched.get("pid"))
        if runs.lock_held(run_dir):
            _kill_session((runs.read_json(run_dir / runs.STATUS) or {}).get("pgid"))
