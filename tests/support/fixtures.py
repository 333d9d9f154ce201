"""The shared pytest fixtures (a plugin: tests/conftest.py loads it).

Per worker session: the migrated test database and the four fake servers. Per test: the fakes
reset to new, the database emptied, a deployment's environment pointing at them, and `make_bot`,
which starts the real app with a given configuration (`bot` is the default one; `wide_bot` has 101
accounts), or `service_for`, which builds the service alone, without HTTP (`service` is the default
one). A test fails at teardown if callbot sent the fake Slack anything Slack refuses (`fake_slack`)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from bot.db.session import parse_database_url
from tests.fakes.bandwidth import FakeBandwidth
from tests.fakes.bird import FakeBird
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.support import database
from tests.support.bots import Bot, BotFactory, Fakes, SharedBot, deployment_env, write_config
from tests.support.database import DbHelper
from tests.support.service import ServiceBot, ServiceFactory, SharedService
from tests.support.wide import wide_accounts


def pytest_report_header() -> str:
    return f"callbot test database: {database.label()}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This worker's own database, migrated to head."""
    url, drop = database.create(tmp_path_factory.mktemp("db"))
    yield url
    drop()


@pytest.fixture(scope="session")
def database_engine(database_url: str) -> Iterator[Engine]:
    """The tests' own (synchronous) connection pool to this worker's database."""
    engine = create_engine(parse_database_url(database_url, sync=True))
    yield engine
    engine.dispose()


@pytest.fixture
def db(database_url: str, database_engine: Engine) -> DbHelper:
    """The worker's database, emptied: no grant, no audit row, a fresh hash chain."""
    helper = DbHelper(database_url, database_engine)
    helper.reset()
    return helper


@pytest.fixture(scope="session")
def fakes() -> Iterator[Fakes]:
    """One of each fake server for the whole session of a worker; the per-test fixtures below
    reset the one they hand out, so a test sees it as new."""
    servers = Fakes(FakeSlack().start(), FakeTwilio().start(), FakeBandwidth().start(), FakeBird().start())
    yield servers
    for server in servers.all():
        server.stop()


@pytest.fixture
def fake_slack(fakes: Fakes, request: pytest.FixtureRequest) -> Iterator[FakeSlack]:
    """The fake Slack, reset. At teardown (after any bot using it has stopped), the test fails if
    callbot sent Slack anything Slack would refuse (tests/fakes/blockkit.py), unless it is marked
    `slack_refusals`: it tests that refusal."""
    fakes.slack.reset()
    yield fakes.slack
    refused = list(fakes.slack.refusals)
    if refused and request.node.get_closest_marker("slack_refusals") is None:
        shown = "\n".join(f"- {refusal}" for refusal in refused[:5])
        pytest.fail(f"callbot sent Slack {len(refused)} payload(s) Slack refuses:\n{shown}", pytrace=False)


@pytest.fixture
def fake_twilio(fakes: Fakes) -> FakeTwilio:
    fakes.twilio.reset()
    return fakes.twilio


@pytest.fixture
def fake_bandwidth(fakes: Fakes) -> FakeBandwidth:
    fakes.bandwidth.reset()
    return fakes.bandwidth


@pytest.fixture
def fake_bird(fakes: Fakes) -> FakeBird:
    fakes.bird.reset()
    return fakes.bird


@pytest.fixture
def env(
    tmp_path: Path,
    db: DbHelper,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_bandwidth: FakeBandwidth,
    fake_bird: FakeBird,
) -> dict[str, str]:
    """The environment a deployment would set, pointing at the fakes (a callbot.toml with one
    account per provider)."""
    config = write_config(tmp_path / "callbot.toml", fake_twilio.url, "", fake_bandwidth.url, fake_bird.url)
    return deployment_env(db.url, config, fake_slack)


