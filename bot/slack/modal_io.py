"""What every modal listener needs: who submitted it, what its view carries, and a way to tell the
person the outcome (a view submission has no response_url)."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.replies import Reply, Tone
from bot.service import Invocation
from bot.slack.render import message

log = logging.getLogger(__name__)

INTERNAL_ERROR = Reply(
    Tone.FAILURE,
    "callbot hit an internal error; nothing was sent to any provider.",
    ("The error is in the server log. Try again, or ask the people who run callbot.",),
)


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
