"""A fake Bird Channels API (Update a call) that validates request bodies against Bird's own
OpenAPI schema (shared/specs/bird-channels-update-call.openapi.json) and answers like Bird:
202 with the Call object, or `{code, message, details}` errors."""

from __future__ import annotations

import json
import uuid
from collections import deque
from copy import deepcopy
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.fakes.server import Answer, Recorded, RecordingServer

WORKSPACE_ID = "6f0a9d1e-2b3c-4d5e-8f90-a1b2c3d4e5f6"
CHANNEL_ID = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
ACCESS_KEY = "bird-ak-5c2f8e1d9a7b3c6e"
SPEC = Path(__file__).resolve().parents[3] / "shared" / "specs" / "bird-channels-update-call.openapi.json"
ENDED = {"completed", "busy", "no-answer", "failed", "cancelled"}


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
        self.calls: dict[str, str] = {}
        self.scripted: deque[Answer] = deque()

    def add_call(self, call_id: str, status: str = "ongoing") -> str:
        self.calls[call_id] = status
        return call_id

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
        # ['', 'workspaces', ws, 'channels', ch, 'calls', id]
        if len(parts) != 7 or parts[1] != "workspaces" or parts[3] != "channels" or parts[5] != "calls":
            return bird_error(404, "NotFound", "Not found")
        if parts[2] != WORKSPACE_ID or parts[4] != CHANNEL_ID or parts[6] not in self.calls:
            return bird_error(404, "CallNotFound", "Call not found")
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
            self.calls[call_id] = "completed"
        return Answer.json(202, self._call(call_id, body.get("callFlow")))

    def _call(self, call_id: str, flow: list[dict[str, Any]] | None) -> dict[str, Any]:
        number = {"type": "pstn", "number": "+31612345678"}
        call: dict[str, Any] = {
            "id": call_id,
            "channelId": CHANNEL_ID,
            "from": "+31201234567",
            "to": "+31612345678",
            "originator": {"number": deepcopy(number) | {"number": "+31201234567"}},
            "receiver": {"number": deepcopy(number)},
            "direction": "incoming",
            "status": self.calls[call_id],
            "type": "pstn",
            "createdAt": "2026-11-24T14:36:18.575Z",
            "updatedAt": "2026-11-24T14:36:19.001Z",
        }
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
