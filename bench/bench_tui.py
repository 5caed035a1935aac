"""grok-tui benchmark: time to first paint, and the TUI's CPU share while 8 runs append at 10 Hz.

    python bench/bench_tui.py [--seconds 20] [--repeats 5] [--json]

Everything runs in a real pseudo-terminal (120×40): the TUI is started as ``python -m
grok_tui.tui.app``, its output is drained as a terminal would, and keys are written to it.

- first paint: from spawning the process to the first byte of the table's first run id on the
  terminal (the process's whole start-up: interpreter, imports, compose, first frame, first poll).
- CPU share: a writer process owns 8 fake runs like workers (holds their locks, status "running")
  and appends one metrics row + one spectrum row per run every 0.1 s (80 rows/s in all, plus a
  status.json replace per row). The TUI's user+system CPU time (all its threads, from /proc) is
  measured over a window on three views: the experiments table, a run's curves, its Fourier heatmap.
  RSS at the start and end of each window shows whether memory stays flat.

Goals (issue 6): first paint < 0.5 s, CPU < 10 % of one core.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pty
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

COLS, ROWS = 120, 40
P = 59

WRITER = textwrap.dedent(
    """
    import contextlib, math, os, sys, time
    from pathlib import Path
    from grok_tui import recorder, runs
    root, n, hz, P = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    dirs = sorted(p for p in root.glob("live/*") if p.is_dir())[:n]
    with contextlib.ExitStack() as stack:
        for d in dirs:
            stack.enter_context(runs.hold_lock(d))
            recorder.update_status(d, state="running", pid=os.getpid(), pgid=os.getpgid(0), step=0,
                               total_steps=10**9, device="cpu", started=time.time())
        print("ready", flush=True)
        step, period, nxt = 0, 1.0 / hz, time.monotonic()
        while True:
            step += 10
            s = math.log10(step)
            for i, d in enumerate(dirs):
                acc = 1 / (1 + math.exp(-(s - 3 - 0.1 * i) / 0.05))
                recorder.append_jsonl(d / runs.METRICS, {
                    "step": step, "time": step / 100, "train_acc": min(1.0, acc * 2),
                    "test_acc": acc, "train_loss": 1 / step, "test_loss": 2 * (1 - acc) + 1e-6,
                    "weight_norm": 100 + 1000 / s, "gini_embed": acc, "ffd_embed": 1 - acc / 2})
                recorder.append_jsonl(d / runs.FOURIER, {
                    "step": step, "embed": [1.0 + (3 * acc if k % 7 == 0 else -0.5 * acc)
                                            for k in range(1, P // 2 + 1)]})
                recorder.update_status(d, step=step)
            nxt += period
            time.sleep(max(0.0, nxt - time.monotonic()))
    """
)


class Pty:
    """The TUI in a pseudo-terminal whose output we drain (a terminal that never blocks it)."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.start = time.perf_counter()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        fcntl_winsize(self.fd, ROWS, COLS)
        self.buf = b""

    def read_until(self, needle: bytes, timeout: float) -> float | None:
        """Seconds from spawn until ``needle`` appeared in the output (None on timeout)."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            if needle in self.buf:
                return self.found_at
            self.drain(0.05)
        return None

    def drain(self, wait: float) -> None:
        r, _, _ = select.select([self.fd], [], [], wait)
        if r:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            self.buf += chunk
            self.found_at = time.perf_counter() - self.start
            self.buf = self.buf[-200_000:]

    def pump(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.drain(0.05)

    def keys(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        with_suppress(lambda: os.kill(self.pid, signal.SIGTERM))
        t = time.time()
        while time.time() - t < 5:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return
            self.pump(0.05)
        with_suppress(lambda: os.kill(self.pid, signal.SIGKILL))
        os.waitpid(self.pid, 0)


def with_suppress(fn) -> None:
    with contextlib.suppress(ProcessLookupError, OSError):
        fn()


def fcntl_winsize(fd: int, rows: int, cols: int) -> None:
    import fcntl

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def tui_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "grok_tui.tui.app", *args]


def env() -> dict[str, str]:
    return {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "TEXTUAL_ANIMATIONS": "none"}


def first_paint(root: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = Pty(tui_argv("experiments.toml"), root, env())
        try:
            got = t.read_until(b"add/seed0", 20)
        finally:
            t.close()
        if got is None:
            raise SystemExit("first paint: the table never showed add/seed0")
        times.append(got)
    return times


BARE_TEXTUAL = (
    "from textual.app import App\nfrom textual.widgets import Static\n"
    "class A(App):\n    def compose(self):\n        yield Static('add/seed0')\nA().run()\n"
)


def bare_textual_paint(repeats: int) -> list[float]:
    """The floor on this machine: a one-Static Textual app, same harness."""
    times = []
    for _ in range(repeats):
        t = Pty([sys.executable, "-c", BARE_TEXTUAL], ROOT, env())
        try:
            times.append(t.read_until(b"add/seed0", 20) or math.nan)
        finally:
            t.close()
    return times


def cpu_share(root: Path, seconds: float, runs: int = 8, hz: float = 10.0) -> list[dict]:
    from grok_tui import runs as R
    from grok_tui.recorder import write_json_atomic

    live = root / "live"
    spec = json.loads((root / "runs" / "add" / "seed0" / R.SPEC).read_text())
    for i in range(runs):
        d = live / f"run{i}"
        d.mkdir(parents=True)
        write_json_atomic(d / R.SPEC, {**spec, "experiment": "live", "name": f"run{i}"})
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(runs), str(hz), str(P)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    out = []
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        t = Pty(tui_argv("--runs-dir", str(root)), root, env())
        try:
            if t.read_until(b"live/run0", 20) is None:
                raise SystemExit("cpu: the table never showed the live runs")
            views = [
                ("experiments table", b""),
                ("run screen: curves", b"\r"),
                ("run screen: Fourier heatmap", b"3"),
            ]
            for name, keys in views:
                if keys:
                    t.keys(keys)
                t.pump(3.0)  # settle: screen built, first frames drawn
                c0, r0, w0 = cpu_seconds(t.pid), rss_mb(t.pid), time.perf_counter()
                t.pump(seconds)
                c1, r1, w1 = cpu_seconds(t.pid), rss_mb(t.pid), time.perf_counter()
                out.append({"view": name, "cpu_pct": 100 * (c1 - c0) / (w1 - w0), "rss_mb": (r0, r1)})
        finally:
            t.close()
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement window per view")
    ap.add_argument("--repeats", type=int, default=5, help="first-paint repetitions")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from make_fixtures import make_fixtures

    root = Path(tempfile.mkdtemp(prefix="bench-tui-"))
    try:
        make_fixtures(root)
        paint = first_paint(root, args.repeats)
        bare = bare_textual_paint(args.repeats)
        cpu = cpu_share(root, args.seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()
    if args.json:
        out = {
            "first_paint_s": paint,
            "bare_textual_s": bare,
            "cpu": cpu,
            "loadavg": load,
            "cpus": os.cpu_count(),
        }
        print(json.dumps(out))
        return
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"first paint (spawn → first run id on the terminal), {len(paint)} runs: "
        f"median {statistics.median(paint):.3f} s, min {min(paint):.3f} s, max {max(paint):.3f} s"
        "  (goal < 0.5 s)"
    )
    print(
        f"  floor: a bare one-widget Textual app in the same harness, median {statistics.median(bare):.3f} s"
    )
    print(f"TUI CPU while 8 runs append at 10 Hz ({args.seconds:.0f} s per view; goal < 10 % of one core):")
    for row in cpu:
        r0, r1 = row["rss_mb"]
        print(f"  {row['view']:<30} {row['cpu_pct']:5.1f} %   RSS {r0:.0f} → {r1:.0f} MB")


if __name__ == "__main__":
    main()
