"""Batches on the database: every call ends once, a cancel stops between requests, and a batch
whose process was killed mid-way is marked interrupted and resumed without touching handled calls."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import TypeVar

import pytest

from bot.config import TwilioAccount
from bot.db import batches
from bot.db.batches import ItemOutcome
from bot.db.models import utcnow
from bot.db.session import Database
from bot.domain.actions import Hangup
from bot.domain.errors import ProviderError
from bot.providers.twilio import TwilioClient
from bot.service.bulk import runner
from bot.service.bulk.engine import Progress, Throttle, send_throttled
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, call_sid
from tests.support.database import DbHelper, on_database

T = TypeVar("T")


@pytest.fixture
def twilio_slow() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(latency=0.03).start()
    yield fake
    fake.stop()


def hangup_act(client: TwilioClient, throttle: Throttle) -> batches.Act:
    async def act(step: batches.Step) -> ItemOutcome:
        if step.in_doubt and (await client.get_call(step.call_id)).ended:
            return ItemOutcome(None, None)  # the earlier request got through: nothing to send
        await step.sending()  # committed before the request goes
        try:
            await send_throttled(client, client.build(step.call_id, Hangup()), throttle)
        except ProviderError as error:
            return ItemOutcome(None, error.message)
        return ItemOutcome(None, None)

    return act


def execute(
    db: DbHelper, fake: FakeTwilio, batch_id: int, *, cancel_after: int | None = None
) -> tuple[batches.Summary[str], list[Progress]]:
    reports: list[Progress] = []

    async def work(database: Database) -> batches.Summary[str]:
        config = TwilioAccount(provider="twilio", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=fake.url)
        client = TwilioClient("prod", config)

        async def report(progress: Progress) -> None:
            reports.append(progress)
            if cancel_after is not None and len(reports) == cancel_after:
                await batches.request_cancel(database, batch_id, "U0BOB0002")

        try:
            return await runner.run(
                database, batch_id, hangup_act(client, Throttle(4)), workers=4, report=report, every=0.1
            )
        finally:
            await client.aclose()

    return on_database(db.url, work), reports


def new_batch(db: DbHelper, sids: list[str]) -> int:
    async def work(database: Database) -> int:
        row = await batches.create(
            database,
            "T0001",
            account="prod",
            action="hangup",
            requested_by="U0ALICE01",
            channel_id="C0OPS",
            filter={"status": "in-progress"},
            reason="toll fraud",
            call_ids=sids,
        )
        return row.id

    return on_database(db.url, work)


def states(db: DbHelper, batch_id: int) -> dict[str, str]:
    return {item.call_id: item.state for item in on_database(db.url, lambda d: batches.items(d, batch_id))}


def test_a_batch_ends_every_call_once_and_finishes(db: DbHelper, twilio_slow: FakeTwilio) -> None:
    sids = [twilio_slow.add_call(call_sid(n)) for n in range(1, 41)]
    twilio_slow.calls[sids[5]] = "completed"
    batch_id = new_batch(db, [*sids, sids[0]])  # a duplicate id is listed once

    summary, reports = execute(db, twilio_slow, batch_id)

    row = on_database(db.url, lambda d: batches.get(d, batch_id))
    assert row is not None
    assert (row.status, row.total, row.ended, row.failed) == ("finished", 40, 39, 1)
    assert row.finished_at is not None
    assert [sid for sid, _ in summary.failures] == [sids[5]]
    assert states(db, batch_id) == {sid: "failed" if sid == sids[5] else "ended" for sid in sids}
    assert all(twilio_slow.hangups[sid] == 1 for sid in sids)
    assert reports and reports[-1].total == 40


def test_cancel_stops_between_requests(db: DbHelper, twilio_slow: FakeTwilio) -> None:
    sids = [twilio_slow.add_call(call_sid(n)) for n in range(1, 201)]
    batch_id = new_batch(db, sids)

    summary, _ = execute(db, twilio_slow, batch_id, cancel_after=1)

    row = on_database(db.url, lambda d: batches.get(d, batch_id))
    assert row is not None and row.status == "cancelled" and row.cancel_requested_by == "U0BOB0002"
    left = [sid for sid, state in states(db, batch_id).items() if state == "todo"]
    assert left and sorted(left) == sorted(summary.untouched)
    assert all(twilio_slow.hangups[sid] == 0 for sid in left)
    assert row.ended == 200 - len(left)
    # A cancelled batch is not resumable: only an interrupted one is.
    assert not on_database(db.url, lambda d: batches.claim_for_resume(d, batch_id))


_CHILD = """
import asyncio, sys
from tests.test_batches import hangup_act
from bot.db import batches
from bot.service.bulk import runner
from bot.service.bulk.engine import Throttle
from bot.config import TwilioAccount
from bot.db.session import Database
from bot.providers.twilio import TwilioClient
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN

async def main(url, fake_url, batch_id):
    db = Database(url)
    client = TwilioClient("prod", TwilioAccount(provider="twilio", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=fake_url))
    async def report(progress):
        pass
    await runner.run(db, batch_id, hangup_act(client, Throttle(2)), workers=2, report=report, every=0.2)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_a_killed_batch_is_interrupted_then_resumed_without_touching_handled_calls(
    db: DbHelper, twilio_slow: FakeTwilio
) -> None:
    sids = [twilio_slow.add_call(call_sid(n)) for n in range(1, 121)]
    batch_id = new_batch(db, sids)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, db.url, twilio_slow.url, str(batch_id)])
    try:
        deadline = time.monotonic() + 30
        while sum(state == "ended" for state in states(db, batch_id).values()) < 20:
            assert time.monotonic() < deadline and child.poll() is None, "the batch never got going"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    before = states(db, batch_id)
    handled = {sid for sid, state in before.items() if state == "ended"}
    assert handled and any(state == "todo" for state in before.values())

    # The dead process stopped beating: the next start-up (30 s later) marks the batch interrupted.
    assert on_database(db.url, lambda d: batches.mark_interrupted(d, utcnow())) == []  # still fresh
    later = utcnow() + batches.STALE_AFTER + timedelta(seconds=1)
    assert on_database(db.url, lambda d: batches.mark_interrupted(d, later)) == [batch_id]
    assert on_database(db.url, lambda d: batches.claim_for_resume(d, batch_id))
    assert not on_database(db.url, lambda d: batches.claim_for_resume(d, batch_id))  # a second resume is refused

    summary, _ = execute(db, twilio_slow, batch_id)

    assert summary.failures == () and summary.progress.ended == 120
    assert set(states(db, batch_id).values()) == {"ended"}
    assert all(twilio_slow.hangups[sid] == 1 for sid in sids)  # the handled ones were not sent again
    row = on_database(db.url, lambda d: batches.get(d, batch_id))
    assert row is not None and (row.status, row.ended, row.failed) == ("finished", 120, 0)
