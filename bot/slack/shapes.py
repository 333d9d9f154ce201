"""What a well-formed Slack request looks like: the kinds callbot handles and the types of the
fields Bolt and the listeners read. A request that does not fit is refused whole, before Bolt sees
it, so a listener never meets a list where Slack always sends an object.

Types are checked, and little else (an address is http(s), an id short and not empty): a field
may be absent or null (Slack leaves many out), and fields not named here may hold anything.
`problem()` says what is wrong, in words that never quote the request."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Obj:
    """A JSON object; `required` fields must be present and not null (checked in this order)."""

    fields: Mapping[str, Shape]
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListOf:
    """A JSON array; `counted`: Bolt takes its length whenever the field is there, so it may not
    be null either."""

    item: Shape
    non_empty: bool = False
    counted: bool = False


@dataclass(frozen=True)
class MapOf:
    """An object whose keys are Slack's own (block ids, action ids)."""

    value: Shape


class Url:
    """A string holding an absolute http(s) address: a response_url Bolt will post to."""


@dataclass(frozen=True)
class Text:
    """A string of at most `longest` characters (the audit's columns hold no more, and Slack's
    values are far shorter); `empty`: whether "" is one."""

    longest: int
    empty: bool = True


Shape: TypeAlias = type | Obj | ListOf | MapOf | Text | type[Url]

ID = Text(32, empty=False)
"""A user, team, channel or enterprise id: Slack's are about a dozen characters."""
NAME = Text(128)
TRIGGER = Text(100)

TEXT = Obj({"type": str, "text": str, "emoji": bool, "verbatim": bool})
OPTION = Obj({"value": str, "text": TEXT, "description": TEXT})
ELEMENT_STATE = Obj(
    {
        "type": str,
        "value": str,
        "selected_option": OPTION,
        "selected_options": ListOf(OPTION),
        "selected_date": str,
        "selected_time": str,
        "selected_user": str,
        "selected_users": ListOf(str),
        "selected_conversation": str,
        "selected_conversations": ListOf(str),
        "selected_channel": str,
        "selected_channels": ListOf(str),
    }
)
STATE = Obj({"values": MapOf(MapOf(ELEMENT_STATE))})
BLOCK = Obj({"type": str, "block_id": str})
USER = Obj({"id": ID, "username": NAME, "name": NAME, "team_id": ID}, ("id",))
TEAM = Obj({"id": ID, "domain": str, "enterprise_id": ID, "enterprise_name": str})
ENTERPRISE = Obj({"id": ID, "name": str})
CHANNEL = Obj({"id": ID, "name": str})
CONTAINER = Obj(
    {
        "type": str,
        "message_ts": str,
        "channel_id": ID,
        "view_id": str,
        "thread_ts": str,
        "is_ephemeral": bool,
    }
)
MESSAGE = Obj(
    {
        "type": str,
        "ts": str,
        "thread_ts": str,
        "text": str,
        "user": str,
        "bot_id": str,
        "blocks": ListOf(BLOCK),
    }
)
ACTION = Obj(
    {
        "action_id": str,
        "block_id": str,
        "type": str,
        "value": str,
        "action_ts": str,
        "style": str,
        "text": TEXT,
        "selected_option": OPTION,
        "selected_options": ListOf(OPTION),
        "selected_date": str,
        "selected_user": str,
        "selected_channel": str,
        "selected_conversation": str,
    },
    ("action_id",),
)
_VIEW_FIELDS: dict[str, Shape] = {
    "id": str,
    "team_id": str,
    "type": str,
    "callback_id": str,
    "private_metadata": str,
    "hash": str,
    "external_id": str,
    "root_view_id": str,
    "previous_view_id": str,
    "app_id": str,
    "app_installed_team_id": str,
    "bot_id": str,
    "clear_on_close": bool,
    "notify_on_close": bool,
    "title": TEXT,
    "close": TEXT,
    "submit": TEXT,
    "blocks": ListOf(BLOCK),
    "state": STATE,
}
VIEW = Obj(_VIEW_FIELDS)
# Bolt reads the callback id and type to route a submission, callbot the id and hash to tell a
# replay from a new one; Slack always sends all four.
SUBMITTED_VIEW = Obj(_VIEW_FIELDS, ("callback_id", "type", "id", "hash"))
AUTHORIZATION = Obj({"enterprise_id": ID, "team_id": ID, "user_id": ID, "is_bot": bool, "is_enterprise_install": bool})
RESPONSE_URL = Obj({"response_url": Url, "channel_id": str, "block_id": str, "action_id": str})

# Every field of a slash command is text (command_problem); the command and its response_url are
# always there.
SLASH_COMMAND = Obj(
    {
        "command": str,
        "response_url": Url,
        "user_id": ID,
        "team_id": ID,
        "channel_id": ID,
        "enterprise_id": ID,
        "user_name": NAME,
        "trigger_id": TRIGGER,
    },
    ("command", "response_url"),
)

_INTERACTIVE: dict[str, Shape] = {
    "type": str,
    "token": str,
    "api_app_id": str,
    "trigger_id": TRIGGER,
    "is_enterprise_install": bool,
    "user": USER,
    "team": TEAM,
    "enterprise": ENTERPRISE,
    "channel": CHANNEL,
    "container": CONTAINER,
    "message": MESSAGE,
    "view": VIEW,
    "state": STATE,
    "actions": ListOf(ACTION, non_empty=True, counted=True),
    "action_id": str,
    "block_id": str,
    "value": str,
    "callback_id": str,
    "action_ts": str,
    "message_ts": str,
    "response_url": Url,
    "response_urls": ListOf(RESPONSE_URL, counted=True),
    "authorizations": ListOf(AUTHORIZATION, counted=True),
}


