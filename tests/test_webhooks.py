"""POST /webhooks/{twilio,bandwidth,bird}/{account} on the running app: signed callbacks as each
provider sends them; refused ones answered 403 (Bandwidth's first try: 401 with a challenge),
counted in /metrics, logged at WARNING without the body or a secret, and changing nothing.

The callbacks are signed for CALLBOT_PUBLIC_URL (https://callbot.example.com) and sent to the
app on loopback: the Host header the app sees is never what is checked."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import text

from bot import webhooks
from bot.config import Settings, TwilioAccount
from bot.db import webhooks as receipts
from bot.domain.errors import ConfigError
from tests.fakes import bandwidth, bird
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, call_sid, rfc2822
from tests.support.bots import ALICE, Bot, BotFactory, reply_text
from tests.support.database import DbHelper, on_database
from tests.test_observability import scrape, value
from tests.test_webhook_signatures import bird_signed_by_hand, signed_by_hand

PUBLIC = "https://callbot.example.com"
BW_USER, BW_PASSWORD = "bw-callbacks", "bw-cb-pass-81f3e0d2"
BIRD_KEY = "bird-signing-key-5c2a9e77"
HOOKED: dict[str, str] = {
    "prod": "",  # signed with its auth_token
    "bw": f'callback_username = "{BW_USER}"\ncallback_password = "${{TEST_BW_CALLBACK_PASSWORD}}"',
    "bird": 'webhook_signing_key = "${TEST_BIRD_SIGNING_KEY}"',
}
HOOK_ENV = {"TEST_BW_CALLBACK_PASSWORD": BW_PASSWORD, "TEST_BIRD_SIGNING_KEY": BIRD_KEY}
BIRD_CALL = "8d3c5b1a-0f2e-4c7d-9a6b-1e2f3a4b5c6d"
BW_CALL = "c-15ac29a2-1331029c-2cb0-4a07-b215-b22865662d85"
SECRETS = (AUTH_TOKEN, BW_PASSWORD, BIRD_KEY)


@pytest.fixture
def hooked(make_bot: BotFactory) -> Bot:
    return make_bot(HOOKED, env={**HOOK_ENV, "CALLBOT_PUBLIC_URL": PUBLIC})


# -- what the providers send -----------------------------------------------------------------


def twilio_status(
    sid: str = call_sid(1), status: str = "completed", at: datetime | None = None
) -> list[tuple[str, str]]:
    """A status callback's parameters, as Twilio posts them (blank values included)."""
    return [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", sid),
        ("CallStatus", status),
        ("CallbackSource", "call-progress-events"),
        ("ForwardedFrom", ""),
        ("SequenceNumber", "0"),
        ("Timestamp", rfc2822(at or datetime.now(UTC)) or ""),
    ]


def post_twilio(
    bot: Bot, params: list[tuple[str, str]], *, token: str = AUTH_TOKEN, signed: bool = True, account: str = "prod"
) -> httpx.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signed:
        headers["X-Twilio-Signature"] = signed_by_hand(token, f"{PUBLIC}/webhooks/twilio/{account}", params)
    return httpx.post(f"{bot.url}/webhooks/twilio/{account}", content=urlencode(params), headers=headers, timeout=10)


def bandwidth_disconnect(at: datetime | None = None, call_id: str = BW_CALL) -> bytes:
    when = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    event = {
        "eventType": "disconnect",
        "eventTime": when,
        "accountId": bandwidth.ACCOUNT_ID,
        "applicationId": "04e88489-df02-4e34-a0ee-27a91849555f",
        "from": "+19195551234",
        "to": "+19195554321",
        "direction": "outbound",
        "callId": call_id,
        "callUrl": f"https://voice.bandwidth.com/api/v2/accounts/{bandwidth.ACCOUNT_ID}/calls/{call_id}",
        "startTime": when,
        "answerTime": when,
        "endTime": when,
        "cause": "hangup",
        "tag": "",
    }
    return json.dumps(event).encode()


def post_bandwidth(bot: Bot, body: bytes, *, user: str | None = BW_USER, password: str = BW_PASSWORD) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return httpx.post(f"{bot.url}/webhooks/bandwidth/bw", content=body, headers=headers, timeout=10)


def bird_event(status: str = "completed") -> bytes:
    call = {
        "id": BIRD_CALL,
        "channelId": bird.CHANNEL_ID,
        "status": status,
        "direction": "outgoing",
        "from": "+31201234567",
        "to": "+31612345678",
        "updatedAt": datetime.now(UTC).isoformat(),
    }
    return json.dumps({"service": "channels", "event": "voice.outbound", "payload": call}).encode()


