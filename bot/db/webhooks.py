"""Receipts of provider callbacks (`WebhookReceipt`): how every process sharing the database
knows a callback was taken already.

Taking one is inserting its key (provider, account, digest of what was signed); a key that is
there already makes the insert fail, which is the replay. No read comes first, so two processes
given the same callback at the same moment cannot both take it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from bot.db.models import WebhookReceipt
from bot.db.session import Database


async def take(db: Database, provider: str, account: str, digest: str, now: datetime) -> bool:
    """Records the callback; False when it was recorded before (a replay)."""
    try:
        async with db.session() as session:
            session.add(WebhookReceipt(provider=provider, account=account, digest=digest, received_at=now))
    except IntegrityError:
        return False
    return True


async def release(db: Database, provider: str, account: str, digest: str) -> None:
    """Forgets a receipt whose callback could not be handled: the provider's retry is then taken."""
    async with db.session() as session:
        await session.execute(
            delete(WebhookReceipt).where(
                WebhookReceipt.provider == provider,
                WebhookReceipt.account == account,
                WebhookReceipt.digest == digest,
            )
        )


async def purge(db: Database, older_than: datetime) -> int:
    """Deletes the receipts from before `older_than`; returns how many."""
    async with db.session() as session:
        result = await session.execute(delete(WebhookReceipt).where(WebhookReceipt.received_at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)
