"""The bot under test: the real ASGI app under uvicorn on loopback, driven with signed requests
exactly as Slack sends them, its providers and Slack played by the fakes in tests/fakes."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn
from slack_sdk.signature import SignatureVerifier

from bot.config import Settings
from bot.slack.notify import HOME_REFRESH_TASK
from bot.web import create_web_app
from tests.fakes import bandwidth, bird
from tests.fakes.bandwidth import FakeBandwidth
from tests.fakes.bird import FakeBird
from tests.fakes.blockkit import message_problems, options_problems, view_problems
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.support.clock import FakeClock
from tests.support.database import DbHelper

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
# Copies of shared/slack-payloads: what Slack really sends.
PAYLOADS = Path(__file__).resolve().parents[1] / "payloads"
ALICE, BOB, CAROL = "U0ALICE01", "U0BOB0002", "U0CAROL03"
# make_bot's default: one account per provider (prod: Twilio, bw: Bandwidth, bird: Bird).
EVERY_ACCOUNT: Mapping[str, str] = {"prod": "", "bw": "", "bird": ""}
TWILIO_ONLY: Mapping[str, str] = {"prod": ""}
T = TypeVar("T")


def write_config(
    path: Path,
    twilio_url: str,
    extra: str = "",
    bandwidth_url: str | None = None,
    bird_url: str | None = None,
    *,
    read_back: float = 0,
) -> Path:
    """One account per provider, secrets from the environment, as the README recommends.

    `read_back` is off unless asked for: reading a call back after each action (on by default in
    callbot) would take the fakes' scripted answers meant for a test's next request. The tests of
    confirmation (tests/test_confirmation.py) turn it on."""
    text = f"""
