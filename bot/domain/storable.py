"""Text the database can keep: PostgreSQL refuses U+0000 in text, and no UTF-8 encoder (SQLite's,
the audit chain's canonical JSON) takes a lone UTF-16 surrogate (U+D800–U+DFFF), which a JSON
payload can carry as `\\ud800`. The grammar refuses both as invalid input; the audit recorder
replaces them, so an attempt whatever its text still leaves its row."""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"  # what a UTF-8 decoder puts for bytes it cannot read


def unstorable(text: str) -> str | None:
    """What, in words, makes `text` unstorable (the first such character), or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    return "a NUL character (U+0000)" if char == "\x00" else f"half of a surrogate pair (U+{ord(char):04X})"


def unstorable_in(value: Any) -> str | None:
    """`unstorable` for decoded data: the first bad string among its keys and values."""
    if isinstance(value, str):
        return unstorable(value)
    if isinstance(value, dict):
        items: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return None
    for item in items:
        found = unstorable_in(item)
        if found is not None:
            return found
    return None


def storable_text(text: str) -> str:
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable(value: Any) -> Any:
    """`value` with every string (keys included) made storable; other values as they are."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value
