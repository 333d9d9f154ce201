"""OAuth mode's stores (docs/distribution.md): slack_sdk's installation store, one row per install
of a workspace or an Enterprise Grid org with its bot token, and its OAuth state store, on
callbot's own database engine. Their tables come from migration 0014, never from create_tables().
"""

from __future__ import annotations

import logging

import sqlalchemy
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore

from bot.db.session import Database

log = logging.getLogger(__name__)


def installation_store(db: Database, client_id: str) -> AsyncSQLAlchemyInstallationStore:
    return AsyncSQLAlchemyInstallationStore(client_id=client_id, engine=db.engine, logger=log)


def state_store(db: Database, expiry_seconds: int) -> AsyncSQLAlchemyOAuthStateStore:
    return AsyncSQLAlchemyOAuthStateStore(expiration_seconds=expiry_seconds, engine=db.engine, logger=log)


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
