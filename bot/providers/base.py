"""What every provider client offers the service, and the HTTP sending they share.

A client turns a provider-neutral action into its own wire request (`build`, pure, also used for
dry runs), sends it (`send`), and turns the answer into a `ProviderResult` or a `ProviderError`.
Clients never see Slack or the database.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

from bot import __version__, metrics
from bot.domain.actions import ActionName, CallAction
from bot.domain.errors import (
    CallNotFound,
    CallNotModifiable,
    InvalidInput,
    ProviderAuthFailed,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderUnavailable,
)
from bot.domain.redact import MASK, Redactor, mask_url_credentials

USER_AGENT = f"callbot/{__version__} (+https://github.com/callbot/callbot)"
MAX_TRIES = 3
MAX_RETRY_WAIT = 10.0


@dataclass(frozen=True)
class WireRequest:
    """Exactly what goes on the wire, minus the credentials (added by the client's auth)."""

    method: str
    url: str
    auth_scheme: str
    form: tuple[tuple[str, str], ...] | None = None
    json_body: Any = None
    # Body fields that hold secrets: shown and stored as *** .
    secret_fields: frozenset[str] = field(default_factory=frozenset)

    @property
    def content_type(self) -> str:
        return "application/x-www-form-urlencoded" if self.form is not None else "application/json"

    def redacted_body(self) -> Any:
        def mask(key: str, value: Any) -> Any:
            if key in self.secret_fields:
                return MASK
            return mask_url_credentials(value) if isinstance(value, str) else value

        if self.form is not None:
            return {k: mask(k, v) for k, v in self.form}
        if isinstance(self.json_body, dict):
            return {k: mask(k, v) for k, v in self.json_body.items()}
        return self.json_body

    def preview(self) -> str:
        """The request as a person reads it, with every credential masked."""
        body = self.redacted_body()
        if self.form is not None:
            text = urlencode(list(body.items()))
        else:
            text = json.dumps(body, indent=2, ensure_ascii=False)
        return "\n".join(
            [
                f"{self.method} {self.url}",
                f"Authorization: {self.auth_scheme} {MASK}",
                f"Content-Type: {self.content_type}",
                "",
                text,
            ]
        )

    def for_audit(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "body": self.redacted_body()}

    def secret_values(self) -> list[str]:
        """The secrets this request carries in its body (e.g. credentials for a redirect URL)."""
        fields = dict(self.form) if self.form is not None else self.json_body
        if not isinstance(fields, dict):
            return []
        return [str(fields[k]) for k in self.secret_fields if fields.get(k)]


@dataclass(frozen=True)
class ProviderResult:
    http_status: int
    call_status: str | None  # the provider's own word for the call's state, when it reports one
    request_id: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)  # stored in the audit row
    notes: tuple[str, ...] = ()  # extra facts worth telling the person (e.g. accepted commands)


# -- seeing calls ------------------------------------------------------------------------------

# Every provider's call states, normalised to Twilio's words (the ones the docs and people use).
LIVE_STATUSES: tuple[str, ...] = ("queued", "ringing", "in-progress")
FINAL_STATUSES: tuple[str, ...] = ("completed", "canceled", "failed", "busy", "no-answer")
# Twilio's PageSize and Bird's limit top out at 1000; one page of that is plenty for Slack.
MAX_PAGE_SIZE = 1000
# A listing that keeps getting empty pages with a next token (calls ending while we page, Twilio
# moving on to the next status) stops after this many requests and hands back the token.
MAX_EMPTY_PAGES = 5


