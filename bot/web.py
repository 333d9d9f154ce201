"""The ASGI app: POST /slack/events (Bolt), in OAuth mode GET /slack/install and /slack/oauth_redirect,
the providers' POST /webhooks/… callbacks, GET /healthz and GET /metrics, served by uvicorn."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler, to_starlette_response
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import metrics
from bot.config import Settings
from bot.config.oauth import INSTALL_PATH, REDIRECT_PATH
from bot.domain.callbacks import CallbackProvider
from bot.domain.replies import Reply, Tone
from bot.logs import request_context
from bot.runtime import Runtime
from bot.service.core import Clock
from bot.slack import edge
from bot.slack.app import create_bolt_app
from bot.slack.notify import tell_interrupted, tell_update
from bot.slack.views.render import message
from bot.webhooks import Webhooks

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 1.5
"""Seconds GET /healthz waits for the database: within the 2 s load balancers usually allow."""
_BROKEN = Reply(Tone.FAILURE, "callbot hit an internal error; nothing was done.", ("The error is in the server log.",))


def create_web_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    approval_sweep_every: float = 30.0,
    retention_every: tuple[float, float] = (60.0, 86_400.0),
    batch_sweep_every: float = 10.0,
) -> Starlette:
    """`approval_sweep_every`: seconds between two expiry sweeps of approval requests;
    `retention_every`: (first, then every) seconds for the audit retention purge; `batch_sweep_every`:
    seconds between two looks for interrupted batches. Tests shorten them."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, clock=clock)
        app.state.runtime = runtime
        installs = runtime.installs
        assert installs is not None
        bolt = create_bolt_app(settings, runtime.service, installs)
        app.state.bolt = bolt

        sweepers = runtime.start_background(
            partial(tell_update, installs),
            partial(tell_interrupted, installs),
            approval_sweep_every=approval_sweep_every,
            retention_every=retention_every,
            batch_sweep_every=batch_sweep_every,
        )
        try:
            yield
        finally:
            for sweeper in sweepers:
                sweeper.cancel()
            await hooks.drain()
            await runtime.close()

    async def slack_events(request: Request) -> Response:
        received = await edge.receive(request, settings.slack_signing_secret)
        if isinstance(received, edge.Refusal):
            # One line, no traceback: anyone can send these, and the reason is all there is to know.
            log.warning("refused a request to /slack/events (HTTP %d): %s", received.status, received.reason)
            return received.response()
        try:
            bolt: AsyncApp = request.app.state.bolt
            answer = await bolt.async_dispatch(received.for_bolt())
        except Exception:
            log.exception("Slack request failed before any listener answered")
            answer = None
        if answer is None or answer.status >= 500:
            # Bolt answers 500 when a listener raised before its ack (logged by the listeners'
            # error handler): Slack would show only a generic failure; say something useful instead.
            return JSONResponse(message(_BROKEN))
        return to_starlette_response(answer)

    async def oauth_page(request: Request) -> Response:
        bolt: AsyncApp = request.app.state.bolt
        if bolt.oauth_flow is None:
            return PlainTextResponse(
                "OAuth mode is off: this callbot serves one workspace with SLACK_BOT_TOKEN, so there is nothing to "
                "install here. To install it on workspaces by OAuth, set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
                "instead (docs/distribution.md).\n",
                404,
            )
        try:
            return await AsyncSlackRequestHandler(bolt).handle(request)
        except Exception:
            log.exception("the OAuth page %s failed", request.url.path)
            return PlainTextResponse(
                "callbot hit an internal error; nothing was installed. The server log has it.\n", 500
            )

    async def metrics_endpoint(request: Request) -> Response:
        token = settings.metrics_token
        # Bytes: compare_digest refuses non-ASCII str, and a header is whatever a client sends.
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        if token and not hmac.compare_digest(given, f"Bearer {token}".encode()):
            return PlainTextResponse("GET /metrics needs Authorization: Bearer $CALLBOT_METRICS_TOKEN\n", 401)
        await request.app.state.runtime.refresh_gauges()
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        # Bounded: a database that accepts connections and never answers must not hang the load
        # balancer's probe (it would time out and learn nothing).
        probe = asyncio.ensure_future(request.app.state.runtime.db.ping())
        done, _ = await asyncio.wait({probe}, timeout=HEALTH_TIMEOUT)
        if not done:
            _abandon(probe)
            reason = f"the database did not answer within {HEALTH_TIMEOUT:g} s"
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        if probe.result():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "reason": "database does not answer"}, status_code=503)

    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _HideOAuthCode) for f in access_log.filters):
        access_log.addFilter(_HideOAuthCode())
    hooks = Webhooks(settings)  # docs/webhooks.md
    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route(INSTALL_PATH, oauth_page, methods=["GET"]),
            Route(REDIRECT_PATH, oauth_page, methods=["GET"]),
            *(
                Route(f"/webhooks/{provider.value}/{{account}}", hooks.endpoint(provider), methods=["POST"])
                for provider in CallbackProvider
            ),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        middleware=[Middleware(RequestContext)],
        lifespan=lifespan,
    )


class _HideOAuthCode(logging.Filter):
    """The access log line of /slack/oauth_redirect without its query: the one-time code Slack
    sends the installer back with stays out of the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        # The record is already formatted (bot/logs.py redacts each one as it is made).
        message = record.getMessage()
        if f"{REDIRECT_PATH}?" in message:
            record.msg, record.args = _OAUTH_QUERY.sub(f"{REDIRECT_PATH}?…", message), None
        return True


_OAUTH_QUERY = re.compile(re.escape(REDIRECT_PATH) + r"\?\S*")


_abandoned: set[asyncio.Future[bool]] = set()


def _abandon(probe: asyncio.Future[bool]) -> None:
    """Cancel without waiting for the cancellation: the driver cancels a query by asking the
    server, which does not answer that either. Held until it ends (the loop keeps only weak
    references to tasks), its outcome read so none is reported as never retrieved."""
    probe.cancel()
    _abandoned.add(probe)

    def forget(done: asyncio.Future[bool]) -> None:
        _abandoned.discard(done)
        if not done.cancelled():
            done.exception()

    probe.add_done_callback(forget)


class RequestContext:
    """Gives each HTTP request a request id (the caller's `X-Request-Id` when it is sane), stamped
    on every log record written while serving it and echoed in the answer; times Slack's acks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        timed = scope["path"] == "/slack/events"
        with request_context(given if _SANE_ID.fullmatch(given) else None) as rid:
            began = time.monotonic()

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    if timed:
                        metrics.ACK_SECONDS.observe(time.monotonic() - began)
                    MutableHeaders(scope=message).append("X-Request-Id", rid)
                await send(message)

            await self.app(scope, receive, send_with_id)


_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
