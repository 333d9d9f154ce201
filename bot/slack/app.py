"""The Bolt AsyncApp: turns Slack requests into service invocations and replies into messages.

Listeners only translate. Parsing, permissions, audit and provider calls live in the service.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.models.blocks import Option
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.domain.actions import CallTarget
from bot.domain.errors import InvalidInput
from bot.domain.grammar import HangupAllCommand
from bot.domain.replies import Reply, Tone
from bot.logs import new_request_id, request_id, request_started
from bot.service.core import Done, Invocation, Service, Started
from bot.slack.approvals import post_approval, register_approvals
from bot.slack.audit import PREPARING, register_audit, run_export
from bot.slack.batches import answer as answer_bulk
from bot.slack.batches import register_batches
from bot.slack.client import web_client
from bot.slack.flow_builder import open_builder, register_flow_builder
from bot.slack.forms import FormErrors, block_for, command_from_form, command_line
from bot.slack.home import publish_home
from bot.slack.modal_io import INTERNAL_ERROR, button_invocation, modal_invocation, run_from_modal, view_metadata
from bot.slack.render import (
    CHOICE_ACTION,
    DISMISS_ACTION,
    LIVE_FLOW_ACTION,
    LIVE_HANGUP_ACTION,
    LIVE_MORE_ACTION,
    LIVE_REDIRECT_ACTION,
    OPEN_FORM_ACTION,
    message,
)
from bot.slack.text import plain_text
from bot.slack.views import (
    ACTION_MODAL,
    CALL_PICKER,
    CONFIRM_MODAL,
    DESTRUCTIVE,
    FormState,
    action_view,
    confirm_view,
    loading_view,
    read_state,
)

log = logging.getLogger(__name__)

STALE_CHOICE = Reply(Tone.INFO, "This choice has expired or was already used.", ("Run the command again.",))
LOOKING = Reply(Tone.WORKING, "Asking the provider…")
COUNTING = Reply(Tone.WORKING, "Counting the matching live calls…")
LOOKING_UP = Reply(Tone.WORKING, "Looking up the batch…")
STALE_BUTTON = Reply(Tone.INFO, "This button is no longer active.", ("Run the command again with `/call`.",))


class _SameTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and then warns that our client makes it unused; the client
    carries that very token (plus SLACK_API_URL), so the warning only misleads operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def create_bolt_app(settings: Settings, service: Service) -> AsyncApp:
    """Built at start-up (never at import: a token means Slack calls), one per process."""
    bolt_logger = logging.getLogger("slack_bolt.AsyncApp")
    if not any(isinstance(f, _SameTokenWarning) for f in bolt_logger.filters):
        bolt_logger.addFilter(_SameTokenWarning())
    client = web_client(settings.slack_bot_token, settings.slack_api_url)
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        request_verification_enabled=bool(settings.slack_signing_secret),
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )

    @app.middleware
    async def stamp_request_id(next: Callable[[], Awaitable[None]]) -> None:
        # Over HTTP the ASGI layer gave the request its id already (bot/web.py). Socket Mode runs
        # each Slack message in a task of its own: the id set here stays with that message.
        if request_id.get() is None:
            request_id.set(new_request_id())
            request_started.set(time.monotonic())
        await next()

    @app.command(re.compile(r"^/call"))
    async def on_call(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, request: AsyncBoltRequest, client: AsyncWebClient
    ) -> None:
        inv = Invocation(
            source="slash",
            user_id=str(body.get("user_id") or "unknown"),
            user_name=body.get("user_name"),
            team_id=body.get("team_id"),
            channel_id=body.get("channel_id"),
            text=plain_text(str(body.get("text") or "")),
            idempotency_key=_idempotency_key(body, request),
        )

        if not inv.text.strip():
            await ack()
            await _open_action_modal(client, service, str(body.get("trigger_id") or ""), inv)
            return
        builder_target = service.builder_target(inv.text)  # `/call flow bird:ID` alone: the builder
        if builder_target is not None:
            await ack()
            await open_builder(client, service, inv, builder_target, trigger_id=str(body.get("trigger_id") or ""))
            return

        live = service.live.read_command(inv.text)
        if live is not None:  # `/call list` and `/call status` read the provider after the acknowledgement
            await ack(**message(LOOKING))
            await _answer(lambda: service.live.run(inv, live), respond)
            return

        bulk = service.bulk.command(inv.text)
        if bulk is not None:  # counting calls, or running a batch, reads the provider: acknowledged first
            await ack(**message(COUNTING if isinstance(bulk, HangupAllCommand) else LOOKING_UP))
            await answer_bulk(client, service, lambda: service.bulk.typed(inv, bulk), respond)
            return

        export = service.audit.export_query(inv.text)
        if export is not None:  # the file is written and uploaded after the acknowledgement
            await ack(**message(PREPARING))
            await run_export(client, service, inv, export, respond)
            return

        async def first(reply: Reply) -> None:
            await ack(**message(reply))

        await _drive(
            service, lambda: service.begin(inv), first, respond, replace=False, client=client, user_id=inv.user_id
        )

    @app.action(OPEN_FORM_ACTION)
    async def on_open_form(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        inv = button_invocation(body)
        await _open_action_modal(client, service, str(body.get("trigger_id") or ""), inv)

    @app.action("account")
    @app.action("action")
    async def on_form_change(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Choosing the account or the action reshapes the form to what that provider supports."""
        await ack()
        view = body.get("view") or {}
        user = str((body.get("user") or {}).get("id") or "")
        try:
            accounts = await service.form_accounts(user)
            channel = view_metadata(view).get("channel")
            updated = action_view(accounts, read_state(view), channel)
            await client.views_update(view_id=view.get("id"), hash=view.get("hash"), view=updated)
        except Exception:
            log.exception("could not update the action modal")

    @app.view(ACTION_MODAL)
    async def on_action_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        state = read_state(view)
        inv = modal_invocation(body, view, view_metadata(view).get("channel"))
        try:
            command = command_from_form(state)
        except FormErrors as problems:
            # Audited before answering, like every attempt; a quick local write, well within 3 s.
            await _safely(service.record_invalid(replace(inv, text=_partial_line(state)), problems.first, state.action))
            await ack(response_action="errors", errors=problems.errors)
            return
        inv = replace(inv, text=command_line(command))
        if command.action.name.value in DESTRUCTIVE and not command.dry_run:
            await ack(response_action="update", view=_confirmation(command, inv.channel_id))
            return
        await _run_modal(service, client, ack, inv, command)

    @app.view(CONFIRM_MODAL)
    async def on_confirm_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        meta = view_metadata(view)
        inv = modal_invocation(body, view, meta.get("channel"))
        try:
            command = command_from_form(FormState(meta.get("account"), meta.get("action"), meta.get("values") or {}))
        except FormErrors:
            await ack(response_action="clear")
            return
        await _run_modal(service, client, ack, replace(inv, text=command_line(command)), command)

    @app.action(re.compile(rf"^{CHOICE_ACTION}:"))
    @app.action(re.compile(rf"^{LIVE_HANGUP_ACTION}:"))
    async def on_stored_command(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
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

        await _drive(
            service,
            lambda: service.begin_choice(inv, token, account),
            first,
            respond,
            replace=in_place,
            client=client,
            user_id=inv.user_id,
        )

    @app.action(re.compile(rf"^{DISMISS_ACTION}:"))
    async def on_dismiss_choice(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Cancel on a confirmation: drop the stored command; nothing is sent, nothing audited."""
        await ack()
        token = str(action.get("value") or "").partition("|")[0]
        user = str((body.get("user") or {}).get("id") or "unknown")
        try:
            reply = await service.dismiss_choice(user, token)
            if reply is None:  # not this person's button, or already used: leave the message alone
                refused = await service.refuse_foreign_choice(Invocation("button", user, ""), token)
                await respond(**message(refused or STALE_CHOICE), replace_original=False)
            else:
                await respond(**message(reply), replace_original=True)
        except Exception:
            log.exception("could not cancel a confirmation")

    @app.action(re.compile(rf"^{LIVE_REDIRECT_ACTION}:"))
    async def on_live_redirect(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Redirect on a listed call: the action form, with the account, the call and `redirect` filled in."""
        await ack()
        target = _target(action)
        if target is None:
            return
        state = FormState(target.account, "redirect", {"call_id": target.call_id})
        await _open_action_modal(client, service, str(body.get("trigger_id") or ""), button_invocation(body), state)

    @app.action(re.compile(rf"^{LIVE_FLOW_ACTION}:"))
    async def on_live_flow(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        """Flow on a listed Bird call: the callFlow builder for it (it checks `flow` itself)."""
        await ack()
        target = _target(action)
        if target is None:
            return
        inv = replace(button_invocation(body), text=f"flow {target.display()}")
        await open_builder(client, service, inv, target, trigger_id=str(body.get("trigger_id") or ""))

    @app.action(re.compile(rf"^{LIVE_MORE_ACTION}:"))
    async def on_live_more(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        """More: the next page, as a new message (the buttons of the page before keep working)."""
        await ack()
        value = str(action.get("value") or "")
        await _answer(lambda: service.live.more(button_invocation(body), value), respond)

    @app.options(CALL_PICKER)
    async def on_call_options(ack: AsyncAck, body: dict[str, Any]) -> None:
        """The action form's call menu: the account's live calls matching what was typed. Any
        problem answers an empty list (logged), never an error Slack would show as a failure."""
        user = str((body.get("user") or {}).get("id") or "")
        view = body.get("view") or {}
        account = read_state(view).account or view_metadata(view).get("account")
        try:
            found = await service.live.options(user, account, str(body.get("value") or ""))
        except Exception:
            log.exception("could not offer live calls to %s", user)
            found = []
        await ack(options=[Option(value=o.call_id, label=o.label).to_dict() for o in found])

    # Before the catch-alls below: Bolt runs the first listener that matches.
    register_flow_builder(app, service)
    register_approvals(app, service)
    register_audit(app, service)
    register_batches(app, service)

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


async def _open_action_modal(
    client: AsyncWebClient, service: Service, trigger_id: str, inv: Invocation, state: FormState | None = None
) -> None:
    """`views.open` first (the trigger_id lives 3 s), then fill the form with `views.update`.
    `state`: what to fill in already (the Redirect button of a listed call)."""
    try:
        opened = await client.views_open(trigger_id=trigger_id, view=loading_view())
        view = opened.get("view") or {}
        accounts = await service.form_accounts(inv.user_id)
        await client.views_update(
            view_id=view.get("id"),
            hash=view.get("hash"),
            view=action_view(accounts, state or FormState(), inv.channel_id),
        )
    except Exception:
        log.exception("could not open the action modal for %s", inv.user_id)


async def _run_modal(service: Service, client: AsyncWebClient, ack: AsyncAck, inv: Invocation, command: Any) -> None:
    def block(reply: Reply) -> str:
        if reply.tone is Tone.DENIED:
            return "action"
        return block_for(reply.field, command.action.name.value)

    await run_from_modal(service, client, ack, inv, command, block_for=block)


def _confirmation(command: Any, channel: str | None) -> Any:
    action = command.action
    target = command.target.display()
    verb = "Hang up" if action.name.value == "hangup" else "Cancel"
    detail = (
        "This ends the call for everyone on it."
        if action.name.value == "hangup"
        else "This ends the call if it is still queued or ringing."
    )
    if action.reason:
        detail += f"\nReason: {action.reason}"
    values = {"call_id": command.target.call_id, "reason": action.reason}
    meta = {"channel": channel, "account": command.target.account, "action": action.name.value, "values": values}
    return confirm_view(f"{verb} {target}?", detail, meta, verb)


def _target(action: dict[str, Any]) -> CallTarget | None:
    """A listed call's button value, `account:call-id`; None (logged) when it is not one."""
    try:
        return CallTarget.parse(str(action.get("value") or ""))
    except InvalidInput:
        log.warning("a live-call button carried no call: %r", action.get("value"))
        return None


async def _answer(work: Callable[[], Awaitable[Reply]], respond: AsyncRespond) -> None:
    """After the acknowledgement: the reply of a read (live calls) as a new ephemeral message."""
    try:
        reply = await work()
    except Exception:
        log.exception("could not read live calls")
        reply = Reply(Tone.FAILURE, "callbot hit an internal error; nothing was changed.", ("See the server log.",))
    try:
        await respond(**message(reply), replace_original=False)
    except Exception:
        log.exception("could not deliver a live-calls reply to Slack")


def _partial_line(state: FormState) -> str:
    target = f"{state.account}:{state.get('call_id')}" if state.account else str(state.get("call_id") or "")
    return f"{state.action or '(no action)'} {target}".strip()


async def _safely(work: Awaitable[None]) -> None:
    try:
        await work
    except Exception:
        log.exception("could not audit a refused form")


async def _drive(
    service: Service,
    begin: Callable[[], Awaitable[Done | Started]],
    first: Callable[[Reply], Awaitable[None]],
    respond: AsyncRespond,
    *,
    replace: bool,
    client: AsyncWebClient,
    user_id: str,
) -> None:
    """Answer at once (`first`), then send the provider request and post the outcome (or, for an
    action that needs two-person approval, post the request to the approvers). Once a call
    action's outcome is delivered, the person's App Home shows it too."""
    try:
        step = await begin()
    except Exception:
        log.exception("could not start a call action")
        await first(INTERNAL_ERROR)
        return
    if isinstance(step, Done):
        await first(step.reply)
        if step.reply.approval is not None:
            problem = await post_approval(client, service, step.reply.approval)
            if problem is not None:
                await respond(**message(problem), replace_original=False)
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
    await publish_home(client, service, user_id)


def _idempotency_key(body: dict[str, Any], request: AsyncBoltRequest) -> str:
    """Slack's trigger_id is unique per invocation; a replayed body carries the same one."""
    trigger = body.get("trigger_id")
    if trigger:
        return f"slack:{trigger}"
    return "body:" + hashlib.sha256(request.raw_body.encode("utf-8")).hexdigest()