@dataclass(frozen=True)
class LiveCall:
    """One call as a provider reports it, in words that are the same for every provider.

    `status` is one of LIVE_STATUSES, or the final word (FINAL_STATUSES) once the call has ended;
    `raw_status` keeps the provider's own word (Bird `ongoing`, Bandwidth `answered`…).
    `direction` is `inbound` or `outbound` (the provider's word when it is neither).
    `duration_s` is what the provider reports (most report it only once a call has ended): for a
    live call use `age_s`.
    """

    call_id: str
    status: str
    direction: str
    from_number: str
    to_number: str
    started_at: datetime | None
    duration_s: int | None
    ended: bool
    raw_status: str = ""

    def __post_init__(self) -> None:
        # A mismatch here is a bug in a client's mapping: fail loudly in tests, not in Slack.
        if self.status not in LIVE_STATUSES + FINAL_STATUSES:
            raise ValueError(f"LiveCall status {self.status!r} is not one of {LIVE_STATUSES + FINAL_STATUSES}")
        if self.ended != (self.status in FINAL_STATUSES):
            raise ValueError(f"LiveCall status {self.status!r} contradicts ended={self.ended}")

    def age_s(self, now: datetime) -> int | None:
        """Seconds since the call started (the duration so far of a live call)."""
        if self.started_at is None:
            return None
        return max(0, int((now - self.started_at).total_seconds()))


@dataclass(frozen=True)
class CallFilter:
    """Which live calls to list: one live status (None = every live call), and exact numbers."""

    status: str | None = None
    to: str | None = None
    from_number: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in LIVE_STATUSES:
            raise InvalidInput(
                f"status={self.status}",
                "is not a live call status.",
                f"Use one of: {', '.join(LIVE_STATUSES)} (or leave `status=` out for every live call).",
            )

    def matches(self, call: LiveCall) -> bool:
        """The status part, checked on our side too: Bandwidth has no state filter, and a call may
        change state between the provider's filter and its answer. Numbers are left to the
        provider, which knows how its own numbers may be written."""
        if call.ended:
            return False
        return self.status is None or call.status == self.status


@dataclass(frozen=True)
class CallPage:
    """Up to page_size live calls, and the opaque token of the next page (None at the end)."""

    calls: tuple[LiveCall, ...]
    next_token: str | None


class ProviderBadAnswer(ProviderError):
    """The provider answered 2xx with something that is not what its documentation describes."""

    title = "Unreadable answer from the provider"


class Malformed(ValueError):
    """Raised while reading a provider's answer; turned into a ProviderBadAnswer with context."""


