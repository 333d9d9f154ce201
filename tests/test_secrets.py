"""No secret ever leaves: not in audit rows, Slack replies, exports or logs, even when a provider
echoes it back in some encoding. The redactor's own table of forms: tests/test_redaction.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from sqlalchemy import text

from bot.db import repo
from bot.db.session import Database
from bot.domain.redact import Redactor
from bot.logs import JsonFormatter, TextFormatter
from tests.fakes import bandwidth, bird
from tests.fakes.bandwidth import bandwidth_error, bw_call_id
from tests.fakes.bird import bird_call_id, bird_error
from tests.fakes.server import Answer
from tests.fakes.slack import BOT_TOKEN
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, call_sid, twilio_error
from tests.processes import callbot
from tests.support.bots import ALICE, PAYLOADS, SIGNING_SECRET, Bot, reply_text
from tests.support.database import TABLES, DbHelper
from tests.support.leaks import traces

TYPED_PASSWORD = "hunter2-typed-secret"


def test_secrets_are_absent_everywhere_after_successes_and_failures(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for action in ("hangup", "redirect", "twiml", "admin"):
        bot.db.grant(ALICE, action, "*")
    sid = bot.fake_twilio.add_call(call_sid(1))
    # A password in the URL is refused (bot/domain/urls.py); the refusal must not repeat it.
    bot.slack.command(f"redirect prod:{sid} https://user:{TYPED_PASSWORD}@example.com/x.xml")
    bot.slack.command(f"redirect prod:{sid} https://example.com/x password={TYPED_PASSWORD}")
    bot.slack.command(f"hangup prod:{sid} dry-run")
    bot.fake_twilio.script(Answer(500, f"token {AUTH_TOKEN} leaked by a broken proxy".encode()))
    bot.slack.run(f"hangup prod:{sid}")
    bot.fake_twilio.script(Answer.json(400, {"code": 21205, "message": f"bad {AUTH_TOKEN}", "status": 400}))
    bot.slack.run(f"hangup prod:{sid}")
    bot.slack.command("audit")

    everything = "\n".join(
        [
            str(bot.db.audit()),
            *(r.body.decode() for r in bot.fake_slack.requests if r.path.startswith("/response/")),
            caplog.text,
        ]
    )
    assert bot.db.audit(), "the scenario must have produced audit rows"
    for secret in (AUTH_TOKEN, SIGNING_SECRET, BOT_TOKEN, TYPED_PASSWORD):
        assert secret not in everything
    assert "***" in str(bot.db.audit())


def test_acks_carry_no_secret(bot: Bot) -> None:
    bot.db.grant(ALICE, "redirect", "prod")
    response = bot.slack.command(f"redirect prod:{call_sid(2)} https://u:{TYPED_PASSWORD}@example.com/x dry-run")
    assert response.status_code == 200
    assert TYPED_PASSWORD not in response.text and AUTH_TOKEN not in response.text
    assert "`https://***@example.com/x` has a user name or password before `@`" in response.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redirect x password=abc123 tag=1", "redirect x password=*** tag=1"),
        ('fallback-password="two words" x', "fallback-password=*** x"),
        ("https://bob:pw@host/path", "https://***@host/path"),
        ("Authorization: Basic QUM6dG9rZW4=", "Authorization: Basic ***"),
        ("token xoxb-123-456-abc here", "token *** here"),
        ("the configured value sekrit-value-1 appears", "the configured value *** appears"),
        ("`password=`: is not supported", "`password=`: is not supported"),
        ("[username=… password=…] [fallback-password=…]", "[username=… password=…] [fallback-password=…]"),
        ("password=*** already", "password=*** already"),
    ],
)
def test_redactor_masks_typed_and_configured_secrets(text: str, expected: str) -> None:
    assert Redactor(["sekrit-value-1"]).text(text) == expected


def test_redactor_masks_secret_keys_in_structures() -> None:
    redacted = Redactor().value({"password": "p", "params": {"fallback_password": "q", "url": "https://a:b@h/"}})
    assert redacted == {"password": "***", "params": {"fallback_password": "***", "url": "https://***@h/"}}


# -- providers that echo credentials back ----------------------------------------------------------


@dataclass(frozen=True)
class Echoing:
    """An account whose provider answers errors that repeat its credentials."""

    account: str
    user: str  # what goes before the secret in HTTP Basic (Bird sends no user: any will do)
    secret: str
    call_id: Callable[[int], str]
    error: Callable[[int, str], Answer]  # an error answer of this provider with this message


PROVIDERS = [
    Echoing("prod", ACCOUNT_SID, AUTH_TOKEN, call_sid, lambda s, said: twilio_error(s, _twilio_code(s), said)),
    Echoing("bw", bandwidth.USERNAME, bandwidth.PASSWORD, bw_call_id, lambda s, said: bandwidth_error(s, "bad", said)),
    Echoing("bird", "bird", bird.ACCESS_KEY, bird_call_id, lambda s, said: bird_error(s, "Invalid", said)),
]


def _twilio_code(status: int) -> int:
    return {401: 20003}.get(status, 21600)


def _b64(data: str, *, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data.encode()).decode()


def echoes(user: str, secret: str) -> list[str]:
    """The forms the measured leak took (lower-case `basic`, bare base64) and the key forms the
    redactor used to miss, each as a provider's error message would repeat it."""
    basic = _b64(f"{user}:{secret}")
    return [
        f"authorization: basic {basic}",
        f"got Authorization: Basic {basic} from you",
        f"credentials {basic} are not valid",
        f"credentials {basic.rstrip('=')} are not valid",
        f"credentials {_b64(f'{user}:{secret}', urlsafe=True)} are not valid",
        f"key {_b64(secret)} unknown",
        f"request {_b64(json.dumps({'k': 1, 'key': secret}))} refused",
        f"key {secret.upper()} unknown",
        f"bearer {secret} refused",
        f"Authorization: Token {secret}",
        f"body user={quote_plus(f'{user}:{secret}')}",
        json.dumps({"password": secret, "note": "echoed"}),
    ]


