"""A fake Bird Channels API (Update a call, Get a call, List calls from a channel) that validates
request bodies against Bird's own OpenAPI schema (shared/specs/bird-channels-update-call.openapi.json)
and answers like Bird: 202 with the Call object, or `{code, message, details}` errors.

List calls: `limit` (1..1000), `pageToken`, `status` (repeatable; channels.call_status), `to`,
`from`, `direction`; newest first; `{"results": [Call…], "nextPageToken": "…"}` (no token on the
last page). The token's field name follows Bird's list convention (see bot/providers/bird.py).
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections import deque
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.fakes.server import Answer, CallRecord, Recorded, RecordingServer

WORKSPACE_ID = "6f0a9d1e-2b3c-4d5e-8f90-a1b2c3d4e5f6"
CHANNEL_ID = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
ACCESS_KEY = "bird-ak-5c2f8e1d9a7b3c6e"
# A copy of ../shared/specs/bird-channels-update-call.openapi.json, so a checkout tests on its own.
SPEC = Path(__file__).resolve().parents[1] / "specs" / "bird-channels-update-call.openapi.json"
ENDED = {"completed", "busy", "no-answer", "failed", "cancelled"}
STATUSES = {"accepted", "starting", "ringing", "ongoing", "scheduled", *ENDED}
LIMIT_MAX = 1000
LIMIT_DEFAULT = 10


def bird_call_id(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


def _nullable_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: `nullable: true` allows null too. The document's `if` keywords
    (some `null`, none with `then`/`else`) constrain nothing, so they are dropped."""
    if isinstance(node, dict):
        node = {k: _nullable_to_jsonschema(v) for k, v in node.items() if k != "if"}
        if node.pop("nullable", False):
            if "type" in node:
                node["type"] = [node["type"], "null"] if isinstance(node["type"], str) else [*node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
            if "oneOf" in node:
                node["oneOf"] = [*node["oneOf"], {"type": "null"}]
        return node
    if isinstance(node, list):
        return [_nullable_to_jsonschema(v) for v in node]
    return node


@cache
def patch_call_validator() -> Draft202012Validator:
    document = _nullable_to_jsonschema(json.loads(SPEC.read_text()))
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:bird", resource)
    schema = {"$ref": "urn:bird#/components/schemas/PatchCall"}
    return Draft202012Validator(schema, registry=registry)


def schema_errors(body: Any) -> list[str]:
    errors = sorted(patch_call_validator().iter_errors(body), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:200]}" for e in errors]


def bird_error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Answer:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return Answer.json(status, body)


