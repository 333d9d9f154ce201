"""A fake Bandwidth Voice API v2 (Update active Call, Get Call State, Get Calls) that validates what
it receives against Bandwidth's rules (shared/specs/bandwidth-*) and answers like Bandwidth:
200 with an EMPTY body on success, voiceApiError `{"type", "description", "id"}` otherwise.

Get Calls answers a JSON array of callState objects, oldest first, every state (no state filter:
ended calls stay listed), filtered by `to`, `from`, `minStartTime`, `maxStartTime` (on startTime,
so a queued call, whose startTime is null, is left out by either) and paged by `pageSize`
(1..10000, default 1000) with a `Link: <url>; rel="next"` header carrying `pageToken`.

Call states are Bandwidth's (`queued`, `initiated`, `answered`, `disconnected`) plus
`transferring`, a state this fake uses to answer 409 ("cannot be modified in its current state").
"""

from __future__ import annotations

import base64
import itertools
import json
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.server import Answer, CallRecord, Recorded, RecordingServer

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
PAGE_SIZE_DEFAULT = 1000
PAGE_SIZE_MAX = 10000
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
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.calls: dict[str, str] = {}  # callId → state
        self.details: dict[str, CallRecord] = {}
        self.causes: dict[str, str] = {}  # disconnectCause of disconnected calls
        self.hung_up_at: dict[str, datetime] = {}  # endTime of the calls hung up through the API
        self.tags: dict[str, str | None] = {}
        self.scripted: deque[Answer] = deque()
        self._seq = itertools.count()

    def add_call(
        self,
        call_id: str,
        state: str = "answered",
        *,
        direction: str = "inbound",
        from_number: str = "+19195554321",
        to_number: str = "+19195551234",
        started_at: datetime | None = None,
        duration: int | None = None,
        cause: str = "hangup",
    ) -> str:
        """A call the fake knows. `started_at` defaults to now (a queued call has none); `duration`
        is the answered time of a disconnected call; `cause` its disconnectCause."""
        if started_at is None and state != "queued":
            started_at = datetime.now(UTC)
        if duration is None and state == "disconnected" and cause == "hangup":
            duration = 43
        self.calls[call_id] = state
        self.details[call_id] = CallRecord(direction, from_number, to_number, started_at, duration, next(self._seq))
        self.causes[call_id] = cause
        return call_id

    def lists(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and r.path == f"/accounts/{ACCOUNT_ID}/calls"]

    def _record(self, call_id: str) -> CallRecord:
        """The call's details; a call put straight into `calls` gets add_call's defaults."""
        if call_id not in self.details:
            self.add_call(call_id, self.calls[call_id])
        return self.details[call_id]

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
        if len(parts) == 4 and parts[1] == "accounts" and parts[3] == "calls" and request.method == "GET":
            if parts[2] != ACCOUNT_ID:
                return bandwidth_error(403, "forbidden", "Not authorized to access this account.")
            return self._list(request)
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
            self._hang_up(call_id, state)
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

    def _hang_up(self, call_id: str, state: str) -> None:
        record = self._record(call_id)
        self.causes[call_id] = "hangup" if state == "answered" else "cancel"
        if state == "answered" and record.started_at and record.duration is None:
            record.duration = max(0, int((datetime.now(UTC) - record.started_at).total_seconds()))
        self.hung_up_at[call_id] = datetime.now(UTC)
        self.calls[call_id] = "disconnected"

    def _list(self, request: Recorded) -> Answer:
        params = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        try:
            page_size = int(params.get("pageSize", PAGE_SIZE_DEFAULT))
        except ValueError:
            return bandwidth_error(400, "validation", "'pageSize' must be an integer.")
        if not 1 <= page_size <= PAGE_SIZE_MAX:
            return bandwidth_error(400, "validation", f"'pageSize' must be between 1 and {PAGE_SIZE_MAX}.")
        bounds: dict[str, datetime] = {}
        for key in ("minStartTime", "maxStartTime"):
            if key in params:
                try:
                    bounds[key] = datetime.fromisoformat(params[key].replace("Z", "+00:00"))
                except ValueError:
                    return bandwidth_error(400, "validation", f"'{key}' must be an ISO 8601 date-time.")
        try:
            offset = (
                int(json.loads(base64.urlsafe_b64decode(params["pageToken"]))["offset"]) if "pageToken" in params else 0
            )
        except (ValueError, KeyError, TypeError):
            return bandwidth_error(400, "validation", "Invalid 'pageToken'.")
        matching = [cid for cid in sorted(self.calls, key=self._oldest_first) if self._matches(cid, params, bounds)]
        chunk = matching[offset : offset + page_size]
        headers: dict[str, str] = {}
        if offset + page_size < len(matching):
            token = base64.urlsafe_b64encode(json.dumps({"offset": offset + page_size}).encode()).decode()
            query = [(k, v) for k, v in params.items() if k != "pageToken"] + [("pageToken", token)]
            headers["Link"] = f'<{self.url}{request.path}?{urlencode(query)}>; rel="next"'
        return Answer.json(200, [self._call_state(cid) for cid in chunk], **headers)

    def _matches(self, call_id: str, params: dict[str, str], bounds: dict[str, datetime]) -> bool:
        record = self._record(call_id)
        if params.get("to") not in (None, record.to_number) or params.get("from") not in (None, record.from_number):
            return False
        if bounds and record.started_at is None:  # the filters are on startTime, null while queued
            return False
        if "minStartTime" in bounds and record.started_at and record.started_at < bounds["minStartTime"]:
            return False
        return not ("maxStartTime" in bounds and record.started_at and record.started_at > bounds["maxStartTime"])

    def _oldest_first(self, call_id: str) -> tuple[float, int]:
        record = self._record(call_id)
        return (record.started_at.timestamp() if record.started_at else float("inf"), record.seq)

    def _call_state(self, call_id: str) -> dict[str, Any]:
        state = self.calls[call_id]
        record = self._record(call_id)
        started = record.started_at
        answered = started + timedelta(seconds=1) if started and state not in ("queued", "initiated") else None
        if state == "disconnected" and self.causes.get(call_id, "hangup") != "hangup":
            answered = None  # busy, timeout, cancel, rejected…: never answered
        ended = None
        if state == "disconnected":
            ended = self.hung_up_at.get(call_id) or (answered or started or datetime.now(UTC)) + timedelta(
                seconds=record.duration or 0
            )
        return {
            "applicationId": "04e88489-df02-4e34-a0ee-27a91849555f",
            "accountId": ACCOUNT_ID,
            "callId": call_id,
            "parentCallId": None,
            "to": record.to_number,
            "from": record.from_number,
            "direction": record.direction,
            "state": state,
            "stirShaken": None,
            "enqueuedTime": _iso(started - timedelta(seconds=1)) if started else _iso(datetime.now(UTC)),
            "startTime": _iso(started),
            "answerTime": _iso(answered),
            "endTime": _iso(ended),
            "disconnectCause": self.causes.get(call_id, "hangup") if state == "disconnected" else None,
            "errorMessage": None,
            "errorId": None,
            "lastUpdate": _iso(ended or answered or started or datetime.now(UTC)),
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


def _iso(when: datetime | None) -> str | None:
    """Bandwidth's timestamps: ISO 8601 in UTC with milliseconds, "2022-06-16T13:15:07.160Z"."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if when else None
