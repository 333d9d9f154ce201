"""Running one action over many calls as fast as the provider allows, and no faster.

`Throttle` is shared by everything one process sends in bulk to one account: at most `limit`
requests in flight; a 429 pauses every sender until its Retry-After (never shortened: a request
sent earlier is refused again; without one, an exponential backoff) has passed and shrinks the window: back to the last size that held (a run of successes without a
429) when the refusal came above it, else by half. The window then grows back one step per run
of successes up to just below the size refused, and probes above that only after a long quiet
run, since every 429 costs the whole batch its Retry-After. So a provider's limit slows the whole
batch down at once instead of each worker hammering it.

`send_throttled` sends one call's request through it, at most `RetryLimits.attempts` times, and
gives up on a call whose wait would be longer than `RetryLimits.longest_wait`.

`run_all` is the worker pool: it hands items to the action, reports progress at most once per
interval, and stops taking new items once asked to stop (items already sent finish; items waiting
to be sent again after a 429 are left untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot import metrics
from bot.domain.errors import ProviderRateLimited
from bot.providers.base import ProviderClient, ProviderResult, WireRequest

T = TypeVar("T")
# Our own backoff after a 429 that names no Retry-After (a provider's Retry-After is never capped).
MAX_BACKOFF = 30.0
MAX_PAUSE = 3600.0  # seconds: the highest bulk_max_retry_after (bot/config/accounts.py)


@dataclass(frozen=True)
class RetryLimits:
    """How long one call of a batch may keep trying (the account's bulk_max_attempts and
    bulk_max_retry_after): requests in all, 429s included, and the longest wait it accepts."""

    attempts: int = 5
    longest_wait: float = 60.0


class Untouched(Exception):
    """The run was stopped while this item waited for its turn: nothing of it was processed."""


class WaitTooLong(Exception):
    """Sending now would go before the provider's Retry-After, and waiting is longer than allowed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"{seconds:.0f} s")
        self.seconds = seconds


