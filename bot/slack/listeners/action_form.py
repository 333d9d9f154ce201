"""The action modal: opened by `/call` alone, the Open form button or a listed call's Redirect;
reshaped when the account or the action changes; its call menu filled from the live calls, and its
account and saved-flow menus, when they are type-aheads (above 100 choices), from what the person
may use; its submission (and the confirmation of a hang-up or cancel) run through the pipeline
like a typed command."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import replace
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Option
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.flows import LibraryEntry
from bot.domain.grammar import CallCommand
from bot.domain.replies import Reply, Tone
from bot.service.core import FormAccount, FoundCall, Invocation, Service
from bot.slack.announce import Thread
from bot.slack.drive import Modal, drive, drive_modal
from bot.slack.invocations import button_invocation, modal_invocation, user_id, view_metadata, workspace
from bot.slack.views.action_form import (
    ACCOUNT_MENU,
    ACTION_MODAL,
    CALL_PICKER,
    CONFIRM_MODAL,
    DESTRUCTIVE,
    FLOW_MENU,
    FormState,
    account_options,
    action_view,
    confirmation,
    flow_options,
    loading_view,
    read_state,
    unavailable_view,
)
from bot.slack.views.forms import (
    FormErrors,
    block_for,
    command_from_form,
    command_line,
    saved_flow_from_form,
    saved_flow_line,
)
from bot.slack.views.menus import MENU_LIMIT, capped, narrowed
from bot.slack.views.message_calls import FormOrigin, inferred_account
from bot.slack.views.render import OPEN_FORM_ACTION

log = logging.getLogger(__name__)


def register(app: AsyncApp, service: Service) -> None:
    app.action(OPEN_FORM_ACTION)(partial(on_open_form, service=service))
    for changed in ("action", ACCOUNT_MENU):
        app.action(changed)(partial(on_form_change, service=service))
    app.view(ACTION_MODAL)(partial(on_action_submit, service=service))
    app.view(CONFIRM_MODAL)(partial(on_confirm_submit, service=service))
    app.options(CALL_PICKER)(partial(on_call_options, service=service))
    app.options(ACCOUNT_MENU)(partial(on_account_options, service=service))
    app.options(FLOW_MENU)(partial(on_flow_options, service=service))


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
    view: dict[str, Any] = {}
    try:
        opened = await client.views_open(trigger_id=trigger_id, view=loading_view())
        view = opened.get("view") or {}
        accounts = await service.form_accounts(inv.team, inv.user_id)
        state = state or FormState()
        found = _found(service, inv.team, origin)
        if state.account is None and (inferred := inferred_account(accounts, found)):
            state = replace(state, account=inferred)
        flows = await _flows(service, inv.team, inv.user_id, state)
        await client.views_update(
            view_id=view.get("id"),
            hash=view.get("hash"),
            view=action_view(accounts, state, inv.channel_id, origin=origin, found=found, flows=flows),
        )
    except Exception as error:
        log.exception("could not open the action modal for %s", inv.user_id)
        await _unavailable(client, view.get("id"), error)


async def on_open_form(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    await ack()
    await open_action_form(client, service, str(body.get("trigger_id") or ""), button_invocation(body))


async def on_form_change(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    """Choosing the account or the action reshapes the form to what that provider supports."""
    await ack()
    view = body.get("view") or {}
    try:
        team = workspace(body)
        accounts = await service.form_accounts(team, user_id(body))
        meta = view_metadata(view)
        origin = FormOrigin.of(meta)
        found = _found(service, team, origin)
        state = read_state(view)
        flows = await _flows(service, team, user_id(body), state)
        updated = action_view(accounts, state, meta.get("channel"), origin=origin, found=found, flows=flows)
        await client.views_update(view_id=view.get("id"), hash=view.get("hash"), view=updated)
    except Exception as error:
        log.exception("could not update the action modal")
        await _unavailable(client, view.get("id"), error)


async def on_action_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    view = body.get("view") or {}
    state = read_state(view)
    meta = view_metadata(view)
    origin = FormOrigin.of(meta)
    inv = _from(modal_invocation(body, view, meta.get("channel")), origin)
    if state.action == "flow":
        await _run_saved_flow(service, client, ack, inv, state, view, origin)
        return
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
        found = await service.live.options(workspace(body), user, account, str(body.get("value") or ""))
    except Exception:
        log.exception("could not offer live calls to %s", user)
        found = []
    options = [Option(value=o.call_id, label=o.label) for o in found]
    # The live calls are read MENU_LIMIT at most: a full menu may leave some out.
    heading = f"The first {MENU_LIMIT} live calls: type digits or an id to narrow"
    await ack(**capped(options, len(options) >= MENU_LIMIT, heading))


async def on_account_options(ack: AsyncAck, body: dict[str, Any], *, service: Service) -> None:
    """The account menu as a type-ahead (above 100 accounts): the accounts this person may act on
    whose name has what was typed."""
    try:
        accounts = await service.form_accounts(workspace(body), user_id(body))
    except Exception:
        log.exception("could not offer accounts to %s", user_id(body))
        accounts = []
    await ack(**narrowed(account_options(accounts), str(body.get("value") or ""), "accounts"))


async def on_flow_options(ack: AsyncAck, body: dict[str, Any], *, service: Service) -> None:
    """The saved-flow menu as a type-ahead (above 100 saved flows): offered only to someone who may
    apply a callFlow on the form's account, as the menu itself is."""
    user = user_id(body)
    view = body.get("view") or {}
    account = read_state(view).account or view_metadata(view).get("account")
    try:
        team = workspace(body)
        accounts = await service.form_accounts(team, user)
        flows = await service.form_flows(team, user) if _may_flow(accounts, account) else []
    except Exception:
        log.exception("could not offer saved flows to %s", user)
        flows = []
    await ack(**narrowed(flow_options(flows), str(body.get("value") or ""), "saved flows"))


