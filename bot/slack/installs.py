"""Which bot token talks to which workspace (docs/distribution.md).

Single-workspace mode: the one SLACK_BOT_TOKEN. OAuth mode: the token of the workspace's
installation (or its Enterprise Grid org's, when installed org-wide), refreshed first when it
rotates and is about to expire. Inside a request Bolt resolves it (its authorize middleware);
outside one (sweeps, start-up notices, the user-group lookup, the shell) `Installs.client_for` is
the one lookup, so every Web API call for a workspace uses that workspace's token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.config.oauth import TOKEN_ROTATION_MINUTES
from bot.db import installations
from bot.db.session import Database
from bot.domain.directory import DirectoryError
from bot.slack.client import web_client
from bot.slack.directory import SlackDirectory

if TYPE_CHECKING:
    from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore

log = logging.getLogger(__name__)

Workspace = tuple[str | None, str | None]
"""(team id, enterprise id) of a request, as Slack sends them."""

current_workspace: ContextVar[Workspace | None] = ContextVar("callbot_workspace", default=None)
"""The workspace of the request being served (set by bot/slack/app.py's middleware, or the
shell's `run --team`): where the user-group lookup of its permission check reads groups."""


class Installs:
    """One per process: the single workspace's clients, or OAuth mode's stores and authorizer."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.api_url = settings.slack_api_url
        self.oauth = settings.oauth
        self.store: AsyncSQLAlchemyInstallationStore | None = None
        self.state_store: AsyncSQLAlchemyOAuthStateStore | None = None
        self.authorize: AsyncInstallationStoreAuthorize | None = None
        self._single: dict[bool, AsyncWebClient] = {}
        if self.oauth is None:
            if settings.slack_bot_token:
                self._single = {
                    False: web_client(settings.slack_bot_token, self.api_url),
                    True: web_client(settings.slack_bot_token, self.api_url, before_ack=True),
                }
            return
        assert db is not None, "OAuth mode keeps its installations in the database"
        self.store = installations.installation_store(db, self.oauth.client_id)
        self.state_store = installations.state_store(db, self.oauth.state_expiry_seconds)
        # Bolt's own authorizer, with a client of its own so that a token refresh (oauth.v2.access,
        # grant_type=refresh_token) goes to SLACK_API_URL like every other call.
        self.authorize = AsyncInstallationStoreAuthorize(
            logger=logging.getLogger("slack_bolt.AsyncApp"),
            installation_store=self.store,
            client_id=self.oauth.client_id,
            client_secret=self.oauth.client_secret,
            token_rotation_expiration_minutes=TOKEN_ROTATION_MINUTES,
            client=web_client(None, self.api_url),
        )

    @property
    def oauth_mode(self) -> bool:
        return self.oauth is not None

    def single_client(self, *, before_ack: bool = False) -> AsyncWebClient | None:
        """Single-workspace mode's client (None in OAuth mode, or without a bot token)."""
        return self._single.get(before_ack)

    async def client_for(
        self, team_id: str | None, enterprise_id: str | None = None, *, before_ack: bool = False
    ) -> AsyncWebClient | None:
        """The Web API client for a workspace; None when callbot is not installed there (or, in
        single-workspace mode, has no token). `before_ack`: no rate-limit retries
        (bot/slack/client.py). A workspace not known (team_id None) is the only installed one."""
        if self.oauth is None:
            return self._single.get(before_ack)
        installation = await self.installation(team_id, enterprise_id)
        if installation is None or not installation.bot_token:
            return None
        return web_client(installation.bot_token, self.api_url, before_ack=before_ack)

    async def installation(self, team_id: str | None, enterprise_id: str | None) -> Installation | None:
        """The workspace's installation, else its org's org-wide one; its token refreshed (and
        saved) when it rotates and expires within TOKEN_ROTATION_MINUTES."""
        assert self.store is not None and self.authorize is not None
        if team_id is None and enterprise_id is None:
            installed = await installations.installed_workspaces(self.store)
            if len(installed) != 1:
                return None
            team_id, enterprise_id = installed[0][1], installed[0][0]
        found = await self.store.async_find_installation(enterprise_id=enterprise_id, team_id=team_id)
        if found is None and enterprise_id is not None:
            found = await self.store.async_find_installation(
                enterprise_id=enterprise_id, team_id=None, is_enterprise_install=True
            )
        if found is None or found.bot_refresh_token is None or self.authorize.token_rotator is None:
            return found
        try:
            refreshed = await self.authorize.token_rotator.perform_token_rotation(
                installation=found, minutes_before_expiration=TOKEN_ROTATION_MINUTES
            )
        except SlackTokenRotationError as error:
            log.error(
                "Slack refused to refresh the bot token of %s: %s", _where(team_id, enterprise_id), _reason(error)
            )
            return None
        if refreshed is None:
            return found
        await self.store.async_save(refreshed)
        return refreshed

    async def forget(self, team_id: str | None, enterprise_id: str | None, *, org_wide: bool) -> None:
        """Deletes an installation (app_uninstalled, or its bot token revoked): its bot and its
        installer rows. An org-wide one is kept without a team id."""
        assert self.store is not None
        await self.store.async_delete_all(enterprise_id=enterprise_id, team_id=None if org_wide else team_id)

    async def forget_users(self, team_id: str | None, enterprise_id: str | None, user_ids: list[str]) -> None:
        """tokens_revoked for user tokens only: those users' installations go, the bot's stays."""
        assert self.store is not None
        for user_id in user_ids:
            await self.store.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id)


class WorkspaceDirectory:
    """User-group membership in OAuth mode: read from the workspace of the request being served
    (`current_workspace`), with that workspace's token; one cache per workspace."""

    def __init__(self, installs: Installs, clock: Callable[[], datetime]) -> None:
        self.installs = installs
        self.clock = clock
        self._directories: dict[Workspace, SlackDirectory] = {}

    async def is_member(self, group_id: str, user_id: str) -> bool:
        # The request's workspace is the grant's: grants are read for that workspace only (bot/db).
        # Unknown (the shell without --team): client_for takes the only installed workspace, if one.
        where = current_workspace.get() or (None, None)
        client = await self.installs.client_for(*where, before_ack=True)
        if client is None and where == (None, None):
            raise DirectoryError("the Slack workspace is not known here (from the shell, give `run --team T…`)")
        if client is None:
            raise DirectoryError(f"callbot is not installed on {_where(*where)}")
        directory = self._directories.get(where)
        if directory is None:
            directory = self._directories[where] = SlackDirectory(client, self.clock)
        directory.client = client  # a refreshed token replaces the one the cache was read with
        return await directory.is_member(group_id, user_id)


def _where(team_id: str | None, enterprise_id: str | None) -> str:
    if team_id:
        return f"workspace {team_id}" + (f" (enterprise {enterprise_id})" if enterprise_id else "")
    return f"enterprise {enterprise_id}" if enterprise_id else "an unknown workspace"


def _reason(error: SlackTokenRotationError) -> str:
    response = getattr(error.api_error, "response", None)
    return str(response.get("error") if response is not None else type(error.api_error).__name__)