def post_bird(
    bot: Bot,
    body: bytes,
    *,
    at: datetime | None = None,
    key: str = BIRD_KEY,
    signed: bool = True,
    timestamp: str | None = None,
) -> httpx.Response:
    """`timestamp`: the messagebird-request-timestamp as written, else `at` (now) in Unix seconds."""
    timestamp = timestamp or str(int((at or datetime.now(UTC)).timestamp()))
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["messagebird-signature"] = bird_signed_by_hand(key, timestamp, f"{PUBLIC}/webhooks/bird/bird", body)
        headers["messagebird-request-timestamp"] = timestamp
    return httpx.post(f"{bot.url}/webhooks/bird/bird", content=body, headers=headers, timeout=10)


# -- what the tests look at --------------------------------------------------------------------


def counted(bot: Bot, provider: str, result: str) -> float:
    return value(scrape(bot.url), "callbot_webhooks_total", provider=provider, result=result)


def receipt_count(db: DbHelper) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM webhook_receipts")).scalar_one())


def acted_on_a_call(bot: Bot, provider: str = "twilio") -> list[dict[str, Any]]:
    """A hang-up done through Slack on a call of that provider (the call the callbacks built
    above are about): the audit row a callback about its call would confirm."""
    account, call = {"twilio": ("prod", call_sid(1)), "bandwidth": ("bw", BW_CALL), "bird": ("bird", BIRD_CALL)}[
        provider
    ]
    {"twilio": bot.fake_twilio, "bandwidth": bot.fake_bandwidth, "bird": bot.fake_bird}[provider].add_call(call)
    bot.db.grant(ALICE, "hangup", account)
    bot.slack.run(f"hangup {account}:{call}")
    rows = bot.db.audit()
    assert [(row["action"], row["outcome"], row["confirm_seq"]) for row in rows] == [("hangup", "succeeded", None)]
    return rows


def confirmed_by_callback(bot: Bot) -> bool:
    [row] = bot.db.audit()
    return (row["confirmed_status"], row["confirmed_via"]) == ("completed", "callback")


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.webhooks" and r.levelno == logging.WARNING]


# -- Twilio ------------------------------------------------------------------------------------


def test_a_signed_twilio_status_callback_is_taken_and_answered_204(hooked: Bot) -> None:
    before = counted(hooked, "twilio", "ignored")
    response = post_twilio(hooked, twilio_status(call_sid(7)))
    assert response.status_code == 204, response.text
    # A call callbot never acted on: acknowledged, and nothing to record.
    assert counted(hooked, "twilio", "ignored") == before + 1
    assert receipt_count(hooked.db) == 1


@pytest.mark.parametrize("provider", ["twilio", "bandwidth", "bird"])
def test_a_callback_about_a_call_callbot_hung_up_confirms_its_audit_row(hooked: Bot, provider: str) -> None:
    account, call = {"twilio": ("prod", call_sid(6)), "bandwidth": ("bw", BW_CALL), "bird": ("bird", BIRD_CALL)}[
        provider
    ]
    fake = {"twilio": hooked.fake_twilio, "bandwidth": hooked.fake_bandwidth, "bird": hooked.fake_bird}[provider]
    fake.add_call(call)
    hooked.db.grant(ALICE, "hangup", account)
    hooked.slack.run(f"hangup {account}:{call}")
    [row] = hooked.db.audit()
    assert row["outcome"] == "succeeded" and row["confirmed_status"] is None  # no read-back here
    before = counted(hooked, provider, "accepted")
    if provider == "twilio":
        response = post_twilio(hooked, twilio_status(call, "completed"))
    elif provider == "bandwidth":
        response = post_bandwidth(hooked, bandwidth_disconnect(call_id=call))
    else:
        response = post_bird(hooked, bird_event("completed"))
    assert response.status_code == 204
    assert counted(hooked, provider, "accepted") == before + 1
    [row] = hooked.db.audit()
    assert (row["confirmed_status"], row["confirmed_via"]) == ("completed", "callback")


