"""The action modal: opened by `/call` alone, the Open form button or a listed call's Redirect;
reshaped when the account or the action changes; its call menu filled from the live calls; its
submission (and the confirmation of a hang-up or cancel) run through the pipeline like a typed
command."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import replace
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.models.blocks import Option
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.grammar import CallCommand
from bot.domain.replies import Reply, Tone
from bot.service.core import FoundCall, Invocation, Service
from bot.slack.announce import Thread
from bot.slack.drive import drive_modal
from bot.slack.invocations import button_invocation, modal_invocation, user_id, view_metadata
from bot.slack.views.action_form import (
    ACTION_MODAL,
    CALL_PICKER,
    CONFIRM_MODAL,
    DESTRUCTIVE,
    FormState,
    action_view,
    confirmation,
    loading_view,
    read_state,
)
from bot.slack.views.forms import FormErrors, block_for, command_from_form, command_line
from bot.slack.views.message_calls import FormOrigin, inferred_account
from bot.slack.views.render import OPEN_FORM_ACTION

log = logging.getLogger(__name__)


def register(app: AsyncApp, service: Service) -> None:
    app.action(OPEN_FORM_ACTION)(partial(on_open_form, service=service))
    for changed in ("action", "account"):
        app.action(changed)(partial(on_form_change, service=service))
    app.view(ACTION_MODAL)(partial(on_action_submit, service=service))
    app.view(CONFIRM_MODAL)(partial(on_confirm_submit, service=service))
    app.options(CALL_PICKER)(partial(on_call_options, service=service))


async def open_action_form(
    client: AsyncWebClient,
    service: Service,
    trigger_id: str,
    inv: Invocation,
    state: FormState | None = None,
    origin: FormOrigin | None = None,
) -> None:
    """`views.open` first (the trigger_id lives 3 s), then fill the form with `views.update`.
    `state`: what to fill in already (the Redirect button of a listed call). `origin`: a shortcut
    opened it (on a message: the call ids found there are its call menu, their account picked
    when their shape says which)."""
    if not trigger_id:  # Slack always sends one with a click or a shortcut; without it no modal opens
        log.info("no trigger_id: cannot open the action modal for %s", inv.user_id)
        return
    try:
        opened = await client.views_open(trigger_id=trigger_id, view=loading_view())
        view = opened.get("view") or {}
        accounts = await service.form_accounts(inv.user_id)
        state = state or FormState()
        found = _found(service, origin)
        if state.account is None and (inferred := inferred_account(accounts, found)):
            state = replace(state, account=inferred)
        await client.views_update(
            view_id=view.get("id"),
            hash=view.get("hash"),
            view=action_view(accounts, state, inv.channel_id, origin=origin, found=found),
        )
    except Exception:
        log.exception("could not open the action modal for %s", inv.user_id)


async def on_open_form(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    await ack()
    await open_action_form(client, service, str(body.get("trigger_id") or ""), button_invocation(body))


async def on_form_change(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    """Choosing the account or the action reshapes the form to what that provider supports."""
    await ack()
    view = body.get("view") or {}
    try:
        accounts = await service.form_accounts(user_id(body))
        meta = view_metadata(view)
        origin = FormOrigin.of(meta)
        found = _found(service, origin)
        updated = action_view(accounts, read_state(view), meta.get("channel"), origin=origin, found=found)
        await client.views_update(view_id=view.get("id"), hash=view.get("hash"), view=updated)
    except Exception:
        log.exception("could not update the action modal")


async def on_action_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    view = body.get("view") or {}
    state = read_state(view)
    meta = view_metadata(view)
    origin = FormOrigin.of(meta)
    inv = _from(modal_invocation(body, view, meta.get("channel")), origin)
    try:
        command = command_from_form(state)
    except FormErrors as problems:
        # Audited before answering, like every attempt; a quick local write, well within 3 s.
        await _safely(service.record_invalid(replace(inv, text=_partial_line(state)), problems.first, state.action))
        await ack(response_action="errors", errors=problems.errors)
        return
    inv = replace(inv, text=command_line(command))
    if command.action.name.value in DESTRUCTIVE and not command.dry_run:
        await ack(response_action="update", view=confirmation(command, inv.channel_id, origin))
        return
    await _run(service, client, ack, inv, command, origin)


async def on_confirm_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    view = body.get("view") or {}
    meta = view_metadata(view)
    origin = FormOrigin.of(meta)
    inv = _from(modal_invocation(body, view, meta.get("channel")), origin)
    try:
        command = command_from_form(FormState(meta.get("account"), meta.get("action"), meta.get("values") or {}))
    except FormErrors:
        await ack(response_action="clear")
        return
    await _run(service, client, ack, replace(inv, text=command_line(command)), command, origin)


async def on_call_options(ack: AsyncAck, body: dict[str, Any], *, service: Service) -> None:
    """The action form's call menu: the account's live calls matching what was typed. Any
    problem answers an empty list (logged), never an error Slack would show as a failure."""
    user = user_id(body)
    view = body.get("view") or {}
    account = read_state(view).account or view_metadata(view).get("account")
    try:
        found = await service.live.options(user, account, str(body.get("value") or ""))
    except Exception:
        log.exception("could not offer live calls to %s", user)
        found = []
    await ack(options=[Option(value=o.call_id, label=o.label).to_dict() for o in found])


async def _run(
    service: Service, client: AsyncWebClient, ack: AsyncAck, inv: Invocation, command: CallCommand, origin: FormOrigin
) -> None:
    def block(reply: Reply) -> str:
        if reply.tone is Tone.DENIED:
            return "action"
        return block_for(reply.field, command.action.name.value)

    thread = Thread(*origin.thread) if origin.thread else None
    await drive_modal(service, client, ack, inv, command, block_for=block, thread=thread)


def _from(inv: Invocation, origin: FormOrigin) -> Invocation:
    """A form a shortcut opened is audited under that shortcut's source."""
    return replace(inv, source=origin.source) if origin.source else inv


def _found(service: Service, origin: FormOrigin | None) -> list[FoundCall] | None:
    """The call ids of the message the form was opened on (None: not opened on a message)."""
    if origin is None or origin.calls is None:
        return None
    return service.calls_in(origin.calls)


def _partial_line(state: FormState) -> str:
    target = f"{state.account}:{state.get('call_id')}" if state.account else str(state.get("call_id") or "")
    return f"{state.action or '(no action)'} {target}".strip()


async def _safely(work: Awaitable[None]) -> None:
    try:
        await work
    except Exception:
        log.exception("could not audit a refused form")
