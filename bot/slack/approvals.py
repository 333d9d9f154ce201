"""Two-person approval in Slack: post the request to the approvers' channel, take the Approve /
Deny clicks to the service, update that message and tell the requester. Decisions are the service's."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.replies import ApprovalNotice, Reply, Tone
from bot.service.core import ApprovalUpdate, Done, Invocation, Service
from bot.slack.home import publish_home
from bot.slack.modal_io import button_invocation, deliver
from bot.slack.render import APPROVE_ACTION, DENY_ACTION, message

log = logging.getLogger(__name__)


def _posted(reply: Reply) -> dict[str, Any]:
    payload = message(reply)
    payload.pop("response_type", None)  # a real channel message, seen by every approver
    return payload


async def post_approval(client: AsyncWebClient, service: Service, notice: ApprovalNotice) -> Reply | None:
    """Post the request with its buttons; None when done, else what to tell the requester."""
    try:
        posted = await client.chat_postMessage(channel=notice.channel, **_posted(notice.message))
        await service.approval_posted(notice.approval_id, str(posted.get("ts") or ""))
    except Exception:
        log.exception("could not post approval request #%s to %s", notice.approval_id, notice.channel)
        return Reply(
            Tone.FAILURE,
            f"Could not post approval request #{notice.approval_id} to <#{notice.channel}>.",
            ("Nothing was sent. Is callbot a member of that channel? The request expires unused.",),
        )
    return None


async def apply_update(client: AsyncWebClient, update: ApprovalUpdate) -> None:
    """The approvers' message shows the decision (its buttons gone); the requester is told."""
    if update.message_ts:
        try:
            await client.chat_update(channel=update.channel, ts=update.message_ts, **_posted(update.message))
        except Exception:
            log.exception("could not update the approval message %s in %s", update.message_ts, update.channel)
    requester = Invocation("approval", update.requester, "", channel_id=update.requester_channel)
    await deliver(client, requester, update.notice)


def register_approvals(app: AsyncApp, service: Service) -> None:
    @app.action(re.compile(rf"^({APPROVE_ACTION}|{DENY_ACTION}):"))
    async def on_decide(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        approve = str(action.get("action_id") or "").startswith(APPROVE_ACTION)
        inv = button_invocation(body)
        try:
            approval_id = int(str(action.get("value") or ""))
        except ValueError:
            await respond(**message(Reply(Tone.INFO, "This button is no longer active.")), replace_original=False)
            return
        try:
            decided = await service.decide_approval(inv, approval_id, approve=approve)
            await respond(**message(decided.reply), replace_original=False)
            if decided.update is not None:
                await apply_update(client, decided.update)
            if decided.batch is not None:
                # The requester's bulk action: its progress message goes to their channel.
                # (Imported here: bot.slack.batches imports this module for post_approval.)
                from bot.slack.batches import run_plan

                outcome = await run_plan(client, service, decided.batch, None)
            elif decided.step is None:
                return
            else:
                step = decided.step
                outcome = step.reply if isinstance(step, Done) else await service.finish(step)
            update = await service.approval_finished(approval_id, outcome)
            if update is not None:
                await apply_update(client, update)
                await publish_home(client, service, update.requester)  # their action ran: show it
        except Exception:
            log.exception("could not handle a click on approval #%s", approval_id)
