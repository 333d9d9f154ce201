"""The shortcuts (manifest.yml): the global one opens the action form; "Act on this call", on any
message (an alert from a monitoring tool, say), opens it with the call ids found in the message
to pick from, their account picked when the id's shape says which.

Permission-checked as the form is (only the accounts the person may act on are offered; the
submission is decided again), and audited with the shortcut as the row's source. An action run
from a message also answers in that message's thread (bot/slack/announce.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.callids import MAX_FOUND
from bot.domain.outcomes import Source
from bot.service.core import Service
from bot.slack.invocations import shortcut_invocation
from bot.slack.listeners.action_form import open_action_form
from bot.slack.views.message_calls import FormOrigin

log = logging.getLogger(__name__)

# The callback ids of manifest.yml's shortcuts.
GLOBAL_SHORTCUT = "call_form"
MESSAGE_SHORTCUT = "act_on_call"
# Keys of a message whose strings are Slack's own identifiers, never what the message says.
_NOT_TEXT = frozenset(
    {"ts", "thread_ts", "user", "bot_id", "app_id", "team", "block_id", "action_id", "client_msg_id", "type"}
)
# A message is read this deep at most (Slack's blocks nest a few levels).
_DEPTH = 12


def register(app: AsyncApp, service: Service) -> None:
    app.global_shortcut(GLOBAL_SHORTCUT)(partial(on_global_shortcut, service=service))
    app.message_shortcut(MESSAGE_SHORTCUT)(partial(on_message_shortcut, service=service))


async def on_global_shortcut(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    await ack()
    inv = shortcut_invocation(body, Source.SHORTCUT)
    trigger = str(body.get("trigger_id") or "")
    await open_action_form(client, service, trigger, inv, origin=FormOrigin(Source.SHORTCUT))


async def on_message_shortcut(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, *, service: Service) -> None:
    await ack()
    inv = shortcut_invocation(body, Source.MESSAGE_SHORTCUT)
    message = body.get("message") or {}
    try:
        found = service.calls_in(inv.team, message_texts(message))
    except Exception:
        log.exception("could not read the call ids of a message")
        found = []
    # At most MAX_FOUND offered (a menu's options and the view's metadata stay small); the form
    # says when the message had more.
    ids = tuple(call.call_id for call in found[:MAX_FOUND])
    origin = FormOrigin(Source.MESSAGE_SHORTCUT, ids, _thread(body, message), more=len(found) > MAX_FOUND)
    await open_action_form(client, service, str(body.get("trigger_id") or ""), inv, origin=origin)


def message_texts(message: Any, depth: int = 0) -> Iterator[str]:
    """Every string a message shows or links to: its text, its blocks' text, fields, links and
    buttons' URLs, its attachments' (legacy) text, title, fields and fallback, in order."""
    if depth > _DEPTH:
        return
    if isinstance(message, str):
        yield message
    elif isinstance(message, dict):
        for key, value in message.items():
            if key not in _NOT_TEXT:
                yield from message_texts(value, depth + 1)
    elif isinstance(message, list):
        for item in message:
            yield from message_texts(item, depth + 1)


def _thread(body: dict[str, Any], message: dict[str, Any]) -> tuple[str, str] | None:
    """Where the outcome is told: the message's thread (its own, when it is a reply already)."""
    channel = (body.get("channel") or {}).get("id")
    ts = message.get("thread_ts") or body.get("message_ts") or message.get("ts")
    if isinstance(channel, str) and channel and isinstance(ts, str) and ts:
        return channel, ts
    return None