class ProviderClient(ABC):
    provider: ClassVar[str]
    display_name: ClassVar[str]  # as people write it: "Twilio"
    credential_hint: ClassVar[str] = "its credentials"  # what an admin must check after a 401
    call_id_pattern: ClassVar[Any]  # compiled regex of this provider's call ids
    call_id_example: ClassVar[str]
    # For each supported action, the grammar options the provider understands.
    supported: ClassVar[Mapping[ActionName, frozenset[str]]]
    # What to use instead of an action this provider does not have.
    alternatives: ClassVar[Mapping[ActionName, str]] = {}

    def __init__(self, account_name: str, http: httpx.AsyncClient) -> None:
        self.account_name = account_name
        self.http = http

    def check_supported(self, action: ActionName, options: frozenset[str]) -> None:
        if action not in self.supported:
            offered = ", ".join(a.value for a in self.supported)
            hint = self.alternatives.get(action, "")
            raise InvalidInput(
                action.value,
                f"is not supported by {self.provider} (account `{self.account_name}`).",
                f"{hint} On {self.provider} you can: {offered}.".strip(),
            )
        unsupported = sorted(options - self.supported[action])
        if unsupported:
            allowed = ", ".join(sorted(self.supported[action])) or "none"
            raise InvalidInput(
                f"{unsupported[0]}=",
                f"is not supported by {self.provider} for `{action.value}` (account `{self.account_name}`).",
                f"Options {self.provider} accepts here: {allowed}.",
            )

    def check_call_id(self, call_id: str) -> None:
        if not self.call_id_pattern.fullmatch(call_id):
            raise InvalidInput(
                call_id,
                f"is not a {self.provider} call id.",
                f"{self.provider} call ids look like `{self.call_id_example}`.",
            )

    @abstractmethod
    def build(self, call_id: str, action: CallAction) -> WireRequest:
        """The wire request for this action; raises InvalidInput for what the provider refuses."""

    @abstractmethod
    def interpret(self, response: httpx.Response) -> ProviderResult:
        """A provider answer as a result, or raises the matching ProviderError."""

    async def send(self, request: WireRequest, *, retry_safe: bool) -> ProviderResult:
        """Sends the request. Retries 429/503 only when `retry_safe` (the action is idempotent).

        Connection failures are retried by the transport: nothing reached the provider then.
        """
        try:
            return self.interpret(await self._exchange(request, retry_safe=retry_safe))
        except ProviderError as error:
            # A provider's error text may quote what we sent: never the secrets in it.
            _scrub(error, request.secret_values())
            raise

    async def _exchange(self, request: WireRequest, *, retry_safe: bool, reading: bool = False) -> httpx.Response:
        """One request, tried again on 429/503 (up to MAX_TRIES, honouring Retry-After) when `retry_safe`."""
        tries = MAX_TRIES if retry_safe else 1
        for attempt in range(1, tries + 1):
            response = await self._send_once(request, reading=reading)
            if response.status_code in (429, 503) and attempt < tries:
                metrics.PROVIDER_RETRIES.labels(provider=self.provider, status=str(response.status_code)).inc()
                await asyncio.sleep(retry_delay(response, attempt))
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def status_error(self, response: httpx.Response, common: dict[str, Any], ref: str, detail: str) -> ProviderError:
        """The error for an HTTP status, worded the same for every provider.

        Clients handle their own error codes first and call this for the rest. `ref` names the
        provider's code or status (" (Twilio 20404)"), `detail` is the provider's own message.
        """
        status, p, name = response.status_code, self.display_name, self.account_name
        said = f": {detail}" if detail else ""
        if status == 401:
            return ProviderAuthFailed(
                self.provider,
                f"{p} rejected the credentials of account `{name}`{ref}. An admin must check {self.credential_hint}.",
                **common,
            )
        if status == 403:
            return ProviderAuthFailed(
                self.provider,
                f"{p} refused account `{name}` access{ref}{said}. An admin must check its permissions.",
                **common,
            )
        if status == 404:
            return CallNotFound(
                self.provider,
                f"{p} has no such call on account `{name}`{ref}: the call is gone (no longer active) or the id "
                "is wrong. Check the id, and that the call belongs to this account.",
                **common,
            )
        if status in (409, 422):
            return CallNotModifiable(
                self.provider, f"{p} cannot change the call in its current state{ref}{said}", **common
            )
        if status == 429:
            return ProviderRateLimited(
                self.provider,
                f"{p} is rate limiting account `{name}`{ref}; nothing was changed. Wait a few seconds and try again.",
                retry_after=_seconds(response.headers.get("Retry-After")),
                **common,
            )
        if status == 503:
            return ProviderUnavailable(
                self.provider, f"{p} is unavailable{ref}; nothing was changed. Try again shortly.", **common
            )
        if status >= 500:
            return ProviderOutcomeUnknown(
                self.provider,
                f"{p} failed with a server error{ref}. The call may or may not have changed: check it before retrying.",
                **common,
            )
        return ProviderError(self.provider, f"{p} refused the request{ref}{said}", **common)

    # -- seeing calls --------------------------------------------------------------------------

    @abstractmethod
    async def list_calls(self, flt: CallFilter, *, page_token: str | None = None, page_size: int = 50) -> CallPage:
        """One page of live calls matching `flt` (at most `page_size`); `page_token` from the last page."""

    @abstractmethod
    async def get_call(self, call_id: str) -> LiveCall:
        """The call's current state (also once it has ended, while the provider still knows it).

        Raises InvalidInput for an id of the wrong shape, CallNotFound when the provider has no such call.
        """

    @abstractmethod
    def error_for(self, response: httpx.Response) -> ProviderError:
        """The typed error for a non-2xx answer, with the provider's own code and message."""

    async def iter_calls(self, flt: CallFilter, limit: int) -> AsyncIterator[LiveCall]:
        """Live calls matching `flt`, page after page, until `limit` calls or the end.

        A call seen twice (Twilio lists one status after another, and a call may move on to the
        next status while we page) is yielded once.
        """
        if limit < 1:
            return
        seen: set[str] = set()
        token: str | None = None
        page_size = min(limit, MAX_PAGE_SIZE)
        while True:
            page = await self.list_calls(flt, page_token=token, page_size=page_size)
            for call in page.calls:
                if call.call_id in seen:
                    continue
                seen.add(call.call_id)
                yield call
                if len(seen) >= limit:
                    return
            if page.next_token is None or page.next_token == token:  # the end, or a provider going round
                return
            token = page.next_token

    async def read_json(self, url: str, *, listing: bool) -> tuple[Any, httpx.Response]:
        """GETs `url` and returns its JSON body. Retried on 429/503 like hangup: reading changes nothing.

        Non-2xx answers raise the client's typed error (`error_for`), reworded where a read differs
        from an action: no "may or may not have changed", and a 404 on a list is not an unknown call.
        """
        response = await self._exchange(WireRequest("GET", url, ""), retry_safe=True, reading=True)
        if not response.is_success:
            raise self._read_error(response, listing)
        body = json_or_none(response)
        if body is None:
            raise self.bad_answer(response, "the body is not JSON")
        return body, response

    def bad_answer(self, response: httpx.Response, problem: str) -> ProviderBadAnswer:
        kind = response.headers.get("Content-Type", "no content type").split(";")[0].strip()
        return ProviderBadAnswer(
            self.provider,
            f"{self.display_name} answered callbot's read of account `{self.account_name}` with something it "
            f"cannot use (HTTP {response.status_code}, {kind}): {problem}. Nothing was changed; try again, and "
            "report it if it persists.",
            http_status=response.status_code,
            provider_message=problem,
            request_id=self.request_id(response),
        )

    @contextmanager
    def parsing(self, response: httpx.Response) -> Iterator[None]:
        """Turns a Malformed raised while parsing `response` into a clear ProviderBadAnswer."""
        try:
            yield
        except Malformed as problem:
            raise self.bad_answer(response, str(problem)) from None

    def request_id(self, response: httpx.Response) -> str | None:
        """The provider's request id header, when it sends one."""
        return None

    def _read_error(self, response: httpx.Response, listing: bool) -> ProviderError:
        error = self.error_for(response)
        p, name, status = self.display_name, self.account_name, response.status_code
        fields = _error_fields(error)
        if listing and isinstance(error, CallNotFound):
            # A 404 on the list itself means the account's ids (or base_url) are wrong, not a call.
            return ProviderError(
                self.provider,
                f"{p} has no call list for account `{name}` (HTTP {status}). An admin must check the account's "
                "ids and base_url in the configuration.",
                **fields,
            )
        if isinstance(error, ProviderOutcomeUnknown):
            return ProviderUnavailable(
                self.provider,
                f"{p} failed with a server error (HTTP {status}) while callbot read account `{name}`; reading "
                "changes nothing. Try again shortly.",
                **fields,
            )
        return error

    async def _send_once(self, request: WireRequest, *, reading: bool = False) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": {"Accept": "application/json"}}
        if request.form is not None:
            kwargs["data"] = dict(request.form)
        elif request.json_body is not None:
            kwargs["json"] = request.json_body
        began = time.monotonic()
        status = "error"
        try:
            response = await self.http.request(request.method, request.url, **kwargs)
            status = str(response.status_code)
            return response
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderUnavailable(
                self.provider,
                f"Could not reach {self.provider} ({type(exc).__name__}); nothing was sent. Try again shortly.",
            ) from None
        except httpx.HTTPError as exc:
            if not reading:
                raise self._transport_error(exc) from None
            # A read changes nothing, so a lost answer is a plain failure, not an unknown outcome.
            raise ProviderUnavailable(
                self.provider,
                f"{self.display_name} did not answer callbot's read of account `{self.account_name}` "
                f"({type(exc).__name__}); reading changes nothing. Try again shortly.",
            ) from None
        finally:
            metrics.PROVIDER_SECONDS.labels(provider=self.provider, status=status).observe(time.monotonic() - began)

    def _transport_error(self, exc: httpx.HTTPError) -> ProviderError:
        """A request that may have reached the provider but got no usable answer."""
        if isinstance(exc, httpx.TimeoutException):
            return ProviderOutcomeUnknown(
                self.provider,
                f"{self.provider} did not answer in time ({type(exc).__name__}). The request was sent, so the "
                "call may or may not have changed: check it before retrying.",
            )
        return ProviderOutcomeUnknown(
            self.provider,
            f"The connection to {self.provider} broke ({type(exc).__name__}) after the request was sent. "
            "The call may or may not have changed: check it before retrying.",
        )

    async def aclose(self) -> None:
        await self.http.aclose()


