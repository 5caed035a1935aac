"""One line per bad experiments file: file, experiment, key, what is allowed, and the close match.

A schema error from msgspec names the failing field by its path (``$.model.hidden[1]``); :func:`explain`
walks the declared types along that path to say what the field allows (``a list of 1 to 64 integers from
1 to 65536``) and shows the value the file holds there, so every field gets a precise message without a
hand-written check.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import msgspec
from msgspec import inspect as mi


class ConfigError(ValueError):
    """A bad experiments file; ``str(err)`` is the one line the user sees."""


def shown(value: Any, limit: int = 60) -> str:
    """A value fit for a one-line message, spelt as in TOML where it differs from Python (``true``), with
    control characters escaped and long values cut."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    text = value if isinstance(value, str) else repr(value)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def close_match(word: Any, choices: Iterable[Any]) -> str | None:
    hits = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return hits[0] if hits else None


class Where:
    """File + experiment: every error raised through it is located."""

    def __init__(self, path: Path, exp: str | None = None) -> None:
        self.path, self.exp = path, exp

    def line(self, key: str | None, text: str, word: Any = None, choices: Iterable[Any] | None = None) -> str:
        parts = [shown(str(self.path), 200)]
        if self.exp is not None:
            parts.append(f"experiment '{shown(self.exp)}'")
        if key is not None:
            parts.append(f"key '{shown(key)}'")
        hint = ""
        if word is not None and choices is not None and (close := close_match(word, choices)):
            hint = f" (did you mean '{close}'?)"
        return ": ".join(parts) + f": {text}{hint}"

    def fail(
        self, key: str | None, text: str, word: Any = None, choices: Iterable[Any] | None = None
    ) -> NoReturn:
        raise ConfigError(self.line(key, text, word, choices))

    def unknown_line(self, key: str, word: str, allowed: Iterable[str]) -> str:
        """The line for an unknown key: the close match, or else every key allowed there."""
        allowed = list(allowed)
        if close_match(word, allowed):
            return self.line(key, "unknown key", word, allowed)
        return self.line(key, f"unknown key (allowed: {', '.join(allowed)})")

    def unknown(self, key: str, word: str, allowed: Iterable[str]) -> NoReturn:
        raise ConfigError(self.unknown_line(key, word, allowed))


# --------------------------------------------------------------------------- msgspec errors → one line

_AT = re.compile(r"(?s)(?P<what>.*) - at `\$(?P<path>[^`]*)`")
_SEGMENT = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]")


def explain(
    err: msgspec.ValidationError,
    typ: Any,
    raw: Any,
    where: Where,
    prefix: str = "",
    rename: Callable[[str], str] | None = None,
) -> ConfigError:
    """The ConfigError for ``err``, raised by ``msgspec.convert(raw, typ)``.

    Keys are shown as ``prefix + path``; ``rename`` may rename them further (a value that came from the
    sweep is named ``sweep.KEY``).
    """
    m = _AT.fullmatch(str(err))
    what, path = (m["what"], m["path"]) if m else (str(err), "")
    t: Any = mi.type_info(typ)
    value, keys = raw, []
    for name, index in _SEGMENT.findall(path):
        t = _unwrap(t)
        if name:
            keys.append(name)
            t = _field_type(t, name, value)
            value = value.get(name) if isinstance(value, dict) else None
        else:
            if isinstance(t, mi.UnionType):  # a string or a list of them: the list
                t = next((u for u in t.types if isinstance(u, mi.ListType)), t)
            t = t.item_type if isinstance(t, mi.ListType) else t
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None

    def name(parts: list[str]) -> str | None:
        if not parts:
            return prefix.rstrip(".") or None
        key = prefix + ".".join(parts)
        return rename(key) if rename else key

    if what.startswith("Object contains unknown field"):
        fields, tag = _fields(_unwrap(t), value)
        bad = (
            next((k for k in value if k not in fields and k != tag), "?") if isinstance(value, dict) else "?"
        )
        return ConfigError(where.unknown_line(name([*keys, str(bad)]) or "?", bad, fields))
    key = name(keys)
    if value is None and m and keys:  # inside a list: show the whole list
        value = _lookup(raw, keys)
    allowed = describe(t)
    inner = _unwrap(t)
    if isinstance(inner, mi.LiteralType):
        return ConfigError(
            where.line(
                key, f"{_quoted(value)} is not one of {allowed[len('one of ') :]}", value, inner.values
            )
        )
    limit = " (a limit of this tool, see the README's Limits)" if _over_limit(inner, value) else ""
    return ConfigError(where.line(key, f"must be {allowed}{limit}, got {_quoted(value)}"))


def _quoted(value: Any) -> str:
    return f"'{shown(value)}'" if isinstance(value, str) else shown(value)


