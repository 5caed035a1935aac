"""Moved to ``grok_tui.format`` (shared with the CLI). Kept only while ``screens/inspector.py`` still
imports it from here; remove it once that import reads ``from grok_tui import format as fmt``."""

from grok_tui.format import DASH, num, step

__all__ = ["DASH", "num", "step"]
