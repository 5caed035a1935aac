# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""Import hygiene (harlequin-style, in clean subprocesses): the TUI process never loads torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tui_helpers import fixture_src  # noqa: F401

DRIVE_EVERY_SCREEN = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from grok_tui.tui.app import GrokApp
    print("numpy" in sys.modules, "torch" in sys.modules)

    async def go():
        app = GrokApp(Path(sys.argv[1]), palette="256")
        async with app.run_test(size=(100, 30)) as pilot:
            await app.settle()
            await pilot.pause()
            for key in ("enter", "2", "3", "f", "4", "i", "left", "escape", "escape",
                        "space", "space", "o", "e", "escape", "question_mark", "escape",
                        "w", "v", "t", "enter", "escape"):
                await pilot.press(key)
                await pilot.pause()
            assert app.screen.id == "experiments"

    asyncio.run(go())
    print("torch" in sys.modules)
    """
)


def test_the_tui_never_imports_torch_on_any_screen(fixture_src: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", DRIVE_EVERY_SCREEN, str(fixture_src / "experiments.toml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    # importing the app loads neither torch nor numpy (numpy waits until curves are first needed)
    assert out.stdout.split() == ["False", "False", "False"]


def test_headless_modules_do_not_import_textual() -> None:
    code = "import sys, grok_tui.tui.store, grok_tui.tui.actions, grok_tui.format, grok_tui.series; "
    code += "print(sorted(m for m in ('textual', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_shared_formatter_is_plain_python() -> None:
    """grok_tui.format is what `grok ls` imports too: no rich, Textual or numpy behind it."""
    code = "import sys, grok_tui.format; "
    code += "print(sorted(m for m in ('rich', 'textual', 'numpy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
