"""Launching workers so that runs belong to no terminal.

- ``base``: the ``Launcher`` / ``Worker`` interface and ``Slot`` (where a worker runs);
- ``local``: this machine: detached worker processes, run-directory preparation, signalling;
- ``gpus``: the GPU inventory, found without torch;
- ``slots``: how many workers may run where (GPU ids × runs per GPU, a CPU pool), and runs per worker;
- ``memory``: the free memory of a slot, which ``pack = "auto"`` divides;
- ``scheduler``: the on-disk queue, one scheduler per runs directory (a lock), and its protocol;
- ``inbox``: how other processes reach the scheduler (requests, answers, its published info and log);
- ``daemon``: the detached scheduler process;
- ``stopping``: SIGTERM, then SIGKILL after the grace period, for every process that stops a worker;
- ``session``: what one ``grok run`` / ``grok resume`` does with the scheduler (own it or hand it runs).

Nothing here imports torch: schedulers and the TUI stay light.
"""