def retry_delay(response: httpx.Response, attempt: int) -> float:
    """Retry-After (seconds or HTTP date) when given, else exponential backoff; capped."""
    header = response.headers.get("Retry-After", "").strip()
    delay: float | None = None
    if header:
        try:
            delay = float(header)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
                delay = (when - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                delay = None
    if delay is None:
        delay = 0.5 * 2 ** (attempt - 1)
    return max(0.0, min(delay, MAX_RETRY_WAIT))


def _scrub(error: ProviderError, secrets: list[str]) -> None:
    # The request's own secrets (a redirect's credentials), in every form an echo may give them.
    redactor = Redactor(secrets)
    error.message = redactor.text(error.message)
    if error.provider_message:
        error.provider_message = redactor.text(error.provider_message)
    error.args = (error.message,)


def _error_fields(error: ProviderError) -> dict[str, Any]:
    return {
        "http_status": error.http_status,
        "code": error.code,
        "provider_message": error.provider_message,
        "request_id": error.request_id,
    }


def check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page size {page_size}", f"must be between 1 and {MAX_PAGE_SIZE}.")


# Readers for provider answers: each raises Malformed naming the field, never KeyError/TypeError.


def need_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is {_kind(value)}, not an object")
    return value


def need_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise Malformed(f"{what} is {_kind(value)}, not a list")
    return value


def need_str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise Malformed(f"{what} has no `{key}`" if value is None else f"{what}'s `{key}` is {_kind(value)}")
    return value


def opt_str(obj: Mapping[str, Any], key: str, what: str) -> str:
    """An optional text field: missing or null reads as ""."""
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{what}'s `{key}` is {_kind(value)}, not text")
    return value


def opt_int(obj: Mapping[str, Any], key: str, what: str) -> int | None:
    """A count that providers send as a number or as digits in a string (Twilio's duration)."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Malformed(f"{what}'s `{key}` is {_kind(value)}, not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise Malformed(f"{what}'s `{key}` is {_kind(value)}, not a number")


def opt_time(obj: Mapping[str, Any], key: str, what: str, *, rfc2822: bool = False) -> datetime | None:
    """An ISO 8601 (or, for Twilio, RFC 2822) timestamp, as an aware UTC datetime."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Malformed(f"{what}'s `{key}` is {_kind(value)}, not a time")
    try:
        if rfc2822:
            when = email.utils.parsedate_to_datetime(value)
        else:
            when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except (TypeError, ValueError, IndexError):
        raise Malformed(f"{what}'s `{key}` is not a time: {value[:40]!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def make_http_client(auth: httpx.Auth, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        auth=auth,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        headers={"User-Agent": USER_AGENT},
        transport=httpx.AsyncHTTPTransport(retries=2),
        follow_redirects=False,
    )


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def provider_error_fields(error: ProviderError) -> dict[str, Any]:
    return {
        "provider_status": error.http_status,
        "error_code": error.code,
        "error_message": error.provider_message or error.message,
        "provider_request_id": error.request_id,
    }