def everything_that_left(bot: Bot, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> dict[str, str]:
    """Every place a secret could reach: the database (all tables), Slack (every request the bot
    made, `/call audit` and its export file), `callbot audit export`, and the log as written."""
    bot.db.grant(ALICE, "audit", "*")
    listing = bot.slack.command("audit")
    assert listing.status_code == 200
    before = len(bot.fake_slack.responses())
    assert bot.slack.command("audit export").status_code == 200
    bot.fake_slack.wait_responses(before + 1)
    files = [u.data.decode() for u in bot.fake_slack.uploads.values() if u.data is not None]
    assert files, "the export must have reached Slack"
    exported = callbot(["audit", "export", "--format", "jsonl"], bot.env, tmp_path)  # Slack's was CSV
    assert exported.returncode == 0, exported.stderr
    with bot.db.engine.connect() as conn:
        tables = {table: conn.execute(text(f"SELECT * FROM {table}")).all() for table in TABLES}
    return {
        "database": str(tables),
        "Slack": "\n".join(r.body.decode("utf-8", "replace") for r in bot.fake_slack.requests),
        "/call audit": listing.text,
        "/call audit export": "\n".join(files),
        "callbot audit export": exported.stdout + exported.stderr,
        "log": "\n".join(
            f(record) for record in caplog.records for f in (JsonFormatter().format, TextFormatter().format)
        ),
    }


def test_credentials_a_provider_echoes_in_any_encoding_reach_no_one(
    bot: Bot, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    bot.db.grant(ALICE, "hangup", "*")
    fakes = {"prod": bot.fake_twilio, "bw": bot.fake_bandwidth, "bird": bot.fake_bird}
    for provider in PROVIDERS:
        fake = fakes[provider.account]
        forms = echoes(provider.user, provider.secret)
        for n, said in enumerate(forms, start=1):
            fake.script(provider.error(400, said))
            _, outcome = bot.slack.run(f"hangup {provider.account}:{provider.call_id(n)}")
            assert "refused the request" in reply_text(outcome)
        # A 401 that quotes the credential, as the measured leak had it.
        fake.script(provider.error(401, forms[0]))
        _, outcome = bot.slack.run(f"hangup {provider.account}:{provider.call_id(99)}")
        assert "rejected the credentials" in reply_text(outcome)

    rows = bot.db.audit()
    assert [r["outcome"] for r in rows] == ["failed"] * (len(PROVIDERS) * (len(forms) + 1))
    assert all("***" in r["error_message"] for r in rows), [r["error_message"] for r in rows]
    secrets = [p.secret for p in PROVIDERS]
    for place, seen in everything_that_left(bot, caplog, tmp_path).items():
        assert traces(seen, secrets) == [], f"a credential reached the {place}"


def _database(bot: Bot) -> str:
    with bot.db.engine.connect() as conn:
        return str({table: conn.execute(text(f"SELECT * FROM {table}")).all() for table in TABLES})


def test_a_password_typed_for_a_redirect_is_masked_when_the_provider_echoes_it_in_base64(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    # callbot's configuration does not know this password: only the request that carries it does.
    caplog.set_level(logging.DEBUG)
    bot.db.grant(ALICE, "redirect", "bw")
    basic = _b64(f"cb-user:{TYPED_PASSWORD}")
    bot.fake_bandwidth.script(bandwidth_error(400, "validation", f"redirect credentials {basic} were refused"))
    _, outcome = bot.slack.run(
        f"redirect bw:{bw_call_id(7)} https://example.com/x.xml username=cb-user password={TYPED_PASSWORD}"
    )
    assert "refused the request" in reply_text(outcome) and "redirect credentials *** were refused" in reply_text(
        outcome
    )
    [row] = bot.db.audit()
    assert row["error_message"] == "redirect credentials *** were refused"
    for place, seen in {
        "database": _database(bot),
        "Slack": "\n".join(r.body.decode("utf-8", "replace") for r in bot.fake_slack.requests),
        "log": "\n".join(JsonFormatter().format(record) for record in caplog.records),
    }.items():
        assert traces(seen, [TYPED_PASSWORD]) == [], f"the typed password reached the {place}"


def test_a_bulk_hangup_refused_with_an_echoed_credential_keeps_no_secret_on_the_batch(bot: Bot) -> None:
    refused, other = bot.fake_twilio.add_call(call_sid(1)), bot.fake_twilio.add_call(call_sid(2))
    echo = f"credentials {_b64(f'{ACCOUNT_SID}:{AUTH_TOKEN}')} are not valid for this call"
    bot.fake_twilio.refusing[refused] = twilio_error(400, 21600, echo)
    bot.db.grant(ALICE, "bulk", "prod")
    before = len(bot.fake_slack.responses())
    assert "Counting" in reply_text(bot.slack.command("hangup-all prod").json())
    prompt = bot.fake_slack.wait_responses(before + 1)[before].json
    [button] = [
        element
        for block in prompt.get("blocks") or []
        if block["type"] == "actions"
        for element in block["elements"]
        if element["text"]["text"] == "Hang up 2 calls"
    ]
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"] = {"id": ALICE, "username": "alice", "name": "alice", "team_id": "T0001"}
    payload["response_url"] = bot.fake_slack.response_url("bulk")
    payload["actions"] = [{**button, "block_id": "b", "type": "button"}]
    assert bot.slack.interact(payload).status_code == 200
    bot.fake_slack.wait_for(lambda _: any("finished" in reply_text(u) for u in bot.fake_slack.calls("chat.update")), 20)

    with bot.db.engine.connect() as conn:
        [error] = conn.execute(text("SELECT error FROM batch_items WHERE state = 'failed'")).scalars().all()
    assert error == "Twilio refused the request (Twilio 21600): credentials *** are not valid for this call"
    assert bot.fake_twilio.hangups[other] == 1
    assert traces(_database(bot), [AUTH_TOKEN]) == []


def test_the_shell_masks_rows_an_older_callbot_stored_unmasked(
    env: dict[str, str], db: DbHelper, tmp_path: Path
) -> None:
    echoed = f"authorization: basic {_b64(f'{ACCOUNT_SID}:{AUTH_TOKEN}')}"

    async def seed() -> None:  # as a callbot without today's redactor left it
        database = Database(db.url)
        try:
            row = await repo.insert_audit(
                database,
                "T0001",
                created_at=datetime(2026, 11, 20, 9, tzinfo=UTC),
                source="slash",
                user_id=ALICE,
                command_text=f"hangup prod:{call_sid(1)}",
                action="hangup",
                account="prod",
                provider="twilio",
                call_id=call_sid(1),
                request={"Status": "completed", "note": {"pwd": 123456}},
                decision="allowed",
                outcome="pending",
            )
            done = {"outcome": "failed", "completed_at": datetime(2026, 11, 20, 9, 1, tzinfo=UTC)}
            assert await repo.complete_audit(database, row.id, **done, error_code="21600", error_message=echoed)
        finally:
            await database.close()

    asyncio.run(seed())
    outputs = {
        " ".join(args): callbot(["audit", *args], env, tmp_path)
        for args in (["export", "--format", "jsonl"], ["export"], ["list"])
    }
    for args, done in outputs.items():
        assert done.returncode == 0, done.stderr
        assert traces(done.stdout + done.stderr, [AUTH_TOKEN]) == [], f"`callbot audit {args}` shows the token"
    [line] = outputs["export --format jsonl"].stdout.splitlines()
    row = json.loads(line)  # still one well-formed object
    assert row["error_message"] == "authorization: basic ***"
    assert row["request"] == {"Status": "completed", "note": {"pwd": "***"}}