[accounts.prod]
provider = "twilio"
account_sid = "{ACCOUNT_SID}"
auth_token = "${{TEST_TWILIO_AUTH_TOKEN}}"
base_url = "{twilio_url}"
timeout = 2
read_back = {read_back:g}
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
read_back = {read_back:g}
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
read_back = {read_back:g}
"""
    path.write_text(text + extra, encoding="utf-8")
    return path


@dataclass
class Fakes:
    """The four fake servers a bot talks to."""

    slack: FakeSlack
    twilio: FakeTwilio
    bandwidth: FakeBandwidth
    bird: FakeBird

    def all(self) -> tuple[FakeSlack, FakeTwilio, FakeBandwidth, FakeBird]:
        return (self.slack, self.twilio, self.bandwidth, self.bird)


def bot_config(
    path: Path, fakes: Fakes, accounts: Mapping[str, str] = EVERY_ACCOUNT, *, extra: str = "", preamble: str = ""
) -> Path:
    """Write the callbot.toml of `make_bot(accounts, extra=, preamble=)` (see BotFactory) at `path`,
    its accounts pointed at the fakes; returns the path."""
    unknown = set(accounts) - set(EVERY_ACCOUNT)
    assert not unknown, f"make_bot knows the accounts prod, bw and bird, not {sorted(unknown)}"
    write_config(
        path,
        fakes.twilio.url,
        extra,
        fakes.bandwidth.url if "bw" in accounts else None,
        fakes.bird.url if "bird" in accounts else None,
    )
    text = path.read_text(encoding="utf-8")
    for account, lines in accounts.items():
        header = f"[accounts.{account}]\n"
        if "read_back" in lines:  # the account's own replaces the default below its header
            start = text.index(header)
            text = text[:start] + text[start:].replace("read_back = 0\n", "", 1)
        text = text.replace(header, f"{header}{textwrap.dedent(lines).strip()}\n" if lines.strip() else header)
    if preamble:
        text = textwrap.dedent(preamble).strip() + "\n" + text
    path.write_text(text, encoding="utf-8")
    return path


def deployment_env(db_url: str, config: Path, fake_slack: FakeSlack) -> dict[str, str]:
    """The environment a deployment would set, pointing at the fakes."""
    return {
        "DATABASE_URL": db_url,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": fake_slack.api_url,
        "CALLBOT_CONFIG": str(config),
        "TEST_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TEST_BW_PASSWORD": bandwidth.PASSWORD,
        "TEST_BIRD_ACCESS_KEY": bird.ACCESS_KEY,
    }


class ServerThread:
    """The real ASGI app under uvicorn, on a free loopback port, in a background thread."""

    def __init__(self, settings: Settings, clock: Any = None, **options: Any) -> None:
        app = create_web_app(settings, clock=clock, **options)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._resident: set[asyncio.Task[Any]] = set()

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the bot did not start")
            time.sleep(0.01)
        listening = self.server.servers[0]
        self.loop = listening.get_loop()
        # What runs for the server's whole life (uvicorn's loop, the lifespan, the sweepers): any
        # other task is work in progress (a request, a listener after its ack, a batch).
        self._resident = self._in_loop(_other_tasks)
        port = listening.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and not self.server.should_exit

    def busy(self) -> set[asyncio.Task[Any]]:
        """The app's work in progress: tasks started since it came up that have not finished.
        A deferred App Home refresh (bot/slack/notify.py, up to HOME_DEBOUNCE away) is not work a
        request waits for; `drop_deferred` ends it."""
        return {
            task
            for task in self._in_loop(_other_tasks) - self._resident
            if not task.get_name().startswith(HOME_REFRESH_TASK)
        }

    def drop_deferred(self) -> None:
        """Cancels deferred App Home refreshes, so none reaches the fakes during the next test."""

        def cancel() -> None:
            for task in _other_tasks():
                if task.get_name().startswith(HOME_REFRESH_TASK):
                    task.cancel()

        self._in_loop(cancel)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Whether the app finished everything it was doing (it then sends nothing more) in time."""
        deadline = time.monotonic() + timeout
        while self.busy():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _in_loop(self, work: Callable[[], T]) -> T:
        assert self.loop is not None

        async def call() -> T:
            return work()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def _other_tasks() -> set[asyncio.Task[Any]]:
    """The running loop's unfinished tasks but the caller's own."""
    me = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not me}


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
        response = self.http.post("/slack/events", content=body, headers={**headers, "Content-Type": content_type})
        self._check_ack(body, content_type, response)
        return response

    def _check_ack(self, body: str, content_type: str, response: httpx.Response) -> None:
        """What Slack would do with the acknowledgement: show a message (a slash command's), fill
        a menu (a block_suggestion's) or change the modal (a view_submission's `update` or
        `push`). One Slack would refuse is kept as the fake's refusal, as if Slack had said so."""
        if not content_type.startswith("application/x-www-form-urlencoded") or response.status_code != 200:
            return
        if not (response.headers.get("content-type") or "").startswith("application/json"):
            return
        try:
            answer = response.json()
            form = dict(parse_qsl(body, keep_blank_values=True))
            payload = json.loads(form["payload"]) if "payload" in form else None
        except ValueError:
            return
        if not isinstance(answer, dict):
            return
        kind = payload.get("type") if isinstance(payload, dict) else "slash_command" if "command" in form else None
        if kind == "block_suggestion":
            problems = options_problems(answer)
        elif kind == "view_submission" and answer.get("response_action") in ("update", "push"):
            problems = view_problems(answer.get("view"))
        elif kind in ("slash_command", "block_actions"):
            problems = message_problems(answer)
        else:
            return
        if problems:
            self.slack.refuse(f"ack:{kind}", problems, answer)

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
    clock: FakeClock | None = None
    env: dict[str, str] = field(default_factory=dict)


