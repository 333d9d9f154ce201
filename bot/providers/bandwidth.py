"""Bandwidth Voice API v2: Update active Call (`POST /accounts/{accountId}/calls/{callId}`), Get Calls
(`GET /accounts/{accountId}/calls`) and Get Call State (`GET /accounts/{accountId}/calls/{callId}`).

Reference: shared/specs/bandwidth-*. JSON body (the `updateCall` schema), HTTP Basic with the
account's API username and password. Success is 200 with an empty body (no call object, no
request-id header); errors are voiceApiError `{"type": "…", "description": "…", "id": "…"}`.

Hangup is `{"state":"completed"}` and nothing else: every other field is "not allowed if state is
completed" (the official SDK also sends redirectMethod; we do not). Bandwidth answers 404 for a
call that is no longer active and 409 for one that cannot be modified in its current state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode, urljoin

import httpx

from bot.config import BandwidthAccount
from bot.domain.actions import ActionName, CallAction, Hangup, Redirect
from bot.domain.call_words import BANDWIDTH_LIVE, bandwidth_final
from bot.domain.errors import InvalidInput, ProviderAuthFailed, ProviderError
from bot.providers.answers import (
    Malformed,
    need_dict,
    need_list,
    need_str,
    opt_str,
    opt_time,
)
from bot.providers.base import (
    ProviderClient,
    ProviderResult,
    WireRequest,
    sentence,
)
from bot.providers.calls import (
    CallFilter,
    CallPage,
    LiveCall,
    check_page_size,
)
from bot.providers.http import (
    json_or_none,
    make_http_client,
)

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

# Get Calls has no state filter and keeps ended calls for 7 days, oldest first (at most 10,000 per
# answer). To find the live ones we read only the calls that started in the last LIST_WINDOW and
# keep the live states ourselves. A call that started earlier and is still up (a day-long
# conference) is not listed; `get_call` still finds it. Queued calls have no startTime until they
# are dequeued, so Bandwidth's minStartTime probably leaves them out: they cannot be modified
# until then anyway (the createCall page says so).
LIST_WINDOW = timedelta(hours=24)
# How many calls we ask Bandwidth for per request while looking for live ones (its pageSize,
# 1..10000; default 1000). Bigger means fewer requests over a busy day of ended calls.
SCAN_PAGE_SIZE = 1000
# At most this many Get Calls requests per list_calls (100,000 calls at SCAN_PAGE_SIZE), so a
# listing always returns; its token goes on where it stopped.
MAX_SCAN_PAGES = 100


class BandwidthClient(ProviderClient):
    provider = "bandwidth"
    display_name = "Bandwidth"
    credential_hint = "its username and password"
    # The spec gives callId no pattern (only the `c-…` example): hex digits are accepted in either case.
    call_id_pattern = re.compile(r"c-[0-9a-fA-F]{8}-[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
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

    def __init__(
        self,
        account_name: str,
        config: BandwidthAccount,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        auth = httpx.BasicAuth(config.username, config.password)
        super().__init__(account_name, http or make_http_client(auth, config.timeout), config.timeout)
        self.config = config
        self.base_url = str(config.base_url).rstrip("/")
        self.scan_page_size = SCAN_PAGE_SIZE
        self.max_scan_pages = MAX_SCAN_PAGES
        self.clock = clock or (lambda: datetime.now(UTC))

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
            # 200 with an empty body: Bandwidth reports no call state and no request id. A body that
            # is not even JSON (a proxy's HTML page) did not come from its API.
            if response.content.strip() and json_or_none(response) is None:
                raise self.unreadable_success(response, "a non-JSON body where Bandwidth sends none")
            return ProviderResult(response.status_code, None)
        raise self._error(response)

    def _error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        body = json_or_none(response)
        fields = body if isinstance(body, dict) else {}
        code = str(fields["type"])[:64] if isinstance(fields.get("type"), str) and fields["type"] else None
        if isinstance(body, dict):
            description = _text(fields.get("description") or fields.get("message"))
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
            refused = sentence(f"Bandwidth did not accept the form of callbot's request{ref}{said}")
            return ProviderError(
                "bandwidth", f"{refused} This is a callbot bug: please report it. Nothing was changed.", **common
            )
        return self.status_error(response, common, ref, description)

    # -- seeing calls --------------------------------------------------------------------------
    #
    # The page token is "OFFSET@URL": the Get Calls page to read again (the first page's URL, or
    # the one Bandwidth's `Link: <…>; rel="next"` gave) and how many of its entries were already
    # handed out. Entries never move within a page (oldest first; ended calls stay listed for 7
    # days), so the offset is stable even when calls end meanwhile.

    def error_for(self, response: httpx.Response) -> ProviderError:
        return self._error(response)

    async def list_calls(self, flt: CallFilter, *, page_token: str | None = None, page_size: int = 50) -> CallPage:
        check_page_size(page_size)
        url, offset = self._resume(page_token) if page_token else (self._first_page_url(flt), 0)
        found: list[LiveCall] = []
        for _ in range(self.max_scan_pages):
            body, response = await self.read_json(url, listing=True)
            with self.parsing(response):
                entries = need_list(body, "the call list")
                next_url = self._next_url(response)
                if next_url == url:
                    raise Malformed("the next-page link points back at the same page")
            for index in range(offset, len(entries)):
                with self.parsing(response):
                    call = self._live_call(entries[index])
                if not flt.matches(call):
                    continue
                if len(found) == page_size:  # one more than fits: the next page starts here
                    return CallPage(tuple(found), f"{index}@{url}")
                found.append(call)
            if next_url is None:
                return CallPage(tuple(found), None)
            url, offset = next_url, 0
        # A very busy window: hand back what we have; the token goes on from the next page.
        return CallPage(tuple(found), f"0@{url}")

    async def get_call(self, call_id: str) -> LiveCall:
        self.check_call_id(call_id)
        body, response = await self.read_json(f"{self._calls_url()}/{call_id}", listing=False)
        with self.parsing(response):
            return self._live_call(body)

    def _calls_url(self) -> str:
        return f"{self.base_url}/accounts/{self.config.account_id}/calls"

    def _first_page_url(self, flt: CallFilter) -> str:
        since = (self.clock() - LIST_WINDOW).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = []
        if flt.to is not None:
            query.append(("to", flt.to))
        if flt.from_number is not None:
            query.append(("from", flt.from_number))
        query += [("minStartTime", since), ("pageSize", str(self.scan_page_size))]
        return f"{self._calls_url()}?{urlencode(query)}"

    def _next_url(self, response: httpx.Response) -> str | None:
        """The `Link: <url>; rel="next"` target, which we GET with our credentials: it must stay on
        this account's call list (same scheme, host and path as ours)."""
        link = response.links.get("next", {}).get("url")
        if not link:
            return None
        url = urljoin(str(response.url), link)
        if not self._is_our_list(url):
            raise Malformed(f"the next-page link leads away from this account's call list: {link!r:.100}")
        return url

    def _is_our_list(self, url: str) -> bool:
        try:  # httpx.URL normalises case and default ports; userinfo would be a different target
            ours, theirs = httpx.URL(self._calls_url()), httpx.URL(url)
        except httpx.InvalidURL:
            return False
        where = (ours.scheme, ours.host, ours.port, ours.path, ours.userinfo)
        return (theirs.scheme, theirs.host, theirs.port, theirs.path, theirs.userinfo) == where

    def _resume(self, token: str) -> tuple[str, int]:
        offset, at, url = token.partition("@")
        if not at or not offset.isdigit() or not self._is_our_list(url):
            raise InvalidInput(
                "page token", "is not one callbot gave for this listing.", "List again from the first page."
            )
        return url, int(offset)

    def _live_call(self, value: Any) -> LiveCall:
        call = need_dict(value, "a call")
        call_id = need_str(call, "callId", "a call")
        what = f"call {call_id[:60]}"
        state = need_str(call, "state", what)
        answered = opt_time(call, "answerTime", what)
        ended_at = opt_time(call, "endTime", what)
        status = BANDWIDTH_LIVE.get(state)
        if status is None:
            # "Additional states may be added in the future": tolerate them. One with an end time
            # (or `disconnected`) has ended; any other is live, shown as in progress.
            status = _final_status(call, what, answered) if state == "disconnected" or ended_at else "in-progress"
        duration = int((ended_at - answered).total_seconds()) if ended_at and answered else None
        return LiveCall(
            call_id=call_id,
            status=status,
            direction=opt_str(call, "direction", what),
            from_number=opt_str(call, "from", what),
            to_number=opt_str(call, "to", what),
            started_at=opt_time(call, "startTime", what),
            ended_at=ended_at,
            duration_s=max(0, duration) if duration is not None else None,
            ended=status not in BANDWIDTH_LIVE.values(),
            raw_status=state,
        )


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


def _final_status(call: dict[str, Any], what: str, answered: datetime | None) -> str:
    return bandwidth_final(opt_str(call, "disconnectCause", what), answered is not None)
