"""OAuth mode's stores (docs/distribution.md): slack_sdk's installation store, one row per install
of a workspace or an Enterprise Grid org with its bot token, and its OAuth state store, on
callbot's own database engine. Their tables come from migration 0014, never from create_tables().
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import sqlalchemy
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.sqlalchemy_utils import normalize_datetime_for_db
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore

from bot.db.session import Database

log = logging.getLogger(__name__)


def installation_store(db: Database, client_id: str) -> AsyncSQLAlchemyInstallationStore:
    return AsyncSQLAlchemyInstallationStore(client_id=client_id, engine=db.engine, logger=log)


class StateStore(AsyncSQLAlchemyOAuthStateStore):
    """slack_sdk's state store, whose expired states are deleted: anyone may open the install page,
    and each visit adds a state that only a completed install would otherwise remove."""

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        now = normalize_datetime_for_db(datetime.now(UTC))
        async with self.engine.begin() as conn:
            await conn.execute(self.oauth_states.delete().where(self.oauth_states.c.expire_at <= now))
        return await super().async_issue(*args, **kwargs)


def state_store(db: Database, expiry_seconds: int) -> AsyncSQLAlchemyOAuthStateStore:
    return StateStore(expiration_seconds=expiry_seconds, engine=db.engine, logger=log)


async def installed_workspaces(store: AsyncSQLAlchemyInstallationStore) -> list[tuple[str | None, str | None]]:
    """Every (enterprise id, team id) with a bot installation: team None is an org-wide install."""
    c = store.bots.c
    query = (
        sqlalchemy.select(c.enterprise_id, c.team_id)
        .where(c.client_id == store.client_id, c.bot_token.is_not(None))
        .distinct()
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [(row[0], row[1]) for row in rows]
