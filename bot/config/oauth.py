"""Which Slack mode callbot runs in, from the environment (docs/distribution.md).

- Single workspace: `SLACK_BOT_TOKEN` (one `xoxb-…` token), as callbot always ran.
- OAuth: `SLACK_CLIENT_ID` + `SLACK_CLIENT_SECRET` (+ `SLACK_SIGNING_SECRET`): installed from
  `GET /slack/install` on any number of workspaces, or org-wide on an Enterprise Grid; each
  workspace's token lives in the database (bot/db/installations.py).

Both at once would leave it unclear which token answers a workspace: that is refused at start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.domain.errors import ConfigError

DEFAULT_AUTHORIZE_URL = "https://slack.com/oauth/v2/authorize"
DEFAULT_STATE_EXPIRY = 600
# The bot scopes asked for at install. manifest.yml's oauth_config.scopes.bot lists the same ones
# (tests/test_oauth_install.py checks they agree).
BOT_SCOPES = ("commands", "chat:write", "chat:write.public", "usergroups:read", "files:write", "im:write")
# Bolt refreshes a rotating token this many minutes before it expires (Slack's last 12 hours).
TOKEN_ROTATION_MINUTES = 120
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"


@dataclass(frozen=True)
class OAuthConfig:
    client_id: str
    client_secret: str = ""
    # Sent with the authorize URL and oauth.v2.access; None: Slack uses the app's first Redirect URL.
    redirect_uri: str | None = None
    authorize_url: str = DEFAULT_AUTHORIZE_URL
    state_expiry_seconds: int = DEFAULT_STATE_EXPIRY
    # SLACK_ALLOWED_TEAMS: workspaces (T…) and Enterprise Grid organisations (E…) that may install
    # callbot, besides the workspaces its accounts name (Settings.installable).
    allowed: frozenset[str] = frozenset()

    def __repr__(self) -> str:  # the client secret stays out of any repr
        return f"OAuthConfig(client_id={self.client_id!r}, redirect_uri={self.redirect_uri!r})"


def oauth_from_env(env: Mapping[str, str], public_url: str | None) -> OAuthConfig | None:
    """The OAuth settings, or None in single-workspace mode; a half or mixed setup is refused."""
    client_id = env.get("SLACK_CLIENT_ID") or None
    client_secret = env.get("SLACK_CLIENT_SECRET") or None
    if client_id is None and client_secret is None:
        for name in (
            "SLACK_REDIRECT_URI",
            "SLACK_OAUTH_AUTHORIZE_URL",
            "CALLBOT_OAUTH_STATE_EXPIRY",
            "SLACK_ALLOWED_TEAMS",
        ):
            if env.get(name):
                raise ConfigError(
                    "environment", name, "is an OAuth setting: set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET too"
                )
        return None
    if client_id is None:
        raise ConfigError(
            "environment", "SLACK_CLIENT_ID", "is not set, but SLACK_CLIENT_SECRET is: OAuth mode needs both"
        )
    if client_secret is None:
        raise ConfigError(
            "environment", "SLACK_CLIENT_SECRET", "is not set, but SLACK_CLIENT_ID is: OAuth mode needs both"
        )
    if env.get("SLACK_BOT_TOKEN"):
        raise ConfigError(
            "environment",
            "SLACK_BOT_TOKEN",
            "is set together with SLACK_CLIENT_ID and SLACK_CLIENT_SECRET: choose one mode. Unset SLACK_BOT_TOKEN "
            "to install callbot on workspaces by OAuth, or unset the client id and secret to serve one workspace",
        )
    redirect = env.get("SLACK_REDIRECT_URI") or None
    if redirect is not None:
        _check_url("SLACK_REDIRECT_URI", redirect)
    elif public_url is not None:
        redirect = public_url + REDIRECT_PATH
    authorize_url = env.get("SLACK_OAUTH_AUTHORIZE_URL") or DEFAULT_AUTHORIZE_URL
    _check_url("SLACK_OAUTH_AUTHORIZE_URL", authorize_url)
    expiry_text = env.get("CALLBOT_OAUTH_STATE_EXPIRY") or str(DEFAULT_STATE_EXPIRY)
    if not expiry_text.isdigit() or not 60 <= int(expiry_text) <= 86_400:
        raise ConfigError(
            "environment", "CALLBOT_OAUTH_STATE_EXPIRY", "must be a whole number of seconds from 60 to 86400"
        )
    allowed = frozenset(word for word in re.split(r"[\s,]+", env.get("SLACK_ALLOWED_TEAMS") or "") if word)
    for word in sorted(allowed):
        if not re.fullmatch(r"[TE][A-Z0-9]{2,31}", word):
            raise ConfigError(
                "environment", "SLACK_ALLOWED_TEAMS", f"{word!r} is not a Slack team (T…) or organisation (E…) id"
            )
    return OAuthConfig(client_id, client_secret, redirect, authorize_url, int(expiry_text), allowed)


def _check_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("environment", name, "must be an http(s) URL")
