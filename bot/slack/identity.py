"""Which Slack workspace the bot token belongs to (`auth.test`), read at start: the rows written
before callbot knew workspaces are given to it (bot/db/workspaces.py), once."""

from __future__ import annotations

import asyncio
import logging

from bot.config import Settings
from bot.db import workspaces
from bot.db.session import Database
from bot.slack.client import web_client

log = logging.getLogger(__name__)

# Start-up waits at most this long for Slack: a Slack that hangs must not keep callbot down.
IDENTIFY_WITHIN = 10.0


async def identify(settings: Settings, db: Database) -> str | None:
    """The bot token's workspace (recorded, unassigned rows assigned to it); None without a token
    or when Slack could not say (then callbot starts anyway, and the log says what waits)."""
    if not settings.slack_bot_token:
        return None
    try:
        client = web_client(settings.slack_bot_token, settings.slack_api_url)
        answer = await asyncio.wait_for(client.auth_test(), IDENTIFY_WITHIN)
        team = str(answer.get("team_id") or "")
        if not team:
            raise ValueError("auth.test named no team_id")
        enterprise = answer.get("enterprise_id") or None
        name = answer.get("team") or None
    except Exception as error:
        waiting = await workspaces.unassigned(db)
        log.warning(
            "could not read this bot's Slack workspace from auth.test (%s): %s; retried at the next start",
            type(error).__name__,
            f"rows without a workspace, shown nowhere until then: {_counts(waiting)}" if waiting else "no row waits",
        )
        return None
    await workspaces.record(db, team, str(enterprise) if enterprise else None, str(name) if name else None)
    moved = await workspaces.assign_unassigned(db, team)
    if moved:
        log.warning("rows written before callbot knew workspaces were assigned to %s: %s", team, _counts(moved))
    return team


def _counts(found: dict[str, int]) -> str:
    return ", ".join(f"{table} {count}" for table, count in sorted(found.items()))
