"""Scheduling packs (``--pack N|auto``, ``[defaults] pack``): which queued runs go into one packed worker.

The scheduler's decisions are tested with a launcher that records what it was asked to start (no process):
which runs were grouped into which start_pack call, the scheduler log's one line for each run started solo,
slots counted per worker rather than per member, members that end while their pack lives, stopping one
member, pack 1 as it always was. Option and key validation go through the real CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest
import valid_configs
from hypothesis import given, settings
from hypothesis import strategies as hs
from malformed_configs import dumps
from typer.testing import CliRunner

from grok_tui import packing, recorder, runs
from grok_tui.cli import app
from grok_tui.config import load_config
from grok_tui.config.loader import parse_config
from grok_tui.launch import local, memory
from grok_tui.launch.base import Slot
from grok_tui.launch.daemon import parse as parse_daemon_args
from grok_tui.launch.local import describe_exit, prepare_run, signal_run
from grok_tui.launch.scheduler import Scheduler
from grok_tui.launch.slots import Slots, pack_value
from grok_tui.launch.stopping import Stopper

#: Five compatible seeds, an RFM (never packed) and a run of another p; DEFAULTS is filled in per test.
FILE = """
[defaults]
device = "cpu"
steps = 300
eval_every = 50
train_frac = 0.5
DEFAULTS
[experiments.e]
p = 11
seeds = [0, 1, 2, 3, 4]
model = { d_model = 32, heads = 2, d_mlp = 64 }

[experiments.rfm]
p = 11
steps = 3
model = { kind = "rfm" }

[experiments.wide]
p = 13
model = { d_model = 32, heads = 2, d_mlp = 64 }
"""
SEEDS = [f"e/seed{i}" for i in range(5)]


class FakeWorker:
    def __init__(self, n: int, pack: str | None) -> None:
        self.id = str(40000 + n)
        self.pack = pack
        self.rc: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.rc

    def signal(self, sig: int) -> None:
        self.signals.append(sig)


class RecordingLauncher:
    """What the scheduler asked for: ("solo" | "pack", run ids, slot key), and the handle it got."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], str]] = []
        self.workers: list[FakeWorker] = []

    def _worker(self, kind: str, ids: list[str], slot: Slot) -> FakeWorker:
        w = FakeWorker(len(self.workers), f"pack{len(self.workers)}" if kind == "pack" else None)
        self.calls.append((kind, ids, slot.key))
        self.workers.append(w)
        return w

    def start(self, run: runs.RunDir, slot: Slot, device: str | None, threads: int) -> FakeWorker:
        return self._worker("solo", [run.run_id], slot)

    def start_pack(
        self, members: list[runs.RunDir], slot: Slot, device: str | None, threads: int
    ) -> FakeWorker:
        return self._worker("pack", [r.run_id for r in members], slot)

    def worker_of(self, run_id: str) -> FakeWorker:
        return next(w for (_, ids, _), w in zip(self.calls, self.workers, strict=True) if run_id in ids)


def queue(
    tmp_path: Path, slots: Slots, defaults: str = "", free: int | None = None
) -> tuple[Scheduler, RecordingLauncher, list[str], dict[str, Path]]:
    """Every run of FILE queued, in file order, with a scheduler that records its starts and its log."""
    path = tmp_path / "experiments.toml"
    path.write_text(FILE.replace("DEFAULTS", defaults))
    cfg = load_config(path)
    launcher = RecordingLauncher()
    log: list[str] = []
    sched = Scheduler.acquire(cfg.runs_dir, slots, launcher, log=log.append)
    assert sched is not None
    if free is not None:
        sched.free_memory = lambda slot: (free, "given by the test")
    paths = {}
    for spec in cfg.runs:
        run, _ = prepare_run(spec, cfg.runs_dir)
        assert sched.submit(run.path)[0] == "queued"
        paths[run.run_id] = run.path.resolve()
    return sched, launcher, log, paths


def solo_lines(log: list[str]) -> dict[str, str]:
    return {
        line.split(": runs solo: ")[0]: line.split(": runs solo: ")[1] for line in log if "runs solo" in line
    }


def end(path: Path, state: str = "done") -> None:
    """A member says its last word (its lock is not held: FakeWorker holds none)."""
    recorder.update_status(path, state=state)


# --------------------------------------------------------------------------- grouping


