"""Two-person approval: Approve / Deny on a request posted in the approvers' channel. The service
decides; an approved action then runs here, and the request's message and the requester are told
how it went (bot/slack/notify.py)."""

from __future__ import annotations

import logging
import re
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.replies import Reply, Tone
from bot.service.core import Done, Service, Started
from bot.slack.drive import Silent, drive
from bot.slack.invocations import button_invocation
from bot.slack.notify import apply_update, refresh_home, run_plan
from bot.slack.views.render import APPROVE_ACTION, DENY_ACTION, message

log = logging.getLogger(__name__)

STALE = Reply(Tone.INFO, "This button is no longer active.")


def register(app: AsyncApp, service: Service) -> None:
    app.action(re.compile(rf"^({APPROVE_ACTION}|{DENY_ACTION}):"))(partial(on_decide, service=service))


async def on_decide(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    *,
    service: Service,
) -> None:
    await ack()
    approve = str(action.get("action_id") or "").startswith(APPROVE_ACTION)
    inv = button_invocation(body)
    try:
        approval_id = int(str(action.get("value") or ""))
    except ValueError:
        await respond(**message(STALE), replace_original=False)
        return
    try:
        decided = await service.decide_approval(inv, approval_id, approve=approve)
        await respond(**message(decided.reply), replace_original=False)
        if decided.update is not None:
            await apply_update(client, decided.update)
        if decided.batch is not None:
            # The requester's bulk action: its progress message goes to their channel.
            outcome: Reply | None = await run_plan(client, service, decided.batch, None)
        elif decided.step is None:
            return
        else:
            step = decided.step

            async def approved() -> Done | Started:
                return step

            # The approvers' message and the requester are told below, once the outcome is recorded.
            outcome = await drive(service, client, approved, Silent(), home_of=None)
        if outcome is None:
            return
        update = await service.approval_finished(approval_id, outcome)
        if update is not None:
            await apply_update(client, update)
            await refresh_home(client, service, update.team_id, update.requester)  # their action ran: show it
    except Exception:
        log.exception("could not handle a click on approval #%s", approval_id)