def _interactive(required: str, **overrides: Shape) -> Obj:
    return Obj({**_INTERACTIVE, **overrides}, ("type", "user", required))


_EVENT_FIELDS: dict[str, Shape] = {
    "type": str,
    "user": str,
    "channel": str,
    "tab": str,
    "ts": str,
    "event_ts": str,
    "thread_ts": str,
    "subtype": str,
    "bot_id": str,
    "channel_type": str,
    "view": VIEW,
}
EVENT = Obj(_EVENT_FIELDS, ("type",))
# Events callbot subscribes to (manifest.yml), with what their listener needs; others go to Bolt
# with only their envelope checked.
EVENT_TYPES: Mapping[str, Obj] = {
    "app_home_opened": Obj({**_EVENT_FIELDS, "user": ID, "channel": ID}, ("type", "user")),
    # OAuth mode (bot/slack/oauth.py): which user and bot tokens Slack revoked.
    "tokens_revoked": Obj(
        {**_EVENT_FIELDS, "tokens": Obj({"oauth": ListOf(ID), "bot": ListOf(ID)})}, ("type", "tokens")
    ),
}
_ENVELOPE: dict[str, Shape] = {
    "type": str,
    "token": str,
    "team_id": ID,
    "enterprise_id": ID,
    "api_app_id": str,
    "event_id": str,
    "event_time": int,
    "is_ext_shared_channel": bool,
    "authorizations": ListOf(AUTHORIZATION, counted=True),
}

# Payload `type` → its shape: the interactivity payloads (form field `payload=`) and the Events
# API bodies (JSON) callbot serves. Any other type is refused.
INTERACTIVE: Mapping[str, Obj] = {
    "block_actions": _interactive("actions"),
    "block_suggestion": _interactive("action_id"),
    "view_submission": _interactive("view", view=SUBMITTED_VIEW),
    "view_closed": _interactive("view", view=SUBMITTED_VIEW),
    "shortcut": _interactive("callback_id"),
    "message_action": _interactive("callback_id"),
}
EVENTS: Mapping[str, Obj] = {
    "event_callback": Obj({**_ENVELOPE, "event": EVENT}, ("type", "event")),
    "url_verification": Obj({**_ENVELOPE, "challenge": str}, ("type", "challenge")),
    "app_rate_limited": Obj({**_ENVELOPE, "minute_rate_limited": int}, ("type",)),
}


def problem(document: Any, kinds: Mapping[str, Obj], called: str) -> str | None:
    """Why `document` (the request's `called`: body, payload) is not a Slack request of one of
    `kinds`; None when it is one."""
    if not isinstance(document, dict):
        return f"the {called} is not a JSON object"
    kind = document.get("type")
    if not isinstance(kind, str) or not kind:
        return f"the {called} has no type"
    shape = kinds.get(kind)
    if shape is None:
        return "callbot does not handle this type of Slack request"
    if wrong := _check(document, shape, kind):
        return wrong
    if kind == "event_callback" and (event := EVENT_TYPES.get(document["event"]["type"])):
        return _check(document["event"], event, f"{kind}.event")
    # A button in a message always comes with the address to answer it (in a modal or the App
    # Home, never).
    if kind == "block_actions" and (document.get("container") or {}).get("type") == "message":
        return _check(document, Obj({"response_url": Url}, ("response_url",)), kind)
    return None


def command_problem(form: Mapping[str, Any]) -> str | None:
    """Why a slash command (form fields, or their JSON over Socket Mode) is not one Slack sends:
    text fields that always name the command and where to answer it."""
    if not form.get("command"):
        return "the slash command has no name"
    for name, value in form.items():
        if not isinstance(value, str):
            return f"command.{name} is not of type string"
    return _check(form, SLASH_COMMAND, "command")


def _check(value: Any, shape: Shape, where: str) -> str | None:
    if isinstance(shape, Obj):
        if not isinstance(value, dict):
            return f"{where} is not an object"
        for name in shape.required:
            if value.get(name) is None:
                return f"{where}.{name} is missing"
        for name, inner in shape.fields.items():
            if name not in value:
                continue
            child = value[name]
            # Null is Slack's "none", and the listeners read it so.
            if child is None and not (isinstance(inner, ListOf) and inner.counted):
                continue
            if wrong := _check(child, inner, f"{where}.{name}"):
                return wrong
        return None
    if isinstance(shape, ListOf):
        if not isinstance(value, list):
            return f"{where} is not a list"
        if shape.non_empty and not value:
            return f"{where} is empty"
        return _first(_check(item, shape.item, f"{where}[{index}]") for index, item in enumerate(value))
    if isinstance(shape, MapOf):
        if not isinstance(value, dict):
            return f"{where} is not an object"
        return _first(_check(item, shape.value, f"{where}.*") for item in value.values())
    if shape is Url:
        if not isinstance(value, str) or not _is_http_url(value):
            return f"{where} is not an http(s) address"
        return None
    if isinstance(shape, Text):
        if not isinstance(value, str):
            return f"{where} is not of type string"
        if not value and not shape.empty:
            return f"{where} is empty"
        if len(value) > shape.longest:
            return f"{where} is longer than {shape.longest} characters"
        return None
    # Exact types: bool is an int in Python, and Slack's numbers are never flags nor its flags numbers.
    if type(value) is not shape:
        return f"{where} is not of type {_JSON_NAMES.get(shape, 'the expected type')}"
    return None


def _first(problems: Iterator[str | None]) -> str | None:
    return next((p for p in problems if p), None)


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


_JSON_NAMES: Mapping[Shape, str] = {str: "string", bool: "boolean", int: "integer"}
