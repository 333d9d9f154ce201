"""`callbot serve --socket`: the same app over Socket Mode, for development without a public URL."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl

from tests.fakes.slack import APP_TOKEN, FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.fakes.twilio import FakeTwilio, call_sid
from tests.processes import callbot, spawn
from tests.support.bots import ALICE, PAYLOADS, reply_text
from tests.support.database import DbHelper


def slash_envelope(envelope_id: str, text: str, response_url: str) -> dict:
    payload = dict(parse_qsl((PAYLOADS / "slash_command.form").read_text().strip()))
    payload.update({"text": text, "user_id": ALICE, "response_url": response_url, "trigger_id": f"1.2.{envelope_id}"})
    return {"envelope_id": envelope_id, "type": "slash_commands", "payload": payload, "accepts_response_payload": True}


def test_socket_mode_serves_slash_commands(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    socket = FakeSocketMode().start()
    fake_slack.socket_url = socket.url
    db.grant(ALICE, "hangup", "prod")
    sid = fake_twilio.add_call(call_sid(1))
    process = spawn(["serve", "--socket"], {**env, "SLACK_APP_TOKEN": APP_TOKEN, "LOG_FORMAT": "json"}, tmp_path)
    try:
        socket.wait_connected()
        socket.send(slash_envelope("e-help", "help", fake_slack.response_url("help")))
        [ack] = [
            m
            for m in socket.wait_for(lambda ms: any(m.get("envelope_id") == "e-help" for m in ms))
            if m.get("envelope_id") == "e-help"
        ]
        assert "callbot: control live calls" in reply_text(ack["payload"])

        socket.send(slash_envelope("e-hangup", f"hangup prod:{sid}", fake_slack.response_url("hangup")))
        [outcome] = fake_slack.wait_responses(1)
        assert f"Hung up prod:{sid}" in reply_text(outcome.json)
        assert fake_twilio.updates()[0].form_pairs == [("Status", "completed")]
        assert db.audit()[0]["outcome"] == "succeeded"
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
        socket.stop()
    assert APP_TOKEN not in output
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    # Each Slack message gets its own request id over Socket Mode too.
    [attempt] = [r for r in records if r["logger"] == "callbot.attempts" and r["outcome"] == "succeeded"]
    assert (attempt["action"], attempt["call_id"]) == ("hangup", sid)
    assert len(attempt["request_id"]) == 16


def test_socket_mode_needs_an_app_token(env: dict[str, str], tmp_path: Path) -> None:
    result = callbot(["serve", "--socket"], env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "callbot: environment: SLACK_APP_TOKEN: Socket Mode needs an app-level token (xapp-…)"
    )


def test_socket_mode_with_a_rejected_app_token_fails_clearly(env: dict[str, str], tmp_path: Path) -> None:
    result = callbot(["serve", "--socket"], {**env, "SLACK_APP_TOKEN": "xapp-1-A1-wrong-token"}, tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Slack refused the Socket Mode connection (invalid_auth)" in result.stderr
    assert "Traceback" not in result.stderr and "wrong-token" not in result.stderr
