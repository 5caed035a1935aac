"""`grok ... --help` as a plain, git-style page: real option names and value names, no type placeholders.

Typer's own pages print a type column (``<bool>``, ``<list[str]>``) and brace required arguments
(``{file}``); a researcher reading ``grok run --help`` over SSH wants ``--only NAME`` and ``FILE``. These
classes render the same parameters through the formatter Click hands them (it wraps to the terminal),
reading only the public attributes every parameter has; they also skip importing rich for help.
"""

from __future__ import annotations

import inspect
from typing import Any

from typer.core import TyperCommand, TyperGroup

#: A value name for an option that declares no metavar, by its type's name.
_VALUE_NAMES = {"integer": "N", "integer range": "N", "float": "X", "float range": "X", "path": "PATH"}


def value_name(param: Any) -> str:
    if param.metavar:
        return str(param.metavar)
    kind = str(getattr(param.type, "name", "text")).lower()
    return _VALUE_NAMES.get(kind, param.name.upper() if param.param_type_name == "argument" else "TEXT")


def usage_pieces(params: list[Any]) -> list[str]:
    pieces = ["[OPTIONS]"] if any(p.param_type_name == "option" for p in params) else []
    for p in params:
        if p.param_type_name != "argument":
            continue
        name = value_name(p)
        piece = name if p.required else f"[{name}]"
        pieces.append(piece + ("..." if p.nargs != 1 else ""))
    return pieces


def _option_record(p: Any) -> tuple[str, str]:
    names = sorted(p.opts, key=lambda o: (o.startswith("--"), o))
    label = ", ".join(names)
    if p.secondary_opts:
        label += " / " + ", ".join(p.secondary_opts)
    if not getattr(p, "is_flag", False):
        label += f" {value_name(p)}"
        if p.multiple:
            label += "..."
    text = (p.help or "").strip()
    default = p.default
    if p.show_default and default not in (None, False, "", ()) and not callable(default):
        text += f"  [default: {default}]"
    return label, text


def _paragraphs(doc: str | None) -> list[str]:
    return [" ".join(par.split()) for par in inspect.cleandoc(doc or "").split("\n\n") if par.strip()]


def _write_body(cmd: Any, ctx: Any, formatter: Any) -> list[Any]:
    params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
    formatter.write_usage(ctx.command_path, " ".join(cmd.collect_usage_pieces(ctx)))
    for par in _paragraphs(cmd.help):
        formatter.write_paragraph()
        formatter.write_text(par)
    args = [
        (value_name(p), (getattr(p, "help", None) or "").strip())
        for p in params
        if p.param_type_name == "argument"
    ]
    if args:
        with formatter.section("Arguments"):
            formatter.write_dl(args)
    opts = [_option_record(p) for p in params if p.param_type_name == "option"]
    if opts:
        with formatter.section("Options"):
            formatter.write_dl(opts)
    return params


class GrokCommand(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _write_body(self, ctx, formatter)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return usage_pieces(self.get_params(ctx))


class GrokGroup(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _write_body(self, ctx, formatter)
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=formatter.width - 14)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*usage_pieces(self.get_params(ctx)), "COMMAND [ARGS]..."]
