"""Runs a batch: `run_all` (bot/service/bulk/engine.py) over the items still to do, the progress
counted over the whole batch (an earlier run's calls included), the heartbeat and Cancel checked
every tick, and the batch closed at the end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.db import batches
from bot.db.batches import SENDING, TODO, Act, Step, Writer
from bot.db.session import Database
from bot.service.bulk.engine import Progress, Summary, run_all


async def run(
    db: Database,
    batch_id: int,
    act: Act,
    *,
    workers: int,
    report: Callable[[Progress], Awaitable[None]],
    every: float = 1.0,
    stop: asyncio.Event | None = None,
) -> Summary[str]:
    """Runs the batch's items still to do (todo, and sending ones in doubt) and closes the batch:
    finished, or cancelled when someone asked. Progress counts the whole batch, earlier runs too.
    `stop` is set on Cancel: `act` should leave the items it holds back for their turn untouched."""
    pending = [item for item in await batches.items(db, batch_id) if item.state in (TODO, SENDING)]
    before = await batches.counts(db, batch_id)
    done_before = before.get(batches.ENDED, 0)
    failed_before = before.get(batches.FAILED, 0)
    by_call = {item.call_id: item for item in pending}
    writer = Writer(db)

    async def one(call_id: str) -> str | None:
        item = by_call[call_id]
        step = Step(item.id, call_id, item.state == SENDING, writer)
        outcome = await act(step)
        if not step.settled:
            await step.settle(outcome)
        return outcome.error

    def whole(progress: Progress) -> Progress:
        return Progress(
            done_before + failed_before + progress.total,
            done_before + progress.ended,
            failed_before + progress.failed,
            progress.elapsed,
            earlier=done_before + failed_before,
        )

    async def tick(progress: Progress) -> None:
        overall = whole(progress)
        await batches.beat(db, batch_id, ended=overall.ended, failed=overall.failed)
        await report(overall)

    async def should_stop() -> bool:
        return await batches.cancel_requested(db, batch_id)

    summary = await run_all(
        list(by_call), one, workers=workers, report=tick, should_stop=should_stop, every=every, stop=stop
    )
    overall = whole(summary.progress)
    await batches.close(db, batch_id, stopped=summary.stopped, ended=overall.ended, failed=overall.failed)
    return Summary(overall, summary.stopped, summary.failures, summary.untouched)