class Throttle:
    def __init__(
        self,
        limit: int,
        *,
        recover_after: int = 20,
        probe_after: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("a throttle needs a limit of at least 1")
        self.limit = limit
        self.window = limit
        # Above `ceiling` the provider said no before: probe it again only after a long quiet run.
        self.ceiling = limit
        self.recover_after = recover_after
        self.probe_after = probe_after
        self.in_flight = 0
        self.paused_until = 0.0
        self.throttled_count = 0
        # A burst of requests sent together gets its 429s together: one epoch shrinks the window once.
        self.epoch = 0
        self._clock = clock
        self._successes = 0
        self._proven = 0  # the largest window that held for `recover_after` successes in a row
        self._strikes = 0  # 429s in a row without Retry-After: the backoff grows with them
        self._changed = asyncio.Condition()

    async def acquire(self, *, stop: asyncio.Event | None = None, longest_wait: float | None = None) -> int:
        """Waits for a free slot; returns the epoch to hand back to `throttled`. Raises Untouched
        when `stop` is set first, WaitTooLong when the pause left is longer than `longest_wait`."""
        while True:
            if stop is not None and stop.is_set():
                raise Untouched()
            wait = self.paused_until - self._clock()
            if wait > 0:
                if longest_wait is not None and wait > longest_wait:
                    raise WaitTooLong(wait)
                await _sleep(wait, stop)
                continue
            async with self._changed:
                if self.paused_until > self._clock():
                    continue
                if self.in_flight < self.window:
                    self.in_flight += 1
                    return self.epoch
                await self._changed.wait()

    async def release(self) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

    def throttled(self, retry_after: float | None, epoch: int | None = None) -> None:
        """The provider answered 429 (nothing was processed): every sender waits, and the first
        429 of a burst halves the window."""
        self.throttled_count += 1
        self._successes = 0
        if retry_after is None or retry_after <= 0:
            self._strikes += 1
            retry_after = min(MAX_BACKOFF, 0.25 * 2**self._strikes)
        # The pause is shared by every batch on the account: capped at the longest wait any account
        # may accept (bulk_max_retry_after ≤ MAX_PAUSE), so one absurd Retry-After fails the call it
        # refused, not every later batch.
        self.paused_until = max(self.paused_until, self._clock() + min(retry_after, MAX_PAUSE))
        if epoch is None or epoch == self.epoch:
            self.epoch += 1
            refused = self.window
            self.ceiling = max(1, refused - 1)
            if 0 < self._proven < refused:
                self.window = self._proven  # a step too far: back to the size that held
            else:
                self.window = max(1, refused // 2)  # refused at a size that held before: halve
                self._proven = 0

    def succeeded(self) -> None:
        self._strikes = 0
        self._successes += 1
        if self._successes >= self.recover_after:
            self._proven = max(self._proven, self.window)
        needed = self.recover_after if self.window < self.ceiling else self.probe_after
        if self.window < self.limit and self._successes >= needed:
            self.window += 1
            self._successes = 0


async def send_throttled(
    client: ProviderClient,
    request: WireRequest,
    throttle: Throttle,
    *,
    limits: RetryLimits = RetryLimits(),
    stop: asyncio.Event | None = None,
) -> ProviderResult:
    """Sends one request of a batch. A 429 was not processed by the provider, so the request waits
    (with every other sender on the account) and goes again, up to `limits.attempts` requests in
    all; a wait longer than `limits.longest_wait` fails the call instead (ProviderRateLimited,
    nothing changed). Any other error is the caller's. Untouched when `stop` is set while the
    request waits for its turn."""
    refused: ProviderRateLimited | None = None
    for _ in range(limits.attempts):
        try:
            epoch = await throttle.acquire(stop=stop, longest_wait=limits.longest_wait)
        except WaitTooLong as wait:
            raise _too_long(client, wait.seconds, limits, refused) from None
        try:
            result = await client.send(request, retry_safe=False)
        except ProviderRateLimited as error:
            metrics.PROVIDER_RETRIES.labels(provider=client.provider, status="429").inc()
            throttle.throttled(error.retry_after, epoch)
            refused = error
            if error.retry_after is not None and error.retry_after > limits.longest_wait:
                raise _too_long(client, error.retry_after, limits, error) from None
            continue
        finally:
            await throttle.release()
        throttle.succeeded()
        return result
    assert refused is not None
    raise _rate_limited(
        refused,
        f"{client.display_name} still refused after {limits.attempts} tries (bulk_max_attempts): "
        f"{refused.provider_message or 'rate limited'}. Nothing was changed on this call.",
    )


def _too_long(
    client: ProviderClient, seconds: float, limits: RetryLimits, refused: ProviderRateLimited | None
) -> ProviderRateLimited:
    said = f" ({refused.provider_message})" if refused is not None and refused.provider_message else ""
    message = (
        f"{client.display_name} asked to wait {seconds:.0f} s{said}, longer than callbot's limit of "
        f"{limits.longest_wait:g} s (bulk_max_retry_after). Nothing was changed on this call."
    )
    if refused is None:
        # Another call's 429 paused the account: this one was never sent.
        return ProviderRateLimited(client.provider, f"Not sent: {message}", retry_after=seconds)
    return _rate_limited(refused, message)


def _rate_limited(error: ProviderRateLimited, message: str) -> ProviderRateLimited:
    """The provider's refusal (its status, code and words kept for the audit row), said for a batch."""
    return ProviderRateLimited(
        error.provider,
        message,
        http_status=error.http_status,
        code=error.code,
        provider_message=error.provider_message,
        request_id=error.request_id,
        retry_after=error.retry_after,
    )


async def _sleep(seconds: float, stop: asyncio.Event | None) -> None:
    """Sleeps, or less when `stop` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


@dataclass(frozen=True)
class Progress:
    total: int
    ended: int
    failed: int
    elapsed: float  # seconds
    earlier: int = 0  # of `handled`, how many an earlier run did (a resumed batch): not part of the pace

    @property
    def handled(self) -> int:
        return self.ended + self.failed

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace so far; None before the first answer."""
        now = self.handled - self.earlier
        if now <= 0 or self.elapsed <= 0:
            return None
        return (self.total - self.handled) * self.elapsed / now


@dataclass(frozen=True)
class Summary(Generic[T]):
    progress: Progress
    stopped: bool  # asked to stop before every item was handled
    failures: tuple[tuple[T, str], ...]  # item, why
    untouched: tuple[T, ...]  # never started (stopped)


async def run_all(
    items: Sequence[T],
    act: Callable[[T], Awaitable[str | None]],
    *,
    workers: int,
    report: Callable[[Progress], Awaitable[None]],
    should_stop: Callable[[], Awaitable[bool]],
    every: float = 1.0,
    stop: asyncio.Event | None = None,
) -> Summary[T]:
    """`act(item)` returns None when the item succeeded, else why it failed; it must not raise
    for an item's own failure (an exception is recorded as that item's failure too), but raises
    Untouched when the run was stopped before the item was processed. `stop`: set once
    `should_stop` says so; give the same event to `act` so waiting items stop too."""
    started = time.monotonic()
    queue: asyncio.Queue[T] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    stop = stop or asyncio.Event()
    ended = 0
    failures: list[tuple[T, str]] = []
    untouched: list[T] = []

    def progress() -> Progress:
        return Progress(len(items), ended, len(failures), time.monotonic() - started)

    async def worker() -> None:
        nonlocal ended
        while not stop.is_set():
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                why = await act(item)
            except Untouched:
                untouched.append(item)
                continue
            except Exception as exc:  # an item's crash must not end the batch
                why = f"internal error ({type(exc).__name__})"
            if why is None:
                ended += 1
            else:
                failures.append((item, why))

    async def reporter() -> None:
        while True:
            await asyncio.sleep(every)
            if await should_stop():
                stop.set()
            await report(progress())

    pool = [asyncio.create_task(worker()) for _ in range(max(1, min(workers, len(items))))]
    ticker = asyncio.create_task(reporter())
    try:
        await asyncio.gather(*pool)
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    while not queue.empty():
        untouched.append(queue.get_nowait())
    return Summary(progress(), stop.is_set() and bool(untouched), tuple(failures), tuple(untouched))
