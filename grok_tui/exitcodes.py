"""Exit codes of every grok-tui process, in one place so the CLI, the worker and the scheduler agree.

The shell conventions: 1 a run failed, 2 a bad input (file, key, option, run name), 128 + N a signal.
"""

from __future__ import annotations

OK = 0
#: A run failed, or a command could not do what was asked of an existing run (a damaged checkpoint, a run
#: with nothing to export yet): the message names the run or file.
FAILED = 1
#: A bad input: an experiments file, an option, a run name, a link inside a run directory.
USAGE = 2
#: The worker found its run owned by another live worker (it started nothing).
BUSY = 3
#: `grok run` in the foreground lost its terminal (SIGHUP): its runs went on under a detached scheduler.
HANGUP = 129
#: Ctrl-C or SIGTERM: the runs of this command were stopped cleanly.
INTERRUPTED = 130
