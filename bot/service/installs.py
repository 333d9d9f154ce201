"""The audit of OAuth installations: an install, an uninstall, revoked tokens (docs/distribution.md).

Each is one hash-chained audit row, written after the installation store changed. Uninstalling
deletes the installation only: every audit row of the workspace stays.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.db import workspaces
from bot.db.session import Database
from bot.domain.outcomes import Outcome, Source, WorkspaceChange
from bot.service.recorder import Recorder
from bot.service.steps import Invocation


@dataclass(frozen=True)
class WorkspaceEvent:
    """What Slack told about one workspace (or, org_wide, a whole Enterprise Grid org). No token."""

    change: WorkspaceChange
    team_id: str | None
    enterprise_id: str | None
    # The installer, or for an event the user it names; Slack when nobody is named.
    user_id: str | None = None
    team_name: str | None = None
    org_wide: bool = False
    # tokens_revoked: how many bot and user tokens Slack revoked.
    detail: str | None = None

    def describe(self) -> str:
        where = [f"team {self.team_id}" if self.team_id else None]
        where.append(f"({self.team_name})" if self.team_name else None)
        where.append(f"enterprise {self.enterprise_id}" if self.enterprise_id else None)
        where.append("org-wide" if self.org_wide else None)
        where.append(self.detail)
        return " ".join([self.change.value, *filter(None, where)])


class Installations:
    def __init__(self, recorder: Recorder, db: Database) -> None:
        self.recorder = recorder
        self.db = db
        # Workspaces this process recorded already: one write per workspace, not per request.
        self._seen: set[str] = set()

    async def record(self, event: WorkspaceEvent) -> int:
        """The audit row of the change; returns its id. An installed workspace is recorded too, so
        the shell's `--team` knows it. An org-wide install names no workspace: its rows are filed
        under the enterprise id (E…), which only the shell's audit commands take."""
        team = event.team_id or event.enterprise_id
        if event.change is WorkspaceChange.INSTALLED and team:
            await workspaces.record(self.db, team, event.enterprise_id, event.team_name)
            self._seen.add(team)
        inv = Invocation(
            source=Source.SLACK,
            user_id=event.user_id or "slack",
            user_name=None if event.user_id else "Slack",
            text=event.describe(),
            team_id=team,
            enterprise_id=event.enterprise_id,
        )
        row = await self.recorder.record(inv, outcome=Outcome.SUCCEEDED, action=event.change.value, completed=True)
        return row.id

    async def seen(self, team_id: str | None, enterprise_id: str | None) -> None:
        """A request came from this workspace (OAuth mode): under an org-wide install, the first
        sign of a workspace callbot serves, which the shell's `--team` then accepts."""
        if team_id and team_id not in self._seen:
            await workspaces.record(self.db, team_id, enterprise_id)
            self._seen.add(team_id)