def test_a_lower_case_callback_confirms_a_hang_up_typed_with_an_upper_case_sid(hooked: Bot) -> None:
    typed = "CA" + "9F3B0C7D" * 4  # upper-case hex: the spec allows it, and callbot records it as typed
    hooked.fake_twilio.add_call(typed)
    hooked.db.grant(ALICE, "hangup", "prod")
    hooked.slack.run(f"hangup prod:{typed}")
    # Twilio writes its SIDs in lower-case hex.
    assert post_twilio(hooked, twilio_status("CA" + "9f3b0c7d" * 4)).status_code == 204
    [row] = hooked.db.audit()
    assert (row["call_id"], row["confirmed_status"], row["confirmed_via"]) == (typed, "completed", "callback")


def forge(bot: Bot) -> httpx.Response:
    return post_twilio(bot, twilio_status(), token="not-the-auth-token")


def unsigned(bot: Bot) -> httpx.Response:
    return post_twilio(bot, twilio_status(), signed=False)


def stale(bot: Bot) -> httpx.Response:
    return post_twilio(bot, twilio_status(at=datetime.now(UTC) - timedelta(minutes=6)))


def from_the_future(bot: Bot) -> httpx.Response:
    return post_twilio(bot, twilio_status(at=datetime.now(UTC) + timedelta(minutes=6)))


def untimed(bot: Bot) -> httpx.Response:
    # Signed, but without the Timestamp every status callback carries.
    return post_twilio(bot, [(k, v) for k, v in twilio_status() if k != "Timestamp"])


def tampered(bot: Bot) -> httpx.Response:
    params = twilio_status()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signed_by_hand(AUTH_TOKEN, f"{PUBLIC}/webhooks/twilio/prod", params),
    }
    body = urlencode([(k, "busy" if k == "CallStatus" else v) for k, v in params])
    return httpx.post(f"{bot.url}/webhooks/twilio/prod", content=body, headers=headers, timeout=10)


@pytest.mark.parametrize(
    ("send", "result"),
    [
        (forge, "forged"),
        (tampered, "forged"),
        (unsigned, "unsigned"),
        (stale, "stale"),
        (from_the_future, "stale"),
        (untimed, "stale"),
    ],
    ids=["wrong-token", "body-changed", "unsigned", "stale", "future", "no-timestamp"],
)
def test_refused_twilio_callbacks_get_403_change_nothing_and_are_counted_and_logged(
    hooked: Bot, caplog: pytest.LogCaptureFixture, send: Callable[[Bot], httpx.Response], result: str
) -> None:
    rows = acted_on_a_call(hooked)
    before = counted(hooked, "twilio", result)
    with caplog.at_level(logging.WARNING, logger="bot.webhooks"):
        response = send(hooked)
    assert response.status_code == 403
    assert "Traceback" not in response.text
    assert hooked.db.audit() == rows
    assert receipt_count(hooked.db) == 0
    assert counted(hooked, "twilio", result) == before + 1
    [line] = refusal_lines(caplog)
    assert f"for prod (HTTP 403, {result})" in line
    for leaked in (*SECRETS, call_sid(1), "completed"):
        assert leaked not in line
    # The same callback as Twilio sends it would have confirmed the row.
    assert post_twilio(hooked, twilio_status()).status_code == 204
    assert confirmed_by_callback(hooked)


def test_a_replayed_twilio_callback_gets_403_and_changes_nothing(hooked: Bot, caplog: pytest.LogCaptureFixture) -> None:
    acted_on_a_call(hooked)
    params = twilio_status()
    assert post_twilio(hooked, params).status_code == 204
    rows = hooked.db.audit()
    before = counted(hooked, "twilio", "replayed")
    with caplog.at_level(logging.WARNING, logger="bot.webhooks"):
        # The same parameters in another order: the same signed callback.
        again = post_twilio(hooked, list(reversed(params)))
    assert again.status_code == 403
    assert hooked.db.audit() == rows
    assert receipt_count(hooked.db) == 1
    assert counted(hooked, "twilio", "replayed") == before + 1
    [line] = refusal_lines(caplog)
    assert "(HTTP 403, replayed)" in line


def test_a_replay_to_another_process_on_the_same_database_is_refused(make_bot: BotFactory) -> None:
    env = {**HOOK_ENV, "CALLBOT_PUBLIC_URL": PUBLIC}
    first, second = make_bot(HOOKED, env=env), make_bot(HOOKED, env=env)
    params = twilio_status()
    assert post_twilio(first, params).status_code == 204
    assert post_twilio(second, params).status_code == 403
    # Each of the others once, to either: both take it once, and only once.
    body, at = bird_event(), datetime.now(UTC)
    assert post_bird(second, body, at=at).status_code == 204
    assert post_bird(first, body, at=at).status_code == 403


