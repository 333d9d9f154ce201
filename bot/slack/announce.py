"""Telling the incident channel: the one masked line of an executed call action
(bot/service/announcements.py) posted to the account's `announce_channel`, and, for an action run
from "Act on this call", in the thread of that message.

These are the visible exceptions: every other answer stays ephemeral. A line is posted after the
person has their outcome, in a task of its own (a rate-limited Slack must not hold up an approval's
people), and a post Slack refuses (callbot not in the channel, say) is logged: the action is done.
When the message a shortcut was used on is in the announce_channel itself, one reply goes to its
thread, also sent to the channel, rather than two lines there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.service.bulk.plans import BatchRun
from bot.service.core import Service, Started

log = logging.getLogger(__name__)

ANNOUNCE_TASK = "callbot-announce-"


@dataclass(frozen=True)
class Thread:
    """The thread of the message a shortcut was used on: `channel` and the thread's ts."""

    channel: str
    ts: str


# Posts in progress (the loop keeps only weak references to tasks).
_POSTING: set[asyncio.Task[None]] = set()


def after_action(client: AsyncWebClient, service: Service, step: Started, thread: Thread | None) -> None:
    """Once a sent action's outcome is recorded: its line to the announce_channel the service chose
    (`step.announce`) and to `thread`, if any."""
    if step.announce is None and thread is None:
        return
    _spawn(_announce(client, service, step.audit_id, step.announce, thread), step.audit_id)


def after_batch(client: AsyncWebClient, service: Service, run: BatchRun) -> None:
    """Once a bulk hang-up ends (or is cancelled): one line for the whole batch."""
    channel = service.announcements.batch_channel(run.account)
    if channel is not None:
        _spawn(_announce(client, service, run.audit_id, channel, None), run.audit_id)


def _spawn(work: Coroutine[Any, Any, None], audit_id: int) -> None:
    task = asyncio.get_running_loop().create_task(work, name=f"{ANNOUNCE_TASK}{audit_id}")
    _POSTING.add(task)
    task.add_done_callback(_POSTING.discard)


async def _announce(
    client: AsyncWebClient, service: Service, audit_id: int, channel: str | None, thread: Thread | None
) -> None:
    try:
        line = await service.announcements.line(audit_id)
    except Exception:
        log.exception("could not prepare the announcement of audit #%s", audit_id)
        return
    if line is None:  # nothing reached the provider: nothing to tell
        return
    if thread is not None and thread.channel == channel:
        await _post(client, audit_id, thread.channel, line, thread_ts=thread.ts, broadcast=True)
        return
    if channel is not None:
        await _post(client, audit_id, channel, line)
    if thread is not None:
        await _post(client, audit_id, thread.channel, line, thread_ts=thread.ts)


async def _post(
    client: AsyncWebClient,
    audit_id: int,
    channel: str,
    line: str,
    *,
    thread_ts: str | None = None,
    broadcast: bool = False,
) -> None:
    try:
        await client.chat_postMessage(
            channel=channel,
            text=line,
            thread_ts=thread_ts,
            reply_broadcast=True if broadcast else None,
            unfurl_links=False,
            unfurl_media=False,
        )
    except SlackApiError as error:
        log.warning(
            "could not announce audit #%s in %s (%s): is callbot a member of that channel?",
            audit_id,
            channel,
            error.response.get("error"),
        )
    except Exception:
        log.exception("could not announce audit #%s in %s", audit_id, channel)
