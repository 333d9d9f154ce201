"""POST /webhooks/{twilio,bandwidth,bird}/{account}: the providers' signed callbacks about calls
(docs/webhooks.md).

In this order, each refusal answered at once, counted in `callbot_webhooks_total` and logged as
one WARNING line (a reason written here: never the body, a secret or a signature):
1. `{account}` is a configured account of that provider (else 404);
2. the body, read as it arrives, stops at 1 MiB (413; bot/http_body, as for Slack);
3. the provider's own proof (bot/providers/callbacks.py): none → 403 `unsigned` (Bandwidth: 401
   with a Basic challenge, which its documentation says it waits for before sending the
   credentials); a wrong one → 403 `forged`; callbot lacking what the check takes (the account's
   secret, CALLBOT_PUBLIC_URL) → 403 `unconfigured`, logged once per process;
4. the provider's time (each always sends one: none, or one that is not a time, is refused too)
   more than MAX_AGE from now → 403 `stale`;
5. the callback's receipt (bot/db/webhooks.py) exists already → 403 `replayed`.
A refused callback changes nothing. One that passes is read (bot/domain/callbacks.py) and handed
to the service, and answered 204 (`accepted` or `ignored`); when callbot could not handle it (the
database down, mostly) its receipt is forgotten and the answer is 503 (`failed`), so the provider
sends it again later. One still being handled after ANSWER_WITHIN is answered 503 too and goes on:
if it then fails, its receipt is forgotten and the provider's retry is taken; if it succeeds, the
retry is refused as replayed, and nothing was lost either way (a 204 would have been the end of
it: providers do not send again what was answered 2xx). An error before it is verified answers
403 (`failed`). Nothing here answers 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot import metrics
from bot.config import Account, BandwidthAccount, BirdAccount, Settings, TwilioAccount
from bot.db import webhooks as receipts
from bot.db.session import Database
from bot.domain.callbacks import (
    CallbackEvent,
    CallbackProvider,
    CallbackResult,
    from_bandwidth,
    from_bird,
    from_twilio,
)
from bot.http_body import Unread, read_body
from bot.providers.callbacks import Delivery, Refused, Verified, verify_bandwidth, verify_bird, verify_twilio
from bot.service.core import Service

log = logging.getLogger(__name__)

MAX_AGE = timedelta(minutes=5)
"""How far from now a provider's signed time may be, either way."""
RECEIPTS_KEPT = timedelta(hours=24)
"""How long a receipt refuses the same callback again: well past MAX_AGE, after which the
callback's own time refuses it."""
PURGE_EVERY = 60.0
"""Seconds between two purges of old receipts by one process."""
ANSWER_WITHIN = 5.0
"""Seconds a verified callback waits for the service before being answered 503 anyway (it goes
on): well within the providers' own wait (Twilio, Bandwidth: 15 s)."""

DRAIN_WITHIN = 10.0
"""Seconds a stopping process waits for the callbacks it is still handling."""

_NAMES = {CallbackProvider.TWILIO: "Twilio", CallbackProvider.BANDWIDTH: "Bandwidth", CallbackProvider.BIRD: "Bird"}
_REFUSED_STATUS = {CallbackResult.CHALLENGED: 401}
_REPLAYED = Refused(CallbackResult.REPLAYED, "the same callback was received before")


