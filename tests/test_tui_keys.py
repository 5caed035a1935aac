# ruff: noqa: F811  (pytest fixtures imported from tui_helpers are parameters here)
"""Keys that arrive in one read (tmux writes ``a\\x7fb`` at once; SSH delivers typing in bursts) act in
the order they were typed. Each burst is posted to the app the way the terminal driver posts what it
parsed from one read: all at once, nothing handled in between."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from textual import events
from tui_helpers import fixture_src, fx, settled, until  # noqa: F401

from grok_tui.tui.app import GrokApp
from grok_tui.tui.screens.experiments import RunTable, matches

SIZE = (110, 32)
ALPHABET = "abdeimqsx019 /"  # letters the screens bind (e, q, s, ...) are text inside the filter
EDITS = ["backspace", "backspace", "delete", "left", "right", "home", "end"]


def typed(keys: list[str]) -> str:
    """What a text box reads after ``keys``: a model of a one-line editor with a cursor."""
    text, cur = "", 0
    for k in keys:
        if k == "backspace":
            if cur:
                text, cur = text[: cur - 1] + text[cur:], cur - 1
        elif k == "delete":
            text = text[:cur] + text[cur + 1 :]
        elif k in ("left", "right", "home", "end"):
            cur = {"left": max(cur - 1, 0), "right": min(cur + 1, len(text)), "home": 0, "end": len(text)}[k]
        else:
            text, cur = text[:cur] + k + text[cur:], cur + 1
    return text


def key_event(k: str) -> events.Key:
    """The Key event Textual's parser makes of what the terminal sends for ``k``."""
    special = {"backspace": "\x7f", "space": " ", "slash": "/", "escape": "\x1b", "enter": "\r"}
    name = {" ": "space", "/": "slash"}.get(k, k)
    char = special.get(name, None if name in EDITS else k)
    return events.Key(name, char)


async def burst(pilot, keys: list[str]) -> None:
    for k in keys:
        pilot.app.post_message(key_event(k))
    await pilot.pause()


def test_the_editor_model() -> None:
    assert typed(list("mia") + ["backspace", "x"]) == "mix"
    assert typed(list("ab") + ["home", "delete", "end", "c", "left", "left", "backspace"]) == "bc"


@pytest.mark.slow  # a fresh interpreter or a long generated input
async def test_a_burst_of_edits_reads_as_typed(fx: Path) -> None:
    """Generated bursts of typing and editing keys: the filter reads what the model says, and the
    table shows exactly the runs that match it."""
    rng = random.Random(20240607)
    app = GrokApp(fx / "experiments.toml", palette="truecolor")
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        box = app.screen.query_one("#filter")
        rows = app.store.rows()
        for _ in range(24):
            keys = [rng.choice([*ALPHABET, *EDITS]) for _ in range(rng.randint(1, 16))]
            await burst(pilot, ["/", *keys])  # "/" opens the filter, then everything at once
            want = typed(keys)
            shown = [r.run_id for r in rows if matches(r, want.strip())]
            await until(pilot, lambda w=want, s=shown: box.value == w and app.screen.visible_run_ids() == s)
            assert box.value == want, keys
            assert app.screen.visible_run_ids() == shown, keys
            await burst(pilot, ["escape"])
            await until(pilot, lambda: not box.display and app.screen.query_one(RunTable).has_focus)
            assert not box.display and app.screen.query_one(RunTable).has_focus


async def test_the_keys_after_enter_or_escape_reach_the_table(fx: Path) -> None:
    app = GrokApp(fx / "experiments.toml", palette="truecolor")
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        table = app.screen.query_one(RunTable)
        await burst(pilot, ["/", "a", "d", "escape", "j", "j"])  # filter typed, dropped; cursor down twice
        await until(pilot, lambda: table.cursor_row == 2)
        assert app.screen.query_one("#filter").value == "" and table.cursor_row == 2
        await burst(pilot, ["/", "m", "i", "a", "backspace", "x", "enter", "enter"])  # keep it, open the run
        await until(pilot, lambda: app.screen.id == "run")
        assert app.screen.id == "run" and app.screen.run_id == "mix/seed0"
