"""Who holds what: a person's grants and their groups' (roles expanded), and the decision for one
action on one account from one channel. Deny by default (bot/domain/permissions.py decides)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from bot.db import repo
from bot.db.session import Database
from bot.domain.directory import Directory, DirectoryError
from bot.domain.permissions import Decision, Grant, concerns, decide, group_mention, usable, with_roles
from bot.service.steps import Clock, Invocation

log = logging.getLogger(__name__)


class Access:
    def __init__(self, db: Database, directory: Directory, clock: Clock) -> None:
        self.db = db
        # User-group membership (bot/slack/directory.py); without it group grants never match.
        self.directory = directory
        self.now = clock

    async def held(
        self, team: str, user_id: str, relevant: Callable[[Grant], bool] = lambda grant: True
    ) -> tuple[list[Grant], list[str]]:
        """A user's own grants in workspace `team` and those of the groups they are in (roles
        expanded, expired included), and the groups whose members could not be read. Only groups
        with a `relevant`, unexpired grant are looked up, so an unrelated group costs no Slack call.
        A grant of another workspace never counts, whatever its user id."""
        own, groups, custom = await repo.grants_for(self.db, team, user_id)
        held = with_roles(own, custom)
        now = self.now()
        membership: dict[str, bool] = {}
        problems: list[str] = []
        for grant in with_roles(groups, custom):
            if grant.expired(now) or not relevant(grant):
                continue
            if grant.user_id not in membership:
                membership[grant.user_id] = await self._is_member(grant.user_id, user_id, problems)
            if membership[grant.user_id]:
                held.append(grant)
        return held, problems

    async def _is_member(self, group_id: str, user_id: str, problems: list[str]) -> bool:
        try:
            return await self.directory.is_member(group_id, user_id)
        except DirectoryError as error:
            log.warning("could not read the members of user group %s: %s", group_id, error)
            problems.append(f"could not read the members of {group_mention(group_id)} ({error})")
            return False

    async def decide(self, inv: Invocation, action: str, account: str | None) -> Decision:
        held, problems = await self.held(inv.team, inv.user_id, lambda grant: concerns(grant, action, account))
        decision = decide(held, action, account, channel=inv.channel_id, now=self.now())
        if not decision.allowed and problems:
            decision = replace(decision, note="; ".join(filter(None, [decision.note, *problems])))
        return decision

    async def all_held(self, inv: Invocation) -> list[Grant]:
        return (await self.held(inv.team, inv.user_id))[0]

    async def usable(self, inv: Invocation) -> list[Grant]:
        """The grants that count for this command: unexpired, and from its channel."""
        return usable(await self.all_held(inv), channel=inv.channel_id, now=self.now())
