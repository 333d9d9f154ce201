"""What every modal listener needs: who submitted it, what its view carries, and a way to tell the
person the outcome (a view submission has no response_url)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.grammar import CallCommand
from bot.domain.replies import Reply, Tone
from bot.service.core import Done, Invocation, Service
from bot.slack.home import publish_home
from bot.slack.render import message

log = logging.getLogger(__name__)

INTERNAL_ERROR = Reply(
    Tone.FAILURE,
    "callbot hit an internal error; nothing was sent to any provider.",
    ("The error is in the server log. Try again, or ask the people who run callbot.",),
)


async def run_from_modal(
    service: Service,
    client: AsyncWebClient,
    ack: AsyncAck,
    inv: Invocation,
    command: CallCommand,
    *,
    block_for: Callable[[Reply], str],
    after_success: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """A submitted modal through the same pipeline as a typed command.

    Refusals (invalid, denied) keep the modal open with the message under `block_for(reply)`;
    anything else closes it, and the outcome arrives as an ephemeral message (or a DM).
    """
    try:
        step = await service.begin_command(inv, command)
    except Exception:
        log.exception("could not start a modal action")
        await ack(response_action="errors", errors={block_for(INTERNAL_ERROR): INTERNAL_ERROR.title})
        return
    if isinstance(step, Done) and step.reply.tone in (Tone.INVALID, Tone.DENIED):
        message_text = " ".join(step.reply.lines)[:2000] or step.reply.title
        await ack(response_action="errors", errors={block_for(step.reply): message_text})
        return
    await ack(response_action="clear")
    if isinstance(step, Done):
        await deliver(client, inv, step.reply)
        if step.reply.approval is not None:
            from bot.slack.approvals import post_approval  # approvals imports this module

            problem = await post_approval(client, service, step.reply.approval)
            if problem is not None:
                await deliver(client, inv, problem)
        return
    try:
        reply = await service.finish(step)
    except Exception:
        log.exception("provider step failed for audit #%s", step.audit_id)
        reply = Reply(Tone.UNKNOWN, "callbot hit an internal error while sending.", audit_id=step.audit_id)
    if after_success is not None and reply.tone is Tone.SUCCESS:
        await after_success()
    await deliver(client, inv, reply)
    await publish_home(client, service, inv.user_id)  # the outcome shows in their App Home too


async def deliver(client: AsyncWebClient, inv: Invocation, reply: Reply) -> None:
    """A view submission has no response_url: ephemeral in the channel it came from, else a DM."""
    payload = message(reply)
    payload.pop("response_type", None)
    if inv.channel_id:
        try:
            await client.chat_postEphemeral(channel=inv.channel_id, user=inv.user_id, **payload)
            return
        except SlackApiError as error:
            log.info("ephemeral post failed (%s); sending a DM", error.response.get("error"))
    try:
        await client.chat_postMessage(channel=inv.user_id, **payload)
    except Exception:
        log.exception("could not deliver a modal outcome to %s", inv.user_id)


def button_invocation(body: dict[str, Any], idempotency_key: str | None = None) -> Invocation:
    """Who clicked a button (block_actions), and in which channel the message was."""
    user = body.get("user") or {}
    return Invocation(
        source="button",
        user_id=str(user.get("id") or "unknown"),
        user_name=user.get("username") or user.get("name"),
        team_id=(body.get("team") or {}).get("id"),
        channel_id=(body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id"),
        text="",
        idempotency_key=idempotency_key,
    )


def modal_invocation(body: dict[str, Any], view: dict[str, Any], channel: str | None) -> Invocation:
    user = body.get("user") or {}
    # A replayed submission carries the same view and values; a corrected one does not.
    digest = hashlib.sha256(
        json.dumps([view.get("id"), view.get("hash"), (view.get("state") or {}).get("values")], sort_keys=True).encode()
    ).hexdigest()
    return Invocation(
        source="modal",
        user_id=str(user.get("id") or "unknown"),
        user_name=user.get("username") or user.get("name"),
        team_id=(body.get("team") or {}).get("id"),
        channel_id=channel,
        text="",
        idempotency_key=f"modal:{digest[:48]}",
    )


def view_metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}
