"""Bandwidth end to end: signed slash commands in, the exact JSON request the fake Bandwidth
recorded (and validated against Bandwidth's rules), the Slack reply and the audit row out."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from tests.fakes.bandwidth import (
    ACCOUNT_ID,
    PASSWORD,
    USERNAME,
    FakeBandwidth,
    bandwidth_error,
    bw_call_id,
    garbage,
)
from tests.fakes.server import Answer
from tests.support.bots import ALICE, Bot, BotFactory, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot

BASIC = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
HOLD = "https://example.com/bxml/hold.xml"
TYPED_PASSWORD = "s3cret-redirect-pass"
TYPED_FALLBACK_PASSWORD = "s3cret-fallback-pass"


def call_path(call_id: str) -> str:
    return f"/accounts/{ACCOUNT_ID}/calls/{call_id}"


@pytest.fixture
def allowed(bot: Bot) -> Bot:
    for action in ("hangup", "cancel", "redirect", "twiml", "flow"):
        bot.db.grant(ALICE, action, "bw")
    return bot


def everything_seen(bot: Bot, *replies: object) -> str:
    """Every Slack message the bot sent plus every audit row, as one string to search."""
    return "\n".join([*(str(r) for r in replies), str(bot.fake_slack.responses()), str(bot.db.audit())])


# -- hangup ------------------------------------------------------------------------------------


def test_hangup_sends_exactly_state_completed_and_audits(bot: Bot) -> None:
    cid = bot.fake_bandwidth.add_call(bw_call_id(1))
    bot.db.grant(ALICE, "hangup", "bw")

    ack, outcome = bot.slack.run(f"hangup bw:{cid}")

    assert f"Hanging up bw:{cid}" in reply_text(ack)
    [request] = bot.fake_bandwidth.updates()
    assert request.method == "POST"
    assert request.path == call_path(cid)
    assert request.query == ""
    assert request.header("authorization") == BASIC
    assert request.header("content-type") == "application/json"
    assert request.header("user-agent").startswith("callbot/")
    assert request.json == {"state": "completed"}  # nothing else: no redirectMethod (the SDK's bug)
    assert bot.fake_bandwidth.calls[cid] == "disconnected"

    text = reply_text(outcome)
    assert f"Hung up bw:{cid}." in text
    assert "Bandwidth accepted the request." in text

    [row] = bot.db.audit()
    assert row["outcome"] == "succeeded"
    assert (row["action"], row["account"], row["provider"], row["call_id"]) == ("hangup", "bw", "bandwidth", cid)
    assert row["provider_status"] == 200
    assert row["provider_request_id"] is None  # Bandwidth sends no request id on success
    assert row["error_code"] is None and row["error_message"] is None
    assert row["request"]["method"] == "POST"
    assert row["request"]["url"] == f"{bot.fake_bandwidth.url}{call_path(cid)}"
    assert row["request"]["body"] == {"state": "completed"}
    assert row["completed_at"] is not None


def test_account_is_inferred_from_a_bandwidth_call_id(bot: Bot) -> None:
    cid = bot.fake_bandwidth.add_call(bw_call_id(2))
    bot.db.grant(ALICE, "hangup", "bw")
    _, outcome = bot.slack.run(f"hangup {cid}")
    [request] = bot.fake_bandwidth.updates()
    assert request.path == call_path(cid)
    assert f"Hung up bw:{cid}." in reply_text(outcome)
    assert bot.db.audit()[0]["account"] == "bw"


def test_an_upper_case_call_id_is_accepted_and_sent_as_typed(bot: Bot) -> None:
    # The spec gives callId no pattern: callbot checks the `c-…` shape, in either case of hex digit.
    cid = bot.fake_bandwidth.add_call(bw_call_id(3).upper().replace("C-", "c-", 1))
    bot.db.grant(ALICE, "hangup", "bw")
    _, outcome = bot.slack.run(f"hangup {cid}")
    [request] = bot.fake_bandwidth.updates()
    assert request.path == call_path(cid)
    assert f"Hung up bw:{cid}." in reply_text(outcome)


def test_hangup_of_an_unanswered_call_ends_it(allowed: Bot) -> None:
    """`completed` also cancels a ringing call: what the `cancel` hint promises."""
    cid = allowed.fake_bandwidth.add_call(bw_call_id(3), "initiated")
    _, outcome = allowed.slack.run(f'hangup bw:{cid} reason="wrong number"')
    assert allowed.fake_bandwidth.updates()[0].json == {"state": "completed"}
    assert "Hung up" in reply_text(outcome) and "Reason: wrong number" in reply_text(outcome)
    assert allowed.fake_bandwidth.calls[cid] == "disconnected"


# -- redirect ----------------------------------------------------------------------------------


def test_redirect_with_every_option_sends_them_in_a_stable_order(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(4))
    ack, outcome = allowed.slack.run(
        f"redirect bw:{cid} <{HOLD}?a=1&amp;b=2> method=get fallback=<https://example.com/bxml/fb.xml> "
        f"fallback-method=GET username=cb-user password={TYPED_PASSWORD} fallback-username=fb-user "
        f'fallback-password={TYPED_FALLBACK_PASSWORD} tag="vip line"'
    )
    [request] = allowed.fake_bandwidth.updates()
    assert request.header("content-type") == "application/json"
    assert list(request.json.items()) == [
        ("state", "active"),
        ("redirectUrl", f"{HOLD}?a=1&b=2"),
        ("redirectMethod", "GET"),
        ("redirectFallbackUrl", "https://example.com/bxml/fb.xml"),
        ("redirectFallbackMethod", "GET"),
        ("username", "cb-user"),
        ("password", TYPED_PASSWORD),
        ("fallbackUsername", "fb-user"),
        ("fallbackPassword", TYPED_FALLBACK_PASSWORD),
        ("tag", "vip line"),
    ]
    assert allowed.fake_bandwidth.tags[cid] == "vip line"
    assert f"Redirected bw:{cid} to {HOLD}?a=1&b=2." in reply_text(outcome)
    assert "Bandwidth accepted the request." in reply_text(outcome)

    [row] = allowed.db.audit()
    assert row["outcome"] == "succeeded" and row["provider_status"] == 200
    assert row["request"]["body"] == {
        "state": "active",
        "redirectUrl": f"{HOLD}?a=1&b=2",
        "redirectMethod": "GET",
        "redirectFallbackUrl": "https://example.com/bxml/fb.xml",
        "redirectFallbackMethod": "GET",
        "username": "cb-user",
        "password": "***",
        "fallbackUsername": "fb-user",
        "fallbackPassword": "***",
        "tag": "vip line",
    }
    assert row["request"]["params"]["password"] == "***"
    assert row["request"]["params"]["fallback_password"] == "***"
    assert "password=***" in row["command_text"] and "fallback-password=***" in row["command_text"]
    seen = everything_seen(allowed, ack, outcome)
    assert TYPED_PASSWORD not in seen and TYPED_FALLBACK_PASSWORD not in seen and PASSWORD not in seen


def test_redirect_with_only_a_url_sends_state_active_and_the_url(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(5))
    _, outcome = allowed.slack.run(f"redirect {cid} {HOLD}")
    assert allowed.fake_bandwidth.updates()[0].json == {"state": "active", "redirectUrl": HOLD}
    assert f"Redirected bw:{cid} to {HOLD}." in reply_text(outcome)


def test_empty_tag_is_sent_as_an_empty_string_to_clear_it(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(6))
    allowed.fake_bandwidth.tags[cid] = "old tag"
    _, outcome = allowed.slack.run(f'redirect bw:{cid} {HOLD} tag=""')
    [request] = allowed.fake_bandwidth.updates()
    assert b'"tag":""' in request.body.replace(b" ", b"")  # sent, not dropped
    assert request.json == {"state": "active", "redirectUrl": HOLD, "tag": ""}
    assert allowed.fake_bandwidth.tags[cid] is None
    assert "Redirected" in reply_text(outcome)


def test_a_tag_of_256_characters_is_sent(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(7))
    allowed.slack.run(f"redirect bw:{cid} {HOLD} tag={'t' * 256}")
    assert allowed.fake_bandwidth.updates()[0].json["tag"] == "t" * 256
    assert allowed.db.audit()[0]["outcome"] == "succeeded"


def test_a_tag_over_256_characters_is_refused_before_sending(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(8))
    response = allowed.slack.command(f"redirect bw:{cid} {HOLD} tag={'t' * 257}")
    text = reply_text(response.json())
    assert "`tag=`" in text and "257 characters" in text and "at most 256" in text
    assert allowed.fake_bandwidth.updates() == []
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider"], row["account"]) == ("invalid", "bandwidth", "bw")


@pytest.mark.parametrize(
    ("options", "given", "missing"),
    [
        ("username=cb-user", "username=", "password="),
        (f"password={TYPED_PASSWORD}", "password=", "username="),
        (
            "fallback=https://example.com/fb.xml fallback-username=fb-user",
            "fallback-username=",
            "fallback-password=",
        ),
        (
            f"fallback=https://example.com/fb.xml fallback-password={TYPED_PASSWORD}",
            "fallback-password=",
            "fallback-username=",
        ),
    ],
)
def test_half_a_credential_pair_is_refused_saying_basic_auth_needs_both(
    allowed: Bot, options: str, given: str, missing: str
) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(9))
    response = allowed.slack.command(f"redirect bw:{cid} {HOLD} {options}")
    text = reply_text(response.json())
    assert f"`{given}`" in text and f"`{missing}`" in text
    assert "HTTP authentication (Basic), which needs both a username and a password" in text
    assert f"Add `{missing}` with a value" in text
    assert TYPED_PASSWORD not in response.text
    assert allowed.fake_bandwidth.updates() == []
    assert allowed.db.audit()[0]["outcome"] == "invalid"
    assert TYPED_PASSWORD not in str(allowed.db.audit())


@pytest.mark.parametrize(
    ("options", "word"),
    [
        ("fallback-method=GET", "fallback-method="),
        ("fallback-username=u fallback-password=p4ss", "fallback-username="),
        ('username="" password=p4ss', "username="),
    ],
)
def test_options_that_cannot_work_are_refused(allowed: Bot, options: str, word: str) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(10))
    response = allowed.slack.command(f"redirect bw:{cid} {HOLD} {options}")
    assert f"`{word}`" in reply_text(response.json())
    assert allowed.fake_bandwidth.updates() == []


def test_dry_run_shows_the_request_with_passwords_masked_and_sends_nothing(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(11))
    response = allowed.slack.command(
        f"redirect bw:{cid} {HOLD} username=cb-user password={TYPED_PASSWORD} "
        f"fallback=https://example.com/fb.xml fallback-username=fb-user "
        f"fallback-password={TYPED_FALLBACK_PASSWORD} tag=t1 dry-run"
    )
    assert response.status_code == 200
    shown = reply_text(response.json())
    assert "Dry run" in shown and "Nothing was sent" in shown
    assert f"POST {allowed.fake_bandwidth.url}{call_path(cid)}" in shown
    assert "Authorization: Basic ***" in shown
    assert "Content-Type: application/json" in shown
    assert '"state": "active"' in shown
    assert f'"redirectUrl": "{HOLD}"' in shown
    assert '"username": "cb-user"' in shown
    assert '"password": "***"' in shown
    assert '"fallbackPassword": "***"' in shown
    assert '"tag": "t1"' in shown
    for secret in (TYPED_PASSWORD, TYPED_FALLBACK_PASSWORD, PASSWORD, BASIC.split()[1]):
        assert secret not in response.text
    assert allowed.fake_bandwidth.requests == []
    [row] = allowed.db.audit()
    assert row["outcome"] == "dry_run" and row["provider"] == "bandwidth"
    assert row["request"]["body"]["password"] == "***"
    assert row["request"]["body"]["fallbackPassword"] == "***"
    assert TYPED_PASSWORD not in str(row) and TYPED_FALLBACK_PASSWORD not in str(row)


def test_hangup_dry_run_shows_state_completed_only(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(12))
    shown = reply_text(allowed.slack.command(f"hangup bw:{cid} dry-run").json())
    assert f"POST {allowed.fake_bandwidth.url}{call_path(cid)}" in shown
    assert '{\n  "state": "completed"\n}' in shown
    assert allowed.fake_bandwidth.requests == []


@pytest.mark.parametrize(
    "option",
    ["status-callback=https://example.com/status", "status-callback-method=GET", "time-limit=600"],
)
def test_options_bandwidth_lacks_are_refused_naming_option_and_provider(allowed: Bot, option: str) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(13))
    response = allowed.slack.command(f"redirect bw:{cid} {HOLD} {option}")
    text = reply_text(response.json())
    name = option.split("=")[0]
    assert f"`{name}=`: is not supported by bandwidth for `redirect` (account `bw`)" in text
    assert "tag" in text  # says what Bandwidth does accept
    assert allowed.fake_bandwidth.requests == []
    assert allowed.db.audit()[0]["outcome"] == "invalid"


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        ("cancel {cid}", "use `/call hangup`: on Bandwidth `completed` also cancels an unanswered call"),
        (
            "twiml {cid} '&lt;Response&gt;&lt;Hangup/&gt;&lt;/Response&gt;'",
            "host BXML at a URL and use `/call redirect`",
        ),
        ('flow {cid} \'[{{"command":"hangup"}}]\'', "callFlows are Bird's; on Bandwidth use `redirect` to a BXML URL"),
    ],
)
def test_actions_bandwidth_lacks_are_refused_with_what_to_do_instead(allowed: Bot, command: str, hint: str) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(14))
    response = allowed.slack.command(command.format(cid=cid))
    text = reply_text(response.json())
    verb = command.split()[0]
    assert f"`{verb}`: is not supported by bandwidth (account `bw`)" in text
    assert hint.lower() in text.lower()
    assert "On bandwidth you can: hangup, redirect." in text
    assert allowed.fake_bandwidth.requests == []
    [row] = allowed.db.audit()
    assert (row["outcome"], row["action"], row["provider"]) == ("invalid", verb, "bandwidth")


# -- errors ------------------------------------------------------------------------------------


def test_400_shows_bandwidths_description(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(20))
    allowed.fake_bandwidth.script(
        bandwidth_error(400, "validation", "Invalid redirectUrl: only http and https are allowed.")
    )
    _, outcome = allowed.slack.run(f"redirect bw:{cid} {HOLD}")
    text = reply_text(outcome)
    assert "Bandwidth refused the request (HTTP 400): Invalid redirectUrl: only http and https are allowed." in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 400, "validation")
    assert row["error_message"] == "Invalid redirectUrl: only http and https are allowed."
    assert row["provider_request_id"].startswith("err-")


def test_a_description_quoting_a_typed_password_is_masked(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(21))
    allowed.fake_bandwidth.script(
        bandwidth_error(400, "validation", f"Invalid password '{TYPED_PASSWORD}': must be printable.")
    )
    ack, outcome = allowed.slack.run(f"redirect bw:{cid} {HOLD} username=u password={TYPED_PASSWORD}")
    assert "Invalid password '***'" in reply_text(outcome)
    assert TYPED_PASSWORD not in everything_seen(allowed, ack, outcome)


def test_401_scripted_says_the_credentials_were_rejected(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(22))
    allowed.fake_bandwidth.script(bandwidth_error(401, "authentication-error", "Missing or invalid credentials."))
    ack, outcome = allowed.slack.run(f"hangup bw:{cid}")
    text = reply_text(outcome)
    assert "rejected our credentials" in text
    assert "Bandwidth rejected the credentials of account `bw` (HTTP 401)" in text
    assert "username and password" in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 401, "authentication-error")
    assert len(allowed.fake_bandwidth.updates()) == 1  # not retried
    assert PASSWORD not in everything_seen(allowed, ack, outcome)


def test_wrong_credentials_are_rejected_by_the_fake_and_reported(make_bot: BotFactory) -> None:
    bot = make_bot(env={"TEST_BW_PASSWORD": "wrong-bw-password-123"})
    fake_bandwidth, db = bot.fake_bandwidth, bot.db
    cid = fake_bandwidth.add_call(bw_call_id(23))
    db.grant(ALICE, "hangup", "bw")
    ack, outcome = bot.slack.run(f"hangup bw:{cid}")
    assert "Bandwidth rejected the credentials of account `bw`" in reply_text(outcome)
    expected = "Basic " + base64.b64encode(f"{USERNAME}:wrong-bw-password-123".encode()).decode()
    assert fake_bandwidth.updates()[0].header("authorization") == expected
    assert fake_bandwidth.calls[cid] == "answered"
    row = db.audit()[0]
    assert (row["outcome"], row["provider_status"]) == ("failed", 401)
    assert "wrong-bw-password-123" not in str(ack) + str(outcome) + str(db.audit())


def test_403_says_the_credentials_lack_permission(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(24))
    allowed.fake_bandwidth.script(bandwidth_error(403, "forbidden", "Access denied to account 9900000."))
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    text = reply_text(outcome)
    assert "lack permission" in text and f"Bandwidth account {ACCOUNT_ID}" in text and "(HTTP 403)" in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 403, "forbidden")


def test_404_for_an_unknown_call(allowed: Bot) -> None:
    cid = bw_call_id(25)  # never added to the fake
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    text = reply_text(outcome)
    assert "Unknown call" in text and "no longer active" in text and "(HTTP 404)" in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 404, "not-found")
    assert "not found" in row["error_message"]


def test_404_for_a_call_that_already_ended(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(26))
    allowed.slack.run(f"hangup bw:{cid}")
    _, outcome = allowed.slack.run(f"redirect bw:{cid} {HOLD}")
    assert "the call is gone (no longer active)" in reply_text(outcome)
    rows = allowed.db.audit()
    assert [r["outcome"] for r in rows] == ["succeeded", "failed"]
    assert rows[1]["provider_status"] == 404
    assert "is no longer active" in rows[1]["error_message"]


@pytest.mark.parametrize(
    ("state", "verb"), [("transferring", "hangup"), ("transferring", "redirect"), ("initiated", "redirect")]
)
def test_409_when_the_call_cannot_be_modified_now(allowed: Bot, state: str, verb: str) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(27), state)
    command = f"{verb} bw:{cid}" + (f" {HOLD}" if verb == "redirect" else "")
    _, outcome = allowed.slack.run(command)
    text = reply_text(outcome)
    assert "cannot be changed now" in text and "cannot change the call in its current state" in text
    assert "(HTTP 409)" in text
    assert "cannot be modified in its current state" in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 409, "conflict")
    assert len(allowed.fake_bandwidth.updates()) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        # The spec's own 409 example is a validation error, not a state.
        (409, {"type": "validation", "description": "Invalid redirectUrl: only http and https are allowed."}),
        (422, {"type": "validation", "description": "Invalid redirectUrl: only http and https are allowed."}),
        (422, {"type": "validation", "message": "Invalid redirectUrl: only http and https are allowed."}),
    ],
    ids=["409", "422", "422-message"],
)
def test_a_409_or_422_about_the_request_shows_bandwidths_reason_not_the_calls_state(
    allowed: Bot, status: int, body: dict[str, str]
) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(40))
    allowed.fake_bandwidth.script(Answer.json(status, body))
    _, outcome = allowed.slack.run(f"redirect bw:{cid} {HOLD}")
    text = reply_text(outcome)
    assert "The provider refused the request" in text
    assert f"Bandwidth refused the request (HTTP {status}): Invalid redirectUrl: only http and https" in text
    assert "current state" not in text and "cannot be changed now" not in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", status, "validation")
    assert row["error_message"] == "Invalid redirectUrl: only http and https are allowed."


def test_a_409_without_a_reason_is_a_conflict_with_the_calls_state(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(41))
    allowed.fake_bandwidth.script(Answer(409, b""))
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    assert "Bandwidth cannot change the call in its current state (HTTP 409)" in reply_text(outcome)


def test_415_is_reported_as_a_callbot_bug(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(28))
    allowed.fake_bandwidth.script(bandwidth_error(415, "unsupported-media-type", "Content-Type is not supported."))
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    text = reply_text(outcome)
    assert "(HTTP 415): Content-Type is not supported. This is a callbot bug" in text and "report" in text
    assert ".." not in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"]) == ("failed", 415)


def test_hangup_retries_a_429_then_succeeds(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(29))
    allowed.fake_bandwidth.script(bandwidth_error(429, "too-many-requests", "Slow down.", **{"Retry-After": "0"}))
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    assert [r.json for r in allowed.fake_bandwidth.updates()] == [{"state": "completed"}] * 2
    assert "Hung up" in reply_text(outcome)
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"]) == ("succeeded", 200)


def test_hangup_honours_retry_after(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(30))
    allowed.fake_bandwidth.script(bandwidth_error(429, "too-many-requests", "Slow down.", **{"Retry-After": "1"}))
    began = time.monotonic()
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    assert time.monotonic() - began >= 1.0
    assert len(allowed.fake_bandwidth.updates()) == 2
    assert "Hung up" in reply_text(outcome)


def test_hangup_gives_up_after_three_rate_limited_tries(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(31))
    allowed.fake_bandwidth.script(
        *[bandwidth_error(429, "too-many-requests", "Slow down.", **{"Retry-After": "0"})] * 3
    )
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    assert len(allowed.fake_bandwidth.updates()) == 3
    text = reply_text(outcome)
    assert "Rate limited" in text and "rate limiting account `bw`" in text and "nothing was changed" in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 429, "too-many-requests")


def test_hangup_retries_a_503_then_succeeds(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(32))
    allowed.fake_bandwidth.script(garbage(503, b"Service Unavailable"))
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    assert len(allowed.fake_bandwidth.updates()) == 2
    assert allowed.db.audit()[0]["outcome"] == "succeeded"
    assert "Hung up" in reply_text(outcome)


@pytest.mark.parametrize(
    "answer",
    [
        bandwidth_error(429, "too-many-requests", "Slow down.", **{"Retry-After": "0"}),
        bandwidth_error(503, "service-unavailable", "Try again later."),
    ],
)
def test_redirect_is_never_retried(allowed: Bot, answer: Answer) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(33))
    allowed.fake_bandwidth.script(answer, answer, answer)
    _, outcome = allowed.slack.run(f"redirect bw:{cid} {HOLD}")
    assert len(allowed.fake_bandwidth.updates()) == 1
    assert "nothing was changed" in reply_text(outcome)
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"]) == ("failed", answer.status)


def test_503_three_times_fails_saying_nothing_changed(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(34))
    allowed.fake_bandwidth.script(*[bandwidth_error(503, "service-unavailable", "Try again later.")] * 3)
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    assert len(allowed.fake_bandwidth.updates()) == 3
    assert "Bandwidth is unavailable (HTTP 503); nothing was changed" in reply_text(outcome)
    assert allowed.db.audit()[0]["outcome"] == "failed"


def test_500_leaves_the_outcome_unknown(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(35))
    allowed.fake_bandwidth.script(bandwidth_error(500, "internal-server-error", "Something went wrong."))
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    text = reply_text(outcome)
    assert "No clear answer" in text and "may or may not have changed" in text and "(HTTP 500)" in text
    assert len(allowed.fake_bandwidth.updates()) == 1
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("unknown", 500, "internal-server-error")


def test_502_with_an_html_body_is_unknown_and_shows_no_html(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(36))
    allowed.fake_bandwidth.script(garbage(502))
    _, outcome = allowed.slack.run(f"redirect bw:{cid} {HOLD}")
    text = reply_text(outcome)
    assert "(HTTP 502)" in text and "may or may not have changed" in text
    assert "<html" not in str(outcome)
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("unknown", 502, None)
    assert row["error_message"] == "Bad Gateway"


def test_timeout_after_sending_is_unknown(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(37))
    allowed.fake_bandwidth.script(Answer(200, b"", delay=4))  # the account's timeout is 2 s
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    assert "did not answer in time" in reply_text(outcome)
    assert allowed.db.audit()[0]["outcome"] == "unknown"


@pytest.mark.parametrize(
    ("answer", "shown", "stored"),
    [
        (
            garbage(400, b"Bad request: malformed JSON"),
            "(HTTP 400): Bad request: malformed JSON",
            "Bad request: malformed JSON",
        ),
        (garbage(400), "Bandwidth refused the request (HTTP 400)", "Bad Request"),
        (Answer(400, b"\xff\xfe\x00binary"), "Bandwidth refused the request (HTTP 400)", "Bad Request"),
        (Answer.json(400, ["not", "an", "object"]), "Bandwidth refused the request (HTTP 400)", "Bad Request"),
        (garbage(404, b""), "the call is gone", "Not Found"),
    ],
)
def test_non_json_error_bodies_still_give_clear_messages(allowed: Bot, answer: Answer, shown: str, stored: str) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(38))
    allowed.fake_bandwidth.script(answer)
    _, outcome = allowed.slack.run(f"redirect bw:{cid} {HOLD}")
    text = reply_text(outcome)
    assert shown in text
    assert "<html" not in text and "\\x" not in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["error_code"], row["error_message"]) == ("failed", None, stored)


def test_a_success_with_an_unexpected_body_is_still_a_success(allowed: Bot) -> None:
    cid = allowed.fake_bandwidth.add_call(bw_call_id(39))
    allowed.fake_bandwidth.script(Answer(204, b""))
    _, outcome = allowed.slack.run(f"hangup bw:{cid}")
    assert "Bandwidth accepted the request." in reply_text(outcome)
    assert allowed.db.audit()[0]["provider_status"] == 204


# -- the fake itself enforces Bandwidth's rules --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (
            {"state": "completed", "redirectMethod": "POST"},
            400,
            "'redirectMethod' is not allowed when state is completed",
        ),
        ({"state": "completed", "tag": ""}, 400, "'tag' is not allowed when state is completed"),
        ({"state": "active"}, 400, "'redirectUrl' is required"),
        ({"redirectUrl": HOLD, "redirectMethod": "PUT"}, 400, "must be GET or POST"),
        ({"redirectUrl": HOLD, "tag": "x" * 257}, 400, "at most 256"),
        ({"redirectUrl": HOLD, "Status": "completed"}, 400, "Unrecognized field 'Status'"),
        ({"redirectUrl": "ftp://example.com/x"}, 400, "only absolute http and https"),
        ({"redirectUrl": HOLD}, 200, ""),
        ({"state": "completed"}, 200, ""),
    ],
)
def test_fake_validates_update_bodies(fake_bandwidth: FakeBandwidth, body: dict, status: int, words: str) -> None:
    cid = fake_bandwidth.add_call(bw_call_id(50))
    response = httpx.post(f"{fake_bandwidth.url}{call_path(cid)}", json=body, auth=(USERNAME, PASSWORD))
    assert response.status_code == status
    if status == 200:
        assert response.content == b""
    else:
        assert words in response.json()["description"] and response.json()["type"] == "validation"


def test_fake_checks_auth_media_type_method_and_path(fake_bandwidth: FakeBandwidth) -> None:
    cid = fake_bandwidth.add_call(bw_call_id(51))
    url = f"{fake_bandwidth.url}{call_path(cid)}"
    assert httpx.post(url, json={"state": "completed"}, auth=(USERNAME, "nope")).status_code == 401
    assert httpx.post(url, json={"state": "completed"}).status_code == 401
    assert httpx.post(url, data={"state": "completed"}, auth=(USERNAME, PASSWORD)).status_code == 415
    assert httpx.put(url, json={"state": "completed"}, auth=(USERNAME, PASSWORD)).status_code == 405
    other = f"{fake_bandwidth.url}/accounts/1234567/calls/{cid}"
    assert httpx.post(other, json={"state": "completed"}, auth=(USERNAME, PASSWORD)).status_code == 404
    state = httpx.get(url, auth=(USERNAME, PASSWORD))
    assert state.status_code == 200 and state.json()["state"] == "answered"
    assert fake_bandwidth.calls[cid] == "answered"
