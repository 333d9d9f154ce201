"""The callFlow builder's listeners: open it (from `/call flow ACCOUNT:ID`, the action modal's
button or a listed call's Flow), edit the draft command by command (the draft lives in the
database, `flow_drafts`), JSON, Save as…, Preview, and Apply through the same pipeline as any call
action. The views are bot/slack/views/flow_builder.py; every value is validated by the model in
bot/domain/callflow.py and errors land under the field's block."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.actions import ApplyFlow, CallTarget
from bot.domain.callflow import MAX_COMMANDS, validate_callflow
from bot.domain.callflow_text import parse_callflow
from bot.domain.errors import InvalidInput
from bot.domain.grammar import CallCommand
from bot.domain.replies import Reply, Tone
from bot.service.core import BuilderOpening, FlowDraft, Invocation, Service
from bot.slack.drive import INTERNAL_ERROR, drive_modal
from bot.slack.invocations import enterprise_of, modal_invocation, team_of, view_metadata, workspace
from bot.slack.notify import deliver
from bot.slack.views.action_form import BUILD_FLOW, read_state
from bot.slack.views.flow_builder import (
    APPLY_BLOCK,
    BUILDER,
    COMMAND_FORM,
    JSON_FORM,
    MAX_CONDITIONS,
    PREVIEW,
    SAVE_FORM,
    builder_view,
    command_view,
    fingerprint,
    json_view,
    loading_view,
    notice_view,
    preview_view,
    resume_view,
    save_view,
)
from bot.slack.views.flow_form import FormProblems, command_from_values, values_of
from bot.slack.views.forms import command_line

log = logging.getLogger(__name__)

STALE = "The list had changed since that menu was drawn, so nothing was done. Here it is as it is now."

EXPIRED = Reply(
    Tone.INFO,
    "This callFlow draft has expired or was already applied.",
    ("Run `/call flow ACCOUNT:CALL-ID` again to start a new one.",),
)


def register(app: AsyncApp, service: Service) -> None:
    app.action(BUILD_FLOW)(partial(on_build, service=service))
    for resume in ("fb_restart", "fb_resume"):
        app.action(resume)(partial(on_resume, service=service))
    app.action("fb_end")(partial(on_end_call, service=service))
    app.action("fb_cmd")(partial(on_command_menu, service=service))
    for tool in ("fb_preview", "fb_save", "fb_json", "fb_add"):
        app.action(tool)(partial(on_tool, service=service))
    for redraw in ("fb_cond", "fb_type"):
        app.action(redraw)(partial(on_form_change, service=service))
    app.view(COMMAND_FORM)(partial(on_command_submit, service=service))
    app.view(JSON_FORM)(partial(on_json_submit, service=service))
    app.view(SAVE_FORM)(partial(on_save_submit, service=service))
    app.view(BUILDER)(partial(on_apply, service=service))


async def open_builder(
    client: AsyncWebClient,
    service: Service,
    inv: Invocation,
    target: CallTarget,
    *,
    trigger_id: str | None = None,
    view_id: str | None = None,
) -> None:
    """From `/call flow CALL` (a trigger: `views.open` first) or the action modal's button (its view
    is turned into the builder). Refusals are shown in the modal; the service audits them."""
    try:
        if trigger_id is not None:
            opened = await client.views_open(trigger_id=trigger_id, view=loading_view())
            view_id = (opened.get("view") or {}).get("id")
        opening = await service.open_builder(inv, target)
        view = await _first_view(service, inv, opening)
        await client.views_update(view_id=view_id, view=view)
    except Exception:
        log.exception("could not open the callFlow builder for %s", inv.user_id)


async def _first_view(service: Service, inv: Invocation, opening: BuilderOpening | Reply) -> View:
    if isinstance(opening, Reply):
        return notice_view(opening)
    if opening.earlier is not None and opening.earlier.commands:
        return resume_view(opening.earlier, inv.channel_id)
    draft = await service.start_draft(inv.team, inv.user_id, opening.account, opening.call_id)
    return builder_view(draft, inv.channel_id)


async def _load(service: Service, body: Mapping[str, Any]) -> tuple[dict[str, Any], FlowDraft | None]:
    meta = view_metadata(body.get("view") or {})
    return meta, await service.draft(workspace(body), _draft_id(meta), _user(body))


async def _redraw_root(
    client: AsyncWebClient, root: str | None, draft: FlowDraft, meta: Mapping[str, Any], notice: str | None = None
) -> None:
    await client.views_update(view_id=root, view=builder_view(draft, meta.get("channel"), notice))


async def on_build(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    """The action modal's "Build the callFlow": the modal becomes the builder (no push, so the
    command form is the only view ever pushed)."""
    await ack()
    view = body.get("view") or {}
    state = read_state(view)
    user = body.get("user") or {}
    channel = view_metadata(view).get("channel")
    inv = Invocation(
        "modal",
        str(user.get("id") or "unknown"),
        "",
        user.get("username"),
        team_id=team_of(body),
        channel_id=channel,
        enterprise_id=enterprise_of(body),
    )
    call_id = (state.get("call_id") or "").strip()
    if not state.account or not call_id:
        reply = Reply(Tone.INVALID, "Give the account and the call's id first.", ("Then click the button again.",))
        await _quietly(client.views_push(trigger_id=body.get("trigger_id"), view=notice_view(reply, PREVIEW)))
        return
    await open_builder(client, service, inv, CallTarget(state.account, call_id), view_id=view.get("id"))


async def on_resume(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, *, service: Service
) -> None:
    await ack()
    try:
        meta, draft = await _load(service, body)
        view = body.get("view") or {}
        if action.get("action_id") == "fb_restart" or draft is None:
            draft = await service.start_draft(
                workspace(body), _user(body), str(meta.get("account")), str(meta.get("call"))
            )
        await client.views_update(view_id=view.get("id"), view=builder_view(draft, meta.get("channel")))
    except Exception:
        log.exception("could not resume a callFlow draft")


async def on_end_call(ack: AsyncAck, body: dict[str, Any], *, service: Service) -> None:
    await ack()
    try:
        _, draft = await _load(service, body)
        if draft is not None:
            ended = read_state(body.get("view") or {}).get(APPLY_BLOCK) is not None
            await service.update_draft(draft, end_call=ended)
    except Exception:
        log.exception("could not save the end-the-call choice")


async def on_command_menu(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, *, service: Service
) -> None:
    await ack()
    try:
        meta, draft = await _load(service, body)
        view = body.get("view") or {}
        if draft is None:
            await client.views_update(view_id=view.get("id"), view=notice_view(EXPIRED))
            return
        verb, _, at = str((action.get("selected_option") or {}).get("value") or "").partition(":")
        number, _, drawn = at.partition(":")
        i = int(number) if number.isdigit() else -1
        commands = list(draft.commands)
        if not 0 <= i < len(commands) or fingerprint(commands[i]) != drawn:
            await _redraw_root(client, view.get("id"), draft, meta, notice=STALE)
            return
        if verb == "edit":
            wire = commands[i]
            form_meta = {
                **meta,
                "root": view.get("id"),
                "index": i,
                "fp": drawn,
                "conds": max(1, len(wire.get("conditions") or ())),
            }
            await client.views_push(
                trigger_id=body.get("trigger_id"), view=command_view(form_meta, wire["command"], values_of(wire))
            )
            return
        if verb == "remove":
            del commands[i]
        elif verb == "up" and i > 0:
            commands[i - 1], commands[i] = commands[i], commands[i - 1]
        elif verb == "down" and i < len(commands) - 1:
            commands[i + 1], commands[i] = commands[i], commands[i + 1]
        draft = await service.update_draft(draft, commands=commands)
        await _redraw_root(client, view.get("id"), draft, meta)
    except Exception:
        log.exception("could not change the callFlow draft")


async def on_tool(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, *, service: Service
) -> None:
    await ack()
    try:
        which = action.get("action_id")
        view = body.get("view") or {}
        meta = {**view_metadata(view), "root": view.get("id")}
        trigger = body.get("trigger_id")
        if which == "fb_add":  # no database needed: push at once, within the trigger's 3 s
            await client.views_push(trigger_id=trigger, view=command_view({**meta, "conds": 1}, None, {}))
            return
        draft = await service.draft(workspace(body), _draft_id(meta), _user(body))
        if draft is None:
            await client.views_push(trigger_id=trigger, view=notice_view(EXPIRED, PREVIEW))
        elif which == "fb_json":
            await client.views_push(trigger_id=trigger, view=json_view(meta, draft.commands))
        elif which == "fb_save":
            await client.views_push(trigger_id=trigger, view=save_view(meta))
        else:
            await client.views_push(trigger_id=trigger, view=_preview(service, draft))
    except Exception:
        log.exception("could not open a callFlow builder view")


async def on_form_change(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, *, service: Service
) -> None:
    """Picking the command type, or asking for one more condition row, redraws the form with what
    was typed so far."""
    await ack()
    try:
        view = body.get("view") or {}
        meta = view_metadata(view)
        state = read_state(view)
        if action.get("action_id") == "fb_cond":
            meta["conds"] = min(MAX_CONDITIONS, int(meta.get("conds") or 1) + 1)
        name = (state.values or {}).get("command")
        await client.views_update(
            view_id=view.get("id"), hash=view.get("hash"), view=command_view(meta, name, state.values or {})
        )
    except Exception:
        log.exception("could not redraw the command form")


async def on_command_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    view = body.get("view") or {}
    try:
        meta, draft = await _load(service, body)
        values = read_state(view).values or {}
        if draft is None:
            await ack(response_action="errors", errors={"command": EXPIRED.title})
            return
        commands = list(draft.commands)
        index = meta.get("index")
        if index is None and len(commands) >= MAX_COMMANDS:
            limit = f"The callFlow already has {MAX_COMMANDS} commands, Bird's limit: remove one first."
            await ack(response_action="errors", errors={"command": limit})
            return
        try:
            wire = command_from_values(values.get("command"), values, int(meta.get("conds") or 1))
        except FormProblems as problems:
            await ack(response_action="errors", errors=problems.errors)
            return
        if index is not None and (
            not 0 <= int(index) < len(commands) or fingerprint(commands[int(index)]) != meta.get("fp")
        ):
            changed = "This command changed or moved since the form opened (another window?): close and edit again."
            await ack(response_action="errors", errors={"command": changed})
            return
        await ack()
        if index is not None:
            commands[int(index)] = wire
        else:
            commands.append(wire)
        draft = await service.update_draft(draft, commands=commands)
        await _redraw_root(client, meta.get("root"), draft, meta)
    except Exception:
        log.exception("could not save a command to the callFlow draft")
        await _quietly(ack(response_action="errors", errors={"command": INTERNAL_ERROR.title}))


async def on_json_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    try:
        meta, draft = await _load(service, body)
        if draft is None:
            await ack(response_action="errors", errors={"json": EXPIRED.title})
            return
        try:
            flow = parse_callflow(read_state(body.get("view") or {}).get("json") or "")
        except InvalidInput as error:  # the message names the path: callFlow[2].options.pauseSeconds
            await ack(response_action="errors", errors={"json": error.message[:2000]})
            return
        await ack()
        draft = await service.update_draft(draft, commands=flow.to_wire())
        await _redraw_root(client, meta.get("root"), draft, meta)
    except Exception:
        log.exception("could not take a callFlow written as JSON")
        await _quietly(ack(response_action="errors", errors={"json": INTERNAL_ERROR.title}))


async def on_save_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    view = body.get("view") or {}
    try:
        meta, draft = await _load(service, body)
        if draft is None:
            await ack(response_action="errors", errors={"name": EXPIRED.title})
            return
        try:
            flow = validate_callflow(list(draft.commands))
        except InvalidInput as error:
            await ack(response_action="errors", errors={"name": f"Nothing to save yet: {error.message}"[:2000]})
            return
        name = (read_state(view).get("name") or "").strip()
        inv = modal_invocation(body, view, meta.get("channel"))
        inv = replace(inv, text=f"flows save {name} <callFlow>")
        reply = await service.save_flow(inv, name, flow)
        if reply.tone in (Tone.INVALID, Tone.DENIED):
            await ack(response_action="errors", errors={"name": " ".join(reply.lines)[:2000] or reply.title})
            return
        await ack()
        await _redraw_root(client, meta.get("root"), draft, meta, notice=f":floppy_disk: {reply.title}")
        await deliver(client, inv, reply)
    except Exception:
        log.exception("could not save a callFlow from the builder")
        await _quietly(ack(response_action="errors", errors={"name": INTERNAL_ERROR.title}))


async def on_apply(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    view = body.get("view") or {}
    meta = view_metadata(view)
    inv = modal_invocation(body, view, meta.get("channel"))
    try:
        await _apply(ack, client, service, inv, meta, view)
    except Exception:
        log.exception("could not apply a callFlow from the builder")
        await _quietly(ack(response_action="errors", errors={APPLY_BLOCK: INTERNAL_ERROR.title}))


def _preview(service: Service, draft: FlowDraft) -> View:
    try:
        flow = validate_callflow(list(draft.commands))
    except InvalidInput as error:
        problem = "Add a command first." if not draft.commands else error.message
        return preview_view(draft, None, problem)
    body = service.flow_request_body(draft.account, draft.call_id, flow, end_call=draft.end_call)
    return preview_view(draft, body, None)


async def _apply(
    ack: AsyncAck, client: AsyncWebClient, service: Service, inv: Invocation, meta: Mapping[str, Any], view: Any
) -> None:
    """Apply: permission checked again (a grant may have gone while the modal was open), audited
    with the full callFlow; refusals stay in the modal under "On Apply", the outcome is delivered
    like the action modal's (ephemeral in the channel, else a DM)."""
    draft = await service.draft(inv.team, _draft_id(meta), inv.user_id)
    if draft is None:
        await ack(response_action="errors", errors={APPLY_BLOCK: f"{EXPIRED.title} {EXPIRED.lines[0]}"})
        return
    end_call = read_state(view).get(APPLY_BLOCK) is not None
    if end_call != draft.end_call:
        draft = await service.update_draft(draft, end_call=end_call)
    try:
        flow = validate_callflow(list(draft.commands))
    except InvalidInput as error:
        text = "Add at least one command first." if not draft.commands else error.message
        # Audited before answering, like every attempt.
        await _quietly(service.record_invalid(replace(inv, text=f"flow {draft.label} <callFlow>"), error, "flow"))
        await ack(response_action="errors", errors={APPLY_BLOCK: text[:2000]})
        return
    action = ApplyFlow(flow, end_call=end_call)
    command = CallCommand(CallTarget(draft.account, draft.call_id), action, False, frozenset())
    inv = replace(inv, text=command_line(command) + (" (then end the call)" if end_call else ""))

    async def discard() -> None:
        await service.discard_draft(draft.team_id, draft.id)  # applied: reopening the builder starts afresh

    await drive_modal(service, client, ack, inv, command, block_for=lambda _reply: APPLY_BLOCK, after_success=discard)


async def _quietly(work: Any) -> None:
    try:
        await work
    except Exception:
        log.exception("a Slack call of the callFlow builder failed")


def _user(body: Mapping[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "unknown")


def _draft_id(meta: Mapping[str, Any]) -> int:
    try:
        return int(meta.get("draft") or 0)
    except (TypeError, ValueError):
        return 0
