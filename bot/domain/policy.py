"""Per-account safety policy (callbot.toml): pure decisions over an account's rules and a call action.

The service calls these after the permission check and before anything is audited as `pending` or
sent, so a refused action never reaches a provider. Each refusal names the rule (the setting in
callbot.toml) and the value that broke it, because that is what the person and the auditor need.

- Every URL callbot hands to a provider (redirect URL, fallback, status callback, URLs inside inline
  TwiML, Bird playback media, gather prompts, bridge notifications and the bridge's own callFlow) is
  first read the way the provider will read it (bot/domain/urls.py): a URL that could be read two
  ways (backslash, `user@`, invisible characters, no `//`), a relative or scheme-less one, or a
  non-http(s) scheme is refused ("safe_urls"). Then its host must be on the public internet: literal
  loopback, private, link-local, CGNAT, multicast, reserved and metadata addresses and `localhost`
  names are refused unless the account sets `allow_private_urls` (no DNS lookup is made).
- `allowed_urls`: every such URL must also start with one of the listed prefixes, compared on
  scheme, host, port and path (path segment by segment: `https://h/ivr` allows `/ivr` and `/ivr/x`,
  not `/ivr2`). Unset, any https:// URL passes. Plain http:// is refused unless a listed prefix is
  itself http://.
- `allowed_bridge_numbers`: Bird `bridge` targets must match an E.164 number or prefix (`+44*`).
  Unset, any target passes.
- `require_reason`: these actions need `reason="…"`.
- `confirm`: these actions, typed in Slack, answer with Confirm / Cancel buttons first.
- `approval` (with `approvers_channel`, `approval_expiry_minutes`): these actions are not run when
  asked; a request goes to the approvers channel and runs when someone else holding `approve` there
  clicks Approve (two-person rule; bot/service/core.py "two-person approval").
- `check_state`: before hangup, cancel, redirect and twiml, the service fetches the call's state and
  refuses a call that already ended (and `cancel` on an answered call); see bot/service/live.py.
- `bulk_concurrency` (default 10): requests a bulk action keeps in flight on the account; a 429
  halves it for everyone on the account until the provider recovers (bot/service/bulk/engine.py).
- `require_reason`, `approval` and `confirm` may name `bulk` (`/call hangup-all`); a bulk action
  always asks to confirm the number of calls it would end.
- `max_actions_per_minute` (per person, default 30) and `max_account_actions_per_minute`
  (everyone together, unset by default): attempts sent (or being sent) in the last 60 s.
- `announce_channel` (with `announce`): every executed call action posts one masked line there
  (bot/domain/announcements.py); `announce = "on_request"` only those typed with `announce`.
  A bulk hang-up is announced whenever the account has an announce_channel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import unquote
from xml.etree import ElementTree

from bot.domain import urls
from bot.domain.actions import ApplyFlow, CallAction, InlineTwiml, Redirect
from bot.domain.callflow import Bridge, Command, Gather, Playback
from bot.domain.errors import InvalidInput, PolicyDenied

RATE_WINDOW = timedelta(minutes=1)
_E164_RULE = re.compile(r"^\+[0-9]{1,15}\*?$")
# TwiML whose value Twilio fetches: the text of <Play> and <Redirect>, and attributes named `url` or
# `action` or ending in `Url` / `Callback` (statusCallback, waitUrl, recordingStatusCallback, …).
_TWIML_URL_TEXT = ("play", "redirect")
_TWIML_URL_ATTRIBUTES = re.compile(r"^(url|action|.*url|.*callback)$", re.I)
_LOOKS_LIKE_URL = re.compile(r"^([a-z][a-z0-9+.-]*:)?//", re.I)


class Announce(StrEnum):
    """Which executed actions of an account with an announce_channel are announced there."""

    ALWAYS = "always"
    # Only those whose command says `announce`.
    ON_REQUEST = "on_request"


@dataclass(frozen=True)
class Policy:
    confirm: frozenset[str] = frozenset()
    require_reason: frozenset[str] = frozenset()
    allowed_urls: tuple[str, ...] | None = None
    # Let URLs point at private, loopback, link-local… hosts (an internal TwiML server, say).
    allow_private_urls: bool = False
    allowed_bridge_numbers: tuple[str, ...] | None = None
    max_actions_per_minute: int = 30
    max_account_actions_per_minute: int | None = None
    approval: frozenset[str] = frozenset()
    approvers_channel: str | None = None
    approval_expiry: timedelta = timedelta(minutes=10)
    # Fetch the call's state before hangup/cancel/redirect/twiml: refuse a call that already ended
    # (and `cancel` on an answered call). A failed fetch never holds the action back.
    check_state: bool = False
    # `/call hangup-all`: provider requests in flight at once on this account (bot/service/bulk/engine.py Throttle).
    bulk_concurrency: int = 10
    # Requests per call of a bulk action (429s included), and the longest Retry-After it waits out.
    bulk_max_attempts: int = 5
    bulk_max_retry_after: float = 60.0
    # Seconds to read a call back after an action until the provider shows what the action should
    # produce (bot/service/confirmations.py); 0 turns read-back off.
    read_back: float = 8.0
    # The incident channel (C… or G…) told of every executed call action, one masked line each.
    announce_channel: str | None = None
    announce: Announce = Announce.ALWAYS


DEFAULT_POLICY = Policy()


# -- configuration checks (raise ValueError: pydantic turns it into a ConfigError naming the key) ---


def check_url_rule(rule: str) -> None:
    try:
        parts = urls.parse(rule)
    except urls.UnsafeUrl as unsafe:
        raise ValueError(
            f"{rule!r} is not an absolute http(s) URL prefix, like 'https://twiml.example.com/': it {unsafe.why}"
        ) from None
    if parts.query is not None or parts.fragment is not None:
        raise ValueError(f"{rule!r}: a URL prefix has scheme, host and path only (no user, query or fragment)")
    if _has_dot_segment(parts.path):
        raise ValueError(f"{rule!r}: the path must not contain '.' or '..' segments")


def check_private_rules(rules: Sequence[str]) -> None:
    """An allowlisted private host would be refused anyway: say so at start-up, not per command."""
    for rule in rules:
        why = urls.local_reason(urls.parse(rule))
        if why is not None:
            raise ValueError(
                f"{rule!r}: its host is {why}, which callbot refuses; set allow_private_urls = true "
                "on this account if it really must be reached"
            )


def check_bridge_pattern(rule: str) -> None:
    if not _E164_RULE.match(rule):
        raise ValueError(
            f"{rule!r} is not an E.164 number or prefix ('+' and digits, optionally ending in *, like '+44*')"
        )


# -- the checks -------------------------------------------------------------------------------------


def check_reason(policy: Policy, account: str, action: CallAction) -> None:
    verb = action.name.value
    if verb in policy.require_reason and not (action.reason or "").strip():
        raise PolicyDenied(
            "require_reason",
            f"`{verb}` on account `{account}` needs a reason (require_reason in callbot.toml). "
            f'Add `reason="…"`: it is kept in the audit log.',
            word="reason",
        )


def announce_to(policy: Policy, account: str, requested: bool) -> str | None:
    """The channel an action's outcome is announced in, if any. `requested`: the command said
    `announce`, which an account without an announce_channel refuses (there is nowhere to say it,
    and the person asked for the channel to know)."""
    if policy.announce_channel is None:
        if requested:
            raise InvalidInput(
                "announce",
                f"has nowhere to go: account `{account}` has no announce_channel.",
                "Leave `announce` out, or ask an admin to set announce_channel for it in callbot.toml.",
            )
        return None
    if requested or policy.announce is Announce.ALWAYS:
        return policy.announce_channel
    return None


def needs_confirmation(policy: Policy, verb: str) -> bool:
    return verb in policy.confirm


def needs_approval(policy: Policy, verb: str) -> bool:
    return verb in policy.approval


def check_destinations(policy: Policy, account: str, action: CallAction) -> None:
    """Every URL and bridge number the action would send must pass the account's allowlists."""
    for label, url in urls_of(action):
        _check_url(policy, account, label, url)
    if policy.allowed_bridge_numbers is None:
        return
    for label, number in bridge_numbers_of(action):
        if not any(_number_matches(number, rule) for rule in policy.allowed_bridge_numbers):
            raise PolicyDenied(
                "allowed_bridge_numbers",
                f"`{label}={number}`: not in allowed_bridge_numbers of account `{account}` "
                f"({', '.join(policy.allowed_bridge_numbers)}).",
                word=label,
            )


