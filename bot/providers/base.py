"""What every provider client offers the service, and the HTTP sending they share.

A client turns a provider-neutral action into its own wire request (`build`, pure, also used for
dry runs), sends it (`send`), and turns the answer into a `ProviderResult` or a `ProviderError`.
Clients never see Slack or the database.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

from bot import metrics
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
from bot.providers.answers import Malformed
from bot.providers.calls import MAX_PAGE_SIZE
from bot.providers.calls import CallFilter as CallFilter  # re-exported: where the service finds them
from bot.providers.calls import CallPage as CallPage
from bot.providers.calls import LiveCall as LiveCall
from bot.providers.http import Wire, json_or_none, retry_after, retry_delay

MAX_TRIES = 3
# The longest Retry-After one action (not a batch) waits out: a person is waiting for the answer,
# and the wait also has to fit in the account's `timeout`. Longer, and the 429 is the answer.
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


class ProviderBadAnswer(ProviderError):
    """The provider answered 2xx with something that is not what its documentation describes."""

    title = "Unreadable answer from the provider"


class ProviderBadSuccess(ProviderOutcomeUnknown):
    """An action answered 2xx with a body that is not what the provider's API returns."""

    title = "Unreadable answer from the provider"


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

    def __init__(self, account_name: str, http: httpx.AsyncClient, deadline: float = 10.0) -> None:
        """`deadline`: the account's `timeout`, for a whole request (connect, send, answer, retries)."""
        self.account_name = account_name
        self.http = http
        self.deadline = deadline

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
        """One request, within `deadline` from the first connection attempt to the last byte of the
        answer, retries included. Tried again on 429/503 (up to MAX_TRIES) when `retry_safe`, never
        before the provider's Retry-After: when that wait is too long for the deadline (or
        MAX_RETRY_WAIT) the refusal is the answer."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.deadline
        tries = MAX_TRIES if retry_safe else 1
        wire = Wire()
        try:
            async with asyncio.timeout_at(ends):
                for attempt in range(1, tries + 1):
                    wire = Wire()
                    response = await self._send_once(request, wire, reading=reading)
                    if response.status_code not in (429, 503) or attempt == tries:
                        return response
                    delay = retry_delay(response, attempt)
                    if delay > MAX_RETRY_WAIT or loop.time() + delay >= ends:
                        return response
                    metrics.PROVIDER_RETRIES.labels(provider=self.provider, status=str(response.status_code)).inc()
                    wire = Wire()  # the refused attempt changed nothing; the next has not started
                    await asyncio.sleep(delay)
        except TimeoutError:
            raise self._deadline_error(sent=wire.sent, reading=reading) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def status_error(self, response: httpx.Response, common: dict[str, Any], ref: str, detail: str) -> ProviderError:
        """The error for an HTTP status, worded the same for every provider.

        Clients handle their own error codes first and call this for the rest. `ref` names the
        provider's code or status (" (Twilio 20404)"), `detail` is the provider's own message.
        A 409 or 422 is about the call's state only when the provider says so (a 409 with no
        reason at all is a conflict with the state, as HTTP defines it); Bird answers 422 and
        Bandwidth 409 for an invalid request too, and then their own reason is the answer.
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
            refused = sentence(f"{p} refused account `{name}` access{ref}{said}")
            return ProviderAuthFailed(self.provider, f"{refused} An admin must check its permissions.", **common)
        if status == 404:
            return CallNotFound(
                self.provider,
                f"{p} has no such call on account `{name}`{ref}: the call is gone (no longer active) or the id "
                "is wrong. Check the id, and that the call belongs to this account.",
                **common,
            )
        if status in (409, 422) and (about_state(common.get("code"), detail) or (status == 409 and not detail)):
            return CallNotModifiable(
                self.provider, f"{p} cannot change the call in its current state{ref}{said}", **common
            )
        if status == 429:
            wait = retry_after(response)
            again = (
                f"{p} asked to wait {wait:g} s before trying again." if wait else "Wait a few seconds and try again."
            )
            return ProviderRateLimited(
                self.provider,
                f"{p} is rate limiting account `{name}`{ref}; nothing was changed. {again}",
                retry_after=wait,
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

    async def _send_once(self, request: WireRequest, wire: Wire, *, reading: bool = False) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": {"Accept": "application/json"}, "extensions": {"trace": wire.trace}}
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

    def _deadline_error(self, *, sent: bool, reading: bool) -> ProviderError:
        """The account's `timeout` ran out before a complete answer: `sent` says whether any of
        the request went out (then the provider may have acted on it)."""
        within = f"within {self.deadline:g} s (the account's timeout)"
        if reading:
            return ProviderUnavailable(
                self.provider,
                f"{self.display_name} did not answer callbot's read of account `{self.account_name}` {within}; "
                "reading changes nothing. Try again shortly.",
            )
        if not sent:
            return ProviderUnavailable(
                self.provider, f"Could not reach {self.display_name} {within}; nothing was sent. Try again shortly."
            )
        return ProviderOutcomeUnknown(
            self.provider,
            f"{self.display_name} did not answer in time: no complete answer {within}. The request was sent, "
            "so the call may or may not have changed: check it (`/call status`) before retrying.",
        )

    def unreadable_success(self, response: httpx.Response, problem: str) -> ProviderError:
        """A 2xx to an action whose body is not what the provider's API returns (an HTML page, an
        empty or truncated body): something answered, maybe not the provider, so nobody can say
        whether the call changed."""
        kind = response.headers.get("Content-Type", "no content type").split(";")[0].strip()
        return ProviderBadSuccess(
            self.provider,
            f"{self.display_name} answered {response.status_code} but not with what its API returns ({problem}; "
            f"{kind}). The call may or may not have changed: check it (`/call status`) before retrying.",
            http_status=response.status_code,
            provider_message=f"HTTP {response.status_code} with {problem} ({kind})",
            request_id=self.request_id(response),
        )

    def success_object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The JSON object a 2xx to an action must carry (`what`: "the call"), else unknown."""
        if not response.content.strip():
            raise self.unreadable_success(response, f"an empty body where {what} belongs")
        body = json_or_none(response)
        if body is None:
            raise self.unreadable_success(response, "a body that is not JSON")
        if not isinstance(body, dict):
            raise self.unreadable_success(response, f"JSON that is not {what}")
        return body

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


# What a provider's error code or reason says when the refusal is about the call's state (Bird
# `CallEnded`, Bandwidth "cannot be modified in its current state"), not about the request.
_ABOUT_STATE = re.compile(
    r"\b(?:state|ended|no longer active|not (?:active|answered|in[ -]progress)|cannot be modified)\b", re.IGNORECASE
)


def about_state(code: str | None, detail: str) -> bool:
    """Whether a refusal's code or reason says it is about the call's state."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])|[-_]", " ", code or "")  # CallEnded, invalid_state → words
    return bool(_ABOUT_STATE.search(words) or _ABOUT_STATE.search(detail))


def sentence(text: str) -> str:
    """`text` ending in one full stop, whether or not the provider's own words ended with one."""
    return text if text.endswith((".", "!", "?", "…")) else text + "."


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


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def provider_error_fields(error: ProviderError) -> dict[str, Any]:
    return {
        "provider_status": error.http_status,
        "error_code": error.code,
        "error_message": error.provider_message or error.message,
        "provider_request_id": error.request_id,
    }
