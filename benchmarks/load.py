"""Sustained load: signed `/call hangup` from C concurrent senders, for a fixed time per level,
against 1 or 3 real `callbot serve` processes on one database (the fake Twilio and Slack on
loopback, in this process). Reports per level: ack p50/p99 (the HTTP answer Slack waits 3 s for),
outcome p50/p99 (the result on response_url), non-200 answers, commands per second, and the
servers' CPU per command (user + system time of the `callbot serve` processes, from /proc, divided
by the commands handled: ack, outcome and App Home refresh together). Then it checks the audit:
one row per command sent, no duplicate, none left pending, and `callbot audit verify` passes.

Run by hand (not part of the test suite):
    .venv/bin/python -m benchmarks.load [--processes 1,3] [--concurrency 10,40,100] [--seconds 10]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m benchmarks.load
The PostgreSQL run drops and recreates the schema of that database. The senders and fakes share
the machine's 2 cores with the servers, so the figures are what one machine does in all.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import create_engine, text

from benchmarks.ack_latency import percentile, prepare_database
from bot.db.session import parse_database_url
from tests.fakes.server import Answer
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.fakes.twilio import AUTH_TOKEN, FakeTwilio, call_sid
from tests.processes import base_env, callbot, wait_healthy
from tests.support.bots import PAYLOADS, SIGNING_SECRET, write_config

# Enough people that the per-person limit never refuses; the account limit is lifted below.
USERS = [f"U0LOAD{n:04d}" for n in range(400)]
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Level:
    concurrency: int
    acks: list[float] = field(default_factory=list)
    outcomes: list[float] = field(default_factory=list)
    non_200: int = 0
    sent: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


class Sender:
    def __init__(self, urls: list[str], slack: FakeSlack) -> None:
        self.urls = urls
        self.slack = slack
        self.sample = dict(parse_qsl((PAYLOADS / "slash_command.form").read_text().strip(), keep_blank_values=True))
        self.verifier = SignatureVerifier(SIGNING_SECRET)
        self.numbers = itertools.count(1)
        self.started: dict[str, float] = {}
        self.run_id = f"{time.time_ns():x}"

    def signed(self, n: int) -> tuple[str, dict[str, str]]:
        name = f"load{n}"
        body = urlencode(
            {
                **self.sample,
                "text": f"hangup prod:{call_sid(n)}",
                "user_id": USERS[n % len(USERS)],
                "user_name": "loadtest",
                "response_url": self.slack.response_url(name),
                "trigger_id": f"{self.run_id}.{n:x}",  # Slack's idempotency key: unique
            }
        )
        ts = str(int(time.time()))
        headers = {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=ts, body=body),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        return body, headers

    async def run(self, level: Level, seconds: float) -> None:
        limits = httpx.Limits(max_connections=level.concurrency * 2)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            stop = time.perf_counter() + seconds
            began = time.perf_counter()

            async def one_sender() -> None:
                while time.perf_counter() < stop:
                    n = next(self.numbers)
                    body, headers = self.signed(n)
                    started = time.perf_counter()
                    self.started[f"load{n}"] = started
                    answer = await client.post(
                        f"{self.urls[n % len(self.urls)]}/slack/events", content=body, headers=headers
                    )
                    level.acks.append(time.perf_counter() - started)
                    level.sent += 1
                    if answer.status_code != 200:
                        level.non_200 += 1

            await asyncio.gather(*(one_sender() for _ in range(level.concurrency)))
            level.elapsed = time.perf_counter() - began

    def outcomes_of(self, level_names: set[str], timeout: float = 60) -> list[float]:
        deadline = time.monotonic() + timeout
        while True:
            seen = {r.path.rsplit("/", 1)[-1]: r.at for r in self.slack.responses()}
            if level_names <= seen.keys() or time.monotonic() > deadline:
                return [seen[name] - self.started[name] for name in level_names if name in seen]
            time.sleep(0.2)


def run(processes: int, concurrencies: list[int], seconds: float, latency_ms: int, url: str) -> list[Level]:
    workdir = Path(tempfile.mkdtemp(prefix="callbot-load-"))
    prepare_database(url, [(u, "hangup", "prod") for u in USERS])
    slack, twilio = FakeSlack().start(), FakeTwilio().start()
    twilio.script(
        *[Answer(200, b'{"status": "completed"}', {"Content-Type": "application/json"}, latency_ms / 1000)] * 500_000
    )
    config = write_config(workdir / "callbot.toml", twilio.url)
    config.write_text(config.read_text() + "max_actions_per_minute = 10000\nmax_account_actions_per_minute = 100000\n")
    env = {
        "DATABASE_URL": url,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "CALLBOT_CONFIG": str(config),
        "TEST_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "LOG_LEVEL": "WARNING",
    }
    servers = []
    urls = []
    for n in range(processes):
        port = free_port()
        # Their logs go to files: a pipe nobody reads would fill and stall the server.
        with (workdir / f"serve{n}.log").open("w") as log:
            servers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                    env=base_env(env),
                    cwd=workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        urls.append(f"http://127.0.0.1:{port}")
    levels: list[Level] = []
    try:
        for server, server_url in zip(servers, urls, strict=True):
            wait_healthy(server_url, server)
        sender = Sender(urls, slack)
        warm = Level(processes * 2)
        asyncio.run(sender.run(warm, 1.0))  # Bolt's one-time auth.test, connection pools
        sender.outcomes_of(set(sender.started))
        pids = [s.pid for s in servers]
        for concurrency in concurrencies:
            level = Level(concurrency)
            known = set(sender.started)
            cpu_before = cpu_seconds(pids)
            asyncio.run(sender.run(level, seconds))
            names = set(sender.started) - known
            level.outcomes = sender.outcomes_of(names)
            time.sleep(1.0)  # the App Home refreshes after the last outcomes
            level.cpu = cpu_seconds(pids) - cpu_before
            levels.append(level)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=20)
        slack.stop()
        twilio.stop()
    check_audit(url, len(sender.started), workdir, env)
    warnings = sum(log.read_text().count("\n") for log in workdir.glob("serve*.log"))
    print(f"  server log lines (WARNING and above): {warnings}, in {workdir}")
    return levels


def check_audit(url: str, sent: int, workdir: Path, env: dict[str, str]) -> None:
    engine = create_engine(parse_database_url(url, sync=True))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT outcome, count(*) FROM audit_log GROUP BY outcome")).all()
        keys = conn.execute(
            text("SELECT count(*), count(DISTINCT idempotency_key) FROM audit_log WHERE action = 'hangup'")
        ).one()
    engine.dispose()
    outcomes = dict((str(o), int(c)) for o, c in rows)
    verify = callbot(["audit", "verify"], env, workdir)
    print(f"  audit: {outcomes}; {keys[0]} hangup rows for {sent} commands sent, {keys[1]} distinct keys")
    print(f"  callbot audit verify: exit {verify.returncode}: {verify.stdout.strip().splitlines()[-1:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", default="1,3", help="comma-separated numbers of `callbot serve` processes")
    parser.add_argument("--concurrency", default="10,40,100", help="comma-separated concurrent senders")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each level sends")
    parser.add_argument("--latency-ms", type=int, default=50, help="the fake Twilio's answer delay")
    args = parser.parse_args()
    given = os.environ.get("DATABASE_URL")
    backend = "PostgreSQL" if given and given.startswith("postgres") else "SQLite"
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    for processes in (int(p) for p in args.processes.split(",")):
        print(
            f"{backend}, {processes} process(es), {args.seconds:g} s per level, provider latency {args.latency_ms} ms"
        )
        # A fresh database for each run (PostgreSQL: its schema dropped and made again).
        url = given or f"sqlite:///{tempfile.mkdtemp(prefix='callbot-load-db-')}/load.db"
        levels = run(processes, concurrencies, args.seconds, args.latency_ms, url)
        print(
            "| concurrent | commands | commands/s | non-200 | ack p50 | ack p99 | outcome p50 | outcome p99 | CPU/command |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for level in levels:
            ack = [v * 1000 for v in level.acks]
            out = [v * 1000 for v in level.outcomes]
            print(
                f"| {level.concurrency} | {level.sent} | {level.sent / level.elapsed:.0f} | {level.non_200} "
                f"| {statistics.median(ack):.0f} ms | {percentile(ack, 0.99):.0f} ms "
                f"| {statistics.median(out):.0f} ms | {percentile(out, 0.99):.0f} ms "
                f"| {1000 * level.cpu / max(level.sent, 1):.1f} ms |"
                + ("" if len(out) == level.sent else f" ({level.sent - len(out)} outcomes missing)")
            )


if __name__ == "__main__":
    main()
