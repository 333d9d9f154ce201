"""What an executed call action tells the incident channel: one line, from its audit row (so the
outcome and the audit id are exactly what the audit says), secrets and numbers masked.

The chat layer posts it (bot/slack/announce.py) to the account's announce_channel, and to the
thread of the message a shortcut was used on.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.db import repo
from bot.db.session import Database
from bot.domain import phone
from bot.domain.announcements import BATCH_RAN, EXECUTED, action_line, batch_line
from bot.domain.policy import Policy
from bot.domain.redact import Redactor
from bot.service.approval_requests import BULK_ACTION


class Announcements:
    def __init__(self, db: Database, policy_of: Callable[[str], Policy], redactor: Redactor) -> None:
        self.db = db
        self.policy_of = policy_of
        self.redactor = redactor

    async def line(self, audit_id: int) -> str | None:
        """The line for audit row `audit_id`; None when it records nothing that reached a provider
        (refused, a dry run, not sent, or still pending)."""
        row = await repo.audit_by_id(self.db, None, audit_id)
        if row is None or not row.account or not row.action:
            return None
        if row.action == BULK_ACTION:
            if row.outcome not in BATCH_RAN:
                return None
            text = batch_line(row.user_id, row.account, row.outcome, row.id, row.result)
        else:
            if row.outcome not in EXECUTED or not row.call_id:
                return None
            text = action_line(row.user_id, row.action, row.account, row.call_id, row.outcome, row.id)
        return phone.mask_in_text(self.redactor.text(text))

    def batch_channel(self, account: str) -> str | None:
        """Where a bulk hang-up on `account` is announced: its announce_channel, whatever `announce`
        says (a batch ends many calls at once; the channel always hears of it)."""
        return self.policy_of(account).announce_channel
