"""Bird calls through signed slash commands; the fake Bird validates bodies against Bird's schema."""

from __future__ import annotations

import json

import pytest

from tests.fakes.bird import ACCESS_KEY, CHANNEL_ID, WORKSPACE_ID, bird_call_id, bird_error, schema_errors
from tests.fakes.server import Answer
from tests.support.bots import ALICE, Bot, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot

FLOW = [{"command": "say", "options": {"text": "Hello", "locale": "en-GB"}}, {"command": "hangup"}]


def call_path(call_id: str) -> str:
    return f"/workspaces/{WORKSPACE_ID}/channels/{CHANNEL_ID}/calls/{call_id}"


@pytest.fixture
def allowed(bot: Bot) -> Bot:
    for action in ("hangup", "cancel", "redirect", "twiml", "flow"):
        bot.db.grant(ALICE, action, "bird")
    return bot


def test_hangup_patches_status_completed(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(1))
    ack, outcome = allowed.slack.run(f"hangup bird:{call_id}")
    assert f"Hanging up bird:{call_id}" in reply_text(ack)
    [request] = allowed.fake_bird.updates()
    assert request.method == "PATCH"
    assert request.path == call_path(call_id)
    assert request.header("authorization") == f"AccessKey {ACCESS_KEY}"
    assert request.header("content-type") == "application/json"
    assert request.header("user-agent").startswith("callbot/")
    assert request.json == {"status": "completed"}
    assert f"Hung up bird:{call_id}." in reply_text(outcome)
    assert "Bird reports the call as `completed`" in reply_text(outcome)
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider"], row["account"], row["provider_status"]) == (
        "succeeded",
        "bird",
        "bird",
        202,
    )
    assert row["request"]["body"] == {"status": "completed"}


def test_a_uuid_call_id_is_inferred_to_be_bird(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(2))
    _, outcome = allowed.slack.run(f"hangup {call_id}")
    assert allowed.fake_bird.updates()[0].path == call_path(call_id)
    assert f"Hung up bird:{call_id}" in reply_text(outcome)


def test_an_upper_case_uuid_is_accepted_and_sent_as_typed(allowed: Bot) -> None:
    # Call.id is `format: uuid`: its hex digits may come in either case.
    call_id = allowed.fake_bird.add_call(bird_call_id(0xABCDEF).upper())
    _, outcome = allowed.slack.run(f"hangup {call_id}")
    assert allowed.fake_bird.updates()[0].path == call_path(call_id)
    assert f"Hung up bird:{call_id}" in reply_text(outcome)


def test_flow_json_is_applied_exactly(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(3))
    _, outcome = allowed.slack.run(f"flow bird:{call_id} '{json.dumps(FLOW)}' reason=\"IVR loop\"")
    [request] = allowed.fake_bird.updates()
    assert request.json == {"callFlow": FLOW}
    assert schema_errors(request.json) == []
    text = reply_text(outcome)
    assert f"Applied a callFlow of 2 commands to bird:{call_id}." in text
    assert "Bird reports the call as `ongoing`" in text
    assert "Bird accepted 2 command(s): say, hangup." in text
    [row] = allowed.db.audit()
    assert row["outcome"] == "succeeded"
    assert row["request"]["body"] == {"callFlow": FLOW}
    assert row["result"]["acceptedCommands"] == ["say", "hangup"]


def test_flow_in_yaml_flow_style(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(4))
    allowed.slack.run(f"flow {call_id} '[{{command: pause, options: {{pauseSeconds: 2}}}}, {{command: hangup}}]'")
    assert allowed.fake_bird.updates()[0].json == {
        "callFlow": [{"command": "pause", "options": {"pauseSeconds": 2}}, {"command": "hangup"}]
    }


def test_flow_validation_names_the_path_and_sends_nothing(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(5))
    bad = [{"command": "say", "options": {"text": "Hi"}}, {"command": "pause", "options": {"pauseSeconds": 31}}]
    text = reply_text(allowed.slack.command(f"flow bird:{call_id} '{json.dumps(bad)}'").json())
    assert "callFlow[1].options.pauseSeconds" in text and "30" in text
    assert allowed.fake_bird.requests == []
    assert allowed.db.audit()[0]["outcome"] == "invalid"


