"""The Bolt AsyncApp: turns Slack requests into service invocations and replies into messages.

Listeners only translate (bot/slack/listeners/). Parsing, permissions, audit and provider calls
live in the service.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from bot.config import Settings
from bot.domain.replies import Reply, Tone
from bot.logs import new_request_id, request_id, request_started
from bot.service.core import Service
from bot.slack.client import web_client
from bot.slack.edge import envelope_problem
from bot.slack.installs import Installs, current_workspace
from bot.slack.listeners import register_listeners
from bot.slack.views.render import message

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient

log = logging.getLogger(__name__)

OTHER_COMMAND = Reply(
    Tone.INFO, "callbot answers `/call` only.", ("Check the command's name in the Slack app's configuration.",)
)


class _SameTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and then warns that our client makes it unused; the client
    carries that very token (plus SLACK_API_URL), so the warning only misleads operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def create_bolt_app(settings: Settings, service: Service, installs: Installs | None = None) -> AsyncApp:
    """Built at start-up (never at import: a token means Slack calls), one per process. In OAuth
    mode (`installs.oauth_mode`) each request is answered with its workspace's token."""
    bolt_logger = logging.getLogger("slack_bolt.AsyncApp")
    if not any(isinstance(f, _SameTokenWarning) for f in bolt_logger.filters):
        bolt_logger.addFilter(_SameTokenWarning())
    if installs is not None and installs.oauth_mode:
        from bot.slack.oauth import NOT_INSTALLED, oauth_flow, register_install_events

        # No token of its own: Bolt gives each listener a copy carrying the workspace's.
        client = web_client(None, settings.slack_api_url)
        app = AsyncApp(
            client=client,
            signing_secret=settings.slack_signing_secret or "",
            oauth_flow=oauth_flow(settings, installs, service, client),
            authorize=installs.authorize,  # type: ignore[arg-type]  # an AsyncAuthorize, which Bolt takes as is
            user_facing_authorize_error_message=NOT_INSTALLED,
            process_before_response=False,
            raise_error_for_unhandled_request=False,
        )
        register_install_events(app, service, installs)
    else:
        app = AsyncApp(
            client=web_client(settings.slack_bot_token, settings.slack_api_url),
            signing_secret=settings.slack_signing_secret or "",
            request_verification_enabled=bool(settings.slack_signing_secret),
            process_before_response=False,
            raise_error_for_unhandled_request=False,
        )
    app.middleware(stamp_request_id)
    app.middleware(remember_workspace)
    if installs is not None and installs.oauth_mode:

        async def record_workspace(context: AsyncBoltContext, next: Callable[[], Awaitable[None]]) -> None:
            try:
                await service.installs.seen(context.team_id, context.enterprise_id)
            except Exception:  # the request goes on: the next one records it
                log.exception("could not record workspace %s", context.team_id)
            await next()

        app.middleware(record_workspace)
    register_listeners(app, service)
    # After /call's: any other command routed here (a renamed or added one in the app's
    # configuration) gets an answer rather than Bolt's 404, which Slack shows as a failure.
    app.command(re.compile(".*"))(on_other_command)
    return app


async def on_other_command(ack: AsyncAck) -> None:
    await ack(**message(OTHER_COMMAND))


def socket_mode_handler(app: AsyncApp, app_token: str) -> AsyncSocketModeHandler:
    """Bolt over Socket Mode, each envelope's payload checked first as the HTTP edge checks a
    body (bot/slack/edge.py)."""
    # Imported here: only `serve --socket` needs the websocket client (aiohttp).
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.socket_mode.response import SocketModeResponse

    handler = AsyncSocketModeHandler(app, app_token)

    async def check(client: AsyncBaseSocketModeClient, envelope: dict[str, Any], raw: str | None) -> None:
        wrong = envelope_problem(envelope)
        if wrong is None:
            return
        # Message listeners run before the request listener (Bolt) and share the envelope:
        # without a payload, the SDK makes no request of it.
        del envelope["payload"]
        envelope_id = envelope.get("envelope_id")
        log.warning("refused a Socket Mode envelope: %s", wrong)
        if isinstance(envelope_id, str) and envelope_id:
            # Acknowledged, or Slack would send it again.
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))

    handler.client.message_listeners.append(check)
    return handler


async def stamp_request_id(next: Callable[[], Awaitable[None]]) -> None:
    # Over HTTP the ASGI layer gave the request its id already (bot/web.py). Socket Mode runs
    # each Slack message in a task of its own: the id set here stays with that message.
    if request_id.get() is None:
        request_id.set(new_request_id())
        request_started.set(time.monotonic())
    await next()


async def remember_workspace(context: AsyncBoltContext, next: Callable[[], Awaitable[None]]) -> None:
    # What the listeners this request starts read when they need the workspace's client outside
    # Bolt's (the user-group lookup: bot/slack/installs.py WorkspaceDirectory).
    current_workspace.set((context.team_id, context.enterprise_id))
    await next()
