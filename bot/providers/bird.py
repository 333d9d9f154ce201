"""Bird Channels API: Update a call (`PATCH /workspaces/{ws}/channels/{ch}/calls/{callId}`).

Reference: shared/specs/bird-*. JSON, `Authorization: AccessKey <key>`. Success is 202 with the
Call object; errors are `{"code": "…", "message": "…", "details": {…}}`. The page's curl line puts
`{channelId}` where the call id belongs; the OpenAPI path (call id last) is what we send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from typing import Any, ClassVar

import httpx

from bot.actions import ActionName, ApplyFlow, CallAction, Hangup
from bot.config import BirdAccount
from bot.errors import InvalidInput, ProviderError
from bot.providers.base import ProviderClient, ProviderResult, WireRequest, json_or_none, make_http_client


class AccessKeyAuth(httpx.Auth):
    """Bird's scheme: `Authorization: AccessKey <key>`."""

    def __init__(self, key: str) -> None:
        self._header = f"AccessKey {key}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class BirdClient(ProviderClient):
    provider = "bird"
    display_name = "Bird"
    credential_hint = "its access key"
    call_id_pattern = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    call_id_example = "8d3c5b1a-0f2e-4c7d-9a6b-1e2f3a4b5c6d"
    supported: ClassVar[dict[ActionName, frozenset[str]]] = {
        ActionName.HANGUP: frozenset(),
        ActionName.FLOW: frozenset(),
    }
    alternatives: ClassVar[dict[ActionName, str]] = {
        ActionName.REDIRECT: "Bird calls follow a callFlow: use `/call flow` to replace it.",
        ActionName.TWIML: "TwiML is Twilio's; on Bird use `/call flow` with a callFlow.",
        ActionName.CANCEL: "Use `/call hangup`: Bird ends the call whatever its state.",
    }

    def __init__(self, account_name: str, config: BirdAccount, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(account_name, http or make_http_client(AccessKeyAuth(config.access_key), config.timeout))
        self.config = config
        self.base_url = str(config.base_url).rstrip("/")

    def build(self, call_id: str, action: CallAction) -> WireRequest:
        self.check_call_id(call_id)
        body: dict[str, Any]
        if isinstance(action, Hangup):
            body = {"status": "completed"}
        elif isinstance(action, ApplyFlow):
            # PatchCall takes `status` together with `callFlow` (the update page's example 1 sends both).
            body = (
                {"status": "completed", "callFlow": action.flow.to_wire()}
                if action.end_call
                else {"callFlow": action.flow.to_wire()}
            )
        else:  # pragma: no cover - the service checks support first
            raise InvalidInput(action.name.value, "is not supported by bird.")
        url = f"{self.base_url}/workspaces/{self.config.workspace_id}/channels/{self.config.channel_id}/calls/{call_id}"
        return WireRequest("PATCH", url, "AccessKey", json_body=body)

    def interpret(self, response: httpx.Response) -> ProviderResult:
        body = json_or_none(response)
        request_id = response.headers.get("X-Request-Id") or response.headers.get("Request-Id")
        if response.is_success:
            call = body if isinstance(body, dict) else {}
            status = call.get("status") if isinstance(call.get("status"), str) else None
            flow = call.get("callFlow")
            listed = flow.get("commands") if isinstance(flow, dict) else None
            commands = (
                [str(c["command"]) for c in listed if isinstance(c, dict) and c.get("command")]
                if isinstance(listed, list)
                else []
            )
            summary: dict[str, Any] = {k: call[k] for k in ("id", "status", "direction") if k in call}
            notes: tuple[str, ...] = ()
            if commands:
                summary["acceptedCommands"] = commands
                notes = (f"Bird accepted {len(commands)} command(s): {', '.join(commands)}.",)
            return ProviderResult(response.status_code, status, request_id, summary, notes)
        raise self._error(response, body, request_id)

    def _error(self, response: httpx.Response, body: Any, request_id: str | None) -> ProviderError:
        fields = body if isinstance(body, dict) else {}
        code = str(fields["code"])[:64] if fields.get("code") else None
        message = str(fields.get("message") or response.reason_phrase or "")[:300]
        detail_text = _details(fields.get("details"))
        full = f"{message} ({detail_text})" if detail_text else message
        common: dict[str, Any] = {
            "http_status": response.status_code,
            "code": code,
            "provider_message": full or None,
            "request_id": request_id,
        }
        ref = f" (Bird {code}, HTTP {response.status_code})" if code else f" (HTTP {response.status_code})"
        return self.status_error(response, common, ref, full)


def _details(details: Any) -> str:
    """Bird's `details` is free-form: show it compactly, never as a wall of JSON."""
    if not details:
        return ""
    text = details if isinstance(details, str) else json.dumps(details, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= 300 else text[:299] + "…"
