"""``python -m grok_tui`` is the ``grok`` command."""

from .cli import main

main()
