"""Drive the real ``grok`` CLI in-process over many argument lists, under a memory and a time limit.

``python tests/cli_driver.py JOBS.json RESULTS.jsonl [--mem-mb N] [--timeout S]``: JOBS is a list of argv
lists for ``grok``; RESULTS gets one line per job: the exit code (or the name of the exception that
escaped: a traceback), stderr, the seconds it took and the peak of memory Python allocated meanwhile
(tracemalloc). One process for hundreds of files keeps the test fast; the address-space limit turns a
runaway allocation into a MemoryError here instead of an exhausted machine, and a timer turns a hang into
a ``Hang``.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import signal
import sys
import time
import tracemalloc


class Hang(BaseException):
    """The job ran past its time limit."""


def _alarm(signum, frame):
    raise Hang


def run_job(command, argv: list[str], timeout: float) -> dict:
    out, err = io.StringIO(), io.StringIO()
    code: int | str
    tracemalloc.reset_peak()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                command.main(args=argv, prog_name="grok")
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Hang:
        code = "hang"
    except MemoryError:
        code = "MemoryError"
    except BaseException as e:  # what a user would see as a traceback
        code = type(e).__name__
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.perf_counter() - start
    return {
        "code": code,
        "stderr": err.getvalue()[:4000],  # the lines themselves are counted in full
        "stderr_lines": len(err.getvalue().splitlines()),
        "stderr_chars": len(err.getvalue()),
        "seconds": seconds,
        "peak_bytes": tracemalloc.get_traced_memory()[1],
    }


def main() -> None:
    jobs_path, results_path, *opts = sys.argv[1:]
    mem_mb = int(opts[opts.index("--mem-mb") + 1]) if "--mem-mb" in opts else 2048
    timeout = float(opts[opts.index("--timeout") + 1]) if "--timeout" in opts else 20.0
    resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
    signal.signal(signal.SIGALRM, _alarm)
    import typer

    from grok_tui.cli import app

    command = typer.main.get_command(app)  # what ``grok`` runs; built once, not per job

    with open(jobs_path) as f:
        jobs = json.load(f)
    tracemalloc.start()
    with open(results_path, "w") as out:
        for argv in jobs:  # one line per job, flushed: a crash still leaves what was done
            out.write(json.dumps(run_job(command, argv, timeout)) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