async def _run(
    service: Service, client: AsyncWebClient, ack: AsyncAck, inv: Invocation, command: CallCommand, origin: FormOrigin
) -> None:
    def block(reply: Reply) -> str:
        if reply.tone is Tone.DENIED:
            return "action"
        return block_for(reply.field, command.action.name.value)

    thread = Thread(*origin.thread) if origin.thread else None
    await drive_modal(service, client, ack, inv, command, block_for=block, thread=thread)


async def _run_saved_flow(
    service: Service,
    client: AsyncWebClient,
    ack: AsyncAck,
    inv: Invocation,
    state: FormState,
    view: dict[str, Any],
    origin: FormOrigin,
) -> None:
    """`flow` submitted with a saved flow: `/call flow ACCOUNT:CALL NAME`, which shows the flow with
    an Apply button (a dry run shows the request). Refusals stay in the modal."""
    flow_block = FLOW_MENU if _has_input(view, FLOW_MENU) else "action"
    try:
        command = saved_flow_from_form(state, flow_block)
    except FormErrors as problems:
        await _safely(service.record_invalid(replace(inv, text=_partial_line(state)), problems.first, "flow"))
        await ack(response_action="errors", errors=problems.errors)
        return
    inv = replace(inv, text=saved_flow_line(command))

    def block(reply: Reply) -> str:
        if reply.tone is Tone.DENIED:
            return "action"
        if reply.field and reply.field.partition("@")[0] == command.ref.name:
            return flow_block
        return block_for(reply.field, "flow")

    thread = Thread(*origin.thread) if origin.thread else None
    answer = Modal(ack, client, inv, block, thread=thread)
    await drive(service, client, lambda: service.begin_parsed(inv, command), answer, home_of=inv)


async def _unavailable(client: AsyncWebClient, view_id: str | None, error: Exception) -> None:
    """The modal says the form could not be shown, rather than staying as it was ("Loading…")."""
    refused = isinstance(error, SlackApiError) and error.response.get("error")
    if not view_id or refused == "hash_conflict":  # the person changed it meanwhile: theirs stands
        return
    why = f"Slack refused it: `{refused}`" if refused else "callbot hit an internal error; it is in the server log"
    try:
        await client.views_update(view_id=view_id, view=unavailable_view(why))
    except Exception:
        log.exception("could not tell that the action modal could not be shown")


def _has_input(view: dict[str, Any], block_id: str) -> bool:
    """Whether the submitted view has that input block (Slack sends every input's state, empty too)."""
    values = (view.get("state") or {}).get("values") or {}
    blocks = view.get("blocks") or []
    return block_id in values or any(isinstance(b, dict) and b.get("block_id") == block_id for b in blocks)


async def _flows(service: Service, team: str, user: str, state: FormState) -> list[LibraryEntry]:
    """The saved flows, when the form is to offer them (the action is `flow`)."""
    return await service.form_flows(team, user) if state.action == "flow" else []


def _may_flow(accounts: list[FormAccount], account: str | None) -> bool:
    return any(a.name == account and "flow" in a.actions for a in accounts)


def _from(inv: Invocation, origin: FormOrigin) -> Invocation:
    """A form a shortcut opened is audited under that shortcut's source."""
    return replace(inv, source=origin.source) if origin.source else inv


def _found(service: Service, team: str, origin: FormOrigin | None) -> list[FoundCall] | None:
    """The call ids of the message the form was opened on (None: not opened on a message)."""
    if origin is None or origin.calls is None:
        return None
    return service.calls_in(team, origin.calls)


def _partial_line(state: FormState) -> str:
    target = f"{state.account}:{state.get('call_id')}" if state.account else str(state.get("call_id") or "")
    return f"{state.action or '(no action)'} {target}".strip()


async def _safely(work: Awaitable[None]) -> None:
    try:
        await work
    except Exception:
        log.exception("could not audit a refused form")
