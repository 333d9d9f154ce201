"""A process that dies between the provider request and its answer leaves evidence, and the person
who asked hears about it; a request that is merely slow is never taken for an abandoned one."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, text

from bot.config import Settings
from bot.db.models import UTCDateTime, utcnow
from bot.domain.errors import ConfigError
from bot.runtime import Runtime
from bot.service.core import Invocation, Started
from tests.fakes.server import Answer
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio, call_sid
from tests.processes import spawn, wait_healthy
from tests.support.bots import ALICE, SlackDriver
from tests.support.database import DbHelper


def backdate(db: DbHelper, call_id: str, by: timedelta) -> None:
    """The pending row of `call_id` as if its request was made `by` ago: the grace is minutes and
    Slack's response_url lasts 30, which the test does not wait out. (The row's opening chain entry
    no longer matches its time; nothing here verifies the chain.)"""
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_log SET created_at = :at WHERE call_id = :call").bindparams(
                bindparam("at", type_=UTCDateTime())
            ),
            {"at": utcnow() - by, "call": call_id},
        )


def stored_replies(db: DbHelper) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM pending_replies")).scalar_one())


def test_pending_rows_of_a_killed_process_become_unknown_and_the_person_is_told(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_slack: FakeSlack, fake_twilio: FakeTwilio, unused_port: int
) -> None:
    env = {**env, "PORT": str(unused_port)}
    url = f"http://127.0.0.1:{unused_port}"
    db.grant(ALICE, "hangup", "prod")
    recent, old = fake_twilio.add_call(call_sid(1)), fake_twilio.add_call(call_sid(2))
    fake_twilio.script(*[Answer(200, b"{}", delay=30)] * 2)  # still waiting when the process dies

    first = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        wait_healthy(url, first)
        driver = SlackDriver(url, fake_slack)
        for sid in (recent, old):
            assert driver.command(f"hangup prod:{sid}").status_code == 200
        fake_twilio.wait_for(lambda reqs: sum(r.method == "POST" for r in reqs) == 2)
        assert [row["outcome"] for row in db.audit()] == ["pending", "pending"]  # written before the requests
        assert stored_replies(db) == 2  # each with the response_url Slack sent
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()

    backdate(db, recent, timedelta(minutes=5))  # past the grace, and Slack still takes a message
    backdate(db, old, timedelta(minutes=31))  # past what Slack takes
    second = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        wait_healthy(url, second)
        rows = {row["call_id"]: row for row in db.audit()}
        for row in rows.values():
            assert row["outcome"] == "unknown"
            assert "stopped before the provider answered" in row["error_message"]
            assert row["completed_at"] is not None
        [told] = fake_slack.wait_responses(1)
    finally:
        second.terminate()
        log = second.communicate(timeout=20)[0]

    assert told.path == "/response/cmd1"  # the recent command's own response_url
    message = told.json
    assert message["replace_original"] is False and message["response_type"] == "ephemeral"
    assert f"callbot stopped before it heard back about `hangup prod:{recent}`" in message["text"]
    assert f"`/call status prod:{recent}`" in message["text"]
    assert f"audit #{rows[recent]['id']}" in str(message["blocks"])
    assert len(fake_slack.responses()) == 1  # nothing for the request older than 30 minutes
    assert stored_replies(db) == 0  # the URLs went with their rows
    assert "/response/" not in log  # a response_url is never logged


def test_a_grace_shorter_than_a_running_request_can_last_is_refused(env: dict[str, str]) -> None:
    # The accounts' timeout is 2 s: a call action holds its row for up to two requests (check_state, then the action).
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**env, "CALLBOT_PENDING_GRACE": "33"})
    assert refused.value.key == "CALLBOT_PENDING_GRACE"
    assert "must be at least 34 seconds" in refused.value.problem
    assert Settings.from_env({**env, "CALLBOT_PENDING_GRACE": "34"}).pending_grace == 34
    assert Settings.from_env(env).pending_grace == 120  # the default: max(120, 3 × 2 + 30)


def test_the_sweep_leaves_a_slow_request_alone_and_it_ends_with_its_own_outcome(
    env: dict[str, str], db: DbHelper, fake_twilio: FakeTwilio, fake_slack: FakeSlack
) -> None:
    """A provider dribbling its answer for longer than a read timeout, while the server's sweep
    runs: the row ends as what happened to it (no answer within the deadline), not as "stopped"."""
    db.grant(ALICE, "hangup", "prod")
    sid = fake_twilio.add_call(call_sid(3))
    body = b'{"sid": "%s", "status": "completed"}' % sid.encode()
    fake_twilio.script(Answer(200, body, {"Content-Type": "application/json"}, dribble=5))
    settings = Settings.from_env(env)

    async def go() -> tuple[int, str]:
        runtime = await Runtime.start(settings)
        try:
            inv = Invocation(
                "slash", ALICE, f"hangup prod:{sid}", channel_id="C0OPS", response_url=fake_slack.response_url("x")
            )
            started = await runtime.service.begin(inv)
            assert isinstance(started, Started)
            finishing = asyncio.create_task(runtime.service.finish(started))
            await asyncio.to_thread(fake_twilio.wait_for, lambda reqs: bool(reqs))
            swept = await runtime.service.recover_pending(settings.pending_grace)  # what the server runs
            reply = await finishing
            return len(swept), reply.as_text()
        finally:
            await runtime.close()

    swept, reply = asyncio.run(go())
    assert swept == 0
    assert "did not answer in time: no complete answer within 2 s" in reply
    [row] = db.audit()
    assert row["outcome"] == "unknown" and "within 2 s (the account's timeout)" in row["error_message"]
    assert "stopped" not in row["error_message"]
    assert len(fake_twilio.updates()) == 1 and fake_slack.responses() == []
    assert stored_replies(db) == 0
