"""The value of an audit page's Newer/Older buttons: the filter, the direction and the cursor,
compact enough for a Slack button, and read back strictly (a button value is user input)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.db.audit_search import AuditFilter, Cursor

TOKEN_LIMIT = 2000  # Slack's limit on a button value
# Keys: short, since the whole token must fit in a button value.
TOKEN_FIELDS = {"u": "user_id", "a": "account", "c": "call_id", "x": "action", "o": "outcome"}


def filter_fields(flt: AuditFilter) -> dict[str, Any]:
    fields: dict[str, Any] = {name: getattr(flt, name) for name in TOKEN_FIELDS.values()}
    fields["since"] = flt.since.isoformat() if flt.since else None
    fields["until"] = flt.until.isoformat() if flt.until else None
    return fields


def page_token(flt: AuditFilter, direction: str, cursor: Cursor | None) -> str | None:
    """A compact button value: the filter, the direction and the cursor. None if it would not fit
    (a filter of absurd length): that button is then left out."""
    if cursor is None:
        return None
    data: dict[str, Any] = {key: getattr(flt, name) for key, name in TOKEN_FIELDS.items() if getattr(flt, name)}
    for key, moment in (("s", flt.since), ("t", flt.until)):
        if moment is not None:
            data[key] = _iso(moment)
    data["d"] = direction
    data["k"] = [_iso(cursor.created_at), cursor.id]
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= TOKEN_LIMIT else None


def decode_token(token: str) -> tuple[AuditFilter, Cursor | None, Cursor | None]:
    """The filter and the cursor of a page button. ValueError if it is not one of ours."""
    try:
        data = json.loads(token)
        fields = {name: _text(data.get(key)) for key, name in TOKEN_FIELDS.items()}
        since, until = (_moment(data.get(key)) for key in ("s", "t"))
        at, row_id = data["k"]
        cursor = Cursor(_moment(at) or _missing(), int(row_id))
        direction = data["d"]
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise ValueError(f"not an audit page token: {error}") from None
    if direction not in ("n", "o"):
        raise ValueError("not an audit page token: direction")
    flt = AuditFilter(
        user_id=fields["user_id"],
        account=fields["account"],
        call_id=fields["call_id"],
        action=fields["action"],
        outcome=fields["outcome"],
        since=since,
        until=until,
    )
    return (flt, cursor, None) if direction == "o" else (flt, None, cursor)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("a filter value is not text")
    return value


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _missing() -> datetime:
    raise ValueError("no cursor time")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
