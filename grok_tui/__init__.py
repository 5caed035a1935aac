"""grok-tui: run, watch and take apart grokking experiments from a terminal.

Importing the package loads neither torch nor textual: workers and the TUI import what they need.
"""

__version__ = "0.1.0"
