"""`callbot serve --socket` keeps serving whatever envelopes arrive: a malformed one is
acknowledged (Slack does not resend it) and logged in one line, never given to the listeners."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fakes.slack import APP_TOKEN, FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.fakes.twilio import FakeTwilio, call_sid
from tests.processes import spawn
from tests.support.bots import ALICE, reply_text
from tests.support.database import DbHelper
from tests.test_socket_mode import slash_envelope

USER = {"id": "U2147483697"}
MALFORMED: dict[str, dict[str, Any]] = {
    "e-payload-list": {"envelope_id": "e-payload-list", "type": "interactive", "payload": [1, 2]},
    "e-no-type": {"envelope_id": "e-no-type", "type": "interactive", "payload": {"user": USER}},
    "e-user-str": {
        "envelope_id": "e-user-str",
        "type": "interactive",
        "payload": {"type": "block_actions", "user": "x", "actions": [{"action_id": "a"}]},
    },
    "e-actions-null": {
        "envelope_id": "e-actions-null",
        "type": "interactive",
        "payload": {"type": "block_actions", "user": USER, "actions": None},
    },
    "e-command-number": {
        "envelope_id": "e-command-number",
        "type": "slash_commands",
        "payload": {"command": 7, "text": "help", "response_url": "http://127.0.0.1:9/r"},
    },
    "e-event-list": {
        "envelope_id": "e-event-list",
        "type": "events_api",
        "payload": {"type": "event_callback", "event": []},
    },
    "e-unknown-kind": {"envelope_id": "e-unknown-kind", "type": "nonsense", "payload": {"type": "x"}},
}


def test_malformed_envelopes_are_acknowledged_and_the_next_is_served(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    socket = FakeSocketMode().start()
    fake_slack.socket_url = socket.url
    db.grant(ALICE, "hangup", "prod")
    sid = fake_twilio.add_call(call_sid(1))
    process = spawn(["serve", "--socket"], {**env, "SLACK_APP_TOKEN": APP_TOKEN, "LOG_FORMAT": "json"}, tmp_path)
    try:
        socket.wait_connected()
        socket.send_text("{not json")
        socket.send_text("[]")
        socket.send({"type": "interactive", "payload": {"type": "block_actions"}})  # no envelope id
        for envelope in MALFORMED.values():
            socket.send(envelope)
        acked = socket.wait_for(lambda ms: set(MALFORMED) <= {m.get("envelope_id") for m in ms})
        assert all("payload" not in m for m in acked if m.get("envelope_id") in MALFORMED)

        socket.send(slash_envelope("e-hangup", f"hangup prod:{sid}", fake_slack.response_url("hangup")))
        [outcome] = fake_slack.wait_responses(1)
        assert f"Hung up prod:{sid}" in reply_text(outcome.json)
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
        socket.stop()
    records = [json.loads(line) for line in output.splitlines() if line.strip().startswith("{")]
    loud = [r for r in records if r["level"] in ("ERROR", "CRITICAL") or "exception" in r]
    # Slack's SDK parses each frame itself and logs one that is not JSON (Slack sends none), then goes on.
    [unreadable] = loud
    assert unreadable["logger"] == "slack_bolt.AsyncApp"
    assert unreadable["message"].startswith("Failed to process a message: Expecting property name")
    refused = [r["message"] for r in records if r["message"].startswith("refused a Socket Mode envelope")]
    assert len(refused) == len(MALFORMED) + 1  # and the one without an envelope id
    assert [row["outcome"] for row in db.audit()] == ["succeeded"]
