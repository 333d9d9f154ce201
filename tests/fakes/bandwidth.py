"""A fake Bandwidth Voice API v2 (Update active Call, Get Call State) that validates what it
receives against Bandwidth's rules (shared/specs/bandwidth-*) and answers like Bandwidth:
200 with an EMPTY body on success, voiceApiError `{"type", "description", "id"}` otherwise.

Call states are Bandwidth's (`queued`, `initiated`, `answered`, `disconnected`) plus
`transferring`, a state this fake uses to answer 409 ("cannot be modified in its current state").
"""

from __future__ import annotations

import base64
import itertools
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.server import Answer, Recorded, RecordingServer

ACCOUNT_ID = "9900000"
USERNAME = "bw-api-user"
PASSWORD = "bw-pass-4e7d1c9b2a"
TAG_MAX = 256  # the update-call page's limit
CREDENTIAL_MAX = 1024
UPDATE_FIELDS = (
    "state",
    "redirectUrl",
    "redirectMethod",
    "username",
    "password",
    "redirectFallbackUrl",
    "redirectFallbackMethod",
    "fallbackUsername",
    "fallbackPassword",
    "tag",
)
METHOD_FIELDS = ("redirectMethod", "redirectFallbackMethod")
URL_FIELDS = ("redirectUrl", "redirectFallbackUrl")
CREDENTIAL_FIELDS = ("username", "password", "fallbackUsername", "fallbackPassword")
# A redirect needs an answered call (it replaces the running BXML); `completed` works on any live
# call (hangs up an answered one, cancels/rejects an unanswered one, removes a queued one).
REDIRECTABLE = {"answered"}
CONFLICT = {"transferring"}
_error_ids = itertools.count(1)


def bw_call_id(n: int) -> str:
    return f"c-{n:08x}-1331029c-2cb0-4a07-b215-b22865662d85"


def bandwidth_error(status: int, type_: str, description: str, **headers: str) -> Answer:
    """A voiceApiError body, as every Bandwidth Voice error response carries."""
    body = {"type": type_, "description": description, "id": f"err-{next(_error_ids):08d}"}
    return Answer.json(status, body, **headers)


class FakeBandwidth(RecordingServer):
    def __init__(self) -> None:
        super().__init__(self._answer)
        self.calls: dict[str, str] = {}
        self.tags: dict[str, str | None] = {}
        self.scripted: deque[Answer] = deque()

    def add_call(self, call_id: str, state: str = "answered") -> str:
        self.calls[call_id] = state
        return call_id

    def script(self, *answers: Answer) -> None:
        """The next requests get these answers, whatever they ask."""
        self.scripted.extend(answers)

    def updates(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    # -- the API --------------------------------------------------------------------------------

    def _answer(self, request: Recorded) -> Answer:
        if self.scripted:
            return self.scripted.popleft()
        if not self._authorised(request):
            return bandwidth_error(401, "authentication-error", "Missing or invalid credentials.")
        parts = request.path.split("/")
        # ['', 'accounts', accountId, 'calls', callId]
        if len(parts) != 5 or parts[1] != "accounts" or parts[3] != "calls":
            return bandwidth_error(404, "not-found", f"No resource at {request.path}.")
        call_id = parts[4]
        if parts[2] != ACCOUNT_ID or call_id not in self.calls:
            return bandwidth_error(404, "not-found", f"Call {call_id} not found.")
        if request.method == "GET":
            return Answer.json(200, self._call_state(call_id))
        if request.method != "POST":
            return bandwidth_error(405, "method-not-allowed", f"Method {request.method} is not allowed here.")
        if (request.header("content-type") or "").split(";")[0].strip().lower() != "application/json":
            return bandwidth_error(
                415, "unsupported-media-type", f"Content-Type {request.header('content-type')!r} is not supported."
            )
        try:
            body = request.json
        except ValueError:
            return bandwidth_error(400, "validation", "The request body is not valid JSON.")
        problem = validate_update(body)
        if problem:
            return bandwidth_error(400, "validation", problem)
        state = self.calls[call_id]
        if state == "disconnected":
            return bandwidth_error(404, "not-found", f"Call {call_id} is no longer active.")
        wanted = body.get("state") or "active"
        if state in CONFLICT or (wanted == "active" and state not in REDIRECTABLE):
            return bandwidth_error(409, "conflict", f"Call {call_id} cannot be modified in its current state.")
        if wanted == "completed":
            self.calls[call_id] = "disconnected"
        elif "tag" in body:
            self.tags[call_id] = body["tag"] or None
        return Answer(200, b"")

    def _authorised(self, request: Recorded) -> bool:
        header = request.header("authorization") or ""
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == (USERNAME, PASSWORD)

    def _call_state(self, call_id: str) -> dict[str, Any]:
        state = self.calls[call_id]
        return {
            "applicationId": "04e88489-df02-4e34-a0ee-27a91849555f",
            "accountId": ACCOUNT_ID,
            "callId": call_id,
            "parentCallId": None,
            "to": "+19195551234",
            "from": "+19195554321",
            "direction": "inbound",
            "state": state,
            "enqueuedTime": None,
            "startTime": "2026-11-24T14:36:18.575Z",
            "answerTime": "2026-11-24T14:36:19.001Z" if state != "initiated" else None,
            "endTime": "2026-11-24T14:37:02.314Z" if state == "disconnected" else None,
            "disconnectCause": "hangup" if state == "disconnected" else None,
            "errorMessage": None,
            "errorId": None,
            "lastUpdate": "2026-11-24T14:37:02.314Z",
        }


def validate_update(body: Any) -> str | None:
    """The `updateCall` schema plus the page's rules; the first problem, as Bandwidth words it."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    unknown = [key for key in body if key not in UPDATE_FIELDS]
    if unknown:
        return f"Unrecognized field '{unknown[0]}'."
    for key, value in body.items():
        if value is not None and not isinstance(value, str):
            return f"'{key}' must be a string."
    state = body.get("state")
    if state not in (None, "active", "completed"):
        return f"Invalid state '{state}': must be active or completed."
    if state == "completed":
        others = [key for key in body if key != "state"]
        if others:
            return f"'{others[0]}' is not allowed when state is completed."
        return None
    if not body.get("redirectUrl"):
        return "'redirectUrl' is required when state is active."
    for key in URL_FIELDS:
        value = body.get(key)
        if value is not None and not _absolute_http_url(value):
            return f"Invalid {key}: only absolute http and https URLs are allowed."
    for key in METHOD_FIELDS:
        value = body.get(key)
        if value is not None and value not in ("GET", "POST"):
            return f"Invalid {key} '{value}': must be GET or POST."
    tag = body.get("tag")
    if tag is not None and len(tag) > TAG_MAX:
        return f"'tag' must be at most {TAG_MAX} characters."
    for key in CREDENTIAL_FIELDS:
        value = body.get(key)
        if value is not None and len(value) > CREDENTIAL_MAX:
            return f"'{key}' must be at most {CREDENTIAL_MAX} characters."
    return None


def garbage(status: int, text: bytes = b"<html><body>upstream connect error</body></html>") -> Answer:
    """A non-JSON error body, like a proxy in front of Bandwidth sends."""
    content_type = "text/html" if text.lstrip().startswith(b"<") else "text/plain"
    return Answer(status, text, {"Content-Type": content_type})


def _absolute_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
