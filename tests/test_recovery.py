"""A process that dies between the provider request and its answer leaves evidence."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.fakes.server import Answer
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio, call_sid
from tests.processes import spawn, wait_healthy
from tests.support.bots import ALICE, SlackDriver
from tests.support.database import DbHelper


def test_pending_row_of_a_killed_process_becomes_unknown_on_restart(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_slack: FakeSlack, fake_twilio: FakeTwilio, unused_port: int
) -> None:
    env = {**env, "PORT": str(unused_port)}
    url = f"http://127.0.0.1:{unused_port}"
    db.grant(ALICE, "hangup", "prod")
    sid = fake_twilio.add_call(call_sid(1))
    fake_twilio.script(Answer(200, b"{}", delay=1.5))  # still waiting when the process dies

    first = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        wait_healthy(url)
        driver = SlackDriver(url, fake_slack)
        ack = driver.command(f"hangup prod:{sid}")
        assert ack.status_code == 200
        fake_twilio.wait_for(lambda reqs: any(r.method == "POST" for r in reqs))
        assert db.audit()[0]["outcome"] == "pending"  # written before the provider request
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()

    assert db.audit()[0]["outcome"] == "pending"
    second = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        wait_healthy(url)
        [row] = db.audit()
        assert row["outcome"] == "unknown"
        assert "stopped before the provider answered" in row["error_message"]
        assert row["completed_at"] is not None
    finally:
        second.terminate()
        second.communicate(timeout=20)
