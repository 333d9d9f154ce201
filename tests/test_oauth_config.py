"""OAuth mode's configuration (bot/config/oauth.py): which mode the environment selects, and the
setups refused at start with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.config import Settings
from bot.config.oauth import BOT_SCOPES
from bot.domain.errors import ConfigError
from tests.fakes.slack import CLIENT_ID, CLIENT_SECRET
from tests.processes import callbot
from tests.support.oauth import shell_oauth_env

OAUTH = {"SLACK_SIGNING_SECRET": "s" * 32, "SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET}
MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yml"


def test_client_id_and_secret_select_oauth_mode() -> None:
    settings = Settings.from_env({**OAUTH, "CALLBOT_PUBLIC_URL": "https://callbot.example.com/"})
    assert settings.oauth is not None and settings.slack_bot_token is None
    assert settings.oauth.client_id == CLIENT_ID
    assert settings.oauth.redirect_uri == "https://callbot.example.com/slack/oauth_redirect"
    assert CLIENT_SECRET in settings.secrets()
    assert CLIENT_SECRET not in repr(settings)
    settings.require_http_serving()  # no bot token needed: each workspace's comes with its install


def test_a_bot_token_alone_keeps_single_workspace_mode() -> None:
    settings = Settings.from_env({"SLACK_SIGNING_SECRET": "s" * 32, "SLACK_BOT_TOKEN": "xoxb-1-2-three"})
    assert settings.oauth is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {**OAUTH, "SLACK_BOT_TOKEN": "xoxb-1-2-three"},
            "SLACK_BOT_TOKEN: is set together with SLACK_CLIENT_ID and SLACK_CLIENT_SECRET: choose one mode",
        ),
        ({"SLACK_CLIENT_ID": CLIENT_ID}, "SLACK_CLIENT_SECRET: is not set, but SLACK_CLIENT_ID is"),
        ({"SLACK_CLIENT_SECRET": CLIENT_SECRET}, "SLACK_CLIENT_ID: is not set, but SLACK_CLIENT_SECRET is"),
        ({"SLACK_REDIRECT_URI": "https://x.example/r"}, "SLACK_REDIRECT_URI: is an OAuth setting"),
        ({**OAUTH, "SLACK_REDIRECT_URI": "callbot.example"}, "SLACK_REDIRECT_URI: must be an http\\(s\\) URL"),
        ({**OAUTH, "CALLBOT_OAUTH_STATE_EXPIRY": "5"}, "CALLBOT_OAUTH_STATE_EXPIRY: must be a whole number"),
        ({"SLACK_ALLOWED_TEAMS": "T0ALPHA01"}, "SLACK_ALLOWED_TEAMS: is an OAuth setting"),
        ({**OAUTH, "SLACK_ALLOWED_TEAMS": "T0ALPHA01, acme"}, "SLACK_ALLOWED_TEAMS: 'acme' is not a Slack team"),
    ],
)
def test_a_mixed_or_half_setup_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_the_server_refuses_a_mixed_setup_in_one_line(env: dict[str, str], tmp_path: Path) -> None:
    result = callbot(["serve"], {**env, "SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("callbot: environment: SLACK_BOT_TOKEN: is set together with SLACK_CLIENT_ID")
    assert "Traceback" not in result.stderr and CLIENT_SECRET not in result.stderr


def test_socket_mode_stays_single_workspace(env: dict[str, str], tmp_path: Path) -> None:
    oauth_env = shell_oauth_env(env, tmp_path, "T0ALPHA01")
    result = callbot(["serve", "--socket"], {**oauth_env, "SLACK_APP_TOKEN": "xapp-1-A1-2-three"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "callbot: environment: SLACK_CLIENT_ID: Socket Mode serves one workspace: run `callbot serve` over HTTP "
        "for OAuth installs, or unset SLACK_CLIENT_ID and SLACK_CLIENT_SECRET and set SLACK_BOT_TOKEN for Socket Mode"
    )


def test_in_oauth_mode_every_account_names_its_workspaces(tmp_path: Path) -> None:
    # Without `workspaces` an account is the single workspace's; OAuth mode has none, and sharing
    # it with every workspace installed would cross the boundary between them.
    account = '[accounts.main]\nprovider = "twilio"\naccount_sid = "AC' + "0" * 32 + '"\nauth_token = "x"\n'
    config = tmp_path / "callbot.toml"
    config.write_text(account)
    with pytest.raises(ConfigError, match=r"accounts\.main\.workspaces: is required in OAuth mode"):
        Settings.from_env({**OAUTH, "CALLBOT_CONFIG": str(config)})
    assert Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-1-2-three", "CALLBOT_CONFIG": str(config)}).accounts
    config.write_text(account + 'workspaces = ["T0ALPHA01"]\n')
    settings = Settings.from_env({**OAUTH, "CALLBOT_CONFIG": str(config)})
    assert settings.accounts["main"].config.workspaces == ("T0ALPHA01",)


def test_the_manifest_asks_for_the_scopes_the_install_asks_for() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert tuple(manifest["oauth_config"]["scopes"]["bot"]) == BOT_SCOPES
    assert manifest["settings"]["org_deploy_enabled"] is True
    # Off, so an app made from it for SLACK_BOT_TOKEN never has its token expire (OAuth mode may turn it on).
    assert manifest["settings"]["token_rotation_enabled"] is False
    assert {"app_uninstalled", "tokens_revoked"} <= set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert any(url.endswith("/slack/oauth_redirect") for url in manifest["oauth_config"]["redirect_urls"])
