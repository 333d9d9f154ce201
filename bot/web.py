"""The ASGI app: POST /slack/events (Bolt) and GET /healthz, served by uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.bulk_actions import BatchNotice
from bot.config import Settings
from bot.replies import Reply, Tone
from bot.runtime import Runtime
from bot.service import ApprovalUpdate, Clock
from bot.slack.app import create_bolt_app
from bot.slack.approvals import apply_update
from bot.slack.batches import announce_interrupted
from bot.slack.render import message

log = logging.getLogger(__name__)

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
        bolt = create_bolt_app(settings, runtime.service)
        app.state.slack = AsyncSlackRequestHandler(bolt)

        async def tell(update: ApprovalUpdate) -> None:
            await apply_update(bolt.client, update)

        async def tell_batch(notice: BatchNotice) -> None:
            await announce_interrupted(bolt.client, notice)

        sweepers = runtime.start_background(
            tell,
            tell_batch,
            approval_sweep_every=approval_sweep_every,
            retention_every=retention_every,
            batch_sweep_every=batch_sweep_every,
        )
        try:
            yield
        finally:
            for sweeper in sweepers:
                sweeper.cancel()
            await runtime.close()

    async def slack_events(request: Request) -> Response:
        try:
            return await request.app.state.slack.handle(request)
        except Exception:
            # A 500 would show Slack's generic failure; say something useful instead.
            log.exception("Slack request failed before any listener answered")
            return JSONResponse(message(_BROKEN))

    async def healthz(request: Request) -> Response:
        if await request.app.state.runtime.db.ping():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "reason": "database does not answer"}, status_code=503)

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
