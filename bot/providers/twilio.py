"""Twilio Programmable Voice: UpdateCall (`POST /2010-04-01/Accounts/{sid}/Calls/{CallSid}.json`),
ListCall (`GET …/Calls.json`) and FetchCall (`GET …/Calls/{CallSid}.json`).

Reference: shared/specs/twilio-*. Form-encoded, HTTP Basic (AccountSid:AuthToken, or an API key
SID:secret with the account SID still in the path). Errors come as
`{"code": 20404, "message": "…", "more_info": "…", "status": 404}`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

from bot.config import TwilioAccount
from bot.domain.actions import ActionName, CallAction, Cancel, Hangup, InlineTwiml, Redirect
from bot.domain.call_words import TWILIO_STATUSES
from bot.domain.errors import CallNotInProgress, InvalidInput, ProviderError
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
    LIVE_STATUSES,
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

TWIML_MAX_CHARS = 4000
# Twilio error codes that mean the same as an HTTP status.
_CODE_STATUS = {"20003": 401, "20404": 404, "20429": 429}
_REDIRECT_OPTIONS = frozenset(
    {"method", "fallback", "fallback-method", "status-callback", "status-callback-method", "time-limit"}
)
# Form fields in the order Twilio documents them; dataclass attribute → Twilio parameter.
_REDIRECT_FIELDS = (
    ("url", "Url"),
    ("method", "Method"),
    ("fallback_url", "FallbackUrl"),
    ("fallback_method", "FallbackMethod"),
    ("status_callback", "StatusCallback"),
    ("status_callback_method", "StatusCallbackMethod"),
    ("time_limit", "TimeLimit"),
)
_TRUNK_DIRECTIONS = {"trunking-originating": "inbound", "trunking-terminating": "outbound"}


class TwilioClient(ProviderClient):
    provider = "twilio"
    display_name = "Twilio"
    credential_hint = "its auth_token or API key"
    call_id_pattern = re.compile(r"CA[0-9a-fA-F]{32}")  # the spec's CallSid pattern: either case
    call_id_example = "CA0123456789abcdef0123456789abcdef"
    supported: ClassVar[dict[ActionName, frozenset[str]]] = {
        ActionName.HANGUP: frozenset(),
        ActionName.CANCEL: frozenset(),
        ActionName.REDIRECT: _REDIRECT_OPTIONS,
        ActionName.TWIML: frozenset(),
    }
    alternatives: ClassVar[dict[ActionName, str]] = {
        ActionName.FLOW: "callFlows are Bird's; on Twilio use `twiml` or `redirect`.",
    }

    def __init__(
        self,
        account_name: str,
        config: TwilioAccount,
        http: httpx.AsyncClient | None = None,
        *,
        status_callback: str | None = None,
    ) -> None:
        """`status_callback`: callbot's own callback URL (POST /webhooks/twilio/<account>), sent
        as StatusCallback with a redirect or TwiML the person gave none for; None (the account's
        `status_callback` off, the default) sends none."""
        if config.api_key_sid and config.api_key_secret:
            auth = httpx.BasicAuth(config.api_key_sid, config.api_key_secret)
        else:
            auth = httpx.BasicAuth(config.account_sid, config.auth_token or "")
        super().__init__(account_name, http or make_http_client(auth, config.timeout), config.timeout)
        self.config = config
        self.base_url = str(config.base_url).rstrip("/")
        self.status_callback = status_callback

    def build(self, call_id: str, action: CallAction) -> WireRequest:
        self.check_call_id(call_id)
        form: list[tuple[str, str]] = []
        # Twilio then tells callbot how the call went on (docs/webhooks.md); a person's own
        # StatusCallback (or its method alone) is theirs to keep. Only on accounts that opt in:
        # it replaces the StatusCallback the customer's own application set on the call.
        theirs = isinstance(action, Redirect) and bool(action.status_callback or action.status_callback_method)
        ours: dict[str, str] = {}
        if self.status_callback and not theirs:
            ours = {"status_callback": self.status_callback, "status_callback_method": "POST"}
        if isinstance(action, Hangup):
            form.append(("Status", "completed"))
        elif isinstance(action, Cancel):
            form.append(("Status", "canceled"))
        elif isinstance(action, Redirect):
            for attr, param in _REDIRECT_FIELDS:
                value = ours.get(attr, getattr(action, attr))
                if value is not None:
                    form.append((param, str(value)))
        elif isinstance(action, InlineTwiml):
            if len(action.twiml) > TWIML_MAX_CHARS:
                raise InvalidInput(
                    "TwiML",
                    f"is {len(action.twiml)} characters; Twilio accepts at most {TWIML_MAX_CHARS}.",
                    "Host it at a URL and use `/call redirect` instead.",
                )
            form.append(("Twiml", action.twiml))
            form += [(param, ours[attr]) for attr, param in _REDIRECT_FIELDS if attr in ours]
        else:  # pragma: no cover - the service checks support first
            raise InvalidInput(action.name.value, "is not supported by twilio.")
        url = f"{self.base_url}/2010-04-01/Accounts/{self.config.account_sid}/Calls/{call_id}.json"
        return WireRequest("POST", url, "Basic", form=tuple(form))

    def interpret(self, response: httpx.Response) -> ProviderResult:
        request_id = response.headers.get("Twilio-Request-Id")
        if response.is_success:
            # UpdateCall answers 200 with the call resource: anything else did not come from its API.
            call = self.success_object(response, "the call")
            status = call.get("status") if isinstance(call.get("status"), str) else None
            summary: dict[str, Any] = {k: call[k] for k in ("sid", "status", "direction", "duration") if k in call}
            return ProviderResult(response.status_code, status, request_id, summary)
        raise self._error(response, json_or_none(response), request_id)

    def _error(self, response: httpx.Response, body: Any, request_id: str | None) -> ProviderError:
        fields = body if isinstance(body, dict) else {}
        raw_code = fields.get("code")
        code = str(raw_code) if isinstance(raw_code, int | str) and str(raw_code) else None
        message = str(fields.get("message") or fields.get("detail") or response.reason_phrase or "")[:500]
        common: dict[str, Any] = {
            "http_status": response.status_code,
            "code": code,
            "provider_message": message or None,
            "request_id": request_id,
        }
        ref = f" (Twilio {code})" if code else f" (HTTP {response.status_code})"
        if code == "21220":
            # Twilio answers 21220 for an ended call, and for a redirect of a queued or ringing one.
            return CallNotInProgress(
                "twilio",
                f"The call is not in progress, so Twilio cannot change it{ref}: it has either ended or not "
                "been answered yet (`/call status` shows which).",
                **common,
            )
        if code in _CODE_STATUS and code is not None:
            # Twilio's code is more precise than its status (a proxy may change the status).
            response = httpx.Response(_CODE_STATUS[code], headers=response.headers)
        return self.status_error(response, common, ref, message)

    # -- seeing calls --------------------------------------------------------------------------
    #
    # ListCall takes one `Status` per request. Without a status filter the live calls are listed
    # status by status, in the order calls move through them: queued, then ringing, then
    # in-progress. A call that moves on while we page is then seen again under its new status
    # (iter_calls drops the repeat) instead of being missed, which the reverse order would do.
    #
    # The page token is "STATUS|URI": the status being listed and Twilio's `next_page_uri` for it
    # (relative to base_url), or "STATUS|" to start that status from its first page.

    def error_for(self, response: httpx.Response) -> ProviderError:
        return self._error(response, json_or_none(response), self.request_id(response))

    def request_id(self, response: httpx.Response) -> str | None:
        value: str | None = response.headers.get("Twilio-Request-Id")
        return value

    async def list_calls(self, flt: CallFilter, *, page_token: str | None = None, page_size: int = 50) -> CallPage:
        check_page_size(page_size)
        statuses = (flt.status,) if flt.status else LIVE_STATUSES
        token = page_token
        status, uri = self._resume(token, statuses) if token else (statuses[0], "")
        for _ in range(MAX_EMPTY_PAGES):
            url = self.base_url + (uri or self._first_page_uri(status, flt, page_size))
            body, response = await self.read_json(url, listing=True)
            with self.parsing(response):
                page = need_dict(body, "the call list")
                calls = [self._live_call(c) for c in need_list(page.get("calls"), "the call list's `calls`")]
                next_uri = self._next_page_uri(page.get("next_page_uri"))
            asked, token = token, self._next_token(status, next_uri, statuses)
            found = tuple(call for call in calls if flt.matches(call))
            if found or token is None or token == asked:
                return CallPage(found, token)
            status, uri = self._resume(token, statuses)
        return CallPage((), token)

    async def get_call(self, call_id: str) -> LiveCall:
        self.check_call_id(call_id)
        body, response = await self.read_json(f"{self.base_url}{self._calls_path()}/{call_id}.json", listing=False)
        with self.parsing(response):
            return self._live_call(body)

    def _calls_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.config.account_sid}/Calls"

    def _first_page_uri(self, status: str, flt: CallFilter, page_size: int) -> str:
        query = [("Status", status)]
        if flt.to is not None:
            query.append(("To", flt.to))
        if flt.from_number is not None:
            query.append(("From", flt.from_number))
        query.append(("PageSize", str(page_size)))
        return f"{self._calls_path()}.json?{urlencode(query)}"

    def _next_page_uri(self, value: Any) -> str | None:
        """Twilio's next_page_uri, which we GET with our credentials: it must stay on our call list."""
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not value.startswith(f"{self._calls_path()}.json?"):
            raise Malformed(f"the call list's `next_page_uri` is not a page of this account's calls: {value!r:.80}")
        return value

    @staticmethod
    def _next_token(status: str, next_uri: str | None, statuses: tuple[str, ...]) -> str | None:
        if next_uri:
            return f"{status}|{next_uri}"
        following = statuses.index(status) + 1
        return f"{statuses[following]}|" if following < len(statuses) else None

    def _resume(self, token: str, statuses: tuple[str, ...]) -> tuple[str, str]:
        status, bar, uri = token.partition("|")
        if not bar or status not in statuses or (uri and not uri.startswith(f"{self._calls_path()}.json?")):
            raise InvalidInput(
                "page token", "is not one callbot gave for this listing.", "List again from the first page."
            )
        return status, uri

    def _live_call(self, value: Any) -> LiveCall:
        call = need_dict(value, "a call")
        sid = need_str(call, "sid", "a call")
        what = f"call {sid[:40]}"
        status = need_str(call, "status", what)
        if status not in TWILIO_STATUSES:
            raise Malformed(f"{what} has the unknown status {status[:40]!r}")
        direction = opt_str(call, "direction", what)
        if direction.startswith("outbound"):  # outbound-api, outbound-dial
            direction = "outbound"
        direction = _TRUNK_DIRECTIONS.get(direction, direction)
        return LiveCall(
            call_id=sid,
            status=status,
            direction=direction,
            from_number=opt_str(call, "from", what),
            to_number=opt_str(call, "to", what),
            started_at=opt_time(call, "start_time", what, rfc2822=True),
            ended_at=opt_time(call, "end_time", what, rfc2822=True),
            duration_s=opt_int(call, "duration", what),
            ended=status not in LIVE_STATUSES,
            raw_status=status,
        )
