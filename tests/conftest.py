"""Shared fixtures come from tests/support/fixtures.py: a migrated database per worker, the fake
Slack and provider servers, and the real ASGI app served by uvicorn on loopback (`make_bot`, `bot`),
driven with signed requests exactly as Slack sends them.

The names below stay importable from here (benchmarks/ uses them); new code imports tests.support."""

from __future__ import annotations

from tests.support.bots import (
    ALICE,
    BOB,
    CAROL,
    PAYLOADS,
    SIGNING_SECRET,
    Bot,
    ServerThread,
    SlackDriver,
    reply_text,
    write_config,
)
from tests.support.database import DbHelper, on_database

pytest_plugins = ["tests.support.fixtures", "tests.support.scheduling"]

__all__ = [
    "ALICE",
    "BOB",
    "CAROL",
    "PAYLOADS",
    "SIGNING_SECRET",
    "Bot",
    "DbHelper",
    "ServerThread",
    "SlackDriver",
    "on_database",
    "reply_text",
    "write_config",
]
