"""Bulk actions' buttons: Confirm on the count of `/call hangup-all`, Cancel on a progress message,
Resume on an interrupted batch. Decisions are the service's (bot/service/bulk/); the progress
message is bot/slack/notify.py's."""

from __future__ import annotations

import logging
import re
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.replies import BATCH_CANCEL_HANDLER, BATCH_RESUME_HANDLER, BULK_CONFIRM_HANDLER, Reply, Tone
from bot.service.core import Service
from bot.slack.invocations import button_invocation
from bot.slack.notify import answer_bulk, post_approval, run_plan, tell
from bot.slack.views.render import message

log = logging.getLogger(__name__)

LISTING = Reply(Tone.WORKING, "Listing the matching calls again…")
STALE = Reply(Tone.INFO, "This button is no longer active.", ("Run `/call batch ID` to see a batch.",))


def register(app: AsyncApp, service: Service) -> None:
    app.action(re.compile(rf"^{BULK_CONFIRM_HANDLER}:"))(partial(on_confirm, service=service))
    app.action(re.compile(rf"^{BATCH_CANCEL_HANDLER}:"))(partial(on_cancel, service=service))
    app.action(re.compile(rf"^{BATCH_RESUME_HANDLER}:"))(partial(on_resume, service=service))


async def on_confirm(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    *,
    service: Service,
) -> None:
    """Confirm on the count: checked again, then approval or the batch itself."""
    await ack()
    token = str(action.get("value") or "")
    inv = button_invocation(body, idempotency_key=f"choice:{token}")
    try:
        outcome = await service.bulk.confirmed(inv, token)
    except Exception:
        log.exception("could not confirm a bulk action")
        outcome = Reply(Tone.FAILURE, "callbot hit an internal error: nothing was ended.")
    if isinstance(outcome, Reply):
        # Sent for approval: the confirmation is spent, so it gives way to the waiting notice.
        await respond(**message(outcome), replace_original=outcome.approval is not None)
        if outcome.approval is not None:
            problem = await post_approval(client, service, outcome.approval)
            if problem is not None:
                await tell(respond, problem)
        return
    await respond(**message(LISTING), replace_original=True)
    await run_plan(client, service, outcome, respond)


async def on_cancel(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, *, service: Service
) -> None:
    await ack()
    batch_id = _batch_id(action)
    if batch_id is None:
        await tell(respond, STALE)
        return
    try:
        reply = await service.bulk.cancel(button_invocation(body), batch_id)
    except Exception:
        log.exception("could not cancel batch #%s", batch_id)
        reply = Reply(Tone.FAILURE, f"callbot could not cancel batch #{batch_id}; try `/call batch {batch_id} cancel`.")
    await tell(respond, reply)


async def on_resume(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    *,
    service: Service,
) -> None:
    await ack()
    batch_id = _batch_id(action)
    if batch_id is None:
        await tell(respond, STALE)
        return
    await answer_bulk(client, service, lambda: service.bulk.resume(button_invocation(body), batch_id), respond)


def _batch_id(action: dict[str, Any]) -> int | None:
    value = str(action.get("value") or "")
    return int(value) if value.isdigit() else None
