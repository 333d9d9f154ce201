"""Saved flows: the team's library of named, versioned Bird callFlows.

A saved flow is a name (lowercase words and dashes, ≤ 64 characters, e.g. `hold-music`) with
versions 1, 2, 3…: saving an existing name adds the next version and keeps the older ones. A flow is
referred to as `NAME` (its newest version) or `NAME@N` (version N).

Deleting a name marks every version deleted (who, when) instead of removing rows: the history
stays in the `saved_flows` table for auditors, while the name disappears from `/call flows` and
can no longer be shown or applied. Saving the name again later starts at the next unused version
number, so a version number always means the same flow.

The library is shared by the whole team, not tied to a provider account; who may read, save and
delete is decided by the service (bot/domain/permissions.py: `decide_flow_read`, `decide_flow_manage`).
The functions here neither check permissions nor audit: callers (the service's `/call flows`
commands, and `Service.save_flow` for the builder's "Save as…") do both.
"""

from __future__ import annotations

import difflib

from bot.db import flow_store
from bot.db.models import SavedFlowRow
from bot.db.session import Database
from bot.domain.callflow import CallFlow, validate_callflow
from bot.domain.errors import InvalidInput
from bot.domain.flows import FlowRef, LibraryEntry, SavedFlow, check_name
from bot.domain.replies import mention


async def save(db: Database, team: str, name: str, flow: CallFlow, author: str) -> SavedFlow:
    """Stores `flow` as the next version of `name`. No permission check, no audit: see the service."""
    row = await flow_store.insert_saved_flow(db, team, check_name(name), flow.to_wire(), author)
    return SavedFlow(row.id, row.name, row.version, flow, row.author, row.created_at)


async def resolve(db: Database, team: str, ref: FlowRef) -> SavedFlow:
    """The version a reference means, or an InvalidInput saying clearly why there is none."""
    rows = await flow_store.saved_flow_versions(db, team, ref.name)
    if not rows:
        raise InvalidInput(ref.name, "is not a saved flow", await _unknown_hint(db, team, ref.name))
    live = [row for row in rows if row.deleted_at is None]
    if not live:
        raise InvalidInput(ref.name, f"was {_deleted(rows[-1])}", "See `/call flows` for the saved flows.")
    if ref.version is None:
        return _saved(live[-1])
    row = next((row for row in rows if row.version == ref.version), None)
    if row is None:
        raise InvalidInput(str(ref), f"there is no version {ref.version}", f"`{ref.name}` has {_versions(live)}.")
    if row.deleted_at is not None:
        raise InvalidInput(
            str(ref), f"version {row.version} was {_deleted(row)}", f"`{ref.name}` has {_versions(live)}."
        )
    return _saved(row)


async def entries(db: Database, team: str) -> list[LibraryEntry]:
    return [
        LibraryEntry(row.name, row.version, len(row.callflow), row.author, row.created_at, count)
        for row, count in await flow_store.latest_saved_flows(db, team)
    ]


async def versions(db: Database, team: str, name: str) -> list[int]:
    """The live versions of a name, oldest first."""
    return [row.version for row in await flow_store.saved_flow_versions(db, team, name) if row.deleted_at is None]


async def delete(db: Database, team: str, name: str, deleted_by: str) -> list[int]:
    """Marks every version of `name` deleted; the versions marked. Unknown or deleted: InvalidInput."""
    marked = await flow_store.delete_saved_flow(db, team, check_name(name), deleted_by)
    if not marked:
        rows = await flow_store.saved_flow_versions(db, team, name)
        if rows:
            raise InvalidInput(name, f"was already {_deleted(rows[-1])}")
        raise InvalidInput(name, "is not a saved flow", await _unknown_hint(db, team, name))
    return marked


# -- helpers --------------------------------------------------------------------------------------


def _saved(row: SavedFlowRow) -> SavedFlow:
    """A stored row as a domain value. The stored callFlow is checked again before use: if callbot's
    validation has become stricter since it was saved, the person hears why instead of Bird."""
    try:
        flow = validate_callflow(row.callflow)
    except InvalidInput as error:
        raise InvalidInput(
            f"{row.name}@{row.version}",
            f"no longer passes callbot's checks ({error.message})",
            f"Save a corrected version: `/call flows save {row.name} 'CALLFLOW'`.",
        ) from None
    return SavedFlow(row.id, row.name, row.version, flow, row.author, row.created_at)


async def _unknown_hint(db: Database, team: str, name: str) -> str:
    names = await flow_store.saved_flow_names(db, team)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"Did you mean `{close[0]}`?"
    return "See `/call flows` for the saved flows." if names else "No flow has been saved yet."


def _deleted(row: SavedFlowRow) -> str:
    when = row.deleted_at.strftime("%Y-%m-%d %H:%M UTC") if row.deleted_at else "?"
    return f"deleted by {mention(row.deleted_by or '?')} on {when}"


def _versions(live: list[SavedFlowRow]) -> str:
    numbers = [row.version for row in live]
    if len(numbers) == 1:
        return f"only version {numbers[0]}"
    return "versions " + ", ".join(str(n) for n in numbers)
