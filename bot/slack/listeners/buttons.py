"""Buttons on callbot's own messages: a stored command (an account picked for an ambiguous call id,
a confirmation, Hang up on a listed call), Cancel on a confirmation, and a listed call's Redirect,
Flow and More."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.actions import CallTarget
from bot.domain.errors import InvalidInput
from bot.domain.replies import Reply, Tone
from bot.service.core import Service
from bot.slack.drive import Ephemeral, drive, reply_after_ack
from bot.slack.invocations import button_invocation
from bot.slack.listeners.action_form import open_action_form
from bot.slack.listeners.flow_builder import open_builder
from bot.slack.views.action_form import FormState
from bot.slack.views.render import (
    CHOICE_ACTION,
    DISMISS_ACTION,
    LIVE_FLOW_ACTION,
    LIVE_HANGUP_ACTION,
    LIVE_MORE_ACTION,
    LIVE_REDIRECT_ACTION,
    message,
)

log = logging.getLogger(__name__)

STALE_CHOICE = Reply(Tone.INFO, "This choice has expired or was already used.", ("Run the command again.",))


def register(app: AsyncApp, service: Service) -> None:
    for stored in (LIVE_HANGUP_ACTION, CHOICE_ACTION):
        app.action(re.compile(rf"^{stored}:"))(partial(on_stored_command, service=service))
    app.action(re.compile(rf"^{DISMISS_ACTION}:"))(partial(on_dismiss_choice, service=service))
    app.action(re.compile(rf"^{LIVE_REDIRECT_ACTION}:"))(partial(on_live_redirect, service=service))
    app.action(re.compile(rf"^{LIVE_FLOW_ACTION}:"))(partial(on_live_flow, service=service))
    app.action(re.compile(rf"^{LIVE_MORE_ACTION}:"))(partial(on_live_more, service=service))


async def on_stored_command(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    *,
    service: Service,
) -> None:
    """A button that runs a stored command once, whichever button and however many clicks:
    an account picked for an ambiguous call id (the choice gives way to the outcome), or Hang up
    on a listed call (the stored `/call hangup ACCOUNT:CALL`; the listing stays). Either way the
    whole pipeline: permission, the account's confirmation, approval, audit."""
    await ack()
    token, _, account = str(action.get("value") or "").partition("|")
    inv = button_invocation(body, idempotency_key=f"choice:{token}")
    in_place = str(action.get("action_id") or "").startswith(f"{CHOICE_ACTION}:")

    async def first(reply: Reply) -> None:
        await respond(**message(reply), replace_original=in_place)

    answer = Ephemeral(first, respond, replace=in_place)
    await drive(service, client, lambda: service.begin_choice(inv, token, account), answer, home_of=inv)


async def on_dismiss_choice(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, *, service: Service
) -> None:
    """Cancel on a confirmation: drop the stored command; nothing is sent, nothing audited."""
    await ack()
    token = str(action.get("value") or "").partition("|")[0]
    inv = button_invocation(body)
    try:
        reply = await service.dismiss_choice(inv.team, inv.user_id, token)
        if reply is None:  # not this person's button, or already used: leave the message alone
            refused = await service.refuse_foreign_choice(replace(inv, response_url=None), token)
            await respond(**message(refused or STALE_CHOICE), replace_original=False)
        else:
            await respond(**message(reply), replace_original=True)
    except Exception:
        log.exception("could not cancel a confirmation")


async def on_live_redirect(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, *, service: Service
) -> None:
    """Redirect on a listed call: the action form, with the account, the call and `redirect` filled in."""
    await ack()
    target = _target(action)
    if target is None:
        return
    state = FormState(target.account, "redirect", {"call_id": target.call_id})
    await open_action_form(client, service, str(body.get("trigger_id") or ""), button_invocation(body), state)


async def on_live_flow(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, *, service: Service
) -> None:
    """Flow on a listed Bird call: the callFlow builder for it (it checks `flow` itself)."""
    await ack()
    target = _target(action)
    if target is None:
        return
    inv = replace(button_invocation(body), text=f"flow {target.display()}")
    await open_builder(client, service, inv, target, trigger_id=str(body.get("trigger_id") or ""))


async def on_live_more(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, *, service: Service
) -> None:
    """More: the next page, as a new message (the buttons of the page before keep working)."""
    await ack()
    value = str(action.get("value") or "")
    await reply_after_ack(lambda: service.live.more(button_invocation(body), value), respond)


def _target(action: dict[str, Any]) -> CallTarget | None:
    """A listed call's button value, `account:call-id`; None (logged) when it is not one."""
    try:
        return CallTarget.parse(str(action.get("value") or ""))
    except InvalidInput:
        log.warning("a live-call button carried no call: %r", action.get("value"))
        return None
