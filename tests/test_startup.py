"""`callbot serve` refuses to start on bad configuration, with one clear line and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.slack import BOT_TOKEN
from tests.fakes.twilio import ACCOUNT_SID
from tests.processes import callbot, spawn, wait_healthy
from tests.support.bots import SIGNING_SECRET


def _serve_fails(tmp_path: Path, env: dict[str, str]) -> str:
    result = callbot(["serve", "--port", "0"], {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", **env}, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_signing_secret(tmp_path: Path) -> None:
    line = _serve_fails(tmp_path, {"SLACK_BOT_TOKEN": BOT_TOKEN})
    assert line.startswith("callbot: environment: SLACK_SIGNING_SECRET: not set")


def test_missing_bot_token(tmp_path: Path) -> None:
    assert "SLACK_BOT_TOKEN" in _serve_fails(tmp_path, {"SLACK_SIGNING_SECRET": SIGNING_SECRET})


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[accounts.prod\nprovider=", "is not valid TOML"),
        ('[accounts.prod]\nprovider = "twilio"\nauth_token = "x"\n', "accounts.prod.account_sid: is required"),
        (
            f'[accounts.prod]\nprovider = "twilio"\naccount_sid = "{ACCOUNT_SID}"\n',
            "accounts.prod: missing credentials",
        ),
        (
            f'[accounts.prod]\nprovider = "twilio"\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "${{NOPE}}"\n',
            "accounts.prod.auth_token: environment variable NOPE is not set",
        ),
        ('[accounts.prod]\nprovider = "twillio"\n', "provider must be one of: twilio, bandwidth, bird"),
        (
            f'[accounts.prod]\nprovider = "twilio"\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "t"\ntimout = 3\n',
            "accounts.prod.timout: is not a known setting",
        ),
        (
            '[accounts.prod]\nprovider = "twilio"\naccount_sid = "XX1"\nauth_token = "t"\n',
            "account_sid: has the wrong shape",
        ),
        ('[accounts."Prod Line"]\nprovider = "twilio"\n', "account name 'Prod Line' must be lower-case"),
    ],
)
def test_bad_config_file_names_file_key_and_problem(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "callbot.toml"
    path.write_text(toml)
    line = _serve_fails(
        tmp_path, {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_BOT_TOKEN": BOT_TOKEN, "CALLBOT_CONFIG": str(path)}
    )
    assert str(path) in line
    assert expected in line


def test_missing_config_file(tmp_path: Path) -> None:
    env = {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_BOT_TOKEN": BOT_TOKEN, "CALLBOT_CONFIG": "nope.toml"}
    assert "nope.toml: file not found" in _serve_fails(tmp_path, env)


def test_half_configured_plain_variables(tmp_path: Path) -> None:
    env = {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_BOT_TOKEN": BOT_TOKEN, "TWILIO_ACCOUNT_SID": ACCOUNT_SID}
    assert "TWILIO_AUTH_TOKEN: is not set, but TWILIO_ACCOUNT_SID is" in _serve_fails(tmp_path, env)


def test_serve_starts_on_a_fresh_sqlite_database_and_answers_healthz(tmp_path: Path, unused_port: int) -> None:
    env = {
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
        "PORT": str(unused_port),
    }
    process = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        response = wait_healthy(f"http://127.0.0.1:{unused_port}")
        assert response.json() == {"status": "ok"}
        assert (tmp_path / "fresh.db").exists()
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert SIGNING_SECRET not in output and BOT_TOKEN not in output
