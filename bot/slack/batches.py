"""Bulk actions in Slack: the count's Confirm click, the progress message (posted once, then
`chat.update` about once a second), its Cancel button, and Resume. Decisions are the service's
(bot/service/bulk/actions.py); this module only carries them to and from Slack.

The progress message is a real channel message, so the people handling the incident with you see
the count go down (numbers in it are masked). When the bot cannot post in the channel it is sent
as a direct message instead; when even that fails, the summary still comes back ephemerally.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.replies import BATCH_CANCEL_HANDLER, BATCH_RESUME_HANDLER, BULK_CONFIRM_HANDLER, Reply, Tone
from bot.service.bulk.actions import BatchNotice, BatchPlan, BatchRun
from bot.service.core import Service
from bot.slack.approvals import post_approval
from bot.slack.home import publish_home
from bot.slack.modal_io import button_invocation
from bot.slack.render import message

log = logging.getLogger(__name__)

UPDATE_EVERY = 1.0  # seconds: the progress message changes at most this often
LISTING = Reply(Tone.WORKING, "Listing the matching calls again…")
STALE = Reply(Tone.INFO, "This button is no longer active.", ("Run `/call batch ID` to see a batch.",))


def _posted(reply: Reply) -> dict[str, Any]:
    payload = message(reply)
    payload.pop("response_type", None)
    return payload


async def run_plan(client: AsyncWebClient, service: Service, plan: BatchPlan, respond: AsyncRespond | None) -> Reply:
    """A confirmed (or approved) hang-up: list, create the batch, run it with its progress message.
    Returns the summary (or why nothing ran)."""
    try:
        started = await service.bulk.start(plan)
    except Exception:
        log.exception("could not start a bulk action")
        started = Reply(Tone.FAILURE, "callbot hit an internal error before any call was ended.")
    if isinstance(started, Reply):
        await _tell(respond, started)
        return started
    return await drive(client, service, started, respond)


async def drive(client: AsyncWebClient, service: Service, run: BatchRun, respond: AsyncRespond | None) -> Reply:
    """Post the progress message, run the batch (updating it), end with the summary in it."""
    first = service.bulk.progress(run, run.start)
    where = await _post(client, service, run, first)
    last = time.monotonic()

    async def report(reply: Reply) -> None:
        nonlocal last
        if where is not None:
            last = time.monotonic()
            await client.chat_update(channel=where[0], ts=where[1], **_posted(reply))

    summary = await service.bulk.run(run, report)
    delivered = False
    if where is not None:
        # The summary is an update of the same message: it too waits for a second since the last.
        await asyncio.sleep(max(0.0, UPDATE_EVERY - (time.monotonic() - last)))
        try:
            await client.chat_update(channel=where[0], ts=where[1], **_posted(summary))
            delivered = True
        except Exception:
            log.exception("could not put the summary of batch #%s in its message", run.batch_id)
    if not delivered:
        await _tell(respond, summary)
    await publish_home(client, service, run.inv.user_id)
    return summary


async def _post(client: AsyncWebClient, service: Service, run: BatchRun, first: Reply) -> tuple[str, str] | None:
    """In the channel the command came from; else a DM to the person who started it."""
    for channel in filter(None, (run.channel, run.inv.user_id)):
        try:
            posted = await client.chat_postMessage(channel=channel, **_posted(first))
        except Exception as error:
            log.info("could not post the progress of batch #%s in %s (%s)", run.batch_id, channel, error)
            continue
        where = (str(posted.get("channel") or channel), str(posted.get("ts") or ""))
        try:
            await service.bulk.message_posted(run.batch_id, *where)
        except Exception:
            log.exception("could not record where batch #%s reports", run.batch_id)
        return where
    return None


async def _tell(respond: AsyncRespond | None, reply: Reply) -> None:
    if respond is None:
        return
    try:
        await respond(**message(reply), replace_original=False)
    except Exception:
        log.exception("could not answer a bulk action")


async def announce_interrupted(client: AsyncWebClient, notice: BatchNotice) -> None:
    """The sweep found a batch whose process died: its progress message says so, with Resume."""
    if not (notice.channel and notice.message_ts):
        return
    await client.chat_update(channel=notice.channel, ts=notice.message_ts, **_posted(notice.reply))


def register_batches(app: AsyncApp, service: Service) -> None:
    @app.action(re.compile(rf"^{BULK_CONFIRM_HANDLER}:"))
    async def on_confirm(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
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
            outcome = service._safe(outcome)
            # Sent for approval: the confirmation is spent, so it gives way to the waiting notice.
            await respond(**message(outcome), replace_original=outcome.approval is not None)
            if outcome.approval is not None:
                problem = await post_approval(client, service, outcome.approval)
                if problem is not None:
                    await _tell(respond, problem)
            return
        await respond(**message(LISTING), replace_original=True)
        await run_plan(client, service, outcome, respond)

    @app.action(re.compile(rf"^{BATCH_CANCEL_HANDLER}:"))
    async def on_cancel(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        batch_id = _batch_id(action)
        if batch_id is None:
            await _tell(respond, STALE)
            return
        try:
            reply = await service.bulk.cancel(button_invocation(body), batch_id)
        except Exception:
            log.exception("could not cancel batch #%s", batch_id)
            reply = Reply(
                Tone.FAILURE, f"callbot could not cancel batch #{batch_id}; try `/call batch {batch_id} cancel`."
            )
        await _tell(respond, service._safe(reply))

    @app.action(re.compile(rf"^{BATCH_RESUME_HANDLER}:"))
    async def on_resume(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        batch_id = _batch_id(action)
        if batch_id is None:
            await _tell(respond, STALE)
            return
        await answer(client, service, lambda: service.bulk.resume(button_invocation(body), batch_id), respond)


async def answer(
    client: AsyncWebClient, service: Service, work: Callable[[], Awaitable[Reply | BatchRun]], respond: AsyncRespond
) -> None:
    """A typed `/call hangup-all` / `/call batch …` (after the acknowledgement), or Resume: the
    service's reply ephemerally, or a batch to run with its progress message."""
    try:
        outcome = await work()
    except Exception:
        log.exception("a bulk command failed")
        outcome = Reply(Tone.FAILURE, "callbot hit an internal error; nothing was ended.", ("See the server log.",))
    if isinstance(outcome, BatchRun):
        await _tell(respond, service.bulk.resuming(outcome))
        await drive(client, service, outcome, respond)
        return
    await _tell(respond, service._safe(outcome))


def _batch_id(action: dict[str, Any]) -> int | None:
    value = str(action.get("value") or "")
    return int(value) if value.isdigit() else None