def test_compatible_seeds_share_packs_and_the_others_run_solo_saying_why(tmp_path: Path) -> None:
    sched, launcher, log, paths = queue(tmp_path, Slots(cpu=4, pack=3))
    sched.step()
    assert launcher.calls == [
        ("pack", SEEDS[:3], "cpu"),
        ("pack", SEEDS[3:], "cpu"),
        ("solo", ["rfm/seed0"], "cpu"),
        ("solo", ["wide/seed0"], "cpu"),
    ]
    why = solo_lines(log)
    assert set(why) == {"rfm/seed0", "wide/seed0"}
    assert why["rfm/seed0"].startswith("an RFM is solved by kernel ridge regression")
    assert why["wide/seed0"] == "no queued run shares its pack key (the nearest, e/seed0, differs in p)"
    # every member has its own entry, sharing its pack's one worker
    assert {sched.active[paths[r]].worker for r in SEEDS[:3]} == {launcher.workers[0]}
    assert f"e/seed0: started on CPU in pack pack0 (3 runs, pid {launcher.workers[0].id})" in log


def test_a_pack_takes_one_slot_until_its_last_member_ends(tmp_path: Path) -> None:
    sched, launcher, log, paths = queue(tmp_path, Slots(cpu=2, pack=3))
    sched.step()
    assert [c[1] for c in launcher.calls] == [SEEDS[:3], SEEDS[3:]]  # two slots: two workers, five runs
    first = launcher.workers[0]
    end(paths["e/seed0"])  # a member ends while its pack trains the others on
    end(paths["e/seed1"], "failed")
    sched.step()
    assert sched.outcomes == {paths["e/seed0"]: "done", paths["e/seed1"]: "failed"}
    assert paths["e/seed0"] not in sched.active and paths["e/seed2"] in sched.active
    assert len(launcher.calls) == 2  # the pack still holds its slot
    first.rc = 0  # the pack process ends; its last member with it
    end(paths["e/seed2"])
    sched.step()
    assert sched.outcomes[paths["e/seed2"]] == "done"
    assert launcher.calls[2] == ("solo", ["rfm/seed0"], "cpu")
    assert "e/seed1: failed" in log and "e/seed0: done" in log


def test_pack_one_schedules_every_run_alone_as_before(tmp_path: Path) -> None:
    sched, launcher, log, _ = queue(tmp_path, Slots(cpu=7))
    sched.step()
    assert [c[0] for c in launcher.calls] == ["solo"] * 7
    assert [c[1][0] for c in launcher.calls] == [*SEEDS, "rfm/seed0", "wide/seed0"]
    assert not solo_lines(log) and not any("pack" in line for line in log)


def test_runs_on_other_devices_never_share_a_pack(tmp_path: Path) -> None:
    sched, launcher, log, paths = queue(tmp_path, Slots(gpus=("0",), cpu=3, pack=8))
    # e/seed3 and e/seed4 asked for the GPU (a device override): the same pack key, another slot
    for rid in ("e/seed3", "e/seed4"):
        sched.queue = [q for q in sched.queue if q.run.path != paths[rid]]
        recorder.update_status(paths[rid], state="stopped")
        assert sched.submit(paths[rid], device="cuda")[0] == "queued"
    sched.step()
    assert ("pack", SEEDS[:3], "cpu") in launcher.calls
    assert ("pack", SEEDS[3:], "gpu:0") in launcher.calls


def test_a_run_whose_mates_are_all_packed_says_so(tmp_path: Path) -> None:
    sched, launcher, log, _ = queue(tmp_path, Slots(cpu=4, pack=4))
    sched.step()
    assert launcher.calls[:2] == [("pack", SEEDS[:4], "cpu"), ("solo", ["e/seed4"], "cpu")]
    assert solo_lines(log)["e/seed4"].startswith("the runs that share its pack key (e/seed0, …) are in full")


# --------------------------------------------------------------------------- pack = "auto"


def test_auto_sizes_packs_from_the_free_memory_and_says_so_once(tmp_path: Path) -> None:
    spec = load_config_spec(tmp_path)
    need = packing.member_bytes(spec)
    free = int(2.5 * need / packing.AUTO_SHARE)  # room for two members
    sched, launcher, log, _ = queue(tmp_path, Slots(cpu=4, pack="auto"), free=free)
    sched.step()
    assert [c[1] for c in launcher.calls if c[0] == "pack"] == [SEEDS[:2], SEEDS[2:4]]
    said = [line for line in log if line.startswith("pack = auto")]
    assert len(said) == 1 and "up to 2 runs per pack" in said[0] and "given by the test" in said[0]
    assert packing.auto_size(spec, free) == 2