def _lookup(raw: Any, keys: list[str]) -> Any:
    for k in keys:
        raw = raw.get(k) if isinstance(raw, dict) else None
    return raw


def _unwrap(t: Any) -> Any:
    """The type itself: without its Meta, and without the None of an Optional (TOML has no null)."""
    t = t.type if isinstance(t, mi.Metadata) else t
    if isinstance(t, mi.UnionType):
        types = [u for u in t.types if not isinstance(u, mi.NoneType)]
        if len(types) == 1:
            return _unwrap(types[0])
    return t


def _structs(t: Any) -> list[Any]:
    t = _unwrap(t)
    if isinstance(t, mi.StructType):
        return [t]
    if isinstance(t, mi.UnionType):
        return [u for u in t.types if isinstance(u, mi.StructType)]
    return []


def _pick(t: Any, value: Any) -> Any:
    """The struct of a (tagged) union that ``value`` is meant to be."""
    structs = _structs(t)
    tag = value.get(structs[0].tag_field) if structs and isinstance(value, dict) else None
    return next((s for s in structs if s.tag == tag), structs[0] if structs else None)


def _fields(t: Any, value: Any) -> tuple[list[str], str | None]:
    """The declared keys of the table ``value`` is meant to be, and its tag key."""
    s = _pick(t, value)
    return ([f.name for f in s.fields], s.tag_field) if s is not None else ([], None)


def _field_type(t: Any, name: str, value: Any) -> Any:
    structs = _structs(t)
    if structs and name == structs[0].tag_field:
        return mi.LiteralType(values=tuple(s.tag for s in structs))
    s = _pick(t, value)
    if s is None:
        return t.value_type if isinstance(t, mi.DictType) else t
    return next((f.type for f in s.fields if f.name == name), mi.AnyType())


def _over_limit(t: Any, value: Any) -> bool:
    if isinstance(t, mi.UnionType):
        return any(_over_limit(u, value) for u in t.types)
    if isinstance(t, (mi.IntType, mi.FloatType)) and t.le is not None:
        return type(value) in (int, float) and value > t.le
    if isinstance(t, (mi.ListType, mi.StrType)) and t.max_length is not None:
        return isinstance(value, (list, str)) and len(value) > t.max_length
    return False


def _bounds(t: Any) -> str:
    """`` from 1 to 64``, `` in (0, 1)``, `` >= 0``: a numeric type's range in words."""
    lo = f"[{t.ge}" if t.ge is not None else f"({t.gt}" if t.gt is not None else None
    hi = f"{t.le}]" if t.le is not None else f"{t.lt})" if t.lt is not None else None
    if t.ge is not None and t.le is not None:
        return f" from {t.ge} to {t.le}"
    if lo and hi:
        return f" in {lo}, {hi}"
    if lo:
        return f" {'>=' if t.ge is not None else '>'} {lo[1:]}"
    return f" {'<=' if t.le is not None else '<'} {hi[:-1]}" if hi else ""


def _count(t: Any) -> str:
    lo, hi = t.min_length, t.max_length
    if lo is not None and lo == hi:
        return f"{lo} "
    if lo is not None and hi is not None:
        return f"{lo} to {hi} "
    if hi is not None:
        return f"at most {hi} "
    return "1 or more " if lo == 1 else ""


def describe(t: Any, plural: bool = False) -> str:
    """What a declared type allows, in words."""
    if isinstance(t, mi.Metadata):
        desc = (t.extra_json_schema or {}).get("description")
        return desc if desc and not plural else describe(t.type, plural)
    if isinstance(t, mi.UnionType):
        types = [u for u in t.types if not isinstance(u, mi.NoneType)]
        if {type(u) for u in types} == {mi.IntType, mi.FloatType}:
            return describe(next(u for u in types if isinstance(u, mi.FloatType)), plural)
        if all(isinstance(u, mi.StructType) for u in types):
            return "tables" if plural else "a table"
        return " or ".join(describe(u, plural) for u in types)
    if isinstance(t, mi.IntType):
        return ("integers" if plural else "an integer") + _bounds(t)
    if isinstance(t, mi.FloatType):
        return ("numbers" if plural else "a number") + _bounds(t)
    if isinstance(t, mi.BoolType):
        return "true or false"
    if isinstance(t, mi.StrType):
        text = ("non-empty " if t.min_length else "") + ("strings" if plural else "string")
        text = text if plural else ("a " + text)
        return text + (f" of at most {t.max_length} characters" if t.max_length else "")
    if isinstance(t, mi.LiteralType):
        return "one of " + ", ".join(str(v) for v in t.values)
    if isinstance(t, mi.ListType):
        return f"a list of {_count(t)}{describe(t.item_type, plural=True)}"
    if isinstance(t, (mi.StructType, mi.DictType)):
        return "tables" if plural else "a table"
    return "a value"
