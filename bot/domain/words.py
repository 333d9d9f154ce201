"""The words of a command that name people, channels, times and actions: each parser accepts what
Slack sends (`<@U…|name>`, `<#C…>`) and what people type, and refuses anything else clearly."""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime, timedelta

from bot.domain.errors import InvalidInput
from bot.domain.permissions import ALL_ACTIONS, BUILTIN_ROLES, GROUP, USER

_USER = re.compile(r"^(?:<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>|@?([UW][A-Z0-9]{2,}))$")
_GROUP = re.compile(r"^(?:<!subteam\^(S[A-Z0-9]{2,})(?:\|[^>]*)?>|@?(S[A-Z0-9]{2,}))$")
_CHANNEL = re.compile(r"^(?:<#([CG][A-Z0-9]{2,})(?:\|[^>]*)?>|([CG][A-Z0-9]{2,}))$")
_DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
ROLE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,31}$")


def suggest(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word.lower(), list(candidates), n=1, cutoff=0.6)
    return f"Did you mean `{close[0]}`?" if close else ""


def parse_yes_no(word: str, key: str) -> bool:
    value = word.strip().lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise InvalidInput(f"{key}={word}", "is neither yes nor no.", f"Use `{key}=yes` or `{key}=no`.")


def parse_subject(word: str) -> tuple[str, str]:
    """A user (`<@U…>`, `U…`) or a user group (`<!subteam^S…>` as Slack sends `@oncall-voice`, or `S…`)."""
    group = _GROUP.match(word.strip())
    if group:
        return GROUP, group.group(1) or group.group(2)
    try:
        return USER, parse_user(word)
    except InvalidInput:
        raise InvalidInput(
            word,
            "is not a Slack user I can identify.",
            "Mention the person or user group (`@alice`, `@oncall-voice`, picked from Slack's list) or give the "
            "id (`U012AB3CD`, `S0123ABC`).",
        ) from None


def parse_channel(word: str) -> str:
    match = _CHANNEL.match(word.strip())
    if not match:
        raise InvalidInput(
            f"in={word}",
            "is not a channel I can identify.",
            "Pick the channel from Slack's list (`in=#ops-voice`, sent as a link) or give its id (`C0123ABCD`).",
        )
    return match.group(1) or match.group(2)


def parse_duration(word: str) -> timedelta:
    match = _DURATION.match(word.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"for={word}", "is not a duration.", "Use e.g. `for=30m`, `for=8h`, `for=2d`, `for=1w`.")
    try:
        return int(match.group(1)) * _UNITS[match.group(2)]
    except OverflowError:
        raise InvalidInput(f"for={word}", "is too long.") from None


def parse_until(word: str) -> datetime:
    """A date (`2026-12-01`: its first moment, UTC) or a date and time (UTC unless a zone is given)."""
    try:
        moment = datetime.fromisoformat(word.strip())
    except ValueError:
        raise InvalidInput(
            f"until={word}", "is not a date.", "Use e.g. `until=2026-12-01` or `until=2026-12-01T18:00`."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_user(word: str) -> str:
    match = _USER.match(word.strip())
    if not match:
        raise InvalidInput(
            word,
            "is not a Slack user I can identify.",
            "Mention the person (`@alice`, picked from Slack's list) or give their user id (`U012AB3CD`).",
        )
    return match.group(1) or match.group(2)


def parse_actions(word: str) -> tuple[str, ...]:
    """Actions and role names. A name that could be a custom role passes: the service, which knows
    the custom roles, refuses it when it is neither (`check_grantable`)."""
    actions = split_csv(word, "ACTIONS")
    for action in actions:
        if action not in ALL_ACTIONS and action not in BUILTIN_ROLES and not ROLE_NAME.match(action):
            raise InvalidInput(action, "is not an action.", unknown_action_hint(action, ()))
    return actions


def check_grantable(names: tuple[str, ...], custom_roles: tuple[str, ...]) -> None:
    for name in names:
        if name not in ALL_ACTIONS and name not in BUILTIN_ROLES and name not in custom_roles:
            raise InvalidInput(name, "is not an action.", unknown_action_hint(name, custom_roles))


def unknown_action_hint(word: str, custom_roles: tuple[str, ...]) -> str:
    roles = (*BUILTIN_ROLES, *custom_roles)
    return suggest(word, (*ALL_ACTIONS, *roles)) or (
        f"Actions are: {', '.join(ALL_ACTIONS)}. Roles are: {', '.join(roles)} (`/call roles`)."
    )


def parse_since(word: str, now: datetime | None = None, key: str = "since") -> datetime:
    """`2h`, `7d`… back from now, or a date / date and time (UTC unless a zone is given).
    `key` names the option in a refusal (`since=` and `until=` take the same forms)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(word.strip().lower())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        try:
            return now - amount * _UNITS[unit]
        except OverflowError:
            raise InvalidInput(f"{key}={word}", "reaches too far back.") from None
    try:
        moment = datetime.fromisoformat(word.strip())
    except ValueError:
        raise InvalidInput(
            f"{key}={word}",
            "is not a duration or a date.",
            f"Use e.g. `{key}=2h`, `{key}=7d` or `{key}=2026-11-01`.",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def split_csv(word: str, label: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(part.strip().lower() for part in word.split(",") if part.strip()))
    if not items:
        raise InvalidInput(label, "is empty.", "Give one or more names, comma-separated.")
    return items
