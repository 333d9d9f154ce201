"""Audit export for a SIEM or an auditor: CSV or JSON Lines, oldest first, streamed in chunks so
memory stays flat whatever the row count. Used by `callbot audit export` and `/call audit export`.

Every column of the row is exported, the chain fields included, so the file alone is enough to
recompute the hash chain (docs/audit.md).
"""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.db import audit_search
from bot.db.session import Database
from bot.domain.redact import Redactor

FORMATS = ("csv", "jsonl")
COLUMNS = (
    "id",
    "created_at",
    "completed_at",
    "source",
    "team_id",
    "user_id",
    "user_name",
    "channel_id",
    "action",
    "account",
    "provider",
    "call_id",
    "outcome",
    "decision",
    "decision_basis",
    "grant_id",
    "break_glass",
    "provider_status",
    "error_code",
    "error_message",
    "provider_request_id",
    "latency_ms",
    "command_text",
    "request",
    "result",
    "idempotency_key",
    "chain_seq",
    "chain_hash",
    "outcome_seq",
    "outcome_hash",
    # Appended, so that readers of older files keep their column positions: what the provider
    # confirmed the call did (docs/audit.md, "Confirmation"), and its chain entry.
    "confirmed_status",
    "confirmed_word",
    "confirmed_at",
    "confirmed_via",
    "confirm_seq",
    "confirm_hash",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); `+` and `-`
# only when no digit follows, so phone numbers and negative numbers stay as they are.
_FORMULA = re.compile(r"^(?:[=@\t\r]|[+-](?!\d))")
_RISKY_FIRST = frozenset("=@\t\r+-")  # a cheap test first: most cells start with none of these


class TextSink(Protocol):
    def write(self, text: str, /) -> Any: ...


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _json_value(value: Any) -> Any:
    return _timestamp(value) if isinstance(value, datetime) else value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    text = str(value)
    return "'" + text if text[:1] in _RISKY_FIRST and _FORMULA.match(text) else text


class _RedactingSink:
    """Every piece of the file goes through the redactor on its way out: a last guard, since rows
    are stored redacted already (but maybe by an older callbot, or before a secret was configured)."""

    def __init__(self, out: TextSink, redactor: Redactor) -> None:
        self.out = out
        self.redactor = redactor

    def write(self, text: str, /) -> Any:
        return self.out.write(self.redactor.text(text))


async def write(db: Database, flt: audit_search.AuditFilter, fmt: str, out: TextSink, redactor: Redactor) -> int:
    """Writes every row matching `flt` to `out`, secrets masked; returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    out = _RedactingSink(out, redactor)
    count = 0
    writer = csv.writer(out, lineterminator="\r\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    async for row in audit_search.stream(db, flt, COLUMNS):
        if writer is not None:
            writer.writerow([_csv_cell(row[name]) for name in COLUMNS])
        else:
            out.write(json.dumps({name: _json_value(row[name]) for name in COLUMNS}, ensure_ascii=False) + "\n")
        count += 1
    return count
