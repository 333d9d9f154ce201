"""User-group membership from the Slack Web API (`usergroups.users.list`, scope `usergroups:read`).

Members are cached per group for `ttl` of the service's clock. A miss (the person is not in the
cached list) re-reads the group, unless that list is younger than `recheck`: someone added to a
group gets access within `recheck` (10 s), while people outside it (most of the workspace) cost
at most one Slack read per group per `recheck`, however many commands they type. Someone removed
keeps access until the cached list is older than `ttl`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.directory import DirectoryError

DEFAULT_TTL = timedelta(minutes=3)
DEFAULT_RECHECK = timedelta(seconds=10)


class SlackDirectory:
    def __init__(
        self,
        client: AsyncWebClient,
        clock: Callable[[], datetime],
        ttl: timedelta = DEFAULT_TTL,
        recheck: timedelta = DEFAULT_RECHECK,
    ) -> None:
        self.client = client
        self.clock = clock
        self.ttl = ttl
        self.recheck = recheck
        self._cache: dict[str, tuple[datetime, frozenset[str]]] = {}

    async def is_member(self, group_id: str, user_id: str) -> bool:
        now = self.clock()
        cached = self._cache.get(group_id)
        fresh_enough = cached is not None and now - cached[0] < self.ttl
        # A hit, or a miss on a list read within `recheck`, needs no second read.
        if cached is not None and fresh_enough and (user_id in cached[1] or now - cached[0] < self.recheck):
            return user_id in cached[1]
        return user_id in await self._read(group_id, now)

    async def _read(self, group_id: str, now: datetime) -> frozenset[str]:
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            raise DirectoryError(f"Slack answered {error.response.get('error', 'an error')}") from None
        except Exception as error:  # network errors: deny with a reason rather than crash the command
            raise DirectoryError(f"Slack could not be reached ({type(error).__name__})") from None
        members = frozenset(str(u) for u in response.get("users") or ())
        self._cache[group_id] = (now, members)
        return members
