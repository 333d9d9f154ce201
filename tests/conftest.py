"""Shared fixtures: a migrated database, fake Slack and Twilio servers, and the real ASGI app
served by uvicorn on loopback, driven with signed requests exactly as Slack sends them."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import uvicorn
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import Engine, bindparam, create_engine, text

from bot.config import Settings
from bot.db import migrate
from bot.db.models import UTCDateTime
from bot.db.session import Database, parse_database_url
from bot.web import create_web_app
from tests.fakes import bandwidth, bird
from tests.fakes.bandwidth import FakeBandwidth
from tests.fakes.bird import FakeBird
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
# Copies of shared/slack-payloads: what Slack really sends.
PAYLOADS = Path(__file__).resolve().parent / "payloads"
ALICE, BOB, CAROL = "U0ALICE01", "U0BOB0002", "U0CAROL03"


def pytest_report_header() -> str:
    return f"callbot test database: {_database_url_label()}"


def _database_url_label() -> str:
    url = os.environ.get("CALLBOT_TEST_DATABASE_URL")
    return url.split("@")[-1] if url else "sqlite (temporary file)"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("CALLBOT_TEST_DATABASE_URL")
    if url:
        engine = create_engine(parse_database_url(url, sync=True))
        with engine.begin() as conn:
            # A clean slate whatever an earlier run left behind.
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'callbot.db'}"
    migrate.upgrade(url)
    return url


T = TypeVar("T")


def on_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """Runs `work` with the bot's own async Database on `url` (a fresh event loop), then closes it."""

    async def go() -> T:
        database = Database(url)
        try:
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(go())


@dataclass
class DbHelper:
    url: str
    engine: Engine

    def reset(self) -> None:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(
                    text(
                        "TRUNCATE audit_log, grants, roles, saved_flows, flow_drafts, freezes, approvals, batches, batch_items "
                        "RESTART IDENTITY"
                    )
                )
            else:
                conn.execute(text("DELETE FROM approvals"))
                conn.execute(text("DELETE FROM freezes"))
                conn.execute(text("DELETE FROM audit_log"))
                conn.execute(text("DELETE FROM grants"))
                conn.execute(text("DELETE FROM roles"))
                conn.execute(text("DELETE FROM saved_flows"))
                conn.execute(text("DELETE FROM flow_drafts"))
                conn.execute(text("DELETE FROM batches"))
                conn.execute(text("DELETE FROM batch_items"))
            # A fresh, empty hash chain (bot/db/chain.py).
            conn.execute(
                text("UPDATE audit_chain SET seq = 0, hash = :genesis, base_seq = 0, base_hash = :genesis"),
                {"genesis": "0" * 64},
            )

    def grant(
        self,
        user: str,
        action: str,
        account: str = "*",
        *,
        kind: str = "user",
        channel: str | None = None,
        expires_at: datetime | None = None,
    ) -> int:
        """Insert a grant (a user's, or a user group's with kind="group"); returns its id."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO grants (user_id, action, account, granted_by, created_at, subject_kind, channel, "
                    "expires_at) VALUES (:u, :a, :acc, 'test-setup', CURRENT_TIMESTAMP, :k, :c, :e)"
                ).bindparams(bindparam("e", type_=UTCDateTime())),  # stored exactly as the bot stores it
                {"u": user, "a": action, "acc": account, "k": kind, "c": channel, "e": expires_at},
            )
            return int(conn.execute(text("SELECT max(id) FROM grants")).scalar_one())

    def grants(self) -> list[tuple[str, str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT user_id, action, account FROM grants ORDER BY id"))
            return [tuple(r) for r in rows]  # type: ignore[misc]

    def audit(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM audit_log ORDER BY id")).mappings().all()
        result = []
        for row in rows:
            item = dict(row)
            for key in ("request", "result"):
                if isinstance(item.get(key), str):
                    item[key] = json.loads(item[key])
            result.append(item)
        return result

    def wait_audit(self, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.audit()
            if predicate(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"audit rows never matched: {rows}")
            time.sleep(0.02)


@pytest.fixture
def db(database_url: str) -> Iterator[DbHelper]:
    engine = create_engine(parse_database_url(database_url, sync=True))
    database = DbHelper(database_url, engine)
    database.reset()
    yield database
    engine.dispose()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    server = FakeTwilio().start()
    yield server
    server.stop()


@pytest.fixture
def fake_bandwidth() -> Iterator[FakeBandwidth]:
    server = FakeBandwidth().start()
    yield server
    server.stop()


@pytest.fixture
def fake_bird() -> Iterator[FakeBird]:
    server = FakeBird().start()
    yield server
    server.stop()


def write_config(
    path: Path, twilio_url: str, extra: str = "", bandwidth_url: str | None = None, bird_url: str | None = None
) -> Path:
    """One account per provider, secrets from the environment, as the README recommends."""
    text = f"""
[accounts.prod]
provider = "twilio"
account_sid = "{ACCOUNT_SID}"
auth_token = "${{TEST_TWILIO_AUTH_TOKEN}}"
base_url = "{twilio_url}"
timeout = 2
"""
    if bandwidth_url:
        text += f"""
