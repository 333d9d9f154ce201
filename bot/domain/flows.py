"""Saved flows as values: names, references (`NAME`, `NAME@N`), versions. No storage here: the
library that stores them is bot/service/flow_library.py.

A saved flow is a name (lowercase words and dashes, ≤ 64 characters, e.g. `hold-music`) with
versions 1, 2, 3…: saving an existing name adds the next version and keeps the older ones. A flow is
referred to as `NAME` (its newest version) or `NAME@N` (version N).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from bot.domain.callflow import CallFlow
from bot.domain.errors import InvalidInput

MAX_NAME = 64
NAME_RULE = "lowercase words joined by dashes (a–z, 0–9, `-`), at most 64 characters, e.g. `hold-music`"
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# A word that names a saved flow rather than spelling out a callFlow (JSON and YAML callFlows
# always contain brackets, braces, colons or spaces).
_REFERENCE_SHAPE = re.compile(r"^[\w.@-]+$")


@dataclass(frozen=True)
class FlowRef:
    """A saved flow as written in a command: `NAME` (newest version) or `NAME@N`."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.version}" if self.version is not None else self.name


@dataclass(frozen=True)
class SavedFlow:
    id: int
    name: str
    version: int
    flow: CallFlow
    author: str
    created_at: datetime

    @property
    def label(self) -> str:
        return f"`{self.name}` v{self.version}"

    @property
    def ref(self) -> FlowRef:
        return FlowRef(self.name, self.version)


@dataclass(frozen=True)
class LibraryEntry:
    """A name as `/call flows` lists it: its newest version, and how many live versions it has."""

    name: str
    version: int
    commands: int
    author: str
    created_at: datetime
    versions: int


def looks_like_reference(word: str) -> bool:
    return bool(_REFERENCE_SHAPE.match(word))


def check_name(word: str) -> str:
    if len(word) > MAX_NAME:
        raise InvalidInput(_short(word), f"is {len(word)} characters long; a flow name has at most {MAX_NAME}")
    if not _NAME.match(word):
        fixed = _slug(word)
        hint = f"Did you mean `{fixed}`?" if fixed and fixed != word and len(fixed) <= MAX_NAME else ""
        raise InvalidInput(word, f"is not a valid flow name. Names are {NAME_RULE}", hint or None)
    return word


def check_version(text: str, word: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1 or len(text) > 9:
        raise InvalidInput(word, "is not a version: versions are whole numbers from 1", "E.g. `hold-music@2`.")
    return int(text)


def parse_ref(word: str, version_option: str | None = None) -> FlowRef:
    """`NAME` or `NAME@N`; `version_option` is the value of a `version=N` option, if given."""
    name, at, version_text = word.partition("@")
    version = check_version(version_text, word) if at else None
    if version_option is not None:
        option_version = check_version(version_option.strip(), f"version={version_option}")
        if version is not None and version != option_version:
            raise InvalidInput(
                f"version={version_option}", f"contradicts `{word}`", f"Give the version once: `{name}@{version}`."
            )
        version = option_version
    return FlowRef(check_name(name), version)


def _slug(word: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", word.lower()).strip("-")


def _short(word: str) -> str:
    return word if len(word) <= 40 else word[:39] + "…"
