"""Audit review: Next / Previous and Details on `/call audit` pages (and the Home tab's Details),
and `/call audit export` uploaded as a DM. What anyone may see is decided by the service on every
request (bot/service/audit.py); this module only moves values in and out of Slack."""

from __future__ import annotations

import logging
import re
from functools import partial
from pathlib import Path
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.grammar import AuditQuery
from bot.domain.replies import AuditDetail, Reply, Tone
from bot.service.core import Invocation, Service
from bot.slack.invocations import button_invocation
from bot.slack.views.audit import LOADING, details_view, refusal_view
from bot.slack.views.render import AUDIT_DETAILS_ACTION, AUDIT_PAGE_ACTION, message

log = logging.getLogger(__name__)

STALE = Reply(Tone.INFO, "This button is no longer active.", ("Run `/call audit` again.",))
PREPARING = Reply(Tone.WORKING, "Preparing your export…", ("The file arrives as a direct message from callbot.",))


def register(app: AsyncApp, service: Service) -> None:
    app.action(re.compile(rf"^{AUDIT_PAGE_ACTION}:"))(partial(on_page, service=service))
    app.action(re.compile(rf"^{AUDIT_DETAILS_ACTION}:"))(partial(on_details, service=service))


async def on_page(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, *, service: Service
) -> None:
    """Next / Previous: the same ephemeral message shows the other page."""
    await ack()
    try:
        reply = await service.audit.turn_page(button_invocation(body), str(action.get("value") or ""))
        # Only a page replaces the page; a refusal or a stale button is said below it.
        await respond(**message(reply), replace_original=reply.listing is not None)
    except Exception:
        log.exception("could not turn an audit page")


async def on_details(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, *, service: Service
) -> None:
    """A modal with the whole row (or why not), from a page or from the Home tab."""
    await ack()
    trigger_id = str(body.get("trigger_id") or "")
    try:
        audit_id = int(str(action.get("value") or ""))
    except ValueError:
        await _open(client, trigger_id, refusal_view(STALE))
        return
    # The trigger lives 3 s: the modal opens first (loading), the row is read, then shown.
    view_id = await _open(client, trigger_id, LOADING)
    if view_id is None:
        return
    try:
        found = await service.audit.details(button_invocation(body), audit_id)
    except Exception:
        log.exception("could not read audit row #%s", audit_id)
        found = Reply(Tone.FAILURE, "callbot could not read that audit row.", ("The error is in the server log.",))
    shown = details_view(found) if isinstance(found, AuditDetail) else refusal_view(found)
    try:
        await client.views_update(view_id=view_id, view=shown)
    except Exception:
        log.exception("could not show audit row #%s in its modal", audit_id)


async def run_export(
    client: AsyncWebClient, service: Service, inv: Invocation, query: AuditQuery, respond: AsyncRespond
) -> None:
    """After the acknowledgement: the service writes and audits the file, Slack gets it as a DM."""

    async def upload(path: Path, name: str, comment: str) -> None:
        # files.completeUploadExternal shares only into a conversation id (D…), not a user id.
        opened = await client.conversations_open(users=inv.user_id)
        channel = str((opened.get("channel") or {}).get("id") or "")
        await client.files_upload_v2(
            file=str(path), filename=name, title=name, channel=channel, initial_comment=comment
        )

    try:
        reply = await service.audit.export(inv, query, upload)
    except Exception:
        log.exception("audit export for %s failed", inv.user_id)
        reply = Reply(Tone.FAILURE, "The export failed: no file was sent.", ("The error is in the server log.",))
    try:
        await respond(**message(reply), replace_original=False)
    except Exception:
        log.exception("could not tell %s how the export went", inv.user_id)


async def _open(client: AsyncWebClient, trigger_id: str, view: View) -> str | None:
    """The modal's id, or None (logged) when Slack would not open it."""
    try:
        opened = await client.views_open(trigger_id=trigger_id, view=view)
    except Exception:
        log.exception("could not open the audit details modal")
        return None
    return str((opened.get("view") or {}).get("id") or "") or None