@pytest.fixture
def make_bot(
    env: dict[str, str],
    tmp_path: Path,
    db: DbHelper,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_bandwidth: FakeBandwidth,
    fake_bird: FakeBird,
) -> Iterator[BotFactory]:
    """`make_bot(accounts, extra=, preamble=, env=, clock=, **server_options)` → a running Bot
    (see BotFactory); each one started is stopped after the test."""
    factory = BotFactory(env, tmp_path, db, Fakes(fake_slack, fake_twilio, fake_bandwidth, fake_bird))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def shared_bot(tmp_path_factory: pytest.TempPathFactory, database_url: str, fakes: Fakes) -> Iterator[SharedBot]:
    """The worker's bot with the default configuration, lent to the tests of `shared_bot` modules."""
    shared = SharedBot(tmp_path_factory.mktemp("shared-bot"), database_url, fakes)
    yield shared
    shared.stop()


@pytest.fixture
def bot(request: pytest.FixtureRequest, make_bot: BotFactory) -> Iterator[Bot]:
    """The bot with the default configuration: accounts prod (Twilio), bw (Bandwidth), bird (Bird).
    A new one for the test, or in a module marked `shared_bot` the worker's, lent (see SharedBot)."""
    if request.node.get_closest_marker("shared_bot") is None:
        yield make_bot()
        return
    shared: SharedBot = request.getfixturevalue("shared_bot")
    with shared.lend(make_bot.db) as lent:
        yield lent


@pytest.fixture(scope="session")
def shared_wide_bot(tmp_path_factory: pytest.TempPathFactory, database_url: str, fakes: Fakes) -> Iterator[SharedBot]:
    """The worker's bot with 101 accounts (tests/support/wide.py), configured once, lent to `wide_bot`."""
    shared = SharedBot(tmp_path_factory.mktemp("wide-bot"), database_url, fakes, wide_accounts)
    yield shared
    shared.stop()


@pytest.fixture
def wide_bot(shared_wide_bot: SharedBot, make_bot: BotFactory) -> Iterator[Bot]:
    """A bot with 101 accounts (tests/support/wide.py), the worker's, lent as `bot` is in a
    `shared_bot` module: the fakes reset and the database emptied first."""
    with shared_wide_bot.lend(make_bot.db) as lent:
        yield lent


@pytest.fixture
def service_for(
    tmp_path: Path,
    db: DbHelper,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_bandwidth: FakeBandwidth,
    fake_bird: FakeBird,
) -> Iterator[ServiceFactory]:
    """`service_for(accounts, extra=, preamble=, env=, clock=)` → a ServiceBot: the real service
    without HTTP (tests/support/service.py), configured as make_bot would be; each one is closed
    after the test."""
    factory = ServiceFactory(tmp_path, db, Fakes(fake_slack, fake_twilio, fake_bandwidth, fake_bird))
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture(scope="session")
def shared_service(tmp_path_factory: pytest.TempPathFactory, fakes: Fakes) -> Iterator[SharedService]:
    """The worker's services, one per configuration, lent to the tests (see SharedService)."""
    shared = SharedService(tmp_path_factory.mktemp("shared-service"), fakes)
    yield shared
    shared.close()


@pytest.fixture
def shared_service_for(
    shared_service: SharedService,
    db: DbHelper,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_bandwidth: FakeBandwidth,
    fake_bird: FakeBird,
) -> Callable[..., ServiceBot]:
    """`shared_service_for(accounts, extra=, preamble=, env=)`: like service_for, but the worker's
    service with that configuration, lent (built once; see SharedService for what it must not
    be used for). Its clock is a FakeClock at the real now."""
    return partial(shared_service.lend, db)


@pytest.fixture
def service(shared_service_for: Callable[..., ServiceBot]) -> ServiceBot:
    """The service with the default configuration (accounts prod, bw, bird), the worker's, lent
    (see SharedService; `service_for()` builds a new one)."""
    return shared_service_for()


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
