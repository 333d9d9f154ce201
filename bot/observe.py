"""One log record and one metric per attempt, from what the audit table saw (bot/db/events.py).

An attempt is reported when its audit row reaches its final outcome: at once for a refusal or an
invalid command, after the provider's answer for an action (its row was opened `pending` first).
The audit row is the record of truth; this is what operators watch.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence

from bot import metrics
from bot.db.events import AuditEvent
from bot.domain import phone
from bot.logs import request_started

log = logging.getLogger("callbot.attempts")

# Pending rows this process opened and has not seen closed: their start, for the duration. Rows
# another process closes (or a crash leaves behind) would stay: bounded, oldest forgotten first.
_MAX_OPEN = 10_000


class AttemptObserver:
    def __init__(self) -> None:
        self._opened: OrderedDict[int, float] = OrderedDict()

    def __call__(self, noted: Sequence[AuditEvent]) -> None:
        now = time.monotonic()
        for event in noted:
            if not event.final:
                self._opened[event.audit_id] = now
                while len(self._opened) > _MAX_OPEN:
                    self._opened.popitem(last=False)
                continue
            began = self._opened.pop(event.audit_id, None)
            if began is None:
                began = request_started.get()
            self.report(event, None if began is None else int((now - began) * 1000))

    def report(self, event: AuditEvent, duration_ms: int | None) -> None:
        metrics.ATTEMPTS.labels(
            action=event.action or "none", outcome=event.outcome, provider=event.provider or "none"
        ).inc()
        if event.source == "bulk" and event.action == "hangup" and event.outcome == "succeeded":
            metrics.BULK_CALLS_ENDED.inc()
        what = event.action or "command"
        where = f" on {event.account}" if event.account else ""
        log.info(
            "%s%s: %s",
            what,
            where,
            event.outcome,
            extra={
                "audit_id": event.audit_id,
                "slack_user": event.user_id,
                "slack_team": event.team_id,
                "source": event.source,
                "action": event.action,
                "account": event.account,
                "provider": event.provider,
                "call_id": event.call_id,
                "outcome": event.outcome,
                "duration_ms": duration_ms,
                "provider_latency_ms": event.latency_ms,
                # Secrets are masked already (the audit row's text); numbers are masked here.
                "error": phone.mask_in_text(event.error_message) if event.error_message else None,
            },
        )
