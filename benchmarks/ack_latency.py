"""How fast Slack gets its answer: signed `/call hangup` requests to the real ASGI app under uvicorn,
against the fake Twilio on loopback. Reports, as p50 / p95 / p99 / max: the time to the HTTP ack
(Slack's 3 s budget), to the provider request, from the provider's answer to the outcome posted on
response_url, and to that outcome; then the ack time with `--concurrent` commands sent at once.

Run by hand (not part of the test suite):
    .venv/bin/python -m benchmarks.ack_latency [--requests 300] [--latency-ms 50]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m benchmarks.ack_latency
The PostgreSQL run drops and recreates the schema of that database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import create_engine, text

from bot.config import Settings
from bot.db import migrate
from bot.db.session import parse_database_url
from tests.conftest import SIGNING_SECRET, ServerThread, SlackDriver, write_config
from tests.fakes.server import Answer
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.fakes.twilio import AUTH_TOKEN, FakeTwilio, call_sid


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# Spread over a team so per-user rate limits (30 a minute by default) do not refuse the run.
USERS = [f"U0BENCH{n:03d}" for n in range(100)]


def prepare_database(url: str, grants: list[tuple[str, str, str]] | None = None) -> None:
    """A fresh schema (PostgreSQL: the public schema dropped first) and these grants (user,
    action, account); by default `hangup` on `prod` for every benchmark user."""
    if url.startswith("postgres"):
        engine = create_engine(parse_database_url(url, sync=True))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    migrate.upgrade(url)
    engine = create_engine(parse_database_url(url, sync=True))
    with engine.begin() as conn:
        for user, action, account in grants if grants is not None else [(u, "hangup", "prod") for u in USERS]:
            conn.execute(
                text(
                    "INSERT INTO grants (team_id, user_id, action, account, granted_by, created_at) "
                    "VALUES ('T0001', :u, :a, :c, 'benchmark', CURRENT_TIMESTAMP)"
                ),
                {"u": user, "a": action, "c": account},
            )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--latency-ms", type=int, default=50, help="the fake Twilio's answer delay")
    parser.add_argument("--concurrent", type=int, default=50, help="slash commands sent at once for the last test")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="callbot-bench-"))
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}"
    prepare_database(url)
    slack, twilio = FakeSlack().start(), FakeTwilio().start()
    delay = args.latency_ms / 1000
    twilio.script(
        *[Answer(200, b'{"status": "completed"}', {"Content-Type": "application/json"}, delay)]
        * (args.requests + args.concurrent)
    )
    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": slack.api_url,
            "CALLBOT_CONFIG": str(write_config(workdir / "callbot.toml", twilio.url)),
            "TEST_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        }
    )
    server = ServerThread(settings)
    driver = SlackDriver(server.start(), slack)
    acks: list[float] = []
    to_provider: list[float] = []
    to_response_url: list[float] = []
    outcomes: list[float] = []
    burst: list[float] = []
    try:
        driver.command("help")  # first request: Bolt's one-time auth.test
        for n in range(args.requests):
            before = len(slack.responses())
            sent = len(twilio.requests)
            started = time.perf_counter()
            response = driver.command(f"hangup prod:{call_sid(n + 1)}", user=USERS[n % len(USERS)])
            acks.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            posted = slack.wait_responses(before + 1)[before]
            outcomes.append(time.perf_counter() - started)
            provider = twilio.requests[sent]
            to_provider.append(provider.at - started)
            to_response_url.append(posted.at - (provider.at + delay))

        def one(n: int) -> float:
            started = time.perf_counter()
            answer = driver.command(f"hangup prod:{call_sid(10_000 + n)}", user=USERS[n % len(USERS)])
            assert answer.status_code == 200, answer.text
            return time.perf_counter() - started

        before = len(slack.responses())
        with ThreadPoolExecutor(max_workers=args.concurrent) as pool:
            burst = list(pool.map(one, range(args.concurrent)))
        slack.wait_responses(before + args.concurrent, timeout=60)
    finally:
        driver.http.close()
        server.stop()
        slack.stop()
        twilio.stop()

    backend = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(f"{args.requests} sequential /call hangup on {backend}, fake Twilio latency {args.latency_ms} ms")
    rows = (
        ("ack (HTTP answer to Slack)", acks),
        ("request in -> provider request", to_provider),
        ("provider answer -> response_url", to_response_url),
        ("outcome on response_url", outcomes),
        (f"ack, {args.concurrent} at once", burst),
    )
    for label, values in rows:
        ms = [v * 1000 for v in values]
        print(
            f"  {label:<32} p50 {statistics.median(ms):6.1f} ms  p95 {percentile(ms, 0.95):6.1f} ms  "
            f"p99 {percentile(ms, 0.99):6.1f} ms  max {max(ms):6.1f} ms"
        )


if __name__ == "__main__":
    main()
