"""Small modal screens: confirm, help."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no, keyboard first (y / n / esc); dismisses with True only on an explicit yes."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__(id="confirm")
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def bindings_table(screen: Screen) -> Table:
    t = Table(box=None, padding=(0, 2), show_header=False)
    t.add_column(style="bold #ffd700", no_wrap=True)
    t.add_column()
    seen = set()
    app = screen.app
    groups = [(type(screen).__name__.replace("Screen", "") or "Screen", [])]
    for node in [*screen.query("*").results(), screen]:
        for b in getattr(type(node), "BINDINGS", []):
            if (
                isinstance(b, Binding)
                and b.description
                and (b.key, b.action) not in seen
                and node is not screen
            ):
                seen.add((b.key, b.action))
                groups[0][1].append(b)
    groups[0][1].extend(b for b in type(screen).BINDINGS if isinstance(b, Binding) and b.description)
    groups.append(("Everywhere", [b for b in type(app).BINDINGS if isinstance(b, Binding) and b.description]))
    for title, binds in groups:
        t.add_row(Text(title, style="bold underline"), "")
        done = set()
        for b in binds:
            if b.action in done:
                continue
            done.add(b.action)
            key = b.key_display or " / ".join(app.get_key_display(Binding(k, "")) for k in b.key.split(","))
            t.add_row(key, b.description)
        t.add_row("", "")
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def __init__(self, target: Screen) -> None:
        super().__init__(id="help")
        self.target = target

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text("grok-tui — keys", style="bold"), id="help-title")
            yield Static(bindings_table(self.target))
            yield Static(
                Text(
                    "Runs belong to no terminal: quitting (q) never stops them. "
                    "ctrl+p lists every action. esc closes this.",
                    style="dim",
                )
            )

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
