"""The per-call step of a bulk hang-up through the real service: one audit row per call, pending
before its request and completed after, chained; failures recorded per call."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.config import Settings
from bot.db import batches, chain
from bot.domain.permissions import Decision
from bot.runtime import Runtime
from bot.service.bulk import runner
from bot.service.bulk.engine import Progress
from bot.service.bulk.hangup import BulkHangup
from bot.service.core import Invocation
from tests.fakes.twilio import FakeTwilio, call_sid, twilio_error
from tests.support.bots import ALICE
from tests.support.database import DbHelper


def test_each_call_of_a_batch_gets_its_own_audit_row(
    env: dict[str, str], db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    sids = [fake_twilio.add_call(call_sid(n)) for n in range(1, 13)]
    # Twilio refuses this one although it is live (had it ended, the batch would count it as ended).
    fake_twilio.refusing[sids[4]] = twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")

    async def go() -> tuple[batches.Summary[str], chain.ChainReport]:
        runtime = await Runtime.start(Settings.from_env(env))
        try:
            inv = Invocation("slash", ALICE, "hangup-all prod", channel_id="C0OPS")
            batch = await batches.create(
                runtime.db,
                account="prod",
                action="hangup",
                requested_by=ALICE,
                channel_id="C0OPS",
                filter={},
                reason="toll fraud",
                call_ids=sids,
            )
            act = BulkHangup(
                runtime.service.clients, runtime.service.recorder, runtime.service.safety, concurrency=4
            ).act(inv, "prod", batch.id, Decision(True, "bulk", "prod"))

            async def report(progress: Progress) -> None:
                pass

            summary = await runner.run(runtime.db, batch.id, act, workers=4, report=report)
            return summary, await chain.verify(runtime.db)
        finally:
            await runtime.close()

    summary, report = asyncio.run(go())

    assert summary.progress.ended == 11 and [sid for sid, _ in summary.failures] == [sids[4]]
    rows = db.audit()
    assert sorted(r["call_id"] for r in rows) == sorted(sids)
    assert {r["source"] for r in rows} == {"bulk"} and {r["action"] for r in rows} == {"hangup"}
    assert all(r["request"]["batch"] == 1 and r["request"]["body"] == {"Status": "completed"} for r in rows)
    by_call = {r["call_id"]: r for r in rows}
    assert by_call[sids[4]]["outcome"] == "failed" and by_call[sids[4]]["error_code"] == "21220"
    assert all(by_call[sid]["outcome"] == "succeeded" for sid in sids if sid != sids[4])
    assert all(r["outcome_seq"] is not None for r in rows)  # opened pending, then closed
    assert report.ok and report.rows == 12
    assert all(fake_twilio.hangups[sid] == 1 for sid in sids)


def test_a_duplicate_in_a_group_commit_fails_that_call_alone(
    env: dict[str, str], db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    """A call whose row is already there (an earlier run got that far) breaks the unique key inside
    the first group commit, which all six workers share. The group is retried write by write: that
    call is reported (never sent), the others end."""
    sids = [fake_twilio.add_call(call_sid(n)) for n in range(1, 7)]

    async def go() -> batches.Summary[str]:
        runtime = await Runtime.start(Settings.from_env(env))
        try:
            inv = Invocation("slash", ALICE, "hangup-all prod", channel_id="C0OPS")
            batch = await batches.create(
                runtime.db,
                account="prod",
                action="hangup",
                requested_by=ALICE,
                channel_id="C0OPS",
                filter={},
                reason=None,
                call_ids=sids,
            )
            earlier = replace(inv, source="bulk", idempotency_key=f"batch:{batch.id}:{sids[2]}")
            await runtime.service.recorder.record(
                earlier, outcome="unknown", action="hangup", account="prod", completed=True
            )
            act = BulkHangup(
                runtime.service.clients, runtime.service.recorder, runtime.service.safety, concurrency=6
            ).act(inv, "prod", batch.id, Decision(True, "bulk", "prod"))

            async def report(progress: Progress) -> None:
                pass

            return await runner.run(runtime.db, batch.id, act, workers=6, report=report)
        finally:
            await runtime.close()

    summary = asyncio.run(go())

    assert [(sid, why) for sid, why in summary.failures] == [
        (sids[2], "already handled by an earlier run of this batch")
    ]
    assert summary.progress.ended == 5
    assert [fake_twilio.hangups[sid] for sid in sids] == [1, 1, 0, 1, 1, 1]