def test_an_api_key_account_checks_callbacks_with_its_callback_auth_token(make_bot: BotFactory) -> None:
    config = make_bot.config({"prod": ""}, name="keyed.toml")
    config.write_text(
        config.read_text().replace(
            'auth_token = "${TEST_TWILIO_AUTH_TOKEN}"',
            f'api_key_sid = "SK{"f" * 32}"\napi_key_secret = "key-secret"\ncallback_auth_token = "cb-token-0a9e"',
        )
    )
    bot = make_bot(env={"CALLBOT_CONFIG": str(config), "CALLBOT_PUBLIC_URL": PUBLIC})
    assert post_twilio(bot, twilio_status(), token="cb-token-0a9e").status_code == 204
    assert post_twilio(bot, twilio_status(call_sid(2)), token="key-secret").status_code == 403


def test_without_a_public_url_twilio_and_bird_callbacks_get_403_and_one_warning(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bot = make_bot(HOOKED, env=HOOK_ENV)
    before = counted(bot, "twilio", "unconfigured")
    with caplog.at_level(logging.WARNING, logger="bot.webhooks"):
        assert post_twilio(bot, twilio_status()).status_code == 403
        assert post_twilio(bot, twilio_status(call_sid(2))).status_code == 403
        assert post_bird(bot, bird_event()).status_code == 403
    assert counted(bot, "twilio", "unconfigured") == before + 2
    lines = refusal_lines(caplog)
    assert len(lines) == 2  # once for Twilio's account, once for Bird's
    assert all("CALLBOT_PUBLIC_URL is not set" in line for line in lines)
    # Bandwidth's credentials do not depend on the URL.
    assert post_bandwidth(bot, bandwidth_disconnect()).status_code == 204


# -- Bandwidth ---------------------------------------------------------------------------------


def test_bandwidth_gets_a_basic_challenge_then_sends_its_callback_credentials(hooked: Bot) -> None:
    before = counted(hooked, "bandwidth", "challenged")
    first = post_bandwidth(hooked, b"", user=None)
    assert first.status_code == 401
    assert first.headers["www-authenticate"] == 'Basic realm="callbot"'
    assert counted(hooked, "bandwidth", "challenged") == before + 1
    assert post_bandwidth(hooked, bandwidth_disconnect()).status_code == 204
    assert receipt_count(hooked.db) == 1


@pytest.mark.parametrize(
    ("send", "result"),
    [
        (lambda bot: post_bandwidth(bot, bandwidth_disconnect(), password="wrong"), "forged"),
        (
            lambda bot: post_bandwidth(
                bot, bandwidth_disconnect(), user=bandwidth.USERNAME, password=bandwidth.PASSWORD
            ),
            "forged",
        ),
        (lambda bot: post_bandwidth(bot, bandwidth_disconnect(datetime.now(UTC) - timedelta(minutes=10))), "stale"),
        (lambda bot: post_bandwidth(bot, without_event_time(bandwidth_disconnect())), "stale"),
    ],
    ids=["wrong-password", "api-credentials", "stale", "no-event-time"],
)
def test_refused_bandwidth_callbacks_get_403_and_change_nothing(
    hooked: Bot, caplog: pytest.LogCaptureFixture, send: Callable[[Bot], httpx.Response], result: str
) -> None:
    rows = acted_on_a_call(hooked, "bandwidth")
    before = counted(hooked, "bandwidth", result)
    with caplog.at_level(logging.WARNING, logger="bot.webhooks"):
        assert send(hooked).status_code == 403
    assert hooked.db.audit() == rows
    assert receipt_count(hooked.db) == 0
    assert counted(hooked, "bandwidth", result) == before + 1
    [line] = refusal_lines(caplog)
    assert f"for bw (HTTP 403, {result})" in line
    assert all(secret not in line for secret in (*SECRETS, bandwidth.PASSWORD, BW_CALL))
    # The same event, with the application's credentials and sent now, would have confirmed it.
    assert post_bandwidth(hooked, bandwidth_disconnect()).status_code == 204
    assert confirmed_by_callback(hooked)


def without_event_time(body: bytes) -> bytes:
    event = json.loads(body)
    del event["eventTime"]
    return json.dumps(event).encode()


def test_a_replayed_bandwidth_callback_gets_403_and_changes_nothing(hooked: Bot) -> None:
    acted_on_a_call(hooked, "bandwidth")
    body = bandwidth_disconnect()
    assert post_bandwidth(hooked, body).status_code == 204
    rows = hooked.db.audit()
    before = counted(hooked, "bandwidth", "replayed")
    assert post_bandwidth(hooked, body).status_code == 403
    assert hooked.db.audit() == rows
    assert counted(hooked, "bandwidth", "replayed") == before + 1


# -- Bird --------------------------------------------------------------------------------------


def test_a_signed_bird_voice_event_is_taken_and_answered_204(hooked: Bot) -> None:
    before = counted(hooked, "bird", "ignored")
    assert post_bird(hooked, bird_event()).status_code == 204
    assert counted(hooked, "bird", "ignored") == before + 1
    assert receipt_count(hooked.db) == 1


@pytest.mark.parametrize(
    ("send", "result"),
    [
        (lambda bot: post_bird(bot, bird_event(), key="another-signing-key"), "forged"),
        (lambda bot: post_bird(bot, bird_event(), signed=False), "unsigned"),
        (lambda bot: post_bird(bot, bird_event(), at=datetime.now(UTC) - timedelta(minutes=6)), "stale"),
        (lambda bot: post_bird(bot, bird_event(), timestamp="1e9"), "stale"),
    ],
    ids=["wrong-key", "unsigned", "stale", "timestamp-not-a-time"],
)
def test_refused_bird_callbacks_get_403_and_change_nothing(
    hooked: Bot, caplog: pytest.LogCaptureFixture, send: Callable[[Bot], httpx.Response], result: str
) -> None:
    rows = acted_on_a_call(hooked, "bird")
    before = counted(hooked, "bird", result)
    with caplog.at_level(logging.WARNING, logger="bot.webhooks"):
        assert send(hooked).status_code == 403
    assert hooked.db.audit() == rows
    assert receipt_count(hooked.db) == 0
    assert counted(hooked, "bird", result) == before + 1
    [line] = refusal_lines(caplog)
    assert f"for bird (HTTP 403, {result})" in line
    assert all(secret not in line for secret in (*SECRETS, BIRD_CALL))
    # The same event, signed with the subscription's key and sent now, would have confirmed it.
    assert post_bird(hooked, bird_event()).status_code == 204
    assert confirmed_by_callback(hooked)


def test_a_replayed_bird_callback_gets_403_and_changes_nothing(hooked: Bot) -> None:
    acted_on_a_call(hooked, "bird")
    # As it was sent: the same body, timestamp and signature.
    body, at = bird_event(), datetime.now(UTC)
    assert post_bird(hooked, body, at=at).status_code == 204
    rows = hooked.db.audit()
    before = counted(hooked, "bird", "replayed")
    assert post_bird(hooked, body, at=at).status_code == 403
    assert hooked.db.audit() == rows
    assert counted(hooked, "bird", "replayed") == before + 1


# -- what reaches no check -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/twilio/nobody",
        "/webhooks/twilio/bw",
        "/webhooks/bird/prod",
        "/webhooks/bandwidth/%00",
        "/webhooks/sms/prod",
    ],
)
def test_an_unknown_account_or_provider_is_404_in_plain_text(hooked: Bot, path: str) -> None:
    response = httpx.post(f"{hooked.url}{path}", content=b"x=1", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert "Traceback" not in response.text and len(response.text) < 100


def test_a_body_over_one_mebibyte_is_413(hooked: Bot) -> None:
    response = post_bandwidth(hooked, b"{" + b" " * (1024 * 1024) + b"}")
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: stopped while reading
        yield from (b" " * 65536 for _ in range(17))

    chunked = httpx.post(f"{hooked.url}/webhooks/bandwidth/bw", content=chunks(), timeout=10)
    assert chunked.status_code == 413
    assert receipt_count(hooked.db) == 0


def test_receipts_are_taken_once_and_purged_when_old(db: DbHelper) -> None:
    now = datetime.now(UTC)

    async def work(database: Any) -> tuple[bool, bool, bool, int, bool]:
        first = await receipts.take(database, "twilio", "prod", "ab" * 32, now)
        again = await receipts.take(database, "twilio", "prod", "ab" * 32, now + timedelta(minutes=1))
        other = await receipts.take(database, "twilio", "other", "ab" * 32, now)
        purged = await receipts.purge(database, now + timedelta(seconds=1))
        after_purge = await receipts.take(database, "twilio", "prod", "ab" * 32, now + timedelta(minutes=2))
        return first, again, other, purged, after_purge

    assert on_database(db.url, work) == (True, False, True, 2, True)


# -- callbot's own callback URL on Twilio's requests: only where the account opts in ------------


@pytest.fixture
def opted_in(make_bot: BotFactory) -> Bot:
    """`status_callback = true` on the Twilio account."""
    return make_bot({**HOOKED, "prod": "status_callback = true"}, env={**HOOK_ENV, "CALLBOT_PUBLIC_URL": PUBLIC})


def redirect_and_twiml(bot: Bot, sid: str) -> list[list[tuple[str, str]]]:
    """A redirect and a TwiML update through Slack; the form of each request Twilio got."""
    bot.db.grant(ALICE, "redirect", "prod")
    bot.db.grant(ALICE, "twiml", "prod")
    bot.slack.run(f"redirect prod:{sid} https://example.com/hold.xml method=GET")
    bot.slack.run(f'twiml prod:{sid} "<Response><Pause/></Response>"'.replace("<", "&lt;").replace(">", "&gt;"))
    return [update.form_pairs for update in bot.fake_twilio.updates()]


def test_by_default_callbot_sends_twilio_no_status_callback_of_its_own(hooked: Bot) -> None:
    # The call's StatusCallback may be the customer's own: a redirect must not replace it.
    sid = hooked.fake_twilio.add_call(call_sid(3))
    assert redirect_and_twiml(hooked, sid) == [
        [("Url", "https://example.com/hold.xml"), ("Method", "GET")],
        [("Twiml", "<Response><Pause/></Response>")],
    ]


def test_an_account_that_opts_in_asks_twilio_for_callbot_s_status_callback(opted_in: Bot) -> None:
    sid = opted_in.fake_twilio.add_call(call_sid(3))
    assert redirect_and_twiml(opted_in, sid) == [
        [
            ("Url", "https://example.com/hold.xml"),
            ("Method", "GET"),
            ("StatusCallback", f"{PUBLIC}/webhooks/twilio/prod"),
            ("StatusCallbackMethod", "POST"),
        ],
        [
            ("Twiml", "<Response><Pause/></Response>"),
            ("StatusCallback", f"{PUBLIC}/webhooks/twilio/prod"),
            ("StatusCallbackMethod", "POST"),
        ],
    ]


def test_a_person_s_own_status_callback_is_kept_and_a_dry_run_shows_callbot_s(opted_in: Bot) -> None:
    sid = opted_in.fake_twilio.add_call(call_sid(4))
    opted_in.db.grant(ALICE, "redirect", "prod")
    opted_in.slack.run(f"redirect prod:{sid} https://example.com/a.xml status-callback-method=GET")
    opted_in.slack.run(f"redirect prod:{sid} https://example.com/a.xml status-callback=https://example.com/s")
    assert [update.form_pairs for update in opted_in.fake_twilio.updates()] == [
        [("Url", "https://example.com/a.xml"), ("StatusCallbackMethod", "GET")],
        [("Url", "https://example.com/a.xml"), ("StatusCallback", "https://example.com/s")],
    ]
    shown = reply_text(opted_in.slack.command(f"redirect prod:{sid} https://example.com/a.xml dry-run").json())
    assert (
        "StatusCallback=https%3A%2F%2Fcallbot.example.com%2Fwebhooks%2Ftwilio%2Fprod&StatusCallbackMethod=POST" in shown
    )


def test_status_callback_without_a_public_url_stops_start_up(make_bot: BotFactory) -> None:
    config = make_bot.config({"prod": "status_callback = true"}, name="opted.toml")
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**make_bot.env, "CALLBOT_CONFIG": str(config)})
    assert error.value.key == "accounts.prod.status_callback"
    assert "CALLBOT_PUBLIC_URL is not set" in error.value.problem


