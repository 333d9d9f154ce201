"""Provider-neutral call actions, validated as values before any provider sees them.

A provider client turns one of these into its own wire request and says which options it
supports; nothing here knows about Slack, HTTP or the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from enum import StrEnum
from urllib.parse import urlsplit
from xml.etree import ElementTree

from bot.domain.callflow import CallFlow
from bot.domain.errors import InvalidInput
from bot.domain.storable import unstorable


class ActionName(StrEnum):
    HANGUP = "hangup"
    CANCEL = "cancel"
    REDIRECT = "redirect"
    TWIML = "twiml"
    FLOW = "flow"


HTTP_METHODS = ("GET", "POST")
_ACCOUNT_PREFIX = re.compile(r"^([a-z][a-z0-9_-]{0,31}):(.+)$")


@dataclass(frozen=True)
class CallTarget:
    """`[account:]call-id` as typed; `account` is None when it must be inferred from the id."""

    account: str | None
    call_id: str

    @classmethod
    def parse(cls, word: str) -> CallTarget:
        word = word.strip()
        match = _ACCOUNT_PREFIX.match(word)
        if match and not word.lower().startswith(("http:", "https:")):
            account, call_id = match.group(1), match.group(2)
        else:
            account, call_id = None, word
        if not call_id or any(c.isspace() for c in call_id) or len(call_id) > 128:
            raise InvalidInput(word, "is not a call id", "Write the call as `[account:]CALL-ID`.")
        return cls(account, call_id)

    def display(self, account: str | None = None) -> str:
        name = account or self.account
        return f"{name}:{self.call_id}" if name else self.call_id


@dataclass(frozen=True)
class Hangup:
    name = ActionName.HANGUP
    reason: str | None = None


@dataclass(frozen=True)
class Cancel:
    name = ActionName.CANCEL
    reason: str | None = None


@dataclass(frozen=True)
class Redirect:
    name = ActionName.REDIRECT
    url: str
    method: str | None = None
    fallback_url: str | None = None
    fallback_method: str | None = None
    status_callback: str | None = None
    status_callback_method: str | None = None
    time_limit: int | None = None
    tag: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    fallback_username: str | None = None
    fallback_password: str | None = field(default=None, repr=False)
    reason: str | None = None


@dataclass(frozen=True)
class InlineTwiml:
    name = ActionName.TWIML
    twiml: str
    reason: str | None = None


@dataclass(frozen=True)
class ApplyFlow:
    """Replace a Bird call's callFlow."""

    name = ActionName.FLOW
    flow: CallFlow
    reason: str | None = None
    # Set when the callFlow comes from the saved-flow library (bot/service/flow_library.py): which one.
    saved_name: str | None = None
    saved_version: int | None = None
    # End the call once the flow is handed over (the builder's "End the call after this flow").
    end_call: bool = False


CallAction = Hangup | Cancel | Redirect | InlineTwiml | ApplyFlow

# How each option of the grammar maps onto an action field, with the validator for its value.
REDIRECT_OPTIONS: dict[str, str] = {
    "method": "method",
    "fallback": "fallback_url",
    "fallback-method": "fallback_method",
    "status-callback": "status_callback",
    "status-callback-method": "status_callback_method",
    "time-limit": "time_limit",
    "tag": "tag",
    "username": "username",
    "password": "password",
    "fallback-username": "fallback_username",
    "fallback-password": "fallback_password",
}


def check_url(word: str, option: str | None = None) -> str:
    label = f"{option}={word}" if option else word
    try:
        parts = urlsplit(word)
        absolute = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        absolute = False
    if not absolute:
        raise InvalidInput(label, "is not an absolute http(s) URL", "Write it like `https://example.com/hold.xml`.")
    if any(c.isspace() for c in word):
        raise InvalidInput(label, "contains spaces", "Encode spaces in a URL as `%20`.")
    return word


def check_method(word: str, option: str) -> str:
    method = word.upper()
    if method not in HTTP_METHODS:
        raise InvalidInput(f"{option}={word}", "is not an allowed method", "Use GET or POST.")
    return method


def check_positive_int(word: str, option: str) -> int:
    if not word.isdigit() or int(word) < 1:
        raise InvalidInput(f"{option}={word}", "must be a whole number of seconds, 1 or more")
    return int(word)


def check_twiml(text: str) -> str:
    bad = unstorable(text)
    if bad is not None:
        # Before the XML reader, which cannot encode a lone surrogate and would raise.
        raise InvalidInput("TwiML", f"contains {bad}", "Remove it; it cannot be sent or stored.")
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        # TwiML never needs a DTD, and refusing one avoids entity-expansion tricks.
        raise InvalidInput("TwiML", "must not contain a DOCTYPE or ENTITY declaration")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise InvalidInput(
            "TwiML",
            f"is not well-formed XML ({exc})",
            'Quote it whole: "<Response><Say>Hi</Say></Response>".',
        ) from None
    if root.tag != "Response":
        raise InvalidInput("TwiML", f"the root element is <{root.tag}>, it must be <Response>")
    return text


def redirect_from_options(url: str, options: dict[str, str], reason: str | None) -> Redirect:
    values: dict[str, object] = {"url": check_url(url), "reason": reason}
    for option, text in options.items():
        attr = REDIRECT_OPTIONS[option]
        if attr.endswith("method"):
            values[attr] = check_method(text, option)
        elif attr in ("fallback_url", "status_callback"):
            values[attr] = check_url(text, option)
        elif attr == "time_limit":
            values[attr] = check_positive_int(text, option)
        else:
            values[attr] = text
    return Redirect(**values)  # type: ignore[arg-type]


def action_params(action: CallAction) -> dict[str, object]:
    """The action's parameters as plain values (secrets included: redact before storing)."""
    params: dict[str, object] = {}
    for f in fields(action):
        value = getattr(action, f.name)
        if isinstance(value, CallFlow):
            value = value.to_wire()
        if value is not None:
            params[f.name] = value
    return params