class FakeBird(RecordingServer):
    def __init__(self) -> None:
        super().__init__(self._answer)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.calls: dict[str, str] = {}  # id → status
        self.details: dict[str, CallRecord] = {}
        self.hung_up_at: dict[str, datetime] = {}  # endedAt of the calls hung up through the API
        self.scripted: deque[Answer] = deque()
        self._seq = itertools.count()

    def add_call(
        self,
        call_id: str,
        status: str = "ongoing",
        *,
        direction: str = "incoming",
        from_number: str = "+31201234567",
        to_number: str = "+31612345678",
        started_at: datetime | None = None,
        duration: int | None = None,
    ) -> str:
        """A call the fake knows; `started_at` (its createdAt) defaults to now."""
        if duration is None and status == "completed":
            duration = 27
        started = started_at or datetime.now(UTC)
        self.calls[call_id] = status
        self.details[call_id] = CallRecord(direction, from_number, to_number, started, duration, next(self._seq))
        return call_id

    def lists(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/calls")]

    def _record(self, call_id: str) -> CallRecord:
        """The call's details; a call put straight into `calls` gets add_call's defaults."""
        if call_id not in self.details:
            self.add_call(call_id, self.calls[call_id])
        return self.details[call_id]

    def script(self, *answers: Answer) -> None:
        self.scripted.extend(answers)

    def updates(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PATCH"]

    def _answer(self, request: Recorded) -> Answer:
        if self.scripted:
            return self.scripted.popleft()
        if request.header("authorization") != f"AccessKey {ACCESS_KEY}":
            return bird_error(401, "Unauthorized", "The access key is missing or invalid")
        parts = request.path.split("/")
        if len(parts) == 6 and parts[1] == "workspaces" and parts[3] == "channels" and parts[5] == "calls":
            if (parts[2], parts[4]) != (WORKSPACE_ID, CHANNEL_ID):
                return bird_error(404, "NotFound", "Channel not found")
            if request.method != "GET":
                return bird_error(405, "MethodNotAllowed", "Method not allowed")
            return self._list(request)
        # ['', 'workspaces', ws, 'channels', ch, 'calls', id]
        if len(parts) != 7 or parts[1] != "workspaces" or parts[3] != "channels" or parts[5] != "calls":
            return bird_error(404, "NotFound", "Not found")
        if parts[2] != WORKSPACE_ID or parts[4] != CHANNEL_ID or parts[6] not in self.calls:
            return bird_error(404, "CallNotFound", "Call not found")
        if request.method == "GET":
            return Answer.json(200, self._call(parts[6], None))
        if request.method != "PATCH":
            return bird_error(405, "MethodNotAllowed", "Method not allowed")
        if request.header("content-type") != "application/json":
            return bird_error(400, "InvalidPayload", "Content-Type must be application/json")
        try:
            body = request.json
        except ValueError:
            return bird_error(400, "InvalidPayload", "The request body is not valid JSON")
        problems = schema_errors(body)
        if problems:
            return bird_error(422, "ValidationError", "Request body failed validation", {"errors": problems})
        call_id = parts[6]
        if self.calls[call_id] in ENDED:
            return bird_error(422, "CallEnded", f"Call {call_id} has already ended", {"status": self.calls[call_id]})
        if body.get("status") == "completed":
            self._hang_up(call_id)
        return Answer.json(202, self._call(call_id, body.get("callFlow")))

    def _hang_up(self, call_id: str) -> None:
        record = self._record(call_id)
        if self.calls[call_id] == "ongoing" and record.started_at and record.duration is None:
            record.duration = max(0, int((datetime.now(UTC) - record.started_at).total_seconds()))
        self.hung_up_at[call_id] = datetime.now(UTC)
        self.calls[call_id] = "completed"

    def _list(self, request: Recorded) -> Answer:
        params = parse_qs(request.query, keep_blank_values=True)
        single = {k: v[-1] for k, v in params.items()}
        statuses = params.get("status", [])
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            return bird_error(422, "ValidationError", "Invalid query", {"status": f"unknown value {unknown[0]!r}"})
        try:
            limit = int(single.get("limit", LIMIT_DEFAULT))
            offset = int(base64.urlsafe_b64decode(single["pageToken"]).decode()) if "pageToken" in single else 0
        except ValueError:
            return bird_error(422, "ValidationError", "Invalid query", {"limit/pageToken": "not valid"})
        if not 1 <= limit <= LIMIT_MAX:
            return bird_error(422, "ValidationError", "Invalid query", {"limit": f"must be 1..{LIMIT_MAX}"})
        if single.get("direction") not in (None, "incoming", "outgoing"):
            return bird_error(422, "ValidationError", "Invalid query", {"direction": "must be incoming or outgoing"})
        matching = [
            cid
            for cid in sorted(self.calls, key=self._newest_first)
            if (not statuses or self.calls[cid] in statuses)
            and single.get("to") in (None, self._record(cid).to_number)
            and single.get("from") in (None, self._record(cid).from_number)
            and single.get("direction") in (None, self._record(cid).direction)
        ]
        body: dict[str, Any] = {"results": [self._call(cid, None) for cid in matching[offset : offset + limit]]}
        if offset + limit < len(matching):
            body["nextPageToken"] = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
        return Answer.json(200, body)

    def _newest_first(self, call_id: str) -> tuple[float, int]:
        record = self._record(call_id)
        return (-(record.started_at or datetime.now(UTC)).timestamp(), -record.seq)

    def _call(self, call_id: str, flow: list[dict[str, Any]] | None) -> dict[str, Any]:
        record = self._record(call_id)
        status = self.calls[call_id]
        created = record.started_at or datetime.now(UTC)
        number = {"type": "pstn", "number": record.to_number}
        call: dict[str, Any] = {
            "id": call_id,
            "channelId": CHANNEL_ID,
            "from": record.from_number,
            "to": record.to_number,
            "originator": {"number": deepcopy(number) | {"number": record.from_number}},
            "receiver": {"number": deepcopy(number)},
            "direction": record.direction,
            "status": status,
            "type": "pstn",
            "createdAt": _iso(created),
            "updatedAt": _iso(created + timedelta(seconds=1)),
        }
        if status in ("ongoing", "completed"):  # answered
            call["answeredAt"] = _iso(created + timedelta(seconds=1))
        if status in ENDED:
            ended = self.hung_up_at.get(call_id) or created + timedelta(seconds=1 + (record.duration or 0))
            call["endedAt"] = _iso(ended)
        if record.duration is not None:
            call["duration"] = record.duration
        if flow is not None:
            flow_id = str(uuid.uuid4())
            call["callFlow"] = {
                "id": flow_id,
                "commands": [
                    {
                        "id": str(uuid.uuid4()),
                        "callId": call_id,
                        "callFlowId": flow_id,
                        "status": "pending",
                        "command": c["command"],
                    }
                    for c in flow
                ],
            }
        return call


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