def test_status_callback_on_an_api_key_account_needs_its_callback_auth_token(make_bot: BotFactory) -> None:
    config = make_bot.config({"prod": "status_callback = true"}, name="keyed.toml")
    config.write_text(
        config.read_text().replace(
            'auth_token = "${TEST_TWILIO_AUTH_TOKEN}"', f'api_key_sid = "SK{"f" * 32}"\napi_key_secret = "key-secret"'
        )
    )
    env = {**make_bot.env, "CALLBOT_CONFIG": str(config), "CALLBOT_PUBLIC_URL": PUBLIC}
    with pytest.raises(ConfigError, match="status_callback = true needs callback_auth_token"):
        Settings.from_env(env)
    config.write_text(
        config.read_text().replace("status_callback = true", 'callback_auth_token = "cb-token"\nstatus_callback = true')
    )
    taken = Settings.from_env(env).accounts["prod"].config
    assert isinstance(taken, TwilioAccount) and taken.status_callback


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        "callbot.example.com",
        "ftp://callbot.example.com",
        "https://",
        "https://u:p@callbot.example.com",
        "https://callbot.example.com/?a=1",
        "https://callbot.example.com/#x",
        "https://callbot.example.com:99999",
    ],
)
def test_a_public_url_that_is_not_a_base_url_stops_start_up(given: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"CALLBOT_PUBLIC_URL": given})
    assert error.value.key == "CALLBOT_PUBLIC_URL"