def rate_limit_wait(recent: Sequence[datetime], limit: int, now: datetime) -> int | None:
    """Seconds until one more attempt fits under `limit` per minute, or None when it fits now.
    `recent`: when the counted attempts started (any order)."""
    inside = sorted(t for t in recent if t > now - RATE_WINDOW)
    if len(inside) < limit:
        return None
    oldest_that_must_expire = inside[len(inside) - limit]
    return max(1, math.ceil((oldest_that_must_expire + RATE_WINDOW - now).total_seconds()))


# -- what an action sends ---------------------------------------------------------------------------


def urls_of(action: CallAction) -> list[tuple[str, str]]:
    """(label as the person wrote it, URL) for every URL the provider will be given."""
    if isinstance(action, Redirect):
        pairs = [("URL", action.url), ("fallback", action.fallback_url), ("status-callback", action.status_callback)]
        return [(label, url) for label, url in pairs if url]
    if isinstance(action, ApplyFlow):
        return list(_flow_urls(action.flow.commands, "callFlow"))
    if isinstance(action, InlineTwiml):
        return list(_twiml_urls(action.twiml))
    return []


def bridge_numbers_of(action: CallAction) -> list[tuple[str, str]]:
    if not isinstance(action, ApplyFlow):
        return []
    return [
        (f"callFlow[{i}].bridge.to", c.options.to)
        for i, c in enumerate(action.flow.commands)
        if isinstance(c.options, Bridge)
    ]


