"""Bandwidth Voice API v2: Update active Call (`POST /accounts/{accountId}/calls/{callId}`).

Reference: shared/specs/bandwidth-*. JSON body (the `updateCall` schema), HTTP Basic with the
account's API username and password. Success is 200 with an empty body (no call object, no
request-id header); errors are voiceApiError `{"type": "…", "description": "…", "id": "…"}`.

Hangup is `{"state":"completed"}` and nothing else: every other field is "not allowed if state is
completed" (the official SDK also sends redirectMethod; we do not). Bandwidth answers 404 for a
call that is no longer active and 409 for one that cannot be modified in its current state.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx

from bot.actions import ActionName, CallAction, Hangup, Redirect
from bot.config import BandwidthAccount
from bot.errors import InvalidInput, ProviderAuthFailed, ProviderError
from bot.providers.base import ProviderClient, ProviderResult, WireRequest, json_or_none, make_http_client

# The update-call page: "Max length 256 characters" (the OpenAPI document says 4096; the stricter wins).
TAG_MAX_CHARS = 256
CREDENTIAL_MAX_CHARS = 1024  # updateCall: username/password/fallbackUsername/fallbackPassword maxLength
_REDIRECT_OPTIONS = frozenset(
    {"method", "fallback", "fallback-method", "tag", "username", "password", "fallback-username", "fallback-password"}
)
# updateCall fields in a stable order; dataclass attribute → Bandwidth field (after state).
_REDIRECT_FIELDS = (
    ("url", "redirectUrl"),
    ("method", "redirectMethod"),
    ("fallback_url", "redirectFallbackUrl"),
    ("fallback_method", "redirectFallbackMethod"),
    ("username", "username"),
    ("password", "password"),
    ("fallback_username", "fallbackUsername"),
    ("fallback_password", "fallbackPassword"),
    ("tag", "tag"),
)
_SECRET_FIELDS = frozenset({"password", "fallbackPassword"})
# (user option, password option, what the pair authenticates against)
_CREDENTIAL_PAIRS = (
    ("username", "password", "the redirect URL"),
    ("fallback_username", "fallback_password", "the fallback URL"),
)


class BandwidthClient(ProviderClient):
    provider = "bandwidth"
    display_name = "Bandwidth"
    credential_hint = "its username and password"
    call_id_pattern = re.compile(r"c-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    call_id_example = "c-15ac29a2-1331029c-2cb0-4a07-b215-b22865662d85"
    supported: ClassVar[dict[ActionName, frozenset[str]]] = {
        ActionName.HANGUP: frozenset(),
        ActionName.REDIRECT: _REDIRECT_OPTIONS,
    }
    alternatives: ClassVar[dict[ActionName, str]] = {
        ActionName.CANCEL: "Use `/call hangup`: on Bandwidth `completed` also cancels an unanswered call.",
        ActionName.TWIML: "TwiML is Twilio's; on Bandwidth host BXML at a URL and use `/call redirect`.",
        ActionName.FLOW: "callFlows are Bird's; on Bandwidth use `redirect` to a BXML URL.",
    }

    def __init__(self, account_name: str, config: BandwidthAccount, http: httpx.AsyncClient | None = None) -> None:
        auth = httpx.BasicAuth(config.username, config.password)
        super().__init__(account_name, http or make_http_client(auth, config.timeout))
        self.config = config
        self.base_url = str(config.base_url).rstrip("/")

    def build(self, call_id: str, action: CallAction) -> WireRequest:
        self.check_call_id(call_id)
        body: dict[str, Any]
        if isinstance(action, Hangup):
            body = {"state": "completed"}
        elif isinstance(action, Redirect):
            body = _redirect_body(action)
        else:  # pragma: no cover - the service checks support first
            raise InvalidInput(action.name.value, "is not supported by bandwidth.")
        url = f"{self.base_url}/accounts/{self.config.account_id}/calls/{call_id}"
        return WireRequest("POST", url, "Basic", json_body=body, secret_fields=_SECRET_FIELDS)

    def interpret(self, response: httpx.Response) -> ProviderResult:
        if response.is_success:
            # 200 with an empty body: Bandwidth reports no call state and no request id.
            return ProviderResult(response.status_code, None)
        raise self._error(response)

    def _error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        body = json_or_none(response)
        fields = body if isinstance(body, dict) else {}
        code = str(fields["type"])[:64] if isinstance(fields.get("type"), str) and fields["type"] else None
        if isinstance(body, dict):
            description = _text(fields.get("description"))
        else:  # not JSON (a proxy's page, plain text) or JSON that is not a voiceApiError
            description = _plain_body(response) if body is None else ""
        error_id = fields.get("id")
        common: dict[str, Any] = {
            "http_status": status,
            "code": code,
            "provider_message": description or response.reason_phrase or None,
            "request_id": str(error_id)[:128] if isinstance(error_id, str | int) and str(error_id) else None,
        }
        ref = f" (HTTP {status})"  # the voiceApiError `type` is kept as the audit row's error_code
        said = f": {description}" if description else ""
        if status == 403:
            return ProviderAuthFailed(
                "bandwidth",
                f"Bandwidth accepted the credentials of account `{self.account_name}` but they lack permission for "
                f"Bandwidth account {self.config.account_id}{ref}. An admin must give that API user "
                "Voice access to this account.",
                **common,
            )
        if status in (405, 415):
            return ProviderError(
                "bandwidth",
                f"Bandwidth did not accept the form of callbot's request{ref}{said}. "
                "This is a callbot bug: please report it. Nothing was changed.",
                **common,
            )
        return self.status_error(response, common, ref, description)


def _redirect_body(action: Redirect) -> dict[str, Any]:
    if action.tag is not None and len(action.tag) > TAG_MAX_CHARS:
        raise InvalidInput(
            "tag=",
            f"is {len(action.tag)} characters; Bandwidth accepts at most {TAG_MAX_CHARS}.",
            'Shorten it (`tag=""` clears the tag).',
        )
    for user_attr, password_attr, target in _CREDENTIAL_PAIRS:
        user_option, password_option = user_attr.replace("_", "-"), password_attr.replace("_", "-")
        user, password = getattr(action, user_attr), getattr(action, password_attr)
        for option, value in ((user_option, user), (password_option, password)):
            if value is not None and not value:
                raise InvalidInput(f"{option}=", "is empty.", f"Give a value, or leave `{option}=` out.")
            if value is not None and len(value) > CREDENTIAL_MAX_CHARS:
                raise InvalidInput(
                    f"{option}=", f"is longer than the {CREDENTIAL_MAX_CHARS} characters Bandwidth accepts."
                )
        if (user is None) != (password is None):
            given, missing = (user_option, password_option) if password is None else (password_option, user_option)
            raise InvalidInput(
                f"{given}=",
                f"needs `{missing}=` too: Bandwidth sends them to {target} as HTTP authentication (Basic), "
                "which needs both a username and a password.",
                f"Add `{missing}=` with a value, or leave both out.",
            )
    if action.fallback_url is None:
        for option, value in (
            ("fallback-method", action.fallback_method),
            ("fallback-username", action.fallback_username),
        ):
            if value is not None:
                raise InvalidInput(
                    f"{option}=",
                    "only applies to the fallback URL, and none is given.",
                    "Add `fallback=URL`, or leave it out.",
                )
    body: dict[str, Any] = {"state": "active"}
    for attr, name in _REDIRECT_FIELDS:
        value = getattr(action, attr)
        if value is not None:  # tag="" is kept: it clears the call's tag
            body[name] = value
    return body


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:299] + "…"


def _plain_body(response: httpx.Response) -> str:
    """A non-JSON error body: short plain text is worth showing; HTML pages and binary are not."""
    try:
        text = " ".join(response.content.decode("utf-8").split())
    except UnicodeDecodeError:
        return ""
    if not text or text.startswith("<") or len(text) > 300 or not text.isprintable():
        return ""
    return text
