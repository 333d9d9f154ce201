"""Readers for a provider's answers: each raises Malformed naming the field, never KeyError or
TypeError, so an odd answer becomes a clear message (ProviderClient.parsing)."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


class Malformed(ValueError):
    """Raised while reading a provider's answer; turned into a ProviderBadAnswer with context."""


def need_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is {_kind(value)}, not an object")
    return value


def need_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise Malformed(f"{what} is {_kind(value)}, not a list")
    return value


def need_str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise Malformed(f"{what} has no `{key}`" if value is None else f"{what}'s `{key}` is {_kind(value)}")
    return value


def opt_str(obj: Mapping[str, Any], key: str, what: str) -> str:
    """An optional text field: missing or null reads as ""."""
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{what}'s `{key}` is {_kind(value)}, not text")
    return value


def opt_int(obj: Mapping[str, Any], key: str, what: str) -> int | None:
    """A count that providers send as a number or as digits in a string (Twilio's duration)."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Malformed(f"{what}'s `{key}` is {_kind(value)}, not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise Malformed(f"{what}'s `{key}` is {_kind(value)}, not a number")


def opt_time(obj: Mapping[str, Any], key: str, what: str, *, rfc2822: bool = False) -> datetime | None:
    """An ISO 8601 (or, for Twilio, RFC 2822) timestamp, as an aware UTC datetime."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Malformed(f"{what}'s `{key}` is {_kind(value)}, not a time")
    try:
        if rfc2822:
            when = email.utils.parsedate_to_datetime(value)
        else:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except (TypeError, ValueError, IndexError):
        raise Malformed(f"{what}'s `{key}` is not a time: {value[:40]!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
