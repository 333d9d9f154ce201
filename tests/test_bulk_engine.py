"""The bulk engine against a fake Twilio that enforces a concurrency cap with 429 + Retry-After:
every call ends exactly once, 429s slow the whole batch down, a stop leaves the rest untouched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from bot.config import TwilioAccount
from bot.domain.actions import Hangup
from bot.domain.errors import ProviderError
from bot.providers.http import retry_after
from bot.providers.twilio import TwilioClient
from bot.service.bulk.engine import MAX_PAUSE, Progress, Summary, Throttle, run_all, send_throttled
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, call_sid


@pytest.fixture
def capped() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(latency=0.02, max_concurrency=4, retry_after=0.2).start()
    yield fake
    fake.stop()


def client_for(fake: FakeTwilio) -> TwilioClient:
    config = TwilioAccount(
        provider="twilio", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=fake.url, timeout=5
    )
    return TwilioClient("prod", config)


def hang_up_all(
    fake: FakeTwilio, sids: list[str], *, limit: int, stop_after: int | None = None
) -> tuple[Summary[str], list[Progress], Throttle]:
    reports: list[Progress] = []

    async def go() -> tuple[Summary[str], Throttle]:
        client = client_for(fake)
        throttle = Throttle(limit)

        async def act(sid: str) -> str | None:
            try:
                await send_throttled(client, client.build(sid, Hangup()), throttle)
            except ProviderError as error:
                return error.message
            return None

        async def report(progress: Progress) -> None:
            reports.append(progress)

        async def should_stop() -> bool:
            return stop_after is not None and len(reports) >= stop_after

        try:
            summary = await run_all(sids, act, workers=limit, report=report, should_stop=should_stop, every=0.1)
        finally:
            await client.aclose()
        return summary, throttle

    summary, throttle = asyncio.run(go())
    return summary, reports, throttle


def test_every_call_ends_exactly_once_under_a_429_cap(capped: FakeTwilio) -> None:
    sids = [capped.add_call(call_sid(n)) for n in range(1, 81)]
    summary, reports, throttle = hang_up_all(capped, sids, limit=10)

    assert summary.failures == () and summary.untouched == () and not summary.stopped
    assert summary.progress.ended == 80 and summary.progress.total == 80
    assert capped.hangups == {sid: 1 for sid in sids}  # no hang-up lost, none sent twice
    assert all(capped.calls[sid] == "completed" for sid in sids)
    # Ten workers against a cap of four: the provider refused some, and the throttle backed off.
    assert capped.rate_limited > 0 and throttle.throttled_count > 0
    assert throttle.window < 10
    # Progress went up monotonically and was reported while the batch ran.
    handled = [p.handled for p in reports]
    assert handled == sorted(handled) and reports


def test_a_429_pauses_every_sender_until_retry_after() -> None:
    async def go() -> list[float]:
        throttle = Throttle(3)
        throttle.throttled(0.3)
        begun = time.monotonic()
        waits = []

        async def sender() -> None:
            await throttle.acquire()
            waits.append(time.monotonic() - begun)
            await throttle.release()

        await asyncio.gather(*(sender() for _ in range(3)))
        assert throttle.window == 1  # halved from 3
        return waits

    assert all(wait >= 0.29 for wait in asyncio.run(go()))


def test_one_burst_of_429s_shrinks_the_window_once() -> None:
    throttle = Throttle(8)
    epoch = throttle.epoch
    for _ in range(5):  # five requests of the same burst all refused
        throttle.throttled(0.0, epoch)
    assert (throttle.window, throttle.ceiling, throttle.throttled_count) == (4, 7, 5)
    throttle.throttled(0.0, throttle.epoch)  # a later burst refused too
    assert throttle.window == 2


def test_the_window_grows_back_fast_below_the_last_refusal_and_slowly_above() -> None:
    throttle = Throttle(8, recover_after=2, probe_after=10)
    throttle.throttled(0.0, throttle.epoch)
    assert (throttle.window, throttle.ceiling) == (4, 7)
    for _ in range(6):
        throttle.succeeded()
    assert throttle.window == 7  # +1 per 2 successes up to the ceiling
    for _ in range(9):
        throttle.succeeded()
    assert throttle.window == 7
    throttle.succeeded()
    assert throttle.window == 8  # the 10th success probes one step higher
    for _ in range(30):
        throttle.succeeded()
    assert throttle.window == 8  # never above the limit


def test_a_failed_call_is_listed_and_the_rest_still_end(capped: FakeTwilio) -> None:
    sids = [capped.add_call(call_sid(n)) for n in range(1, 11)]
    capped.calls[sids[3]] = "completed"  # ended before the batch reached it
    summary, _, _ = hang_up_all(capped, sids, limit=4)

    assert [sid for sid, _ in summary.failures] == [sids[3]]
    assert "not in progress" in summary.failures[0][1]
    assert summary.progress.ended == 9 and summary.progress.failed == 1


def test_stopping_leaves_untouched_calls_alone() -> None:
    slow = FakeTwilio(latency=0.05).start()
    try:
        sids = [slow.add_call(call_sid(n)) for n in range(1, 201)]
        summary, _, _ = hang_up_all(slow, sids, limit=2, stop_after=1)
    finally:
        slow.stop()

    assert summary.stopped and summary.untouched
    assert summary.progress.ended + len(summary.untouched) == 200
    assert all(slow.hangups[sid] == 0 and slow.calls[sid] == "in-progress" for sid in summary.untouched)
    ended = [sid for sid in sids if sid not in summary.untouched]
    assert all(slow.hangups[sid] == 1 for sid in ended)


def test_eta_follows_the_pace_so_far() -> None:
    assert Progress(total=100, ended=20, failed=5, elapsed=5.0).eta == pytest.approx(15.0)
    assert Progress(total=100, ended=0, failed=0, elapsed=1.0).eta is None


def test_a_refused_step_up_goes_back_to_the_size_that_held_not_to_half() -> None:
    throttle = Throttle(10, recover_after=2, probe_after=6)
    throttle.throttled(0.0, throttle.epoch)  # the first burst: nothing known yet, so halve
    assert (throttle.window, throttle.ceiling) == (5, 9)
    for _ in range(2):
        throttle.succeeded()  # 5 held; one step up
    assert throttle.window == 6
    throttle.throttled(0.0, throttle.epoch)  # 6 is refused: 5 held, so back to 5, not 3
    assert (throttle.window, throttle.ceiling) == (5, 5)
    for _ in range(6):
        throttle.succeeded()
    assert throttle.window == 6  # a probe after a long quiet run only
    throttle.throttled(0.0, throttle.epoch)
    assert throttle.window == 5
    for _ in range(2):
        throttle.succeeded()
    throttle.throttled(0.0, throttle.epoch)  # refused at a size that held: the limit changed, halve
    assert throttle.window == 2


def test_a_long_retry_after_is_honoured_in_full_never_cut_short() -> None:
    now = [1000.0]
    throttle = Throttle(4, clock=lambda: now[0])
    throttle.throttled(45.0)
    assert throttle.paused_until == 1045.0  # not the old 30 s cap: a request sent early is refused again
    from bot.service.bulk.engine import WaitTooLong

    async def asks(wait_limit: float) -> str:
        try:
            await throttle.acquire(longest_wait=wait_limit)
        except WaitTooLong as too_long:
            return f"too long: {too_long.seconds:g} s"
        return "sent"

    assert asyncio.run(asks(20.0)) == "too long: 45 s"
    now[0] = 1045.0  # once the provider's wait is over
    assert asyncio.run(asks(20.0)) == "sent"


def test_a_stopped_run_leaves_a_waiting_sender_untouched() -> None:
    from bot.service.bulk.engine import Untouched

    async def go() -> str:
        throttle = Throttle(1)
        throttle.throttled(30.0)
        stop = asyncio.Event()
        waiting = asyncio.create_task(throttle.acquire(stop=stop))
        await asyncio.sleep(0)
        stop.set()
        try:
            await waiting
        except Untouched:
            return "untouched"
        return "sent"

    assert asyncio.run(go()) == "untouched"


def test_a_retry_after_of_infinity_is_no_answer_and_a_pause_is_capped() -> None:
    """A provider's absurd Retry-After must not stop bulk actions on the account for good."""
    assert retry_after(httpx.Response(429, headers={"Retry-After": "1e999"})) is None
    assert retry_after(httpx.Response(429, headers={"Retry-After": "86400"})) == 86400
    now = [1000.0]
    throttle = Throttle(4, clock=lambda: now[0])
    throttle.throttled(86400.0)
    assert throttle.paused_until == 1000.0 + MAX_PAUSE
