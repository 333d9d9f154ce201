"""What operators see: JSON logs with one record per attempt, GET /metrics, Slack Web API retries,
and start-up failures in one line."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.db import pending, repo
from bot.db.events import AuditEvent
from bot.db.models import utcnow
from bot.db.problems import describe
from bot.db.session import Database
from bot.domain.errors import ConfigError
from bot.domain.redact import Redactor
from bot.logs import JsonFormatter, LogFormat, LogSettings, TextFormatter, install_redaction, request_context
from bot.observe import AttemptObserver
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, call_sid, twilio_error
from tests.processes import callbot, spawn, wait_healthy
from tests.support.bots import ALICE, BOB, SIGNING_SECRET, Bot, BotFactory, SlackDriver, reply_text
from tests.support.database import DbHelper, on_database
from tests.test_app_home import home_opened, wait_home

SECRETS = (
    AUTH_TOKEN,
    SIGNING_SECRET,
    BOT_TOKEN,
    base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode(),
)


def scrape(url: str, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def attempts(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], outcome: str) -> float:
    return value(samples, "callbot_attempts_total", action="hangup", outcome=outcome, provider="twilio")


# -- the server's log in JSON, through the real executable ------------------------------------------


def test_json_log_has_one_record_per_attempt_and_nothing_else_breaks_it(
    tmp_path: Path, env: dict[str, str], db: DbHelper, fake_slack: FakeSlack, fake_twilio: FakeTwilio, unused_port: int
) -> None:
    sid = fake_twilio.add_call(call_sid(1))
    db.grant(ALICE, "hangup", "prod")
    process = spawn(
        ["serve", "--host", "127.0.0.1"],
        {**env, "LOG_FORMAT": "json", "LOG_LEVEL": "debug", "PORT": str(unused_port)},
        tmp_path,
    )
    url = f"http://127.0.0.1:{unused_port}"
    try:
        wait_healthy(url)
        slack = SlackDriver(url, fake_slack)
        before = len(fake_slack.responses())
        response = slack.command(f"hangup prod:{sid}")
        request_id = response.headers["x-request-id"]
        fake_slack.wait_responses(before + 1)
        denied = slack.command(f"hangup prod:{sid}", user=BOB)
        assert "Not allowed" in reply_text(denied.json())
        invalid = slack.command("hangup prod:NOT-A-SID")
        assert "not valid" in reply_text(invalid.json())
        db.wait_audit(lambda rows: len(rows) == 3 and all(r["outcome"] != "pending" for r in rows))
        # A forged request is refused and logged too: its line must parse as well.
        assert httpx.post(f"{url}/slack/events", content="x=1", timeout=5).status_code == 401
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]

    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) > 5
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    assert {r["logger"].split(".")[0] for r in records} >= {"uvicorn", "callbot", "bot"}
    for secret in SECRETS:
        assert secret not in output

    reported = [r for r in records if r["logger"] == "callbot.attempts"]
    assert sorted(r["outcome"] for r in reported) == ["denied", "invalid", "succeeded"]  # once each
    by_outcome = {r["outcome"]: r for r in reported}
    done = by_outcome["succeeded"]
    assert done["level"] == "INFO"
    assert done["request_id"] == request_id
    assert (done["action"], done["account"], done["call_id"], done["provider"]) == ("hangup", "prod", sid, "twilio")
    assert (done["slack_user"], done["slack_team"], done["source"]) == (ALICE, "T0001", "slash")
    assert isinstance(done["duration_ms"], int) and done["duration_ms"] >= done["provider_latency_ms"] >= 0
    assert done["audit_id"] == next(r["id"] for r in db.audit() if r["outcome"] == "succeeded")
    assert by_outcome["denied"]["slack_user"] == BOB
    assert "not allowed" in by_outcome["denied"]["error"]
    # Only records written while serving a request carry a request id.
    assert not any("request_id" in r for r in records if "listening on" in r["message"])
    assert not any("color_message" in r for r in records)  # uvicorn's copy with terminal colours
    # Access log lines carry the request id of the request they describe.
    access = [r for r in records if r["logger"] == "uvicorn.access" and r.get("request_id") == request_id]
    assert len(access) == 1 and "POST /slack/events" in access[0]["message"]


def test_text_and_json_formatters_carry_the_fields_and_the_request_id() -> None:
    record = logging.LogRecord("callbot.attempts", logging.INFO, __file__, 1, "hangup on prod: failed", None, None)
    record.__dict__.update({"error": "it broke\nhere", "account": "prod", "note": "two words", "empty": None})
    with request_context("req-1"):
        text = TextFormatter().format(record)
        line = JsonFormatter().format(record)
    assert text.endswith('request_id=req-1 error="it broke\\nhere" account=prod note="two words" empty=-')
    assert "\n" not in text and "\n" not in line
    assert json.loads(line) | {"time": None} == {
        "time": None,
        "level": "INFO",
        "logger": "callbot.attempts",
        "message": "hangup on prod: failed",
        "request_id": "req-1",
        "error": "it broke\nhere",
        "account": "prod",
        "note": "two words",
        "empty": None,
    }


def test_an_attempt_record_masks_numbers_and_secrets(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction(Redactor([AUTH_TOKEN]))
    event = AuditEvent(
        audit_id=7,
        outcome="failed",
        action="redirect",
        account="prod",
        provider="twilio",
        call_id=call_sid(9),
        user_id=ALICE,
        team_id="T0001",
        source="slash",
        error_message=f"Twilio refused https://x:{AUTH_TOKEN}@example.com/hold for +447700900123",
        latency_ms=12,
    )
    with caplog.at_level(logging.INFO, logger="callbot.attempts"):
        AttemptObserver().report(event, 30)
    [record] = caplog.records
    line = JsonFormatter().format(record)
    assert AUTH_TOKEN not in line and "+447700900123" not in line
    fields = json.loads(line)
    assert "+4477" in fields["error"] and fields["error"].endswith("123")
    assert (fields["audit_id"], fields["outcome"], fields["duration_ms"], fields["provider_latency_ms"]) == (
        7,
        "failed",
        30,
        12,
    )


def test_rows_a_sweep_closes_as_unknown_are_reported_once(db: DbHelper) -> None:
    seen: list[AuditEvent] = []

    async def work(database: Database) -> int:
        database.observer = seen.extend
        fields = {"source": "slash", "user_id": ALICE, "action": "hangup", "account": "prod", "provider": "twilio"}
        row = await repo.insert_audit(
            database, "T0001", **fields, call_id=call_sid(5), command_text="/call hangup", outcome="pending"
        )
        await pending.close_abandoned(database, utcnow() + timedelta(seconds=1), utcnow())
        await pending.close_abandoned(database, utcnow() + timedelta(seconds=1), utcnow())  # nothing left to close
        return row.id

    audit_id = on_database(db.url, work)
    assert [(e.audit_id, e.outcome, e.final) for e in seen] == [
        (audit_id, "pending", False),
        (audit_id, "unknown", True),
    ]
    assert (seen[1].action, seen[1].account, seen[1].user_id) == ("hangup", "prod", ALICE)
    assert "callbot stopped before the provider answered" in (seen[1].error_message or "")


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT: 'xml' is not a log format; use text or json"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL: 'LOUD' is not a log level"),
    ],
)
def test_bad_log_settings_are_one_clear_line(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        LogSettings.from_env(environ)
    assert LogSettings.from_env({"LOG_LEVEL": "warn", "LOG_FORMAT": "JSON"}) == LogSettings(
        logging.WARNING, LogFormat.JSON
    )


# -- GET /metrics --------------------------------------------------------------------------------------


def test_metrics_count_attempts_by_outcome_and_time_acks_and_provider_requests(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(2))
    bot.db.grant(ALICE, "hangup", "prod")
    before = scrape(bot.url)

    bot.slack.run(f"hangup prod:{sid}")
    assert "Not allowed" in reply_text(bot.slack.command(f"hangup prod:{sid}", user=BOB).json())
    bot.db.wait_audit(lambda rows: len(rows) == 2 and all(r["outcome"] != "pending" for r in rows))
    after = scrape(bot.url)

    assert attempts(after, "succeeded") - attempts(before, "succeeded") == 1
    denied = "callbot_attempts_total", {"action": "hangup", "outcome": "denied", "provider": "twilio"}
    assert value(after, denied[0], **denied[1]) - value(before, denied[0], **denied[1]) == 1
    assert value(after, "callbot_slack_ack_seconds_count") - value(before, "callbot_slack_ack_seconds_count") == 2
    sent = {"provider": "twilio", "status": "200"}
    assert (
        value(after, "callbot_provider_request_seconds_count", **sent)
        - value(before, "callbot_provider_request_seconds_count", **sent)
        == 1
    )
    assert value(after, "callbot_audit_pending_rows") == 0
    assert value(after, "callbot_bulk_batches_running") == 0
    assert value(after, "callbot_database_up") == 1


def test_metrics_count_provider_retries(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(3))
    bot.db.grant(ALICE, "hangup", "prod")
    bot.fake_twilio.script(twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "0"}))
    before = scrape(bot.url)
    _, outcome = bot.slack.run(f"status prod:{sid}")
    assert "in-progress" in reply_text(outcome)
    after = scrape(bot.url)
    labels = {"provider": "twilio", "status": "429"}
    assert (
        value(after, "callbot_provider_retries_total", **labels)
        - value(before, "callbot_provider_retries_total", **labels)
        == 1
    )


def test_metrics_can_require_a_token(make_bot: BotFactory) -> None:
    url = make_bot(env={"CALLBOT_METRICS_TOKEN": "metrics-token-5d1f"}).url
    refused = httpx.get(f"{url}/metrics", timeout=5)
    assert refused.status_code == 401
    assert "metrics-token" not in refused.text
    assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    assert value(scrape(url, Authorization="Bearer metrics-token-5d1f"), "callbot_database_up") == 1


# -- Slack Web API: slack_sdk's retry handlers ----------------------------------------------------------


def test_a_rate_limited_or_dropped_publish_is_retried_not_lost(bot: Bot) -> None:
    bot.fake_slack.failures["views.publish"] = ["ratelimited", "drop"]
    before = scrape(bot.url)
    home_opened(bot, ALICE)
    view = wait_home(bot, ALICE, 1)
    assert view["type"] == "home"
    assert len(bot.fake_slack.calls("views.publish")) == 3
    errors = "callbot_slack_api_errors_total"
    assert value(scrape(bot.url), errors, method="views.publish", error="ratelimited") == value(
        before, errors, method="views.publish", error="ratelimited"
    )


def test_slack_errors_past_the_retries_are_counted(bot: Bot) -> None:
    bot.fake_slack.failures["views.publish"] = ["ratelimited"] * 4
    before = scrape(bot.url)
    home_opened(bot, ALICE)
    labels = {"method": "views.publish", "error": "ratelimited"}
    name = "callbot_slack_api_errors_total"

    def counted() -> bool:
        return value(scrape(bot.url), name, **labels) - value(before, name, **labels) == 1

    deadline = time.monotonic() + 10
    while not counted():
        assert time.monotonic() < deadline, "the failed publish was never counted"
        time.sleep(0.05)
    assert len(bot.fake_slack.calls("views.publish")) == 4  # the first try and three retries


# -- start-up failures: one line, no traceback ----------------------------------------------------------


def _fails_in_one_line(tmp_path: Path, url: str, *args: str, **extra: str) -> str:
    result = callbot(list(args or ["migrate"]), {"DATABASE_URL": url, **extra}, tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _postgres_answers() -> bool:
    try:
        import psycopg

        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2).close()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _postgres_answers(), reason="needs PostgreSQL on 127.0.0.1:5432")
def test_a_missing_postgres_database_is_named_in_one_line(tmp_path: Path) -> None:
    url = "postgresql://postgres:pw-9f8e7d@127.0.0.1:5432/callbot_no_such_db"
    for command in (["migrate"], ["serve"], ["audit", "verify"]):
        line = _fails_in_one_line(
            tmp_path, url, *command, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_BOT_TOKEN=BOT_TOKEN
        )
        assert "127.0.0.1:5432/callbot_no_such_db" in line
        assert "the database does not exist" in line
        assert "pw-9f8e7d" not in line
    line = _fails_in_one_line(tmp_path, url, LOG_FORMAT="json")
    assert json.loads(line)["level"] == "ERROR" and "does not exist" in json.loads(line)["message"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://postgres@127.0.0.1:1/test", "the server is unreachable"),
        ("sqlite:///{tmp}/no/such/folder/callbot.db", "cannot open the database file"),
    ],
)
def test_database_failures_say_what_failed(tmp_path: Path, url: str, problem: str) -> None:
    line = _fails_in_one_line(tmp_path, url.format(tmp=tmp_path))
    assert line.startswith("callbot: DATABASE_URL: database ")
    assert problem in line


@pytest.mark.skipif(not _postgres_answers(), reason="needs PostgreSQL on 127.0.0.1:5432")
def test_wrong_postgres_password_is_an_authentication_failure(tmp_path: Path) -> None:
    line = _fails_in_one_line(tmp_path, "postgresql://callbot_nobody:secret-pw-1@127.0.0.1:5432/test")
    assert "authentication failed" in line and "secret-pw-1" not in line


def test_each_process_counts_its_own_attempts_and_all_agree_on_the_database_gauges(
    tmp_path: Path, env: dict[str, str], db: DbHelper, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    sid = fake_twilio.add_call(call_sid(4))
    db.grant(ALICE, "hangup", "prod")
    fake_twilio.gate = threading.Event()  # the hang-up stays pending until both processes are scraped
    urls, processes = [], []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        processes.append(spawn(["serve", "--host", "127.0.0.1"], {**env, "PORT": str(port)}, tmp_path))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            wait_healthy(url)
        assert SlackDriver(urls[0], fake_slack).command(f"hangup prod:{sid}").status_code == 200
        db.wait_audit(lambda rows: [r["outcome"] for r in rows] == ["pending"])
        during = [scrape(url) for url in urls]
        fake_twilio.gate.set()
        assert [value(s, "callbot_audit_pending_rows") for s in during] == [1, 1]
        db.wait_audit(lambda rows: [r["outcome"] for r in rows] == ["succeeded"])
        after = [scrape(url) for url in urls]
    finally:
        fake_twilio.gate.set()
        for process in processes:
            process.terminate()
            process.communicate(timeout=20)
    assert [value(s, "callbot_audit_pending_rows") for s in after] == [0, 0]
    assert [attempts(s, "succeeded") for s in after] == [1, 0]
    assert [value(s, "callbot_database_up") for s in after] == [1, 1]


@pytest.mark.parametrize(
    ("driver_says", "problem"),
    [
        ('connection failed: FATAL:  database "cb" does not exist', "the database does not exist"),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.5", user "cb", database "cb", no encryption', "pg_hba.conf"),
        ('FATAL:  permission denied for database "cb"', "lacks the CONNECT privilege"),
        ('FATAL:  database "cb" is not currently accepting connections', "does not accept connections"),
        ('FATAL:  password authentication failed for user "cb"', "authentication failed"),
        ('FATAL:  role "cb" does not exist', "authentication failed"),
        ("server closed the connection unexpectedly", "the server is unreachable"),
        ('relation "audit_chain" does not exist', "the schema is not migrated"),
        ("something nobody foresaw", "it failed (RuntimeError)"),
    ],
)
def test_database_problems_are_told_apart(driver_says: str, problem: str) -> None:
    line = describe(RuntimeError(driver_says), "postgresql://cb:pw-1234@db.internal:5432/cb").message
    assert line.startswith("DATABASE_URL: database postgresql://cb:***@db.internal:5432/cb: ")
    assert problem in line and "pw-1234" not in line
