"""The one fake clock: what the bot takes as "now", moved by the test instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """Rate limits, approval and grant expiry, the user-group cache and audit times follow it.

    `FakeClock()` starts at the real now; pass `start` for another (e.g. whole seconds).
    `advance(61)` or `advance(hours=7, minutes=59)` moves it; setting `now` jumps."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start if start is not None else datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, **delta: float) -> None:
        self.now += timedelta(seconds=seconds, **delta)