class Webhooks:
    """The callback endpoints of one process: what it warned about once, when it last purged old
    receipts, and the callbacks still being handled after their answer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._warned: set[tuple[str, str, str]] = set()
        self._purged_at: float | None = None
        self._late: set[asyncio.Task[CallbackResult]] = set()

    def endpoint(self, provider: CallbackProvider) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.receive(request, provider)

        return endpoint

    async def receive(self, request: Request, provider: CallbackProvider) -> Response:
        name = str(request.path_params.get("account", ""))
        account = self.settings.accounts.get(name)
        if account is None or account.provider != provider.value:
            log.warning("refused a %s callback (HTTP 404): no %s account by that name", provider, _NAMES[provider])
            return PlainTextResponse(f"callbot has no {_NAMES[provider]} account by that name.\n", 404)
        raw = await read_body(request)
        if isinstance(raw, Unread):
            log.warning("refused a %s callback for %s (HTTP %d): %s", provider, name, raw.status, raw.reason)
            return PlainTextResponse(f"{raw.reason}\n", raw.status)
        runtime: Any = request.app.state.runtime
        now: datetime = runtime.service.now()
        try:
            checked = self._verify(account, _delivery(request, raw, self.settings.public_url, provider, name), now)
        except Exception:
            log.exception("a %s callback for %s could not be checked", provider, name)
            checked = Refused(CallbackResult.FAILED, "callbot could not check it")
        if isinstance(checked, Refused):
            return self._refuse(provider, name, checked)
        return await self._take(runtime, account, checked, now)

    def _verify(self, account: Account, delivery: Delivery, now: datetime) -> Verified | Refused:
        config = account.config
        if isinstance(config, TwilioAccount):
            checked = verify_twilio(config, delivery)
        elif isinstance(config, BandwidthAccount):
            checked = verify_bandwidth(config, delivery)
            if isinstance(checked, Refused) and checked.result is CallbackResult.UNSIGNED:
                checked = Refused(CallbackResult.CHALLENGED, "no HTTP Basic credentials yet: challenged")
        else:
            checked = verify_bird(config, delivery)
        if isinstance(checked, Verified) and abs(now - checked.sent_at) > MAX_AGE:
            return Refused(CallbackResult.STALE, "its signed time is more than five minutes away from now")
        return checked

    def _refuse(self, provider: CallbackProvider, account: str, refused: Refused) -> Response:
        status = self._note(provider, account, refused)
        headers = {"WWW-Authenticate": 'Basic realm="callbot"'} if status == 401 else None
        return PlainTextResponse(f"Refused: {refused.reason}.\n", status, headers=headers)

    def _note(self, provider: CallbackProvider, account: str, refused: Refused) -> int:
        """Counts and logs a refusal; returns its HTTP status."""
        status = _REFUSED_STATUS.get(refused.result, 403)
        metrics.WEBHOOKS.labels(provider.value, refused.result.value).inc()
        line = "refused a %s callback for %s (HTTP %d, %s): %s"
        args = (provider.value, account, status, refused.result.value, refused.reason)
        if refused.result is CallbackResult.CHALLENGED:
            log.debug(line, *args)  # every Bandwidth callback's first try
        elif refused.result is CallbackResult.UNCONFIGURED:
            # Every callback is refused until an operator sees to it: once is enough to tell.
            key = (provider.value, account, refused.reason)
            log.log(logging.DEBUG if key in self._warned else logging.WARNING, line, *args)
            self._warned.add(key)
        else:
            log.warning(line, *args)
        return status

    async def _take(self, runtime: Any, account: Account, verified: Verified, now: datetime) -> Response:
        """The receipt, then the service: answered within ANSWER_WITHIN either way."""
        work = asyncio.ensure_future(self._handle(runtime, account, verified, now))
        done, _ = await asyncio.wait({work}, timeout=ANSWER_WITHIN)
        if not done:
            # Still running: it keeps going (held here until it ends). Whether it will be taken is
            # not known yet, so the provider is asked to send it again: if this one fails, its
            # receipt is forgotten and the retry is taken; if it succeeds, the retry is a replay.
            self._late.add(work)
            work.add_done_callback(self._late.discard)
            log.warning(
                "a %s callback for %s took over %g s: answered 503, still handling it",
                account.provider,
                account.name,
                ANSWER_WITHIN,
            )
            return PlainTextResponse("callbot is still handling this callback; send it again later.\n", 503)
        if work.result() is CallbackResult.REPLAYED:
            return PlainTextResponse(f"Refused: {_REPLAYED.reason}.\n", 403)
        if work.result() is CallbackResult.FAILED:
            # Nothing was recorded (the database, mostly): the provider sends it again later.
            return PlainTextResponse("callbot could not take this callback now; send it again later.\n", 503)
        return Response(status_code=204)

    async def drain(self, within: float = DRAIN_WITHIN) -> None:
        """At shutdown, before the database closes: the callbacks still being handled after their
        answer get `within` seconds to finish. One cut short keeps its receipt, so the provider's
        retry is refused as a replay: waiting here is what keeps it."""
        if self._late:
            log.info("waiting for %d callbacks still being handled", len(self._late))
            await asyncio.wait(set(self._late), timeout=within)

    async def _handle(self, runtime: Any, account: Account, verified: Verified, now: datetime) -> CallbackResult:
        provider = account.provider
        db: Database = runtime.db
        digest = hashlib.sha256(verified.fingerprint).hexdigest()
        taken_receipt = False
        try:
            await self._purge(db, now)
            taken_receipt = await receipts.take(db, provider, account.name, digest, now)
            if not taken_receipt:
                self._note(CallbackProvider(provider), account.name, _REPLAYED)
                return CallbackResult.REPLAYED
            event = _event(account, verified, now)
            service: Service = runtime.service
            taken = event is not None and await service.confirmations.from_callback(event)
            result = CallbackResult.ACCEPTED if taken else CallbackResult.IGNORED
        except Exception:
            log.exception("a verified %s callback for %s could not be handled", provider, account.name)
            result = CallbackResult.FAILED
            if taken_receipt:
                try:
                    await receipts.release(db, provider, account.name, digest)
                except Exception:
                    log.exception("could not forget the receipt of a %s callback it could not handle", provider)
        else:
            what = f"call {event.call_id} {event.word or '(no state)'}" if event else "not about a call"
            log.info("took a %s callback for %s: %s (%s)", provider, account.name, what, result.value)
        metrics.WEBHOOKS.labels(provider, result.value).inc()
        return result

    async def _purge(self, db: Database, now: datetime) -> None:
        began = time.monotonic()
        if self._purged_at is not None and began - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = began
        try:
            await receipts.purge(db, now - RECEIPTS_KEPT)
        except Exception:
            log.exception("old webhook receipts could not be purged; will retry")


def _event(account: Account, verified: Verified, now: datetime) -> CallbackEvent | None:
    config = account.config
    if isinstance(config, TwilioAccount):
        return from_twilio(verified.content, account.name, now, account_sid=config.account_sid)
    if isinstance(config, BandwidthAccount):
        return from_bandwidth(verified.content, account.name, now, account_id=config.account_id)
    assert isinstance(config, BirdAccount)
    return from_bird(verified.content, account.name, now, channel_id=config.channel_id, sent_at=verified.sent_at)


def _delivery(
    request: Request, body: bytes, public_url: str | None, provider: CallbackProvider, account: str
) -> Delivery:
    """The URL the provider called, rebuilt from CALLBOT_PUBLIC_URL (a proxy's Host header is
    never trusted for it) and the query string exactly as it came."""
    url = None
    if public_url is not None:
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = f"{public_url}/webhooks/{provider.value}/{account}" + (f"?{query}" if query else "")
    return Delivery(url, request.headers, body)
