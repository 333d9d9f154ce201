"""Bird Channels API: Update a call (`PATCH /workspaces/{ws}/channels/{ch}/calls/{callId}`), List calls
from a channel (`GET …/calls`) and Get a call (`GET …/calls/{callId}`).

Reference: shared/specs/bird-*. JSON, `Authorization: AccessKey <key>`. Success is 202 with the
Call object; errors are `{"code": "…", "message": "…", "details": {…}}`. The page's curl line puts
`{channelId}` where the call id belongs; the OpenAPI path (call id last) is what we send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

from bot.config import BirdAccount
from bot.domain.actions import ActionName, ApplyFlow, CallAction, Hangup
from bot.domain.call_words import BIRD_FINAL, BIRD_LIVE
from bot.domain.errors import InvalidInput, ProviderError
from bot.providers.answers import (
    Malformed,
    need_dict,
    need_list,
    need_str,
    opt_int,
    opt_str,
    opt_time,
)
from bot.providers.base import (
    ProviderClient,
    ProviderResult,
    WireRequest,
)
from bot.providers.calls import (
    MAX_EMPTY_PAGES,
    CallFilter,
    CallPage,
    LiveCall,
    check_page_size,
)
from bot.providers.http import (
    json_or_none,
    make_http_client,
)

# Which Bird statuses to ask for (the `status` query parameter repeats, form/explode).
_QUERY_STATUSES = {
    None: ("accepted", "starting", "scheduled", "ringing", "ongoing"),
    "queued": ("accepted", "starting", "scheduled"),
    "ringing": ("ringing",),
    "in-progress": ("ongoing",),
}
_DIRECTIONS = {"incoming": "inbound", "outgoing": "outbound"}
_MAX_TOKEN_CHARS = 2000  # a page token travels in Slack button values (2,000 characters at most)


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
    # Call.id is `format: uuid`, whose hex digits may come in either case (RFC 9562).
    call_id_pattern = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
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
        auth = AccessKeyAuth(config.access_key)
        super().__init__(account_name, http or make_http_client(auth, config.timeout), config.timeout)
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
        request_id = self.request_id(response)
        if response.is_success:
            # PatchCall answers 202 with the Call object: anything else did not come from its API.
            call = self.success_object(response, "the call")
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
        raise self._error(response, json_or_none(response), request_id)

    # -- seeing calls --------------------------------------------------------------------------
    #
    # The page token is Bird's own `nextPageToken`, sent back as `pageToken` with the same filters.
    # Bird's "List calls from a channel" page documents `limit`, `pageToken` and the `results`
    # list; the name of the field carrying the next token is not in our specs: `nextPageToken` is
    # the convention of Bird's other list endpoints, which we assume here.

    def error_for(self, response: httpx.Response) -> ProviderError:
        return self._error(response, json_or_none(response), self.request_id(response))

    def request_id(self, response: httpx.Response) -> str | None:
        value: str | None = response.headers.get("X-Request-Id") or response.headers.get("Request-Id")
        return value

    async def list_calls(self, flt: CallFilter, *, page_token: str | None = None, page_size: int = 50) -> CallPage:
        check_page_size(page_size)
        if page_token is not None and not _usable_token(page_token):
            raise InvalidInput(
                "page token", "is not one callbot gave for this listing.", "List again from the first page."
            )
        token = page_token
        for _ in range(MAX_EMPTY_PAGES):
            body, response = await self.read_json(self._list_url(flt, page_size, token), listing=True)
            with self.parsing(response):
                page = need_dict(body, "the call list")
                calls = [self._live_call(c) for c in need_list(page.get("results"), "the call list's `results`")]
                asked, token = token, _next_token(page.get("nextPageToken"))
            found = tuple(call for call in calls if flt.matches(call))
            if found or token is None or token == asked:
                return CallPage(found, token)
        return CallPage((), token)

    async def get_call(self, call_id: str) -> LiveCall:
        self.check_call_id(call_id)
        body, response = await self.read_json(f"{self._calls_url()}/{call_id}", listing=False)
        with self.parsing(response):
            return self._live_call(body)

    def _calls_url(self) -> str:
        return f"{self.base_url}/workspaces/{self.config.workspace_id}/channels/{self.config.channel_id}/calls"

    def _list_url(self, flt: CallFilter, page_size: int, token: str | None) -> str:
        query = [("limit", str(page_size))]
        query += [("status", status) for status in _QUERY_STATUSES[flt.status]]
        if flt.to is not None:
            query.append(("to", flt.to))
        if flt.from_number is not None:
            query.append(("from", flt.from_number))
        if token is not None:
            query.append(("pageToken", token))
        return f"{self._calls_url()}?{urlencode(query)}"

    def _live_call(self, value: Any) -> LiveCall:
        call = need_dict(value, "a call")
        call_id = need_str(call, "id", "a call")
        what = f"call {call_id[:40]}"
        raw = need_str(call, "status", what)
        status = BIRD_LIVE.get(raw) or BIRD_FINAL.get(raw)
        if status is None:
            raise Malformed(f"{what} has the unknown status {raw[:40]!r}")
        direction = opt_str(call, "direction", what)
        return LiveCall(
            call_id=call_id,
            status=status,
            direction=_DIRECTIONS.get(direction, direction),
            from_number=opt_str(call, "from", what),
            to_number=opt_str(call, "to", what),
            started_at=opt_time(call, "createdAt", what),
            ended_at=opt_time(call, "endedAt", what),
            duration_s=opt_int(call, "duration", what),
            ended=raw in BIRD_FINAL,
            raw_status=raw,
        )

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


def _usable_token(token: str) -> bool:
    return 0 < len(token) <= _MAX_TOKEN_CHARS and token.isprintable()


def _next_token(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _usable_token(value):
        raise Malformed(f"the call list's `nextPageToken` is not a usable token: {value!r:.60}")
    return value