def test_a_public_url_loses_its_trailing_slash_and_keeps_its_path() -> None:
    assert Settings.from_env({"CALLBOT_PUBLIC_URL": "https://ops.example.com/callbot/"}).public_url == (
        "https://ops.example.com/callbot"
    )


def test_every_callback_secret_is_masked(hooked: Bot) -> None:
    assert {BW_PASSWORD, BIRD_KEY, AUTH_TOKEN} <= set(hooked.settings.secrets())
    assert BW_USER not in hooked.settings.secrets()


def test_bandwidth_callback_credentials_go_together(make_bot: BotFactory) -> None:
    config = make_bot.config({"bw": f'callback_username = "{BW_USER}"'}, name="half.toml")
    with pytest.raises(ConfigError, match="callback_username and callback_password go together"):
        Settings.from_env({**make_bot.env, "CALLBOT_CONFIG": str(config)})


# -- hostile input -------------------------------------------------------------------------------


def odd_deliveries(bot: Bot) -> Iterator[httpx.Response]:
    """Signed (or credentialed) callbacks whose contents no provider would send, and headers no
    provider would write."""
    twilio_url = f"{PUBLIC}/webhooks/twilio/prod"
    for params in (
        [("CallSid", "CA\x00x"), ("CallStatus", "\u202e")],
        [("CallSid", "9" * 300), ("Timestamp", "not a date"), ("AccountSid", "")],
        [("Timestamp", "Mon, 07 Dec 99999 10:00:00 +0000")],
        [],
    ):
        yield post_twilio(bot, params)
    for body, content_type in (
        (b"\xff\xfe=\x00", "application/x-www-form-urlencoded"),
        (b"[1, 2]", "application/json"),
    ):
        signature = signed_by_hand(AUTH_TOKEN, twilio_url, [])
        headers = {"Content-Type": content_type, "X-Twilio-Signature": signature}
        yield httpx.post(f"{bot.url}/webhooks/twilio/prod", content=body, headers=headers, timeout=10)
    for body in (b"[1, 2]", b'{"CallSid": 5, "Timestamp": []}', b"not json"):
        url = f"{twilio_url}?bodySHA256={hashlib.sha256(body).hexdigest()}"
        headers = {"Content-Type": "application/json", "X-Twilio-Signature": signed_by_hand(AUTH_TOKEN, url, [])}
        yield httpx.post(f"{url.replace(PUBLIC, bot.url)}", content=body, headers=headers, timeout=10)
    headers = {"X-Twilio-Signature": "ü☎".encode()}
    yield httpx.post(f"{bot.url}/webhooks/twilio/prod", content=b"a=1", headers=headers, timeout=10)
    for body in (
        b"not json",
        b"[]",
        b'{"eventType": {}, "callId": [], "eventTime": 5}',
        b'{"eventTime": "9999-12-31T23:59:59+00:00"}',
    ):
        yield post_bandwidth(bot, body)
    yield httpx.post(
        f"{bot.url}/webhooks/bandwidth/bw", content=b"{}", headers={"Authorization": "Basic ü".encode()}, timeout=10
    )
    for body in (
        b"null",
        b'{"event": "voice.x", "payload": []}',
        b'{"event": 5}',
        b'{"event": "voice.x", "payload": {"id": 1}}',
    ):
        yield post_bird(bot, body)
    for timestamp in ("9" * 30, "-1", "1e9", "99999999999"):
        signature = bird_signed_by_hand(BIRD_KEY, timestamp, f"{PUBLIC}/webhooks/bird/bird", b"{}")
        headers = {"messagebird-signature": signature, "messagebird-request-timestamp": timestamp}
        yield httpx.post(f"{bot.url}/webhooks/bird/bird", content=b"{}", headers=headers, timeout=10)


