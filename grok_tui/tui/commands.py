"""Command palette (ctrl+p): every keyboard action of the current screen, plus "open run ..."."""

from __future__ import annotations

from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from grok_tui.tui.screens.experiments import ExperimentsScreen


class GrokCommands(Provider):
    def _commands(self) -> list[tuple[str, str, object]]:
        screen = self.screen
        out: list[tuple[str, str, object]] = []
        seen = set()
        for b in [*getattr(screen, "BINDINGS", []), *self.app.BINDINGS]:
            if not isinstance(b, Binding) or not b.description or b.action in seen:
                continue
            seen.add(b.action)
            key = b.key_display or b.key.split(",")[0]
            target = self.app if b.action.startswith("app.") else screen
            action = b.action.removeprefix("app.").removeprefix("screen.")
            out.append((b.description, f"key: {key}", partial(target.run_action, action)))
        if isinstance(screen, ExperimentsScreen):
            for rid in screen.visible_run_ids():
                out.append((f"Open run {rid}", "curves, spectra, checkpoints", partial(screen.open_run, rid)))
        return out

    async def discover(self) -> Hits:
        for name, help_text, cb in self._commands():
            yield DiscoveryHit(name, cb, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, cb in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), cb, help=help_text)
