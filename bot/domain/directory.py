"""Who is in a Slack user group, as the service needs to know it (without importing Slack).

The Slack implementation is bot/slack/directory.py; a deployment without a bot token (the shell)
uses `NoDirectory`, so group grants cannot match there.
"""

from __future__ import annotations

from typing import Protocol


class DirectoryError(Exception):
    """The members of a group could not be read (Slack down, missing scope, unknown group)."""


class Directory(Protocol):
    async def is_member(self, group_id: str, user_id: str) -> bool:
        """True when `user_id` is in the group; may raise DirectoryError."""
        ...


class NoDirectory:
    async def is_member(self, group_id: str, user_id: str) -> bool:
        raise DirectoryError("no Slack bot token is configured, so user groups cannot be read")