def test_auto_with_room_for_one_or_unknown_memory_runs_solo(tmp_path: Path) -> None:
    sched, launcher, log, _ = queue(tmp_path, Slots(cpu=7, pack="auto"), free=1)
    sched.step()
    assert [c[0] for c in launcher.calls] == ["solo"] * 7
    assert solo_lines(log)["e/seed0"].startswith("pack = auto fits one run in 0.0 MiB given by the test: ")
    (tmp_path / "b").mkdir()
    sched, launcher, log, _ = queue(tmp_path / "b", Slots(cpu=1, pack="auto"))
    sched.free_memory = lambda slot: (None, "nowhere")
    sched.step()
    assert solo_lines(log)["e/seed0"] == "pack = auto, but the free memory of the CPU is unknown"


def test_free_memory_is_read_without_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:    1234567 kB\n")
    assert memory.cpu_available(meminfo) == 1234567 * 1024
    meminfo.write_text("MemTotal: 5 kB\n")
    assert memory.cpu_available(meminfo) is None
    monkeypatch.setenv("GROK_FAKE_GPUS", "0")  # a declared GPU is not there: the CPU's memory stands in
    free, where = memory.free_bytes(Slot("0"))
    assert isinstance(free, int) and free > 0 and "CPU" in where


def load_config_spec(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "spec.toml"
    path.write_text(FILE.replace("DEFAULTS", ""))
    return load_config(path).runs[0]


# --------------------------------------------------------------------------- stopping members


def test_stopping_one_member_asks_the_pack_and_kills_it_only_after_the_grace(tmp_path: Path) -> None:
    sched, launcher, log, paths = queue(tmp_path, Slots(cpu=1, pack=3))
    now = [0.0]
    sched.stopper = Stopper(clock=lambda: now[0])
    sched.step()
    pack = launcher.workers[0]
    assert sched.stop(paths["e/seed1"], grace=30)
    assert (paths["e/seed1"] / runs.STOP_REQUEST).exists()
    assert not (paths["e/seed0"] / runs.STOP_REQUEST).exists()
    assert pack.signals == []  # a signal would stop every member
    now[0] = 29
    sched.step()
    assert pack.signals == []
    now[0] = 31
    sched.step()
    assert pack.signals == [signal.SIGKILL]
    killed = [line for line in log if "did not stop within its grace period" in line]
    assert killed == [
        "e/seed1: did not stop within its grace period: killed pack pack0 (pid 40000); its other members "
        "e/seed0, e/seed2 were killed too and stay resumable"
    ]
    pack.rc = -signal.SIGKILL
    sched.step()
    assert sched.outcomes[paths["e/seed1"]] == "stopped"
    for rid in ("e/seed0", "e/seed2"):
        st = runs.read_json(paths[rid] / runs.STATUS)
        assert st["state"] == "failed" and st["error"] == describe_exit(-signal.SIGKILL)


def test_a_member_that_stops_leaves_the_pack_training_the_others(tmp_path: Path) -> None:
    sched, launcher, log, paths = queue(tmp_path, Slots(cpu=1, pack=3))
    sched.step()
    sched.stop(paths["e/seed2"])
    end(paths["e/seed2"], "stopped")  # what the packed worker does with the stop.request
    sched.step()
    assert sched.outcomes == {paths["e/seed2"]: "stopped"} and "e/seed2: stopped" in log
    assert not (paths["e/seed2"] / runs.STOP_REQUEST).exists()  # one asked again as it ended is void
    assert paths["e/seed2"] not in sched.stopper and launcher.workers[0].signals == []


def test_shutdown_sends_each_pack_one_sigterm(tmp_path: Path) -> None:
    sched, launcher, log, paths = queue(tmp_path, Slots(cpu=4, pack=3))
    sched.step()

    def finish(sig: int, w: FakeWorker) -> None:  # the workers answer SIGTERM by stopping every member
        w.signals.append(sig)
        for (_, ids, _), worker in zip(launcher.calls, launcher.workers, strict=True):
            if worker is w:
                for rid in ids:
                    end(paths[rid], "stopped")
        w.rc = 0

    for w in launcher.workers:
        w.signal = lambda sig, w=w: finish(sig, w)  # type: ignore[method-assign]
    sched.shutdown(grace=30)
    assert [w.signals for w in launcher.workers] == [[signal.SIGTERM]] * 4
    assert set(sched.outcomes.values()) == {"stopped"} and len(sched.outcomes) == 7


def test_kill_of_a_member_kills_its_pack(tmp_path: Path) -> None:
    sched, launcher, _, paths = queue(tmp_path, Slots(cpu=1, pack=3))
    sched.step()
    assert sched.kill(paths["e/seed0"])
    assert launcher.workers[0].signals == [signal.SIGKILL]


# --------------------------------------------------------------------------- signal_run of a member

HOLDER = """
# stands in for python -m grok_tui.worker: holds the run's lock and names a pack in status.json
import os, sys, time
from pathlib import Path
from grok_tui import recorder, runs
run = Path(sys.argv[1])
with runs.hold_lock(run):
    fields = dict(state="running", pid=os.getpid(), pgid=os.getpgid(0))
    if sys.argv[2] != "solo":
        fields["pack"] = {{"id": sys.argv[2], "members": ["e/seed0", "e/seed1"]}}
    recorder.update_status(run, **fields)
    print("ready", flush=True)
    time.sleep(60)
"""


@contextlib.contextmanager
def holder(run: runs.RunDir, pack: str) -> Iterator[subprocess.Popen]:
    """A live process that owns ``run`` as a worker of pack ``pack`` ("solo": none) would."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(), str(run.path), pack],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("pack", ["p-1", "solo"])
def test_signal_run_asks_a_pack_member_to_stop_and_kills_the_pack_on_sigkill(
    pack: str, tmp_path: Path
) -> None:
    run, _ = prepare_run(load_config_spec(tmp_path), tmp_path / "runs")
    with holder(run, pack) as proc:
        assert signal_run(run, signal.SIGTERM) == proc.pid
        if pack == "solo":  # a solo worker gets the signal itself
            assert proc.wait(timeout=30) == -signal.SIGTERM
            return
        assert (run.path / runs.STOP_REQUEST).exists()
        assert proc.poll() is None  # the pack (its other members) trains on
        assert signal_run(run, signal.SIGKILL) == proc.pid
        assert proc.wait(timeout=30) == -signal.SIGKILL


def test_show_names_the_pack_of_a_live_member(tmp_path: Path) -> None:
    run, _ = prepare_run(load_config_spec(tmp_path), tmp_path / "runs")
    runner = CliRunner(env={"COLUMNS": "200", "GROK_RUNS_DIR": None})
    with holder(run, "p-1") as proc:
        out = runner.invoke(app, ["show", "e/seed0", "--runs-dir", str(tmp_path / "runs")])
        assert out.exit_code == 0, out.output
        assert f"training in pack p-1 with 1 other run (pid {proc.pid})" in out.stdout
    out = runner.invoke(app, ["show", "e/seed0", "--runs-dir", str(tmp_path / "runs")])
    assert out.exit_code == 0 and "training in pack" not in out.stdout  # gone: no pack to name


# --------------------------------------------------------------------------- the local launcher

ECHO = """
import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "pack": os.environ.get("GROK_PACK_ID"),
                  "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}), flush=True)
"""


def test_start_pack_spawns_one_process_for_every_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the packed worker is given: every run directory, its pack id; its output in the pack's log."""
    (tmp_path / "echo_worker.py").write_text(ECHO)
    monkeypatch.setattr(local, "WORKER_MODULE", "echo_worker")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    cfg_path = tmp_path / "experiments.toml"
    cfg_path.write_text(FILE.replace("DEFAULTS", ""))
    members = [prepare_run(spec, tmp_path / "runs")[0] for spec in load_config(cfg_path).runs[:3]]
    for run in members:  # a stop asked of an earlier pack that died before it read it
        recorder.request_stop(run.path)
    worker = local.LocalLauncher().start_pack(members, Slot(), None, 1)
    assert worker.proc.wait(timeout=60) == 0
    log = (tmp_path / "runs" / ".grok" / "packs" / f"{worker.pack}.log").read_text().splitlines()
    started = f"starting worker in pack {worker.pack} (3 members) on CPU (scheduler {os.getpid()})"
    assert log[0].endswith(f"{started}: e/seed0 e/seed1 e/seed2")
    seen = json.loads(log[1])
    assert seen == {"argv": [str(r.path.resolve()) for r in members], "pack": worker.pack, "cuda": ""}
    for run in members:
        assert f"starting worker in pack {worker.pack} (3 members)" in (run.path / runs.LOG).read_text()
        assert not (run.path / runs.STOP_REQUEST).exists()


# --------------------------------------------------------------------------- the option and the key


@pytest.mark.parametrize(
    "bad", ["0", "-1", "big", "1.5", "Auto", " 2", "", "1025", "99999999999999999999", "true"]
)
def test_a_bad_pack_option_is_one_line_and_exit_2(bad: str, tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(FILE.replace("DEFAULTS", ""))
    for args in (["run", str(path), "--runs-dir", str(tmp_path / "runs")], ["resume", "e/seed0"]):
        result = CliRunner(env={"GROK_RUNS_DIR": str(tmp_path / "runs")}).invoke(app, [*args, "--pack", bad])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert lines == [f"grok: error: --pack '{bad}' is not a whole number from 1 to 1024, or auto"]
    assert not (tmp_path / "runs").exists()


def test_pack_values_that_are_accepted() -> None:
    assert pack_value("1") == 1 and pack_value("64") == 64 and pack_value("auto") == "auto"
    assert pack_value(1024) == 1024
    for bad in (0, True, 1025, "0x10", "٣"):
        with pytest.raises(ValueError):
            pack_value(bad)


@settings(max_examples=300, deadline=None)
@given(
    hs.one_of(
        hs.text(max_size=12), hs.from_regex(r"\A[0-9]{1,8}\Z"), hs.sampled_from(["auto", "1024", "1025"])
    )
)
def test_any_pack_text_is_a_size_or_one_printable_line(text: str) -> None:
    """The rule stated independently: "auto", or ASCII digits whose value is 1 to 1024 (leading zeros too)."""
    ok = text == "auto" or (re.fullmatch(r"[0-9]+", text) is not None and 1 <= int(text) <= 1024)
    try:
        value = pack_value(text)
    except ValueError as e:
        assert not ok, text
        assert str(e).isprintable() and len(str(e)) < 200 and str(e).startswith("--pack '")
    else:
        assert ok and value == ("auto" if text == "auto" else int(text))


@pytest.mark.parametrize("slots", [Slots(), Slots(("0", "1"), 2, 3, "auto"), Slots(pack=7)])
def test_the_daemon_reads_back_the_slots_it_is_given(slots: Slots, tmp_path: Path) -> None:
    assert parse_daemon_args([str(tmp_path), *slots.args()]) == (tmp_path.resolve(), slots)


def test_describe_mentions_packs() -> None:
    assert Slots().describe() == "no GPU, 1 CPU slot"
    assert Slots(pack=4).describe() == "no GPU, 1 CPU slot, packs of up to 4 runs"
    assert Slots(pack="auto").describe().endswith("packs sized to the free memory")


@pytest.mark.parametrize("seed", range(40))
def test_defaults_pack_never_enters_a_spec(seed: int) -> None:
    """Any valid file with [defaults] pack expands to exactly the specs it has without it."""
    rng = random.Random(seed)
    doc = valid_configs.document(rng)
    plain = parse_config(dumps(doc), Path("experiments.toml"))
    doc.setdefault("defaults", {})["pack"] = rng.choice([1, 2, 64, 1024, "auto"])
    packed = parse_config(dumps(doc), Path("experiments.toml"))
    assert packed.runs == plain.runs
    assert packed.pack == doc["defaults"]["pack"] and plain.pack == 1


def test_validate_shows_the_files_pack(tmp_path: Path) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(FILE.replace("DEFAULTS", 'pack = "auto"'))
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "packs of auto" in result.stdout
    assert load_config(path).pack == "auto"


# --------------------------------------------------------------------------- end to end: real packed workers

E2E = """
[defaults]
runs_dir = "runs"
device = "cpu"
train_frac = 0.5
eval_every = 50
checkpoint_every = 100
model = { kind = "transformer", d_model = 32, heads = 2, d_mlp = 64 }
"""
LONG = 240.0  # deadline for conditions that need workers (a loaded 2-core machine is slow to import torch)


def e2e(tmp_path: Path, body: str) -> tuple[Path, Path]:
    path = tmp_path / "experiments.toml"
    path.write_text(E2E + body)
    return path, tmp_path / "runs"


def state(root: Path, rid: str) -> dict[str, Any]:
    return runs.read_json(root / rid / runs.STATUS) or {}


def pack_of(st: dict[str, Any]) -> str | None:
    return (st.get("pack") or {}).get("id")


def scheduler_log(root: Path) -> str:
    out = helpers.grok("logs", "--scheduler", "--runs-dir", str(root), timeout=LONG)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.slow
def test_run_packs_compatible_seeds_into_one_worker_and_says_why_the_others_run_solo(tmp_path: Path) -> None:
    path, root = e2e(
        tmp_path,
        """pack = 3
[experiments.e]
p = 11
seeds = [0, 1, 2]
steps = 300

[experiments.rfm]
p = 11
steps = 3
model = { kind = "rfm" }

[experiments.wide]
p = 13
steps = 300
""",
    )
    try:
        out = helpers.grok("run", str(path), "--parallel", "3", "--gpus", "none", timeout=LONG)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    finally:
        helpers.end_leftovers(root)
    members = [state(root, f"e/seed{i}") for i in range(3)]
    assert [st["state"] for st in members] == ["done"] * 3
    pack = pack_of(members[0])
    assert pack and all(pack_of(st) == pack for st in members)
    assert len({st["pid"] for st in members}) == 1
    assert sorted(members[0]["pack"]["members"]) == ["e/seed0", "e/seed1", "e/seed2"]
    assert (root / ".grok" / "packs" / f"{pack}.log").is_file()
    for rid in ("rfm/seed0", "wide/seed0"):
        st = state(root, rid)
        assert st["state"] == "done" and pack_of(st) is None and st["pid"] != members[0]["pid"]
    log = scheduler_log(root)
    assert "rfm/seed0: runs solo: an RFM is solved by kernel ridge regression" in log
    assert (
        "wide/seed0: runs solo: no queued run shares its pack key (the nearest, e/seed0, differs in p)" in log
    )
    for i in range(3):
        assert f"starting worker in pack {pack} (3 members)" in (root / f"e/seed{i}" / runs.LOG).read_text()


@pytest.mark.slow
def test_stop_one_member_then_kill_the_pack_then_resume_it_as_a_pack(tmp_path: Path) -> None:
    """`grok stop` of one member stops it alone; kill -9 of the pack leaves every member failed and
    resumable; `grok resume --pack 3` resumes the three (one from an earlier step) as one new pack."""
    path, root = e2e(tmp_path, "[experiments.e]\np = 11\nseeds = [0, 1, 2]\nsteps = 800\n")
    ids = [f"e/seed{i}" for i in range(3)]
    try:
        out = helpers.grok("run", str(path), "--pack", "3", "--detach", "--gpus", "none", timeout=LONG)
        assert out.returncode == 0, out.stderr

        def past(step: int, which: list[str]) -> bool:
            sts = [state(root, rid) for rid in which]
            return all(st.get("state") == "running" and (st.get("step") or 0) > step for st in sts)

        helpers.wait_for(lambda: past(100, ids), "every member past its checkpoint of step 100", LONG)
        first = state(root, ids[0])
        out = helpers.grok("stop", ids[1], "--runs-dir", str(root), "--grace", "120", timeout=LONG)
        assert out.returncode == 0, out.stdout + out.stderr
        stopped = state(root, ids[1])
        assert stopped["state"] == "stopped" and recorder.has_resume_state(root / ids[1])
        assert not (root / ids[1] / runs.STOP_REQUEST).exists()
        others = [ids[0], ids[2]]
        # the others train on after it left (they checkpoint again at step 200 or later)
        helpers.wait_for(lambda: past(stopped["step"] + 100, others), "the others to train on", LONG)
        assert pack_of(state(root, ids[0])) == pack_of(stopped)

        os.kill(first["pid"], signal.SIGSTOP)  # held still: none of them can finish before the kill
        assert [state(root, rid)["state"] for rid in others] == ["running"] * 2
        os.killpg(first["pgid"], signal.SIGKILL)
        helpers.wait_for(
            lambda: all(state(root, rid).get("state") == "failed" for rid in others),
            "the scheduler's reap",
            LONG,
        )
        assert {state(root, rid)["error"] for rid in others} == {describe_exit(-signal.SIGKILL)}
        assert state(root, ids[1])["state"] == "stopped"  # it had left the pack: not killed with it
        out = helpers.grok(
            "resume", *ids, "--runs-dir", str(root), "--pack", "3", "--gpus", "none", timeout=LONG
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    finally:
        helpers.end_leftovers(root)
    again = [state(root, rid) for rid in ids]
    assert [st["state"] for st in again] == ["done"] * 3 and all(st["resumed"] for st in again)
    assert len({pack_of(st) for st in again}) == 1 and pack_of(again[0]) != pack_of(first)
    assert len({st["pid"] for st in again}) == 1
    for rid in ids:  # nothing replayed twice, nothing lost
        steps = [r["step"] for r in runs.read_jsonl(root / rid / runs.METRICS)]
        assert steps == sorted(set(steps)) and steps[-1] == 800
