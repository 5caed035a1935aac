"""Hundreds of generated malformed experiment files through the real CLI: each gives exit 2 and exactly one
line naming the file (and the key, where the class of problem pins one down), within bounded time and
memory, and ``grok run`` creates nothing for any of them.

One driver process runs ``grok validate`` on every file and ``grok run`` on every third, in-process, under
an address-space limit and a per-file timer (tests/cli_driver.py); a few files also go through separate
``python -m grok_tui`` processes, as a user would run them.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from malformed_configs import Case, generate

DRIVER = Path(__file__).parent / "cli_driver.py"
#: Generous bounds for a busy 2-core machine: the slowest file takes well under a second idle.
SECONDS_PER_FILE = 10
MEMORY_MB = 1536
PEAK_PER_FILE_MB = 200
MAX_LINE = 1000


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return generate(seed=0)


def test_the_generator_covers_every_class(cases: list[Case]) -> None:
    counts = collections.Counter(c.cls for c in cases)
    assert len(cases) >= 300
    expected = {
        "wrong type": 150, "out of range": 80, "non-finite": 80, "enum": 50, "unknown key": 30,
        "structure": 20, "task": 25, "split": 8, "huge": 10, "nesting": 8, "long string": 5, "name": 15,
        "not toml": 4, "syntax": 50, "wrong for the model": 3, "slurm line": 20, "slurm value": 15,
    }  # fmt: skip
    assert {k: min(counts[k], v) for k, v in expected.items()} == expected, counts


def _verdict(case: Case, path: Path, result: dict) -> str | None:
    """None when the file was refused as it must be; else what went wrong."""
    code, lines = result["code"], result["stderr"].strip().splitlines()
    if isinstance(code, str):
        return f"{code} (a traceback, a hang or a memory blow-up)"
    if code != 2:
        return f"exit {code}"
    if result["stderr_lines"] != 1 or result["stderr_chars"] > MAX_LINE:
        return f"{result['stderr_lines']} stderr lines, {result['stderr_chars']} characters"
    if str(path) not in lines[0]:
        return f"the line does not name the file: {lines[0]}"
    if case.expect is not None and case.expect not in lines[0]:
        return f"the line does not name {case.expect!r}: {lines[0]}"
    if result["seconds"] > SECONDS_PER_FILE or result["peak_bytes"] > PEAK_PER_FILE_MB << 20:
        return f"{result['seconds']:.1f} s, {result['peak_bytes'] >> 20} MB"
    return None


def test_every_malformed_file_is_refused_with_one_line(cases: list[Case], tmp_path: Path) -> None:
    jobs, where = [], []
    for i, case in enumerate(cases):
        path = tmp_path / f"case{i:04d}.toml"
        path.write_bytes(case.data)
        jobs.append(["validate", str(path)])
        where.append((i, "validate", None))
        if i % 3 == 0:
            runs_dir = tmp_path / f"runs{i:04d}"
            # `--gpus 0,0` is refused, but only after the file is loaded: a file wrongly accepted then
            # fails here with a line that does not name it, instead of starting to train.
            jobs.append(["run", str(path), "--runs-dir", str(runs_dir), "--gpus", "0,0"])
            where.append((i, "run", runs_dir))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    results_path = tmp_path / "results.jsonl"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "GROK_FAKE_GPUS": ""}
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER), str(tmp_path / "jobs.json"), str(results_path)]
        + ["--mem-mb", str(MEMORY_MB), "--timeout", str(SECONDS_PER_FILE)],
        cwd=tmp_path,
        env=env,
        start_new_session=True,  # so that anything a wrongly accepted `grok run` started is ended below
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = proc.communicate(timeout=SECONDS_PER_FILE * 20 + 3 * len(jobs))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    results = [json.loads(line) for line in results_path.read_text().splitlines()]
    assert len(results) == len(jobs), (
        f"the driver stopped after {len(results)} of {len(jobs)}: {stderr[-2000:]}"
    )
    failures = []
    for (i, command, runs_dir), result in zip(where, results, strict=True):
        path = tmp_path / f"case{i:04d}.toml"
        problem = _verdict(cases[i], path, result)
        if problem is None and runs_dir is not None and runs_dir.exists():
            problem = f"grok run created {sorted(p.name for p in runs_dir.rglob('*'))[:5]}"
        if problem is not None:
            failures.append(f"{command} [{cases[i].cls}] {cases[i].name}: {problem}")
    assert not failures, f"{len(failures)} of {len(jobs)} refused wrongly:\n" + "\n".join(failures[:40])


#: One file of each kind that used to end in a traceback, a hang or a silently accepted value.
REAL_PROCESS_CASES = [
    "[defaults] model = 1",
    "array 1000 deep",
    "sweep of 8e9 points",
    "task div with p = 2305843009213693951",
    "experiment name 'e\\n'",
    "params of d_model 8192",
]


@pytest.mark.parametrize("name", REAL_PROCESS_CASES)
def test_in_a_real_process(name: str, cases: list[Case], tmp_path: Path) -> None:
    case = next(c for c in cases if c.name == name)
    path = tmp_path / "experiments.toml"
    path.write_bytes(case.data)
    for args in (["validate", str(path)], ["run", str(path), "--runs-dir", str(tmp_path / "runs")]):
        out = subprocess.run(
            [sys.executable, "-m", "grok_tui", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and str(path) in lines[0], (args, out.stderr[-1000:])
    assert not (tmp_path / "runs").exists()
