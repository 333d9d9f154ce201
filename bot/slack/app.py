"""The Bolt AsyncApp: turns Slack requests into service invocations and replies into messages.

Listeners only translate. Parsing, permissions, audit and provider calls live in the service.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.replies import Reply, Tone
from bot.service import Done, Invocation, Service, Started
from bot.slack.render import CHOICE_ACTION, message
from bot.slack.text import plain_text

log = logging.getLogger(__name__)

INTERNAL_ERROR = Reply(
    Tone.FAILURE,
    "callbot hit an internal error; nothing was sent to any provider.",
    ("The error is in the server log. Try again, or ask the people who run callbot.",),
)
STALE_BUTTON = Reply(Tone.INFO, "This button is no longer active.", ("Run the command again with `/call`.",))


def create_bolt_app(settings: Settings, service: Service) -> AsyncApp:
    """Built at start-up (never at import: a token means Slack calls), one per process."""
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=bool(settings.slack_signing_secret),
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )

    @app.command(re.compile(r"^/call"))
    async def on_call(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, request: AsyncBoltRequest) -> None:
        inv = Invocation(
            source="slash",
            user_id=str(body.get("user_id") or "unknown"),
            user_name=body.get("user_name"),
            team_id=body.get("team_id"),
            channel_id=body.get("channel_id"),
            text=plain_text(str(body.get("text") or "")),
            idempotency_key=_idempotency_key(body, request),
        )

        async def first(reply: Reply) -> None:
            await ack(**message(reply))

        await _drive(service, lambda: service.begin(inv), first, respond, replace=False)

    @app.action(re.compile(rf"^{CHOICE_ACTION}:"))
    async def on_choose_account(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        token, _, account = str(action.get("value") or "").partition("|")
        user = body.get("user") or {}
        inv = Invocation(
            source="button",
            user_id=str(user.get("id") or "unknown"),
            user_name=user.get("username") or user.get("name"),
            team_id=(body.get("team") or {}).get("id"),
            channel_id=(body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id"),
            text="",
            # One choice runs once, whichever button and however many clicks.
            idempotency_key=f"choice:{token}",
        )

        async def first(reply: Reply) -> None:
            await respond(**message(reply), replace_original=True)

        await _drive(service, lambda: service.begin_choice(inv, token, account), first, respond, replace=True)

    # Requests nothing else claims (old buttons, future views) are acknowledged, never a 404.
    @app.action(re.compile(".*"))
    async def on_unknown_action(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        try:
            await respond(**message(STALE_BUTTON), replace_original=False)
        except Exception:
            log.exception("could not answer an unknown button")

    @app.view(re.compile(".*"))
    async def on_unknown_view(ack: AsyncAck) -> None:
        await ack()

    @app.options(re.compile(".*"))
    async def on_unknown_options(ack: AsyncAck) -> None:
        await ack(options=[])

    @app.error
    async def on_error(error: Exception) -> None:
        log.error("unhandled error in a Slack listener", exc_info=error)

    return app


async def _drive(
    service: Service,
    begin: Callable[[], Awaitable[Done | Started]],
    first: Callable[[Reply], Awaitable[None]],
    respond: AsyncRespond,
    *,
    replace: bool,
) -> None:
    """Answer at once (`first`), then send the provider request and post the outcome."""
    try:
        step = await begin()
    except Exception:
        log.exception("could not start a call action")
        await first(INTERNAL_ERROR)
        return
    if isinstance(step, Done):
        await first(step.reply)
        return
    await first(step.ack)
    try:
        reply = await service.finish(step)
    except Exception:
        log.exception("provider step failed for audit #%s", step.audit_id)
        reply = Reply(Tone.UNKNOWN, "callbot hit an internal error while sending.", audit_id=step.audit_id)
    try:
        await respond(**message(reply), replace_original=replace)
    except Exception:
        log.exception("could not deliver the outcome of audit #%s to Slack", step.audit_id)


def _idempotency_key(body: dict[str, Any], request: AsyncBoltRequest) -> str:
    """Slack's trigger_id is unique per invocation; a replayed body carries the same one."""
    trigger = body.get("trigger_id")
    if trigger:
        return f"slack:{trigger}"
    return "body:" + hashlib.sha256(request.raw_body.encode("utf-8")).hexdigest()
