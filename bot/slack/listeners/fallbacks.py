"""Requests nothing else claims (old buttons, future views) are acknowledged, never a 404, and a
listener that raises is logged. Registered after every other listener."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.response import BoltResponse

from bot.domain.errors import NO_WORKSPACE
from bot.domain.replies import Reply, Tone
from bot.service.core import Service
from bot.slack.invocations import team_of
from bot.slack.views.render import message

log = logging.getLogger(__name__)

NO_WORKSPACE_REPLY = Reply(
    Tone.DENIED,
    NO_WORKSPACE,
    ("Nothing was done. Slack always sends one: if this keeps happening, tell whoever runs callbot.",),
)
# Payloads of a person's click or submission: every read they lead to is scoped by the workspace.
# (A slash command naming none is the single workspace's, bot/service/core.py.)
_INTERACTIVE = ("block_actions", "view_submission", "block_suggestion", "shortcut", "message_action")
STALE_BUTTON = Reply(Tone.INFO, "This button is no longer active.", ("Run the command again with `/call`.",))
ANYTHING = re.compile(".*")


def register(app: AsyncApp, service: Service) -> None:
    app.middleware(refuse_without_workspace)
    app.action(ANYTHING)(on_unknown_action)
    app.view(ANYTHING)(on_unknown_view)
    app.options(ANYTHING)(on_unknown_options)
    app.error(on_error)


async def on_unknown_action(ack: AsyncAck, respond: AsyncRespond) -> None:
    await ack()
    if not respond.response_url:  # a button in a modal or the App Home: there is no message to answer under
        log.info("a click on a button callbot does not know, where it cannot answer")
        return
    try:
        await respond(**message(STALE_BUTTON), replace_original=False)
    except Exception:
        log.exception("could not answer an unknown button")


async def on_unknown_view(ack: AsyncAck) -> None:
    await ack()


async def on_unknown_options(ack: AsyncAck) -> None:
    await ack(options=[])


async def on_error(error: Exception) -> None:
    log.error("unhandled error in a Slack listener", exc_info=error)


async def refuse_without_workspace(
    body: dict[str, Any], ack: AsyncAck, respond: AsyncRespond, next: Callable[[], Awaitable[None]]
) -> BoltResponse | None:
    """A click, submission or shortcut naming no workspace is answered here, before any listener
    reads a row for it (there is no unscoped read). The answer is what this returns: Bolt runs no
    listener after a middleware that does not call `next`."""
    kind = body.get("type") if isinstance(body, dict) else None
    if kind not in _INTERACTIVE or team_of(body):
        await next()
        return None
    log.warning("refused a Slack %s that names no workspace", kind)
    if kind == "view_submission":
        title = {"type": "plain_text", "text": "callbot"}
        view = {"type": "modal", "title": title, "blocks": message(NO_WORKSPACE_REPLY)["blocks"]}
        return await ack(response_action="update", view=view)
    if kind == "block_suggestion":
        return await ack(options=[])
    if kind == "block_actions" and respond.response_url:
        # After the ack (this returns it): nothing slow before Slack has its answer.
        task = asyncio.get_running_loop().create_task(_tell_no_workspace(respond))
        _TELLING.add(task)
        task.add_done_callback(_TELLING.discard)
    return await ack()


_TELLING: set[asyncio.Task[None]] = set()


async def _tell_no_workspace(respond: AsyncRespond) -> None:
    try:
        await respond(**message(NO_WORKSPACE_REPLY), replace_original=False)
    except Exception:
        log.exception("could not answer a button that names no workspace")
