"""The Bolt AsyncApp: turns Slack requests into service invocations and replies into messages.

Listeners only translate (bot/slack/listeners/). Parsing, permissions, audit and provider calls
live in the service.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.config import Settings
from bot.domain.replies import Reply, Tone
from bot.logs import new_request_id, request_id, request_started
from bot.service.core import Service
from bot.slack.client import web_client
from bot.slack.listeners import register_listeners
from bot.slack.views.render import message

OTHER_COMMAND = Reply(
    Tone.INFO, "callbot answers `/call` only.", ("Check the command's name in the Slack app's configuration.",)
)


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
    app.middleware(stamp_request_id)
    register_listeners(app, service)
    # After /call's: any other command routed here (a renamed or added one in the app's
    # configuration) gets an answer rather than Bolt's 404, which Slack shows as a failure.
    app.command(re.compile(".*"))(on_other_command)
    return app


async def on_other_command(ack: AsyncAck) -> None:
    await ack(**message(OTHER_COMMAND))


async def stamp_request_id(next: Callable[[], Awaitable[None]]) -> None:
    # Over HTTP the ASGI layer gave the request its id already (bot/web.py). Socket Mode runs
    # each Slack message in a task of its own: the id set here stays with that message.
    if request_id.get() is None:
        request_id.set(new_request_id())
        request_started.set(time.monotonic())
    await next()