def _flow_urls(commands: Sequence[Command], path: str) -> Iterator[tuple[str, str]]:
    for i, command in enumerate(commands):
        options, here = command.options, f"{path}[{i}].{command.name}"
        if isinstance(options, Playback):
            yield from _media(options, here)
        elif isinstance(options, Gather) and options.playback is not None:
            yield from _media(options.playback, f"{here}.playback")
        elif isinstance(options, Bridge):
            if options.notification is not None:
                yield f"{here}.notification.url", options.notification.url
            yield from _flow_urls(options.call_flow or (), f"{here}.callFlow")


def _media(playback: Playback, path: str) -> Iterator[tuple[str, str]]:
    for j, url in enumerate(playback.media):
        yield f"{path}.media[{j}]", url


def _twiml_urls(twiml: str) -> Iterator[tuple[str, str]]:
    """Inline TwiML can point Twilio anywhere (<Play>, <Redirect>, action=, statusCallback=…). Every
    value in a URL position counts, relative and scheme-less ones included (Twilio would resolve
    them against a document callbot never sees), and so does any other value that looks like a URL.
    (The TwiML was checked well-formed already.)"""
    for element in ElementTree.fromstring(twiml).iter():
        tag = _local_name(element.tag)
        for name, value in element.attrib.items():
            if _TWIML_URL_ATTRIBUTES.match(_local_name(name)) or _LOOKS_LIKE_URL.match(value.strip()):
                yield f"<{tag} {name}>", value.strip()
        # Of <Play>/<Redirect>, all the text, even split around a child element (`<Play><x/>URL</Play>`).
        url_text = tag.lower() in _TWIML_URL_TEXT
        text = ("".join(element.itertext()) if url_text else element.text or "").strip()
        if text and (url_text or _LOOKS_LIKE_URL.match(text)):
            yield f"<{tag}>", text
        tail = (element.tail or "").strip()  # text after the element, inside its parent
        if tail and _LOOKS_LIKE_URL.match(tail):
            yield f"after <{tag}>", tail


def _local_name(name: str) -> str:
    return name.rpartition("}")[2]  # without an XML namespace: `{ns}Play` is still <Play> to a parser


def _check_url(policy: Policy, account: str, label: str, url: str) -> None:
    shown = f"`{label}={urls.masked(url)}`" if label != "URL" else f"`{urls.masked(url)}`"
    try:
        parsed = urls.parse(url)
    except urls.UnsafeUrl as unsafe:
        raise PolicyDenied("safe_urls", f"{shown} {unsafe.why}", word=label) from None
    local = None if policy.allow_private_urls else urls.local_reason(parsed)
    if local is not None:
        raise PolicyDenied(
            "allow_private_urls",
            f"{shown}: its host {parsed.host} is {local}. callbot does not send a provider to hosts off the "
            "public internet (they could reach the provider's or a cloud's internal services); if account "
            f"`{account}` really needs it, an admin sets allow_private_urls = true for it in callbot.toml.",
            word=label,
        )
    if policy.allowed_urls is None:
        if parsed.scheme != "https":
            raise PolicyDenied(
                "allowed_urls",
                f"{shown}: plain http:// is refused (anyone on the way can read or change what the call "
                f"plays); use https://, or list the prefix in allowed_urls of account `{account}`.",
                word=label,
            )
        return
    if not any(_matches(parsed, rule) for rule in policy.allowed_urls):
        raise PolicyDenied(
            "allowed_urls",
            f"{shown}: not in allowed_urls of account `{account}` ({', '.join(policy.allowed_urls)}).",
            word=label,
        )


def url_matches(url: str, rule: str) -> bool:
    """Prefix match on scheme, host, port and path (whole segments unless the prefix ends in `/`),
    both read as the provider reads them; a URL that cannot be read one way only never matches."""
    try:
        return _matches(urls.parse(url), rule)
    except urls.UnsafeUrl:
        return False


def _matches(u: urls.Url, rule: str) -> bool:
    try:
        r = urls.parse(rule)
    except urls.UnsafeUrl:
        return False
    if (u.scheme, u.host, u.port) != (r.scheme, r.host, r.port):
        return False
    path, prefix = u.path, r.path
    if _has_dot_segment(path):
        return False  # `/ivr/../admin` would leave the allowed path once the server resolves it
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def _has_dot_segment(path: str) -> bool:
    return any(segment in (".", "..") for segment in unquote(path).split("/"))


def _number_matches(number: str, rule: str) -> bool:
    number = number.strip()
    return number.startswith(rule[:-1]) if rule.endswith("*") else number == rule