[accounts.bw]
provider = "bandwidth"
account_id = "{bandwidth.ACCOUNT_ID}"
username = "{bandwidth.USERNAME}"
password = "${{TEST_BW_PASSWORD}}"
base_url = "{bandwidth_url}"
timeout = 2
"""
    if bird_url:
        text += f"""
[accounts.bird]
provider = "bird"
workspace_id = "{bird.WORKSPACE_ID}"
channel_id = "{bird.CHANNEL_ID}"
access_key = "${{TEST_BIRD_ACCESS_KEY}}"
base_url = "{bird_url}"
timeout = 2
"""
    path.write_text(text + extra, encoding="utf-8")
    return path


@pytest.fixture
def env(
    tmp_path: Path,
    db: DbHelper,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_bandwidth: FakeBandwidth,
    fake_bird: FakeBird,
) -> dict[str, str]:
    """The environment a deployment would set, pointing at the fakes."""
    config = write_config(tmp_path / "callbot.toml", fake_twilio.url, "", fake_bandwidth.url, fake_bird.url)
    return {
        "DATABASE_URL": db.url,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": fake_slack.api_url,
        "CALLBOT_CONFIG": str(config),
        "TEST_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TEST_BW_PASSWORD": bandwidth.PASSWORD,
        "TEST_BIRD_ACCESS_KEY": bird.ACCESS_KEY,
        "CALLBOT_PENDING_GRACE": "0",
    }


class ServerThread:
    """The real ASGI app under uvicorn, on a free loopback port, in a background thread."""

    def __init__(self, settings: Settings, clock: Any = None, **options: Any) -> None:
        app = create_web_app(settings, clock=clock, **options)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the bot did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


class SlackDriver:
    """Sends what Slack sends: signed slash-command forms and `payload=` interactivity posts."""

    def __init__(self, base_url: str, slack: FakeSlack) -> None:
        self.base_url = base_url
        self.slack = slack
        self.http = httpx.Client(base_url=base_url, timeout=15)
        self.verifier = SignatureVerifier(SIGNING_SECRET)
        self._triggers = 0

    def sign(self, body: str, timestamp: int | None = None) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        return {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=ts, body=body),
        }

    def command_body(self, text: str, user: str = ALICE, **fields: str) -> str:
        sample = dict(parse_qsl((PAYLOADS / "slash_command.form").read_text().strip(), keep_blank_values=True))
        self._triggers += 1
        sample.update(
            {
                "text": text,
                "user_id": user,
                "user_name": {ALICE: "alice", BOB: "bob", CAROL: "carol"}.get(user, "someone"),
                "response_url": self.slack.response_url(f"cmd{self._triggers}"),
                "trigger_id": f"13345224609.738474920.{self._triggers:08x}{int(time.time() * 1000):x}",
            }
        )
        sample.update(fields)
        return urlencode(sample)

    def post(self, body: str, headers: dict[str, str], content_type: str) -> httpx.Response:
        return self.http.post("/slack/events", content=body, headers={**headers, "Content-Type": content_type})

    def command(self, text: str, user: str = ALICE, **fields: str) -> httpx.Response:
        body = self.command_body(text, user, **fields)
        return self.post(body, self.sign(body), "application/x-www-form-urlencoded")

    def interact(self, payload: dict[str, Any]) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return self.post(body, self.sign(body), "application/x-www-form-urlencoded")

    def run(self, text: str, user: str = ALICE) -> tuple[dict[str, Any], dict[str, Any]]:
        """A call action end to end: the immediate ack, then the outcome posted to response_url."""
        before = len(self.slack.responses())
        response = self.command(text, user)
        assert response.status_code == 200, response.text
        outcome = self.slack.wait_responses(before + 1)[before]
        return response.json(), outcome.json


@dataclass
class Bot:
    url: str
    slack: SlackDriver
    db: DbHelper
    fake_slack: FakeSlack
    fake_twilio: FakeTwilio
    settings: Settings
    fake_bandwidth: FakeBandwidth
    fake_bird: FakeBird


@pytest.fixture
def bot(
    env: dict[str, str],
    db: DbHelper,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_bandwidth: FakeBandwidth,
    fake_bird: FakeBird,
) -> Iterator[Bot]:
    settings = Settings.from_env(env)
    server = ServerThread(settings)
    url = server.start()
    driver = SlackDriver(url, fake_slack)
    try:
        yield Bot(url, driver, db, fake_slack, fake_twilio, settings, fake_bandwidth, fake_bird)
    finally:
        driver.http.close()
        server.stop()


def reply_text(message: dict[str, Any]) -> str:
    """Everything a person sees in a message: its blocks' text, or the fallback text."""
    parts: list[str] = []
    for block in message.get("blocks") or []:
        if "text" in block and isinstance(block["text"], dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements") or []:
            if isinstance(element, dict) and "text" in element:
                parts.append(str(element["text"]))
    return "\n".join(parts) if parts else str(message.get("text", ""))


@pytest.fixture
def bot_factory_parts(db: DbHelper, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> tuple:
    """For tests that start the bot themselves with a different configuration."""
    return fake_slack, fake_twilio, db


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