def test_odd_callbacks_are_answered_below_500_without_an_error(hooked: Bot, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        statuses = [response.status_code for response in odd_deliveries(hooked)]
    assert all(status < 500 for status in statuses), statuses
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@contextmanager
def table_away(db: DbHelper, table: str) -> Iterator[None]:
    """The table cannot be used while inside: as if the database failed."""
    with db.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether `check` holds within `timeout` seconds (a late callback is handled after its answer)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_late_callback_that_then_fails_is_answered_503_and_its_retry_is_taken(
    hooked: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    [row] = acted_on_a_call(hooked)
    params = twilio_status()
    failed = counted(hooked, "twilio", "failed")
    monkeypatch.setattr(webhooks, "ANSWER_WITHIN", 0.0)  # every callback outlasts its answer
    with table_away(hooked.db, "audit_log"):  # the receipt is taken; recording the confirmation fails
        late = post_twilio(hooked, params)
        # Handled after the answer: it fails, and its receipt is forgotten.
        assert eventually(lambda: counted(hooked, "twilio", "failed") == failed + 1 and receipt_count(hooked.db) == 0)
    # Not 204: the provider must send it again, since callbot could not say it would be taken.
    assert late.status_code == 503 and "send it again later" in late.text

    monkeypatch.setattr(webhooks, "ANSWER_WITHIN", 5.0)
    assert post_twilio(hooked, params).status_code == 204  # the retry: taken, not refused as replayed
    [row] = hooked.db.audit()
    assert (row["confirmed_status"], row["confirmed_via"]) == ("completed", "callback")


def test_a_late_callback_that_then_succeeds_loses_nothing(hooked: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    acted_on_a_call(hooked)
    params = twilio_status()
    monkeypatch.setattr(webhooks, "ANSWER_WITHIN", 0.0)
    assert post_twilio(hooked, params).status_code == 503
    assert eventually(lambda: hooked.db.audit()[0]["confirmed_status"] == "completed")
    monkeypatch.setattr(webhooks, "ANSWER_WITHIN", 5.0)
    # The provider's retry of a callback already taken: refused, and the row keeps what it had.
    assert post_twilio(hooked, params).status_code == 403
    assert receipt_count(hooked.db) == 1


@contextmanager
def writes_held(db: DbHelper, table: str) -> Iterator[Callable[[], None]]:
    """Writes to `table` wait (they are not refused) until the function given is called: the
    database busy, as under a long transaction (SQLite: the whole file; PostgreSQL: the table)."""
    conn = db.engine.raw_connection()
    cursor = conn.cursor()
    if db.engine.dialect.name == "postgresql":
        cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
    else:
        conn.commit()
        cursor.execute("BEGIN EXCLUSIVE")
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            conn.rollback()

    try:
        yield release
    finally:
        release()
        conn.close()


def test_shutdown_waits_for_a_late_callback_before_closing_the_database(
    hooked: Bot, make_bot: BotFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    acted_on_a_call(hooked)
    [(server, _)] = make_bot.running
    monkeypatch.setattr(webhooks, "ANSWER_WITHIN", 0.0)
    caplog.set_level(logging.INFO, logger="bot.webhooks")
    with writes_held(hooked.db, "webhook_receipts") as release:
        assert post_twilio(hooked, twilio_status()).status_code == 503  # answered; still waiting on the database
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        # Shutdown reached the wait for callbacks still being handled (bot/web.py's lifespan)…
        waiting = "waiting for 1 callbacks still being handled"
        assert eventually(lambda: any(r.getMessage() == waiting for r in caplog.records))
        release()  # …and the database lets the callback through before it is closed.
    stopping.join(20)
    assert not stopping.is_alive()
    assert receipt_count(hooked.db) == 1
    [row] = hooked.db.audit()
    assert (row["confirmed_status"], row["confirmed_via"]) == ("completed", "callback")


def test_a_verified_callback_callbot_cannot_record_gets_503_and_its_retry_is_taken(hooked: Bot) -> None:
    acted_on_a_call(hooked)
    params = twilio_status()
    with hooked.db.engine.begin() as conn:  # the receipts cannot be written: as if the database failed
        conn.execute(text("ALTER TABLE webhook_receipts RENAME TO webhook_receipts_away"))
    try:
        refused = post_twilio(hooked, params)
    finally:
        with hooked.db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE webhook_receipts_away RENAME TO webhook_receipts"))

    assert refused.status_code == 503 and "send it again later" in refused.text
    assert receipt_count(hooked.db) == 0
    # The provider's retry (the very same callback) is taken, not refused as a replay.
    assert post_twilio(hooked, params).status_code == 204
    assert receipt_count(hooked.db) == 1
