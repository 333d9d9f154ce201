"""Twilio Programmable Voice: UpdateCall (`POST /2010-04-01/Accounts/{sid}/Calls/{CallSid}.json`).

Reference: shared/specs/twilio-*. Form-encoded, HTTP Basic (AccountSid:AuthToken, or an API key
SID:secret with the account SID still in the path). Errors come as
`{"code": 20404, "message": "…", "more_info": "…", "status": 404}`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx

from bot.actions import ActionName, CallAction, Cancel, Hangup, InlineTwiml, Redirect
from bot.config import TwilioAccount
from bot.errors import CallNotModifiable, InvalidInput, ProviderError
from bot.providers.base import ProviderClient, ProviderResult, WireRequest, json_or_none, make_http_client

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


class TwilioClient(ProviderClient):
    provider = "twilio"
    display_name = "Twilio"
    credential_hint = "its auth_token or API key"
    call_id_pattern = re.compile(r"CA[0-9a-f]{32}")
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

    def __init__(self, account_name: str, config: TwilioAccount, http: httpx.AsyncClient | None = None) -> None:
        if config.api_key_sid and config.api_key_secret:
            auth = httpx.BasicAuth(config.api_key_sid, config.api_key_secret)
        else:
            auth = httpx.BasicAuth(config.account_sid, config.auth_token or "")
        super().__init__(account_name, http or make_http_client(auth, config.timeout))
        self.config = config
        self.base_url = str(config.base_url).rstrip("/")

    def build(self, call_id: str, action: CallAction) -> WireRequest:
        self.check_call_id(call_id)
        form: list[tuple[str, str]] = []
        if isinstance(action, Hangup):
            form.append(("Status", "completed"))
        elif isinstance(action, Cancel):
            form.append(("Status", "canceled"))
        elif isinstance(action, Redirect):
            for attr, param in _REDIRECT_FIELDS:
                value = getattr(action, attr)
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
        else:  # pragma: no cover - the service checks support first
            raise InvalidInput(action.name.value, "is not supported by twilio.")
        url = f"{self.base_url}/2010-04-01/Accounts/{self.config.account_sid}/Calls/{call_id}.json"
        return WireRequest("POST", url, "Basic", form=tuple(form))

    def interpret(self, response: httpx.Response) -> ProviderResult:
        request_id = response.headers.get("Twilio-Request-Id")
        body = json_or_none(response)
        if response.is_success:
            call = body if isinstance(body, dict) else {}
            status = call.get("status") if isinstance(call.get("status"), str) else None
            summary = {k: call[k] for k in ("sid", "status", "direction", "duration") if k in call}
            return ProviderResult(response.status_code, status, request_id, summary)
        raise self._error(response, body, request_id)

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
            return CallNotModifiable(
                "twilio",
                f"The call is not in progress, so Twilio cannot change it{ref}. It has probably ended already.",
                **common,
            )
        if code in _CODE_STATUS and code is not None:
            # Twilio's code is more precise than its status (a proxy may change the status).
            response = httpx.Response(_CODE_STATUS[code], headers=response.headers)
        return self.status_error(response, common, ref, message)