def test_flow_dry_run_shows_the_json_request(allowed: Bot) -> None:
    call_id = bird_call_id(6)
    response = allowed.slack.command(f"flow bird:{call_id} '{json.dumps(FLOW)}' dry-run")
    text = reply_text(response.json())
    assert f"PATCH {allowed.fake_bird.url}{call_path(call_id)}" in text
    assert "Authorization: AccessKey ***" in text
    assert "Content-Type: application/json" in text
    assert '"command": "say"' in text and '"locale": "en-GB"' in text
    assert ACCESS_KEY not in response.text
    assert allowed.fake_bird.requests == []
    assert allowed.db.audit()[0]["outcome"] == "dry_run"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redirect bird:{id} https://example.com/x", "use `/call flow` to replace it"),
        ("cancel bird:{id}", "Use `/call hangup`"),
        ("twiml bird:{id} '&lt;Response/&gt;'", "TwiML is Twilio's"),
    ],
)
def test_actions_bird_does_not_have_are_refused_with_the_right_command(allowed: Bot, text: str, expected: str) -> None:
    shown = reply_text(allowed.slack.command(text.format(id=bird_call_id(7))).json())
    assert "is not supported by bird" in shown and expected in shown
    assert allowed.fake_bird.requests == []


def test_unknown_call_404(allowed: Bot) -> None:
    _, outcome = allowed.slack.run(f"hangup bird:{bird_call_id(404)}")
    text = reply_text(outcome)
    assert "Unknown call" in text and "Bird has no such call" in text and "CallNotFound" in text
    row = allowed.db.audit()[0]
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 404, "CallNotFound")


def test_ended_call_422_shows_code_message_and_details(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(8), "completed")
    _, outcome = allowed.slack.run(f"flow bird:{call_id} '{json.dumps(FLOW)}'")
    text = reply_text(outcome)
    assert "cannot be changed now" in text
    assert "CallEnded" in text and "has already ended" in text and '"status": "completed"' in text
    assert allowed.db.audit()[0]["outcome"] == "failed"


def test_a_422_about_the_request_shows_birds_reason_not_the_calls_state(allowed: Bot) -> None:
    # error.detailed: Bird answers 422 for a request it will not process, whatever the call's state.
    call_id = allowed.fake_bird.add_call(bird_call_id(13))
    errors = ["callFlow/0/options/voice: the voice 'robot' is not available for locale en-GB"]
    allowed.fake_bird.script(bird_error(422, "ValidationError", "Request body failed validation", {"errors": errors}))
    _, outcome = allowed.slack.run(f"flow bird:{call_id} '{json.dumps(FLOW)}'")
    text = reply_text(outcome)
    assert "The provider refused the request" in text
    assert "Bird refused the request (Bird ValidationError, HTTP 422): Request body failed validation" in text
    assert "the voice 'robot' is not available for locale en-GB" in text
    assert "current state" not in text and "cannot be changed now" not in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 422, "ValidationError")
    assert row["error_message"].startswith("Request body failed validation (")


def test_rejected_access_key(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(9))
    allowed.fake_bird.script(bird_error(401, "Unauthorized", "The access key is missing or invalid"))
    _, outcome = allowed.slack.run(f"hangup bird:{call_id}")
    assert "Bird rejected the credentials of account `bird`" in reply_text(outcome)
    assert "check its access key" in reply_text(outcome)


def test_a_refusal_ending_in_a_full_stop_reads_as_one_sentence(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(14))
    allowed.fake_bird.script(bird_error(403, "Forbidden", "The access key has no access to this channel."))
    _, outcome = allowed.slack.run(f"hangup bird:{call_id}")
    text = reply_text(outcome)
    assert "(Bird Forbidden, HTTP 403): The access key has no access to this channel. An admin must" in text
    assert ".." not in text


def test_hangup_retries_429_but_flow_does_not(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(10))
    limited = Answer.json(429, {"code": "TooManyRequests", "message": "slow down"}, **{"Retry-After": "0"})
    allowed.fake_bird.script(limited)
    _, outcome = allowed.slack.run(f"hangup bird:{call_id}")
    assert len(allowed.fake_bird.updates()) == 2 and "Hung up" in reply_text(outcome)
    allowed.fake_bird.script(limited, limited)
    _, outcome = allowed.slack.run(f"flow bird:{call_id} '{json.dumps(FLOW)}'")
    assert len(allowed.fake_bird.updates()) == 3
    assert "Rate limited" in reply_text(outcome)


def test_server_error_is_unknown(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(11))
    allowed.fake_bird.script(Answer(500, b"oops"))
    _, outcome = allowed.slack.run(f"hangup bird:{call_id}")
    assert "may or may not have changed" in reply_text(outcome)
    assert allowed.db.audit()[0]["outcome"] == "unknown"


def test_access_key_never_leaves(allowed: Bot) -> None:
    call_id = allowed.fake_bird.add_call(bird_call_id(12))
    allowed.fake_bird.script(Answer.json(400, {"code": "Bad", "message": f"key {ACCESS_KEY} rejected"}))
    _, outcome = allowed.slack.run(f"hangup bird:{call_id}")
    assert ACCESS_KEY not in json.dumps(outcome) + str(allowed.db.audit())
    assert "Bird refused the request" in reply_text(outcome)
