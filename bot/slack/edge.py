"""POST /slack/events before Bolt: nothing reads what Slack did not sign.

In this order, each failure answered at once and logged as one WARNING line (a reason, never the
body or a header's value):
1. the body, read as it arrives, stops at 1 MiB (413); a larger Content-Length is refused before
   reading anything (bot/http_body, shared with the providers' callbacks);
2. Slack's v0 signature, fresh and valid (401), over the raw bytes;
3. a body Slack could have sent (400): UTF-8; a slash-command form, an interactivity `payload=`
   holding a JSON object, or an Events API JSON object; of a kind callbot handles, with fields of
   the types Slack documents (bot/slack/shapes.py).

Bolt then gets the body parsed here (and checks the signature again, as it always does).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt.request.async_request import AsyncBoltRequest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.http_body import Unread, read_body
from bot.slack import shapes

MAX_AGE = 5 * 60
"""Seconds either side of now a signed timestamp may be (Slack's replay window)."""

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    """For the log and the answer: written by callbot, never a piece of the request."""

    def response(self) -> Response:
        return PlainTextResponse(f"{self.reason}\n", self.status)


@dataclass(frozen=True)
class SlackRequest:
    """A signed, well-formed request: its raw text (Bolt verifies it again) and its parsed body."""

    text: str
    body: dict[str, Any]
    headers: Mapping[str, str]

    def for_bolt(self) -> AsyncBoltRequest:
        # Built from the parsed body, then marked as HTTP: Bolt's own form parsing takes a slash
        # command whose text says "payload" for an interactivity post and drops every field.
        request = AsyncBoltRequest(body=self.body, headers=dict(self.headers), mode="socket_mode")
        request.raw_body = self.text
        request.mode = "http"
        return request


async def receive(request: Request, signing_secret: str | None, now: float | None = None) -> SlackRequest | Refusal:
    """POST /slack/events, read and checked; `now` (Unix seconds) for tests."""
    raw = await read_body(request)
    if isinstance(raw, Unread):
        return Refusal(raw.status, raw.reason)
    refused = check_signature(signing_secret, request.headers, raw, time.time() if now is None else now)
    if refused:
        return refused
    return parse(raw, request.headers.get("content-type", ""), request.headers)


def check_signature(secret: str | None, headers: Mapping[str, str], body: bytes, now: float) -> Refusal | None:
    """Slack's v0 scheme: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}` keyed by the signing
    secret. Over the raw bytes (slack_sdk's SignatureVerifier decodes them first, and so fails on
    bytes that are not UTF-8 instead of refusing them); compared in constant time."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not secret:
        return Refusal(401, "callbot has no signing secret: it accepts no request.")
    if not timestamp or not signature:
        return Refusal(401, "The request is not signed (X-Slack-Request-Timestamp and X-Slack-Signature).")
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
        return Refusal(401, "The request's signature headers are malformed.")
    if abs(now - int(timestamp)) > MAX_AGE:
        return Refusal(401, "The request's timestamp is more than five minutes away.")
    expected = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"v0={expected}".encode(), signature.encode()):
        return Refusal(401, "The request's signature is not valid.")
    return None


def parse(raw: bytes, content_type: str, headers: Mapping[str, str]) -> SlackRequest | Refusal:
    """What Bolt would read from the body, refused when Slack could not have sent it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "The request body is not UTF-8.")
    media_type = content_type.split(";")[0].strip().lower()
    # As Bolt decides: JSON by its type, or by its first character whatever the type says.
    if media_type == "application/json" or text.startswith("{"):
        document = _json(text)
        wrong = "the body is not JSON" if document is _NOT_JSON else shapes.problem(document, shapes.EVENTS, "body")
    else:
        form = dict(parse_qsl(text, keep_blank_values=True))
        if "payload" in form:
            document = _json(form["payload"])
            wrong = (
                "the payload is not JSON"
                if document is _NOT_JSON
                else shapes.problem(document, shapes.INTERACTIVE, "payload")
            )
        elif "command" in form:
            document, wrong = form, shapes.command_problem(form)
        elif "ssl_check" in form:
            # Slack checking the certificate; Bolt answers it.
            document, wrong = form, None
        else:
            document, wrong = None, "the body is not a slash command, an interactivity payload or an event"
    if wrong:
        return Refusal(400, f"callbot cannot read this request: {wrong}.")
    assert isinstance(document, dict)
    return SlackRequest(text, document, headers)


_NOT_JSON = object()


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def envelope_problem(envelope: Mapping[str, Any]) -> str | None:
    """Socket Mode: why an envelope's payload is not one Slack sends (Slack's websocket needs no
    signature, but its payloads reach the same listeners). None for control messages."""
    kind = envelope.get("type")
    if kind in ("hello", "disconnect") or "payload" not in envelope:
        return None
    payload = envelope["payload"]
    if kind == "slash_commands":
        return shapes.command_problem(payload) if isinstance(payload, dict) else "the payload is not a JSON object"
    if kind == "interactive":
        return shapes.problem(payload, shapes.INTERACTIVE, "payload")
    if kind == "events_api":
        return shapes.problem(payload, shapes.EVENTS, "payload")
    return "callbot does not handle this type of envelope"
