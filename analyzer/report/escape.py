"""Escaping for strings taken from packets: every renderer calls one of these, never prints raw text."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and Unicode format characters that reorder or hide text (bidi overrides, ZW*).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(value: object) -> str:
    """Text safe for a terminal: control and reordering characters shown as escapes.

    Rich markup is never interpreted because renderers build `rich.text.Text` objects from this string.
    """
    return _UNSAFE.sub(_visible, str(value))


def csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP: prefix a quote)."""
    if isinstance(value, str):
        value = terminal(value)
        if value.startswith(_FORMULA_START):
            return "'" + value
    return value
