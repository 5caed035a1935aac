"""Small modal screens: confirm, help."""

from __future__ import annotations

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

from grok_tui.tui.widgets.palette import tone_style


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


def _own(node: object) -> bool:
    return type(node).__module__.startswith("grok_tui")


def bindings_table(screen: Screen) -> Table:
    """The keys of ``screen`` (its own and its grok-tui widgets'), then the app-wide ones."""
    app = screen.app
    t = Table(box=None, padding=(0, 2), show_header=False)
    t.add_column(style=tone_style(app, "accent") + Style(bold=True), no_wrap=True)
    t.add_column()
    here: list[Binding] = []
    for node in [*screen.query("*").results(), screen]:
        if _own(node):
            here.extend(b for b in type(node).BINDINGS if isinstance(b, Binding) and b.description)
    title = (screen.id or type(screen).__name__).replace("-", " ").capitalize()
    groups = [(title, here), ("Everywhere", [b for b in type(app).BINDINGS if isinstance(b, Binding)])]
    for name, binds in groups:
        t.add_row(Text(name, style="bold underline"), "")
        done = set()
        for b in binds:
            if b.action in done:
                continue
            done.add(b.action)
            keys = b.key_display or " / ".join(app.get_key_display(Binding(k, "")) for k in b.key.split(","))
            t.add_row(keys, b.description)
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
