"""A provider's signed callback about a call, read into one value the service acts on
(bot/service/confirmations.py records what it confirms).

Nothing here checks a signature: bot/providers/callbacks.py does, and only what it verified is
read here. Each reader takes the body as the provider sends it (Twilio's form parameters,
Bandwidth's JSON event, Bird's JSON webhook delivery) and answers None for a callback that is
not about one of the account's calls (another event, another account or channel): it is
acknowledged and ignored.

The providers' own words for a call's state become callbot's through the same tables the clients
use when they read a call (bot/domain/call_words.py).
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.domain.call_words import BANDWIDTH_LIVE, BIRD_FINAL, BIRD_LIVE, TWILIO_STATUSES, bandwidth_final

WORD_MAX_CHARS = 64
CALL_ID_MAX_CHARS = 128


class CallbackProvider(StrEnum):
    TWILIO = "twilio"
    BANDWIDTH = "bandwidth"
    BIRD = "bird"


class CallbackResult(StrEnum):
    """What became of one callback (the `result` of callbot_webhooks_total)."""

    ACCEPTED = "accepted"  # verified, and the service recorded it on an audit row
    IGNORED = "ignored"  # verified, but about nothing callbot acted on (or no call at all)
    UNSIGNED = "unsigned"  # no signature or credentials: 403
    # Bandwidth's first try, without credentials: answered 401 with a Basic challenge, after
    # which Bandwidth sends the callback again with them (RFC 7235, as its documentation says).
    CHALLENGED = "challenged"
    FORGED = "forged"  # a signature or credentials that do not match: 403
    STALE = "stale"  # its time more than five minutes away from now, or none the provider always sends: 403
    REPLAYED = "replayed"  # the same signed callback came before: 403
    UNCONFIGURED = "unconfigured"  # callbot lacks what verifying takes (a secret, CALLBOT_PUBLIC_URL): 403
    FAILED = "failed"  # callbot failed handling it (logged): 403 before it was verified, 204 after


@dataclass(frozen=True)
class CallbackEvent:
    provider: str  # "twilio" | "bandwidth" | "bird"
    account: str  # the callbot account name from the URL
    call_id: str  # the provider's call id
    # The call's state in callbot's words (Twilio's: queued, ringing, in-progress, completed,
    # canceled, failed, busy, no-answer); None when the event says nothing about it.
    status: str | None
    word: str  # the provider's own word (CallStatus, eventType, Bird's status…)
    at: datetime  # the provider's event time (aware, UTC), else when callbot received it


# -- Twilio: form parameters (https://www.twilio.com/docs/voice/api/call-resource#statuscallback)


def twilio_time(params: Mapping[str, str]) -> datetime | None:
    """`Timestamp` (RFC 2822, among the signed parameters of a status callback), when readable."""
    return _rfc2822(params.get("Timestamp"))


def from_twilio(
    params: Mapping[str, str], account: str, received_at: datetime, *, account_sid: str
) -> CallbackEvent | None:
    """A status callback: `CallSid`, `CallStatus`, `Timestamp`. One of another account (its
    `AccountSid`) is not ours."""
    call_id = _call_id(params.get("CallSid"))
    if call_id is None or params.get("AccountSid", account_sid) != account_sid:
        return None
    word = _word(params.get("CallStatus"))
    return CallbackEvent(
        provider=CallbackProvider.TWILIO.value,
        account=account,
        call_id=call_id,
        status=word if word in TWILIO_STATUSES else None,
        word=word,
        at=twilio_time(params) or received_at,
    )


# -- Bandwidth: one JSON event per callback (https://dev.bandwidth.com/docs/voice/webhooks)


def bandwidth_time(body: Any) -> datetime | None:
    """`eventTime` (ISO 8601), when readable."""
    return _iso(body.get("eventTime")) if isinstance(body, dict) else None


def from_bandwidth(body: Any, account: str, received_at: datetime, *, account_id: str) -> CallbackEvent | None:
    """`eventType`, `callId`, `eventTime`; a `disconnect` ends the call (its `cause` says how, as
    the client's read says it from `disconnectCause`). An event of another Bandwidth account is
    not ours."""
    if not isinstance(body, dict):
        return None
    call_id = _call_id(body.get("callId"))
    if call_id is None or str(body.get("accountId", account_id)) != account_id:
        return None
    word = _word(body.get("eventType"))
    status: str | None = None
    if word == "disconnect":
        cause = body.get("cause")
        status = bandwidth_final(cause if isinstance(cause, str) else "", body.get("answerTime") is not None)
    elif word == "answer":
        status = BANDWIDTH_LIVE["answered"]
    elif word == "initiate":
        status = BANDWIDTH_LIVE["initiated"]
    return CallbackEvent(
        provider=CallbackProvider.BANDWIDTH.value,
        account=account,
        call_id=call_id,
        status=status,
        word=word,
        at=bandwidth_time(body) or received_at,
    )


# -- Bird: {"service": "channels", "event": "voice.outbound", "payload": <the Call>}
#    (https://docs.bird.com/api/voice-api/voice-webhooks)


def from_bird(
    body: Any, account: str, received_at: datetime, *, channel_id: str, sent_at: datetime | None = None
) -> CallbackEvent | None:
    """A voice lifecycle event (`voice.inbound`, `voice.outbound`): the call is its `payload`, in
    the shape the Calls API answers with. A subscription without a channel filter delivers every
    voice channel's calls: those of another channel than the account's are not ours. `sent_at`:
    the signed request timestamp, the event's time when the call has no `updatedAt`."""
    if not isinstance(body, dict) or not str(body.get("event", "")).startswith("voice."):
        return None
    call = body.get("payload")
    if not isinstance(call, dict):
        return None
    call_id = _call_id(call.get("id"))
    if call_id is None or str(call.get("channelId", channel_id)) != channel_id:
        return None
    word = _word(call.get("status"))
    return CallbackEvent(
        provider=CallbackProvider.BIRD.value,
        account=account,
        call_id=call_id,
        status=BIRD_LIVE.get(word) or BIRD_FINAL.get(word),
        word=word,
        at=_iso(call.get("updatedAt")) or sent_at or received_at,
    )


def _call_id(value: Any) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= CALL_ID_MAX_CHARS or not value.isprintable():
        return None
    return None if any(c.isspace() for c in value) else value


def _word(value: Any) -> str:
    return value[:WORD_MAX_CHARS] if isinstance(value, str) and value.isprintable() else ""


def _rfc2822(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return _aware(when)


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return _aware(when)


def _aware(when: datetime) -> datetime | None:
    # A time without a zone says nothing certain about when it was: not a time to judge staleness by.
    return when.astimezone(UTC) if when.tzinfo is not None else None
