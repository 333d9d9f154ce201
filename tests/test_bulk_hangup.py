"""The per-call step of a bulk hang-up through the real service: one audit row per call, pending
before its request and completed after, chained; failures recorded per call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bot.config import Settings
from bot.db import batches, chain
from bot.domain.permissions import Decision
from bot.runtime import Runtime
from bot.service.bulk import runner
from bot.service.bulk.engine import Progress
from bot.service.bulk.hangup import BulkHangup
from bot.service.core import Invocation
from tests.fakes.twilio import FakeTwilio, call_sid, twilio_error
from tests.support.bots import ALICE, write_config
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
            inv = Invocation("slash", ALICE, "hangup-all prod", team_id="T0001", channel_id="C0OPS")
            batch = await batches.create(
                runtime.db,
                "T0001",
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
            inv = Invocation("slash", ALICE, "hangup-all prod", team_id="T0001", channel_id="C0OPS")
            batch = await batches.create(
                runtime.db,
                "T0001",
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


def bulk_env(env: dict[str, str], tmp_path: Path, twilio_url: str, settings: str) -> dict[str, str]:
    """`env` with the prod account's bulk settings set to `settings` (TOML lines)."""
    config = write_config(tmp_path / "bulk.toml", twilio_url)
    text = config.read_text(encoding="utf-8").replace("timeout = 2\n", f"timeout = 2\n{settings}", 1)
    config.write_text(text, encoding="utf-8")
    return {**env, "CALLBOT_CONFIG": str(config)}


def run_batch(
    env: dict[str, str],
    sids: list[str],
    *,
    concurrency: int = 1,
    workers: int = 1,
    cancel_when: Callable[[], bool] | None = None,
) -> tuple[batches.Summary[str], list[batches.BatchItemRow], str]:
    """One batch over `sids` through the real service; `cancel_when`: asked at each progress tick,
    Cancel is requested once it says so. The batch's items and final status come back too."""

    async def go() -> tuple[batches.Summary[str], list[batches.BatchItemRow], str]:
        runtime = await Runtime.start(Settings.from_env(env))
        try:
            inv = Invocation("slash", ALICE, "hangup-all prod", team_id="T0001", channel_id="C0OPS")
            batch = await batches.create(
                runtime.db,
                "T0001",
                account="prod",
                action="hangup",
                requested_by=ALICE,
                channel_id="C0OPS",
                filter={},
                reason=None,
                call_ids=sids,
            )
            stop = asyncio.Event()
            act = BulkHangup(
                runtime.service.clients, runtime.service.recorder, runtime.service.safety, concurrency=concurrency
            ).act(inv, "prod", batch.id, Decision(True, "bulk", "prod"), stop)

            async def report(progress: Progress) -> None:
                if cancel_when is not None and cancel_when():
                    await batches.request_cancel(runtime.db, batch.id, ALICE)

            summary = await runner.run(runtime.db, batch.id, act, workers=workers, report=report, every=0.1, stop=stop)
            row = await batches.get(runtime.db, batch.id)
            assert row is not None
            return summary, await batches.items(runtime.db, batch.id), row.status
        finally:
            await runtime.close()

    return asyncio.run(go())


def test_a_call_still_rate_limited_after_max_attempts_fails_with_the_providers_word(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    sids = [fake_twilio.add_call(call_sid(n)) for n in range(1, 3)]
    fake_twilio.refusing[sids[0]] = twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "0.05"})
    env = bulk_env(env, tmp_path, fake_twilio.url, "bulk_max_attempts = 3\n")

    summary, _, status = run_batch(env, sids)

    assert [fake_twilio.hangups[sid] for sid in sids] == [3, 1]  # three tries, then it stops
    [(sid, why)] = summary.failures
    assert sid == sids[0] and why.startswith(
        "Twilio still refused after 3 tries (bulk_max_attempts): Too Many Requests"
    )
    assert summary.progress.ended == 1 and status == "finished"
    by_call = {r["call_id"]: r for r in db.audit()}
    refused = by_call[sids[0]]
    assert (refused["outcome"], refused["provider_status"], refused["error_code"]) == ("failed", 429, "20429")
    assert refused["error_message"] == "Too Many Requests"
    assert by_call[sids[1]]["outcome"] == "succeeded"


def test_a_retry_after_beyond_the_limit_fails_the_call_and_nothing_goes_before_it(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    sids = [fake_twilio.add_call(call_sid(n)) for n in range(1, 4)]
    fake_twilio.refusing[sids[0]] = twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "45"})
    env = bulk_env(env, tmp_path, fake_twilio.url, "bulk_max_retry_after = 20\n")

    summary, items, _ = run_batch(env, sids)

    # The 429 asked for 45 s: never resent early, and the calls after it are not sent before then.
    assert [fake_twilio.hangups[sid] for sid in sids] == [1, 0, 0]
    why = dict(summary.failures)
    assert why[sids[0]] == (
        "Twilio asked to wait 45 s (Too Many Requests), longer than callbot's limit of 20 s "
        "(bulk_max_retry_after). Nothing was changed on this call."
    )
    assert all(
        why[sid].startswith("Not sent: Twilio asked to wait 4") and "limit of 20 s" in why[sid] for sid in sids[1:]
    )
    assert {item.state for item in items} == {"failed"}
    rows = {r["call_id"]: r for r in db.audit()}
    assert {r["outcome"] for r in rows.values()} == {"failed"}
    assert rows[sids[0]]["error_code"] == "20429" and rows[sids[1]]["error_message"].startswith("Not sent")


def test_cancel_stops_calls_waiting_to_be_sent_again(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    sids = [fake_twilio.add_call(call_sid(n)) for n in range(1, 4)]
    # The first call's 429 pauses the account for 30 s: every call is then waiting when Cancel comes.
    fake_twilio.refusing[sids[0]] = twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "30"})

    summary, items, status = run_batch(
        env, sids, concurrency=1, workers=2, cancel_when=lambda: bool(fake_twilio.updates())
    )

    assert summary.stopped and sorted(summary.untouched) == sorted(sids) and summary.failures == ()
    assert status == "cancelled"
    assert [fake_twilio.hangups[sid] for sid in sids] == [1, 0, 0]
    assert {item.call_id: item.state for item in items} == {sid: "todo" for sid in sids}
    rows = db.audit()  # the two calls the workers held were opened, and closed as not sent
    assert sorted(r["call_id"] for r in rows) == sids[:2]
    assert all(r["outcome"] == "cancelled" and r["error_message"].startswith("not sent: batch #") for r in rows)
