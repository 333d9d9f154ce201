"""OAuth mode under test: a bot started with SLACK_CLIENT_ID/SECRET (no bot token), an installer
going through the real install pages in a "browser", and signed requests from any workspace."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from tests.fakes.slack import APP_ID, CLIENT_ID, CLIENT_SECRET, FakeSlack, Workspace
from tests.support.bots import ALICE, Bot, BotFactory

STATE_COOKIE = "slack-app-oauth-state"


def oauth_env(fake_slack: FakeSlack) -> dict[str, str]:
    """What a distributed deployment sets instead of SLACK_BOT_TOKEN."""
    return {
        "SLACK_BOT_TOKEN": "",
        "SLACK_CLIENT_ID": CLIENT_ID,
        "SLACK_CLIENT_SECRET": CLIENT_SECRET,
        "SLACK_OAUTH_AUTHORIZE_URL": f"{fake_slack.url}/oauth/v2/authorize",
        # The org-wide installs' organisation (the workspaces are allowed by the accounts' lists).
        "SLACK_ALLOWED_TEAMS": "E0GRID001",
    }


def shell_oauth_env(env: Mapping[str, str], directory: Path, team: str) -> dict[str, str]:
    """A deployment's environment (tests/support/fixtures.py `env`) switched to OAuth mode, for
    `callbot` processes: its accounts shared with `team` (OAuth mode wants every account's)."""
    shared = directory / "shared.toml"
    config = Path(env["CALLBOT_CONFIG"]).read_text()
    shared.write_text(re.sub(r"(\[accounts\.\w+\]\n)", rf'\1workspaces = ["{team}"]\n', config))
    return {
        **env,
        "CALLBOT_CONFIG": str(shared),
        "SLACK_BOT_TOKEN": "",
        "SLACK_CLIENT_ID": CLIENT_ID,
        "SLACK_CLIENT_SECRET": CLIENT_SECRET,
    }


def start_oauth_bot(make_bot: BotFactory, fake_slack: FakeSlack, env: Mapping[str, str] | None = None) -> Bot:
    # In OAuth mode each account names the workspaces it serves: here, every one the tests install.
    shared = 'workspaces = ["T0ALPHA01", "T0BETA002", "T0GRIDWS1", "T0ROTATE1"]'
    bot = make_bot({"prod": shared}, env={**oauth_env(fake_slack), **(env or {})})
    # The Redirect URL of the Slack app's configuration (manifest.yml's oauth_config.redirect_urls).
    fake_slack.app_redirect_url = f"{bot.url}/slack/oauth_redirect"
    return bot


@dataclass
class Browser:
    """The installer's browser: follows the install page to Slack and back, keeping the state cookie."""

    bot: Bot
    http: httpx.Client

    def install_page(self) -> tuple[httpx.Response, str, str]:
        """GET /slack/install: the page, the authorize URL it links to, and the state cookie set."""
        page = self.http.get(f"{self.bot.url}/slack/install")
        assert page.status_code == 200, page.text
        link = re.search(r'href="([^"]+)"', page.text)
        assert link is not None, page.text
        cookie = page.headers.get("set-cookie") or ""
        state = re.search(rf"{STATE_COOKIE}=([^;]+)", cookie)
        assert state is not None, cookie
        return page, link.group(1).replace("&amp;", "&"), state.group(1)

    def install(self, workspace: Workspace, fake_slack: FakeSlack) -> httpx.Response:
        """The whole flow: the install page, Slack's authorize page (approved), the redirect back."""
        fake_slack.install(workspace)
        _, authorize_url, state = self.install_page()
        approved = self.http.get(authorize_url)
        assert approved.status_code == 302, approved.text
        return self.http.get(approved.headers["location"], headers={"Cookie": f"{STATE_COOKIE}={state}"})


def command_from(bot: Bot, workspace: Workspace, text: str, user: str = ALICE) -> httpx.Response:
    """A signed /call from a workspace (a workspace of an org-wide install says so, as Slack does)."""
    form = dict(parse_qsl(bot.slack.command_body(text, user), keep_blank_values=True))
    form.pop("enterprise_id", None)
    form.pop("enterprise_name", None)
    form["team_id"] = workspace.team_id or "T0GRID001"
    if workspace.enterprise_id:
        form["enterprise_id"] = workspace.enterprise_id
    form["is_enterprise_install"] = "true" if workspace.org_wide else "false"
    form["api_app_id"] = APP_ID
    body = urlencode(form)
    return bot.slack.post(body, bot.slack.sign(body), "application/x-www-form-urlencoded")


def event_from(bot: Bot, workspace: Workspace, event: dict[str, Any]) -> httpx.Response:
    """A signed Events API callback from a workspace."""
    envelope: dict[str, Any] = {
        "type": "event_callback",
        "team_id": workspace.team_id or "T0GRID001",
        "api_app_id": APP_ID,
        "event": {**event, "event_ts": f"{time.time():.6f}"},
        "event_id": f"Ev{int(time.time() * 1e6)}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "team_id": None if workspace.org_wide else workspace.team_id,
                "user_id": workspace.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": workspace.org_wide,
                **({"enterprise_id": workspace.enterprise_id} if workspace.enterprise_id else {}),
            }
        ],
        "is_ext_shared_channel": False,
    }
    if workspace.enterprise_id:
        envelope["enterprise_id"] = workspace.enterprise_id
    if envelope["authorizations"][0]["team_id"] is None:
        del envelope["authorizations"][0]["team_id"]
    body = json.dumps(envelope)
    return bot.slack.post(body, bot.slack.sign(body), "application/json")
