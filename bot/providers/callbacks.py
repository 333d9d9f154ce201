"""Whether a callback really comes from the provider: each provider's own scheme, exactly as its
documentation and official SDK check it (docs/webhooks.md says where each comes from).

- Twilio: `X-Twilio-Signature` is base64(HMAC-SHA1(auth token, URL + every form parameter's name
  and value, sorted)); a body that is not a form is signed through the URL instead, which carries
  `bodySHA256=<hex SHA-256 of the body>`. As twilio-python's RequestValidator does, the URL is
  tried without its port and with the scheme's standard one (Twilio signs either). Its signed
  time: the `Timestamp` parameter every call status callback carries.
- Bandwidth: the application's callback credentials, sent as HTTP Basic authentication. Its time:
  the event's `eventTime`, which every Bandwidth voice event carries.
- Bird: `messagebird-signature` is base64(HMAC-SHA256(signing key, timestamp + "\\n" + URL + "\\n"
  + the body's SHA-256 digest, raw)), with `messagebird-request-timestamp` (Unix seconds).

Each provider always sends its time, so a callback without a readable one is refused (`stale`):
without one, a callback captured once could be sent again, and taken, once its receipt is gone
(bot/webhooks RECEIPTS_KEPT).

Every comparison is constant-time. What a verified callback says is read by bot/domain/callbacks.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import ParseResult, parse_qs, parse_qsl, urlparse

from bot.config import BandwidthAccount, BirdAccount, TwilioAccount
from bot.domain.callbacks import CallbackResult, bandwidth_time, twilio_time

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Delivery:
    """One callback as it arrived. `url`: the URL the provider called, rebuilt from
    CALLBOT_PUBLIC_URL (None without it); `headers` are looked up in lower case."""

    url: str | None
    headers: Mapping[str, str]
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class Verified:
    """A callback the provider sent. `fingerprint` names what was signed: the same callback
    delivered again has the same one. `sent_at`: the provider's time in it (signed by Twilio and
    Bird). `content`: the form parameters (a dict of str) or the parsed JSON body (None when
    unreadable)."""

    fingerprint: bytes
    sent_at: datetime
    content: Any


@dataclass(frozen=True)
class Refused:
    result: CallbackResult
    reason: str
    """For the log: written by callbot, never a piece of the request."""


def _untimed(what: str) -> Refused:
    return Refused(CallbackResult.STALE, f"{what}: the provider always sends its time")


# -- Twilio -----------------------------------------------------------------------------------


def twilio_signature(token: str, url: str, params: Mapping[str, Sequence[str]]) -> str:
    """RequestValidator.compute_signature: the URL, then each parameter name (sorted) followed
    by its value, for each distinct value of a repeated name in sorted order
    (`sorted(set(values))`: a name given the same value twice is signed once)."""
    text = url + "".join(name + value for name in sorted(params) for value in sorted(set(params[name])))
    return base64.b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()).decode()


def twilio_valid(token: str, url: str, params: Mapping[str, Sequence[str]] | bytes, signature: str) -> bool:
    """RequestValidator.validate: `params` is the form's parameters, or the raw body of a request
    that is not a form (then the URL's bodySHA256 must be the body's hash, and only the URL is
    signed)."""
    parsed = urlparse(url)
    body_ok = True
    if isinstance(params, bytes):
        query = parse_qs(parsed.query)
        if "bodySHA256" not in query:
            return False  # the SDK cannot verify such a request either (it raises)
        body_ok = hmac.compare_digest(hashlib.sha256(params).hexdigest().encode(), query["bodySHA256"][0].encode())
        params = {}
    given = signature.encode()
    without_port = hmac.compare_digest(twilio_signature(token, _without_port(parsed), params).encode(), given)
    with_port = hmac.compare_digest(twilio_signature(token, _with_port(parsed), params).encode(), given)
    return body_ok and (without_port or with_port)


def _without_port(url: ParseResult) -> str:
    if not url.port:
        return url.geturl()
    return url._replace(netloc=url.netloc.split(":")[0]).geturl()


def _with_port(url: ParseResult) -> str:
    if url.port:
        return url.geturl()
    return url._replace(netloc=f"{url.netloc}:{443 if url.scheme == 'https' else 80}").geturl()


def verify_twilio(config: TwilioAccount, delivery: Delivery) -> Verified | Refused:
    token = config.callback_token
    if not token:
        return Refused(
            CallbackResult.UNCONFIGURED, "the account has no auth_token or callback_auth_token to check with"
        )
    if delivery.url is None:
        return Refused(CallbackResult.UNCONFIGURED, "CALLBOT_PUBLIC_URL is not set: the signed URL is unknown")
    signature = delivery.headers.get("x-twilio-signature", "")
    if not signature:
        return Refused(CallbackResult.UNSIGNED, "no X-Twilio-Signature header")
    form = _form(delivery) if delivery.media_type in (FORM, "") else None
    signed: Mapping[str, Sequence[str]] | bytes = delivery.body if form is None else form
    if not signature.isascii() or not twilio_valid(token, delivery.url, signed, signature):
        return Refused(CallbackResult.FORGED, "the X-Twilio-Signature does not match")
    if form is None:
        body = _json(delivery.body)
        params = {k: v for k, v in body.items() if isinstance(v, str)} if isinstance(body, dict) else {}
    else:
        params = {name: values[0] for name, values in form.items()}
    sent_at = twilio_time(params)
    if sent_at is None:
        return _untimed("no readable Timestamp parameter")
    # The signature is an HMAC of everything Twilio signed: it names the callback.
    return Verified(base64.b64decode(signature), sent_at, params)


def _form(delivery: Delivery) -> dict[str, list[str]] | None:
    """The form's parameters as Twilio signed them (blank values kept); None when the body is not
    UTF-8, which Twilio never sends."""
    try:
        text = delivery.body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    return params


# -- Bandwidth --------------------------------------------------------------------------------


def verify_bandwidth(config: BandwidthAccount, delivery: Delivery) -> Verified | Refused:
    if config.callback_username is None or config.callback_password is None:
        return Refused(CallbackResult.UNCONFIGURED, "the account has no callback_username and callback_password")
    scheme, _, encoded = delivery.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return Refused(CallbackResult.UNSIGNED, "no HTTP Basic credentials")
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return Refused(CallbackResult.FORGED, "the HTTP Basic credentials are not base64")
    # Both compared, whatever the first gives: how long it takes says nothing about either.
    user_ok = hmac.compare_digest(user, config.callback_username.encode())
    password_ok = hmac.compare_digest(password, config.callback_password.encode())
    if not (colon and user_ok and password_ok):
        return Refused(CallbackResult.FORGED, "the HTTP Basic credentials do not match")
    body = _json(delivery.body)
    sent_at = bandwidth_time(body)
    if sent_at is None:
        return _untimed("no readable eventTime")
    # Nothing is signed: the body itself names the event (Bandwidth sends each one once).
    return Verified(hashlib.sha256(delivery.body).digest(), sent_at, body)


# -- Bird -------------------------------------------------------------------------------------


def bird_signature(key: str, timestamp: str, url: str, body: bytes) -> bytes:
    """The HMAC-SHA256 Bird sends (base64) in messagebird-signature."""
    payload = b"\n".join((timestamp.encode(), url.encode(), hashlib.sha256(body).digest()))
    return hmac.new(key.encode(), payload, hashlib.sha256).digest()


def verify_bird(config: BirdAccount, delivery: Delivery) -> Verified | Refused:
    if not config.webhook_signing_key:
        return Refused(CallbackResult.UNCONFIGURED, "the account has no webhook_signing_key")
    if delivery.url is None:
        return Refused(CallbackResult.UNCONFIGURED, "CALLBOT_PUBLIC_URL is not set: the signed URL is unknown")
    signature = delivery.headers.get("messagebird-signature", "")
    timestamp = delivery.headers.get("messagebird-request-timestamp", "")
    if not signature or not timestamp:
        return Refused(CallbackResult.UNSIGNED, "no messagebird-signature and messagebird-request-timestamp headers")
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return Refused(CallbackResult.FORGED, "the messagebird-signature is not base64")
    if not timestamp.isascii():
        return Refused(CallbackResult.FORGED, "the messagebird-request-timestamp is not a timestamp")
    expected = bird_signature(config.webhook_signing_key, timestamp, delivery.url, delivery.body)
    if not hmac.compare_digest(expected, given):
        return Refused(CallbackResult.FORGED, "the messagebird-signature does not match")
    sent_at = _unix_time(timestamp)
    if sent_at is None:
        return _untimed("a messagebird-request-timestamp that is not a time")
    return Verified(expected, sent_at, _json(delivery.body))


def _unix_time(text: str) -> datetime | None:
    if not text.isdigit() or len(text) > 11:  # year 5138 at most: a datetime
        return None
    return datetime.fromtimestamp(int(text), UTC)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
