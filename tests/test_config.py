"""Configuration parsing, in process (the start-up tests check the same through `callbot serve`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.db.session import parse_database_url
from bot.domain.errors import ConfigError
from tests.fakes.twilio import ACCOUNT_SID


def test_plain_variables_define_one_twilio_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "tok-123456"})
    assert list(settings.accounts) == ["twilio"]
    assert settings.accounts["twilio"].provider == "twilio"
    assert "tok-123456" in settings.secrets()
    assert settings.database_url == "sqlite:///./callbot.db"


def test_callbot_toml_in_the_working_directory_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "callbot.toml").write_text(
        f'[accounts.main]\nprovider = "twilio"\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "${{T}}"\n'
    )
    settings = Settings.from_env({"T": "from-env-999"})
    assert settings.config_source == "callbot.toml"
    assert settings.accounts["main"].config.auth_token == "from-env-999"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///./callbot.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
    ],
)
def test_database_urls_are_accepted_as_users_write_them(url: str, driver: str) -> None:
    assert parse_database_url(url, sync=False).drivername == driver


def test_unsupported_database_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL: backend 'mysql' is not supported"):
        parse_database_url("mysql://x/y", sync=True)


def test_bad_port() -> None:
    with pytest.raises(ConfigError, match="PORT: 'http' is not a TCP port"):
        Settings.from_env({"PORT": "http"})


def test_plain_variables_define_bandwidth_and_bird_accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env(
        {
            "BANDWIDTH_ACCOUNT_ID": "9900000",
            "BANDWIDTH_USERNAME": "user",
            "BANDWIDTH_PASSWORD": "bw-secret-1",
            "BIRD_WORKSPACE_ID": "ws",
            "BIRD_CHANNEL_ID": "ch",
            "BIRD_ACCESS_KEY": "bird-secret-1",
        }
    )
    assert {name: a.provider for name, a in settings.accounts.items()} == {"bandwidth": "bandwidth", "bird": "bird"}
    assert {"bw-secret-1", "bird-secret-1"} <= set(settings.secrets())


def test_half_configured_bird_variables_name_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="BIRD_ACCESS_KEY: is not set, but BIRD_WORKSPACE_ID, BIRD_CHANNEL_ID is"):
        Settings.from_env({"BIRD_WORKSPACE_ID": "ws", "BIRD_CHANNEL_ID": "ch"})


def test_a_bad_plain_variable_is_named_as_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"TWILIO_ACCOUNT_SID": "AC-not-a-sid", "TWILIO_AUTH_TOKEN": "tok-123456"})
    assert str(raised.value).startswith("environment: TWILIO_ACCOUNT_SID: has the wrong shape")
    assert "tok-123456" not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[]", "at least 1 item"),
        ('["acme"]', "workspaces.0: has the wrong shape"),
        ('"T0123ABCD"', "valid tuple"),
    ],
)
def test_account_workspaces_are_slack_team_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.chdir(tmp_path)
    account = f'[accounts.main]\nprovider = "twilio"\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "x"\n'
    (tmp_path / "callbot.toml").write_text(account + f"workspaces = {value}\n")
    with pytest.raises(ConfigError, match="workspaces") as raised:
        Settings.from_env({})
    assert problem in str(raised.value)
    (tmp_path / "callbot.toml").write_text(account + 'workspaces = ["T0123ABCD", "T0456EFGH"]\n')
    assert Settings.from_env({}).accounts["main"].config.workspaces == ("T0123ABCD", "T0456EFGH")


@pytest.mark.parametrize("key", ["approvers_channel", "announce_channel"])
def test_a_channel_is_one_workspace_s_so_an_account_shared_with_several_cannot_name_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.chdir(tmp_path)
    account = f'[accounts.main]\nprovider = "twilio"\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "x"\n'
    account += f'{key} = "C0123ABCD"\n' + ('approval = ["hangup"]\n' if key == "approvers_channel" else "")
    (tmp_path / "callbot.toml").write_text(account + 'workspaces = ["T0123ABCD", "T0456EFGH"]\n')
    with pytest.raises(ConfigError, match=f"{key} is one workspace's channel, but the account is shared with 2"):
        Settings.from_env({})
    (tmp_path / "callbot.toml").write_text(account + 'workspaces = ["T0123ABCD"]\n')
    assert Settings.from_env({}).accounts["main"].config.workspaces == ("T0123ABCD",)
