"""grok-tui: watch, steer and take apart grokking runs from a terminal.

The TUI only reads run directories (the worker writes them) and starts or signals runs through
``grok_tui.tui.actions``; quitting never stops a run. One background thread polls the runs
directory about once a second and posts a coalesced ``RunsChanged``; the screen on top redraws what
changed, and plots build lazily in ``render_line`` so hidden panes cost nothing. Nothing here imports
torch, and numpy is imported only when curves or checkpoints are first shown.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App
from textual.binding import Binding
from textual.reactive import var

from grok_tui.tui import actions
from grok_tui.tui.commands import GrokCommands
from grok_tui.tui.messages import PollFailed, RunsChanged
from grok_tui.tui.screens.base import LiveScreen
from grok_tui.tui.screens.experiments import ExperimentsScreen
from grok_tui.tui.store import Store

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from grok_tui.checkpoints import CheckpointView

EMA_STEPS = (0.0, 0.6, 0.9)
RESUME_SETTLE_S = 0.3
REAP_INTERVAL_S = 0.25  # how often to look for finished steering commands while some run


class Poller(threading.Thread):
    """Polls the store every ``interval`` seconds, or at once when poked; posts RunsChanged."""

    def __init__(self, app: GrokApp, store: Store, interval: float) -> None:
        super().__init__(name="grok-tui-poll", daemon=True)
        self.app, self.store, self.interval = app, store, interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cv = threading.Lock()
        self.paused = False  # set while the app is suspended (the editor owns the terminal)
        self.requested = 0  # poke() count
        self.served = 0  # the last request a finished poll has answered

    def poke(self) -> int:
        with self._cv:
            self.requested += 1
            n = self.requested
        self._wake.set()
        return n

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        failed = None
        while not self._stop.is_set():
            with self._cv:
                serving = self.requested
                self._wake.clear()
            if self.paused:
                self._wake.wait(self.interval)
                continue
            try:
                changed = self.store.poll()
                errors = self.store.errors
                msg = (
                    errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
                    if errors
                    else None
                )
            except Exception as e:  # keep polling: a bad file now may be fine next second
                changed = False
                msg = f"poll failed: {e.__class__.__name__}: {e}"
            if msg is not None and msg != failed:
                self.app.post_message(PollFailed(msg))
            failed = msg
            forced = serving > self.served
            self.served = serving
            if changed or forced:
                self.app.post_message(RunsChanged(serving))
            if not self._stop.is_set():
                self._wake.wait(self.interval)


class GrokApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "grok-tui"
    COMMANDS = App.COMMANDS | {GrokCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, id="app.palette"),
    ]

    #: Smoothing of every curve (an EMA weight from EMA_STEPS); the screens that draw curves watch it.
    ema_weight: var[float] = var(0.0)

    def __init__(
        self,
        config_path: Path | None = None,
        runs_dir: Path | None = None,
        *,
        poll_interval: float = 1.0,
        palette: str = "auto",
    ) -> None:
        super().__init__()
        self.store = Store(Path(config_path) if config_path else None, Path(runs_dir) if runs_dir else None)
        self.poll_interval = poll_interval
        self.palette_request = palette
        self.palette_mode = "truecolor"
        self.handled = 0  # the last poll request whose result was handled
        self.launched: list[int] = []  # pids of the steering commands (grok run/stop/resume) started here
        self._poller: Poller | None = None
        self._ckpt_cache: OrderedDict[tuple, CheckpointView] = OrderedDict()

    # ------------------------------------------------------------------ lifecycle
    def on_mount(self) -> None:
        if self.palette_request == "auto":
            self.palette_mode = "truecolor" if self.console.color_system == "truecolor" else "256"
        else:
            self.palette_mode = self.palette_request
        try:  # the runs on disk, before the first frame (json only; the thread adds the config)
            self.store.poll(config=False)
        except Exception as e:  # the poll thread retries and reports
            self.log.warning(f"first poll failed: {e}")
        self.push_screen(ExperimentsScreen())
        self._reaper = self.set_interval(REAP_INTERVAL_S, self._reap, pause=True)
        self._poller = Poller(self, self.store, self.poll_interval)
        # After the first frame: its first pass parses experiments.toml, which imports numpy
        # (~0.2 s of GIL the first paint should not wait for).
        self.call_after_refresh(self._poller.start)

    def on_unmount(self) -> None:
        if self._poller is not None:
            self._poller.stop()

    def on_runs_changed(self, message: RunsChanged) -> None:
        # A screen just pushed has no widgets until it is mounted (it refreshes itself when it resumes),
        # and a closing app is taking them down: a poll result landing then has nothing to update.
        screen = self.screen
        if isinstance(screen, LiveScreen) and screen.is_mounted and self.is_running:
            screen.refresh_data()
        self.handled = max(self.handled, message.served)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notifications here are plain text by default: run ids, paths, errors and what a command
        printed can hold brackets that Rich markup would eat."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def on_poll_failed(self, message: PollFailed) -> None:
        self.notify(message.error, severity="error")

    def poke(self) -> int:
        """Poll now instead of within a second; returns the request number (see ``settle``)."""
        return self._poller.poke() if self._poller else 0

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until a poll that started after this call has been handled (tests, e2e)."""
        n = self.poke()
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.handled < n:
            if loop.time() > end:
                raise TimeoutError("poll did not answer")
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------------ navigation
    def open_run(self, run_id: str) -> None:
        from grok_tui.tui.screens.run import RunScreen

        self.push_screen(RunScreen(run_id))

    def open_inspector(self, run_id: str) -> None:
        from grok_tui.tui.screens.inspector import InspectorScreen

        self.push_screen(InspectorScreen(run_id))

    def open_compare(self, run_ids: list[str]) -> None:
        from grok_tui.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(run_ids))

    def open_sweep(self, experiment: str) -> None:
        from grok_tui.tui.screens.sweep import SweepScreen

        self.push_screen(SweepScreen(experiment))

    def action_help(self) -> None:
        from grok_tui.tui.screens.modals import HelpScreen

        if self.screen.id != "help":
            self.push_screen(HelpScreen(self.screen))

    def action_cycle_ema(self) -> None:
        i = EMA_STEPS.index(self.ema_weight) if self.ema_weight in EMA_STEPS else 0
        self.ema_weight = EMA_STEPS[(i + 1) % len(EMA_STEPS)]

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_view(
        self, run_id: str, step: int, row: dict | None = None, *, ablation: bool = True
    ) -> CheckpointView:
        """The view of one checkpoint (``grok inspect``'s), cached: stepping back and forth is free.
        ``row``: the metrics row at ``step`` (the run screen, which only wants key frequencies,
        passes none, and no Fourier ablations). A damaged file is the view's error line, never an
        exception."""
        from grok_tui.checkpoints import CheckpointView, run_view

        rd = self.store.run_dir(run_id)
        path = rd.checkpoint_path(step)
        sig = []
        for f in (path, rd.path / "spec.json"):
            try:
                st = f.stat()
                sig.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                sig.append(None)
        key = (run_id, step, tuple(sig), tuple(sorted((row or {}).items())), ablation)
        view = self._ckpt_cache.get(key)
        if view is None:
            try:
                view = run_view(rd.path, step, row or {}, ablation=ablation)
            except Exception as e:  # a bug must not take the app down: say what failed, on which file
                view = CheckpointView(path=path, step=step, error=f"{path}: {e.__class__.__name__}: {e}")
            self._ckpt_cache[key] = view
            while len(self._ckpt_cache) > 64:
                self._ckpt_cache.popitem(last=False)
        else:
            self._ckpt_cache.move_to_end(key)
        return view

    # ------------------------------------------------------------------ steering
    def steer(self, what: str, start: Callable[[], int]) -> None:
        """Run one steering command (``start`` spawns it, detached): say so now, and say what it did
        when it ends (``_reap``); a refusal is one error line."""
        try:
            pid = start()
        except (actions.ActionError, OSError) as e:
            self.notify(str(e), severity="error")
            return
        self.launched.append(pid)
        self.notify(f"{what}: pid {pid}, output in {actions.LAUNCH_LOG}")
        self._reaper.resume()
        self.poke()

    def _reap(self) -> None:
        """Report each finished steering command: its own words and exit code, as a notification."""
        for out in actions.reap():
            self.notify(
                out.report(),
                title=f"grok {out.command}" + ("" if out.ok else " failed"),
                severity="information" if out.ok else "error",
                timeout=8,
            )
            self.poke()
        if not actions.pending():
            self._reaper.pause()

    def request_launch(self, experiments: list[str]) -> None:
        """``r``: launch the experiments; when every run they hold has finished (nothing would start),
        ask whether to start the finished ones over instead (``grok run --force``)."""
        rows = [r for r in self.store.rows() if r.in_config and r.experiment in experiments]
        done = [r.run_id for r in rows if r.state == "done"]
        startable = [r for r in rows if r.state not in ("done", "running")]
        if startable or not done:
            self.launch(experiments)
            return
        from grok_tui.tui.screens.modals import ConfirmScreen

        names = ", ".join(done[:4]) + (f" and {len(done) - 4} more" if len(done) > 4 else "")
        question = (
            f"{names} already finished: nothing to launch.\n"
            f"Rerun from scratch? grok run --force deletes {'its' if len(done) == 1 else 'their'} run "
            "directory (metrics, checkpoints, log) and trains again."
        )

        def answer(yes: bool | None) -> None:
            if yes:
                self.launch(experiments, force=True)
            else:
                self.notify("nothing launched", severity="warning")

        self.push_screen(ConfirmScreen(question, yes="Rerun"), answer)

    def launch(self, experiments: list[str], force: bool = False) -> None:
        verb = "rerunning" if force else "launching"
        self.steer(
            f"{verb} {', '.join(experiments)} (grok run{' --force' if force else ''})",
            lambda: actions.launch(self.store.config_path, experiments, self.store.runs_dir, force=force),
        )

    def confirm_stop(self, run_ids: list[str]) -> None:
        from grok_tui.tui.screens.modals import ConfirmScreen

        names = ", ".join(run_ids[:4]) + (f" and {len(run_ids) - 4} more" if len(run_ids) > 4 else "")
        question = f"Stop {names}?\nThe worker writes a checkpoint and exits; R resumes it later."

        def done(yes: bool | None) -> None:
            if yes:
                self.stop_runs(run_ids)

        self.push_screen(ConfirmScreen(question, yes="Stop"), done)

    def stop_runs(self, run_ids: list[str]) -> None:
        self.steer(
            f"stopping {', '.join(run_ids)} (grok stop): checkpoint, then exit",
            lambda: actions.stop([self.store.run_dir(r).path for r in run_ids], self.store.runs_dir),
        )

    def resume(self, run_ids: list[str]) -> None:
        self.steer(
            f"resuming {', '.join(run_ids)} (grok resume)",
            lambda: actions.resume([self.store.run_dir(r).path for r in run_ids], self.store.runs_dir),
        )

    def edit_config(self) -> None:
        """Suspend, run $VISUAL/$EDITOR on experiments.toml, then reload it."""
        path = self.store.config_path
        if path is None:
            self.notify("no experiments file (start grok-tui with FILE)", severity="warning")
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        from textual.app import SuspendNotSupported

        if self._poller is not None:
            self._poller.paused = True  # no redraws while the editor owns the terminal
        try:
            with self.suspend():
                subprocess.run([*shlex.split(editor), str(path)], check=False)
        except SuspendNotSupported:
            self.notify("cannot suspend in this terminal to run the editor", severity="error")
        except OSError as e:
            self.notify(f"{editor}: {e}", severity="error")
        # Frames drawn while the terminal switches back from the editor can be lost (seen under
        # tmux): reload once the app has repainted.
        self.set_timer(RESUME_SETTLE_S, self._after_edit)

    def _after_edit(self) -> None:
        if self._poller is not None:
            self._poller.paused = False
        self.store.load_config()
        self.poke()
        self.screen.refresh(layout=True)
        if self.store.config_error:
            self.notify(self.store.config_error, severity="error")


def run_app(
    config: Path | None = None,
    runs_dir: Path | None = None,
    *,
    mouse: bool = True,
    palette: str = "auto",
    interval: float = 1.0,
) -> int:
    """Start the TUI; returns the exit code. ``grok tui`` and ``grok-tui`` check the options and find the
    experiments file and runs directory (grok_tui.cli.tui); ``runs_dir`` None follows the file's."""
    app = GrokApp(config, runs_dir, poll_interval=interval, palette=palette)
    app.run(mouse=mouse)
    return app.return_code or 0
