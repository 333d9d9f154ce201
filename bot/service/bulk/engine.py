"""Running one action over many calls as fast as the provider allows, and no faster.

`Throttle` is shared by everything one process sends in bulk to one account: at most `limit`
requests in flight; a 429 pauses every sender until its Retry-After (or an exponential backoff)
has passed and shrinks the window: back to the last size that held (a run of successes without a
429) when the refusal came above it, else by half. The window then grows back one step per run
of successes up to just below the size refused, and probes above that only after a long quiet
run, since every 429 costs the whole batch its Retry-After. So a provider's limit slows the whole
batch down at once instead of each worker hammering it.

`run_all` is the worker pool: it hands items to the action, reports progress at most once per
interval, and stops taking new items once asked to stop (items already sent finish).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot import metrics
from bot.domain.errors import ProviderRateLimited
from bot.providers.base import ProviderClient, ProviderResult, WireRequest

T = TypeVar("T")
MAX_BACKOFF = 30.0


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

    async def acquire(self) -> int:
        """Waits for a free slot; returns the epoch to hand back to `throttled`."""
        while True:
            wait = self.paused_until - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
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
        self.paused_until = max(self.paused_until, self._clock() + min(retry_after, MAX_BACKOFF))
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


async def send_throttled(client: ProviderClient, request: WireRequest, throttle: Throttle) -> ProviderResult:
    """Sends one request of a batch. A 429 was not processed by the provider, so the request waits
    (with every other sender on the account) and goes again; any other error is the caller's."""
    while True:
        epoch = await throttle.acquire()
        try:
            result = await client.send(request, retry_safe=False)
        except ProviderRateLimited as error:
            metrics.PROVIDER_RETRIES.labels(provider=client.provider, status="429").inc()
            throttle.throttled(error.retry_after, epoch)
            continue
        finally:
            await throttle.release()
        throttle.succeeded()
        return result


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
) -> Summary[T]:
    """`act(item)` returns None when the item succeeded, else why it failed; it must not raise
    for an item's own failure (an exception is recorded as that item's failure too)."""
    started = time.monotonic()
    queue: asyncio.Queue[T] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    stop = asyncio.Event()
    ended = 0
    failures: list[tuple[T, str]] = []

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
    untouched: list[T] = []
    while not queue.empty():
        untouched.append(queue.get_nowait())
    return Summary(progress(), stop.is_set() and bool(untouched), tuple(failures), tuple(untouched))