class BotFactory:
    """`make_bot(...)`: start the bot with this configuration; every bot started is stopped when
    the test ends.

    - `accounts`: account name → TOML lines added to that account's table. The accounts are
      prod (Twilio), bw (Bandwidth) and bird (Bird); those left out are not configured.
      Default: all three, as they are.
    - `extra`: TOML added after the accounts (more accounts); `preamble`: top-level keys before them.
    - `env`: variables set on top of the deployment's (a CALLBOT_CONFIG there replaces the file
      written from the arguments above).
    - `clock`: a FakeClock the bot takes "now" from; `options`: create_web_app's (sweep intervals).
    """

    def __init__(self, env: Mapping[str, str], directory: Path, db: DbHelper, fakes: Fakes) -> None:
        self.env = dict(env)
        self.directory = directory
        self.db = db
        self.fakes = fakes
        self.running: list[tuple[ServerThread, SlackDriver]] = []

    def config(
        self, accounts: Mapping[str, str] = EVERY_ACCOUNT, *, extra: str = "", preamble: str = "", name: str = ""
    ) -> Path:
        """Write the callbot.toml those arguments describe; returns its path."""
        path = self.directory / (name or f"callbot-{len(self.running)}.toml")
        return bot_config(path, self.fakes, accounts, extra=extra, preamble=preamble)

    def __call__(
        self,
        accounts: Mapping[str, str] = EVERY_ACCOUNT,
        *,
        extra: str = "",
        preamble: str = "",
        env: Mapping[str, str] | None = None,
        clock: FakeClock | None = None,
        **options: Any,
    ) -> Bot:
        overrides = dict(env or {})
        if "CALLBOT_CONFIG" not in overrides:
            overrides["CALLBOT_CONFIG"] = str(self.config(accounts, extra=extra, preamble=preamble))
        bot_env = {**self.env, **overrides}
        settings = Settings.from_env(bot_env)
        server = ServerThread(settings, clock=clock, **options)
        driver = SlackDriver(server.start(), self.fakes.slack)
        self.running.append((server, driver))
        slack, twilio, bandwidth_fake, bird_fake = self.fakes.all()
        return Bot(driver.base_url, driver, self.db, slack, twilio, settings, bandwidth_fake, bird_fake, clock, bot_env)

    def stop_all(self) -> None:
        for server, driver in self.running:
            driver.http.close()
            server.stop()
        self.running.clear()


class SharedBot:
    """One bot with the default configuration (make_bot()'s; `extra` adds to it, as for `wide_bot`)
    for every test of a worker's session that asks for `bot` in a module marked `shared_bot`
    (or for `wide_bot`): started on first use, then lent to one
    test at a time, the fakes reset and the database emptied before each as for a new bot.

    A test gets it back only once the app has finished all it was doing (its requests, the
    listeners after their ack, anything still to send): nothing of one test reaches the next.
    If it does not finish in time, or was stopped, it is replaced by a new one. Only modules
    whose tests leave no in-memory state behind take it (not the App Home quick filters, the
    user-group cache, the bulk throttles, start-up recovery or sweeps)."""

    def __init__(self, directory: Path, db_url: str, fakes: Fakes, extra: Callable[[Fakes], str] | None = None) -> None:
        self.directory = directory
        self.db_url = db_url
        self.fakes = fakes
        self.extra = extra  # more of callbot.toml (more accounts), from the fakes' addresses
        self.server: ServerThread | None = None
        self.url = ""
        self.settings: Settings | None = None
        self.env: dict[str, str] = {}

    def _start(self) -> ServerThread:
        self.stop()
        twilio, bandwidth_fake, bird_fake = self.fakes.twilio, self.fakes.bandwidth, self.fakes.bird
        extra = self.extra(self.fakes) if self.extra is not None else ""
        config = write_config(self.directory / "callbot.toml", twilio.url, extra, bandwidth_fake.url, bird_fake.url)
        self.env = deployment_env(self.db_url, config, self.fakes.slack)
        # Its sweep of abandoned `pending` rows (every 30 s) must not take a request of the test
        # then running for a dead process's, as it would with no grace: a bot started per test
        # never lived that long. Nothing in the modules that share it tests recovery.
        self.env["CALLBOT_PENDING_GRACE"] = "3600"
        self.settings = Settings.from_env(self.env)
        self.server = ServerThread(self.settings)
        self.url = self.server.start()
        return self.server

    @contextmanager
    def lend(self, db: DbHelper) -> Iterator[Bot]:
        server = self.server if self.server is not None and self.server.alive else self._start()
        assert self.settings is not None
        driver = SlackDriver(self.url, self.fakes.slack)
        slack, twilio, bandwidth_fake, bird_fake = self.fakes.all()
        try:
            yield Bot(self.url, driver, db, slack, twilio, self.settings, bandwidth_fake, bird_fake, None, self.env)
        finally:
            driver.http.close()
            if not server.alive or not server.wait_idle():
                self.stop()
            else:
                server.drop_deferred()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


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
