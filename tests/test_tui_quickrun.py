"""A real run, launched from the TUI with `r`, that groks while the test watches the table.

The experiment is a tiny transformer on p = 23 that memorises within ~100 steps and groks a few
hundred steps later (seeds 0 and 1 grok by step 300; about 15 s of CPU training plus the worker's
torch import). `r` runs
`grok run FILE --only quick --detach`: the launcher's scheduler starts the worker, the TUI only
watches the run directory. The numbers the table shows at the end must be the ones `grok ls --json`
prints.
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
from tui_helpers import cell_text

from grok_tui import runs
from grok_tui.tui import format as fmt
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
    launched: int | None = None
    try:
        async with app.run_test(size=(110, 30)) as pilot:
            await app.settle()
            await pilot.pause()
            table = app.screen.query_one(RunTable)
            assert cell_text(table, RUN, "state") == "new"
            await pilot.press("r")
            await pilot.pause()
            (launched,) = app.launched
            states, test_accs = [], []
            loop = asyncio.get_running_loop()
            end = loop.time() + TIMEOUT_S
            while True:
                await app.settle()
                await pilot.pause()
                row = app.store.row(RUN)
                states.append(row.state)
                if row.test_acc is not None:
                    test_accs.append(row.test_acc)
                if row.state in ("done", "failed", "stopped"):
                    break
                assert loop.time() < end, f"run did not finish in {TIMEOUT_S}s (states seen: {set(states)})"
                await asyncio.sleep(0.5)
            assert row.state == "done", (row.error, (run_dir / runs.LOG).read_text()[-2000:])
            assert "running" in states  # we watched it live, not just the end
            assert row.memorised_at is not None and row.grokked_at is not None
            assert row.grokked_at > row.memorised_at  # grokking: generalisation well after memorising
            assert max(test_accs) >= 0.99 and min(test_accs) < 0.5
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
    finally:  # only on failure is anything left: this test's launcher, scheduler and worker
        from grok_tui.launch.inbox import scheduler_info

        _kill_session(launched)
        sched = scheduler_info(tmp_path / "runs")
        if sched:
            _kill_session(sched.get("pid"))
        if runs.lock_held(run_dir):
            _kill_session((runs.read_json(run_dir / runs.STATUS) or {}).get("pgid"))
