"""Audit retention: `callbot audit purge --older-than 400d`, and the server's daily purge when
`audit_retention_days` is set in callbot.toml.

A purge removes the oldest part of the hash chain and is itself an audit row (`audit.purge`)
whose `result` is the checkpoint: how many rows went, the last chain entry removed and its hash,
where the remaining chain starts (bot/db/chain.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.db import repo
from bot.db.session import Database
from bot.domain.errors import InvalidInput

# Rows younger than this are never purged: they may still be pending, or be the incident at hand.
MIN_AGE = timedelta(days=1)
PURGE_ACTION = "audit.purge"


@dataclass(frozen=True)
class PurgeReport:
    rows: int
    before: datetime
    through_seq: int
    last_hash: str
    audit_id: int

    def summary(self) -> str:
        if not self.rows:
            return f"Nothing to purge: no audit row before {self.before:%Y-%m-%d %H:%M} UTC (audit #{self.audit_id})."
        return (
            f"Purged {self.rows} audit rows created before {self.before:%Y-%m-%d %H:%M} UTC. The chain now starts "
            f"after entry {self.through_seq} ({self.last_hash}); checkpoint: audit #{self.audit_id}."
        )


_AGE = re.compile(r"^(\d{1,5})([dw])$")


def parse_age(word: str) -> timedelta:
    """`400d`, `52w`: how old a row must be to go."""
    match = _AGE.match(word.strip().lower())
    if not match:
        raise InvalidInput(word, "is not an age.", "Use days or weeks, e.g. `400d` or `52w`.")
    age = int(match.group(1)) * (timedelta(weeks=1) if match.group(2) == "w" else timedelta(days=1))
    check_age(age, word)
    return age


def check_age(older_than: timedelta, word: str) -> None:
    if older_than < MIN_AGE:
        raise InvalidInput(word, "is too short: audit rows younger than a day are never purged.", "Use e.g. `400d`.")


async def has_rows_before(db: Database, before: datetime) -> bool:
    return await repo.audit_rows_before(db, before)


async def purge(
    db: Database, *, older_than: timedelta, now: datetime, by: str, source: str, command_text: str, basis: str
) -> PurgeReport:
    """Deletes rows created before `now - older_than` (a prefix of the chain) and audits it in
    the same transaction: the checkpoint row exists exactly when the rows are gone."""
    check_age(older_than, command_text)
    before = now - older_than
    checkpoint = {
        "created_at": now,
        "completed_at": now,
        "source": source,
        "user_id": by,
        "command_text": command_text,
        "action": PURGE_ACTION,
        "decision": "allowed",
        "decision_basis": basis[:255],
        "outcome": "succeeded",
        "request": {"older_than_seconds": int(older_than.total_seconds()), "before": before.isoformat()},
    }
    done, row = await repo.purge_audit(db, before, checkpoint)
    return PurgeReport(done.rows, before, done.through_seq, done.last_hash, row.id)
