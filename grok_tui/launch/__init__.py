"""Launching workers so that runs belong to no terminal.

- ``base``: the ``Launcher`` / ``Worker`` interface and ``Slot`` (where a worker runs);
- ``local``: this machine: detached worker processes, run-directory preparation, signalling;
- ``gpus``: the GPU inventory, found without torch;
- ``scheduler``: GPU/CPU slots and the on-disk queue, one scheduler per runs directory (a lock);
- ``session``: what one ``grok run`` / ``grok resume`` does with the scheduler (own it or hand it runs).

Nothing here imports torch: schedulers and the TUI stay light.
"""
