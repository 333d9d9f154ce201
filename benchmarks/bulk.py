"""Bulk hang-up speed: callbot's bulk engine against the loop a script would write with the
official `twilio` SDK, both on the same fake Twilio (loopback, fixed latency, 429 beyond a cap);
and, with `--through-slack`, a whole batch through the real bot the way Slack drives it.

    .venv/bin/pip install twilio          # only for the SDK comparison
    .venv/bin/python -m benchmarks.bulk --calls 1000 --concurrency 10 --latency-ms 50
    .venv/bin/python -m benchmarks.bulk --through-slack [--calls 1000] [--concurrency 10] [--cap 5] [--breakdown]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench .venv/bin/python -m benchmarks.bulk --through-slack

Each run happens in a fresh child process, so its peak memory (ru_maxrss) is its own. The fake
counts hang-ups per call: the report says how many calls were lost (never hung up) or hung up
twice. See benchmarks/README.md for figures.

`--through-slack` starts the real ASGI app under uvicorn against the fake Slack and Twilio (as the
tests do), grants `bulk` on `prod`, sends a signed `/call hangup-all prod`, clicks "Hang up N
calls" and times the click to the `chat.update` saying `Batch #1 finished`; then the engine alone
for comparison. SQLite in a temporary directory by default; with DATABASE_URL on PostgreSQL it
drops and recreates that database's public schema (a database named `test` is refused: the tests
use it). `--breakdown` also times, in the bot's process, each step of one call (audit rows, item
states, the provider request).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.config import TwilioAccount
from bot.domain.actions import Hangup
from bot.domain.errors import ProviderError
from bot.providers.twilio import TwilioClient
from bot.service.bulk.engine import Progress, Throttle, run_all, send_throttled
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, call_sid


def _fake(calls: int, latency: float, cap: int | None) -> tuple[FakeTwilio, list[str]]:
    fake = FakeTwilio(latency=latency, max_concurrency=cap, retry_after=1).start()
    return fake, [fake.add_call(call_sid(n)) for n in range(1, calls + 1)]


def _tally(fake: FakeTwilio, sids: list[str]) -> dict[str, int]:
    return {
        "lost": sum(1 for sid in sids if fake.hangups[sid] == 0),
        "duplicated": sum(1 for sid in sids if fake.hangups[sid] > 1),
        "rate_limited": fake.rate_limited,
        "peak_in_flight": fake.peak_concurrency,
    }


def run_engine(calls: int, concurrency: int, latency: float, cap: int | None) -> dict[str, Any]:
    fake, sids = _fake(calls, latency, cap)
    config = TwilioAccount(provider="twilio", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=fake.url)
    reports: list[Progress] = []
    cpu: list[float] = []

    async def go() -> float:
        client = TwilioClient("bench", config)
        throttle = Throttle(concurrency)

        async def act(sid: str) -> str | None:
            try:
                await send_throttled(client, client.build(sid, Hangup()), throttle)
            except ProviderError as error:
                return error.message
            return None

        async def report(progress: Progress) -> None:
            reports.append(progress)

        async def never() -> bool:
            return False

        began, cpu_began = time.perf_counter(), _cpu_seconds()
        summary = await run_all(sids, act, workers=concurrency, report=report, should_stop=never)
        wall = time.perf_counter() - began
        cpu.append(_cpu_seconds() - cpu_began)
        await client.aclose()
        assert summary.progress.ended == calls, summary.failures[:3]
        return wall

    try:
        wall = asyncio.run(go())
        return {"wall_s": wall, "cpu_s": cpu[0], "progress_reports": len(reports), **_tally(fake, sids)}
    finally:
        fake.stop()


def run_sdk_loop(calls: int, latency: float, cap: int | None) -> dict[str, Any]:
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    fake, sids = _fake(calls, latency, cap)

    class ToFake(TwilioHttpClient):  # the SDK has no base-URL setting: rewrite its host
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            return super().request(method, url.replace("https://api.twilio.com", fake.url), *args, **kwargs)

    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=ToFake())
    try:
        began = time.perf_counter()
        for sid in sids:
            client.calls(sid).update(status="completed")
        wall = time.perf_counter() - began
        return {"wall_s": wall, **_tally(fake, sids)}
    finally:
        fake.stop()


# -- a whole batch through Slack --------------------------------------------------------------------

BENCH_USER = "U0ALICE01"
PROGRESS = re.compile(r"[\d,]+ / [\d,]+ ended, [\d,]+ failed(?:, ~[^\n]*? left)?")


def _audit_counts(url: str) -> dict[str, dict[str, int]]:
    """Outcome counts of the per-call rows (hangup from bulk) and of the batch's own row."""
    from sqlalchemy import create_engine, text

    from bot.db.session import parse_database_url

    engine = create_engine(parse_database_url(url, sync=True))
    try:
        with engine.connect() as conn:
            per_call = conn.execute(
                text(
                    "SELECT outcome, count(*) FROM audit_log WHERE action = 'hangup' AND source = 'bulk' "
                    "GROUP BY outcome"
                )
            ).all()
            batch = conn.execute(
                text("SELECT outcome, count(*) FROM audit_log WHERE action = 'hangup-all' GROUP BY outcome")
            ).all()
            confirmed = conn.execute(
                text(
                    "SELECT confirmed_via, count(*) FROM audit_log WHERE action = 'hangup' AND source = 'bulk' "
                    "AND confirm_seq IS NOT NULL GROUP BY confirmed_via"
                )
            ).all()
    finally:
        engine.dispose()
    return {
        "per_call": {str(o): int(n) for o, n in per_call},
        "batch": {str(o): int(n) for o, n in batch},
        "confirmed": {str(v): int(n) for v, n in confirmed},
    }


class _Timings:
    """`--breakdown`: wall time spent in each awaited step of the bot's per-call work (it includes
    waiting for the event loop, the chain lock and the database), summed over all calls."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, name: str, label: str, when: Callable[..., bool] = lambda *a, **k: True) -> None:
        original = getattr(owner, name)
        timings = self

        async def timed(*args: Any, **kwargs: Any) -> Any:
            if not when(*args, **kwargs):
                return await original(*args, **kwargs)
            began = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                timings.total[label] += time.perf_counter() - began
                timings.count[label] += 1

        setattr(owner, name, timed)

    def install(self) -> None:
        from bot.db import batches
        from bot.db.session import Database
        from bot.service.bulk import hangup as bulk_hangup
        from bot.service.bulk import runner

        self.wrap(batches.Writer, "_commit", "group commit (rows + item states of the queued calls)")
        self.wrap(bulk_hangup, "send_throttled", "provider request (throttled)")
        self.wrap(runner, "run", "runner.run (the whole run)")
        timings = self

        @asynccontextmanager
        async def chain_session(db: Database) -> AsyncIterator[Any]:  # Database.chain_session, timed inside
            async with db._chain_lock:
                began = time.perf_counter()
                try:
                    async with db.session() as session:
                        yield session
                finally:
                    timings.total["audit chain lock held (serial)"] += time.perf_counter() - began
                    timings.count["audit chain lock held (serial)"] += 1

        Database.chain_session = chain_session  # type: ignore[method-assign]

    def report(self) -> dict[str, dict[str, float]]:
        return {k: {"seconds": v, "count": self.count[k]} for k, v in self.total.items()}


def run_through_slack(
    calls: int, concurrency: int, latency: float, cap: int | None, breakdown: bool, read_back: float = 8.0
) -> dict[str, Any]:
    from bot.config import Settings
    from tests.conftest import PAYLOADS, SIGNING_SECRET, ServerThread, SlackDriver, reply_text, write_config
    from tests.fakes.slack import BOT_TOKEN, FakeSlack

    workdir = Path(tempfile.mkdtemp(prefix="callbot-bulk-bench-"))
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}"
    from benchmarks.ack_latency import prepare_database

    prepare_database(url, [(BENCH_USER, "bulk", "prod")])
    timings = _Timings()
    if breakdown:
        timings.install()
    slack = FakeSlack().start()
    twilio, sids = _fake(calls, latency, cap)
    config = write_config(
        workdir / "callbot.toml", twilio.url, f"bulk_concurrency = {concurrency}\n", read_back=read_back
    )
    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": slack.api_url,
            "CALLBOT_CONFIG": str(config),
            "TEST_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            # CALLBOT_PENDING_GRACE is left at its default (120 s), as deployed.
        }
    )
    server = ServerThread(settings)
    driver = SlackDriver(server.start(), slack)
    label = f"Hang up {calls:,} call{'' if calls == 1 else 's'}"
    timeout = max(120.0, 30 * calls * latency / concurrency)
    try:
        driver.command("help", user=BENCH_USER)  # Bolt's one-time auth.test, before anything is timed
        before = len(slack.responses())
        answer = driver.command("hangup-all prod", user=BENCH_USER)
        assert answer.status_code == 200, answer.text
        prompt = slack.wait_responses(before + 1, timeout=60)[before].json
        buttons = [e for b in prompt.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]]
        matching = [b for b in buttons if b["text"]["text"] == label]
        assert matching, f"no {label!r} button in {reply_text(prompt)!r}"
        payload = json.loads((PAYLOADS / "block_actions.json").read_text())
        payload["user"] = {"id": BENCH_USER, "username": "alice", "name": "alice", "team_id": "T0001"}
        payload["response_url"] = slack.response_url("click")
        payload["trigger_id"] = f"12321423423.333649436676.{int(time.time() * 1000):x}"
        payload["actions"] = [{**matching[0], "block_id": "b", "type": "button", "action_ts": "1.2"}]
        first_post = len(twilio.requests)
        cpu_before, loop_before = _cpu_seconds(), _thread_cpu_seconds(server.thread.native_id)
        clicked = time.perf_counter()
        assert driver.interact(payload).status_code == 200
        acked = time.perf_counter()

        def finished(requests: list[Any]) -> bool:
            return any(r.path == "/api/chat.update" and b"Batch #1 finished" in r.body for r in requests)

        slack.wait_for(finished, timeout)
        done = next(r for r in slack.requests if r.path == "/api/chat.update" and b"Batch #1 finished" in r.body)
        cpu = _cpu_seconds() - cpu_before
        loop_cpu = _thread_cpu_seconds(server.thread.native_id) - loop_before
        time.sleep(0.5)  # the App Home refresh after the summary, so the process's work is over
    finally:
        driver.http.close()
        server.stop()
        slack.stop()
        twilio.stop()

    updates = [r for r in slack.requests if r.path == "/api/chat.update" and r.at <= done.at]
    posts = [r for r in slack.requests if r.path == "/api/chat.postMessage"]
    texts = [reply_text(_slack_args(r)) for r in updates]
    progress = [m.group(0) for t in texts[:-1] if (m := PROGRESS.search(t))]
    hangups = [r for r in twilio.requests[first_post:] if r.method == "POST"]
    relisted = [r for r in twilio.requests[first_post:] if r.method == "GET"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(updates)]
    progress_gaps = gaps[:-1]
    summary_text = texts[-1]
    took = re.search(r"\(([\d.]+) s\)", summary_text)
    result: dict[str, Any] = {
        "backend": "PostgreSQL" if url.startswith("postgres") else "SQLite",
        "wall_s": done.at - clicked,
        "click_ack_s": acked - clicked,
        "to_listing_s": (relisted[0].at - clicked) if relisted else None,
        "to_first_hangup_s": (hangups[0].at - clicked) if hangups else None,
        "to_post_message_s": (posts[0].at - clicked) if posts else None,
        "to_first_update_s": (updates[0].at - clicked) if len(updates) > 1 else None,
        "hangup_phase_s": (hangups[-1].at + latency - hangups[0].at) if hangups else None,
        "after_last_answer_s": (done.at - hangups[-1].at - latency) if hangups else None,
        "hangup_requests": len(hangups),
        "bot_reported_s": float(took.group(1)) if took else None,
        "updates": len(updates),
        "min_gap_progress_s": min(progress_gaps) if progress_gaps else None,
        "min_gap_all_s": min(gaps) if gaps else None,
        "update_times_s": [round(u.at - clicked, 3) for u in updates],
        "hangup_last_s": (hangups[-1].at - clicked) if hangups else None,
        "progress_example": progress[len(progress) // 2] if progress else None,
        "progress_texts": progress,
        "summary": PROGRESS.search(summary_text).group(0) if PROGRESS.search(summary_text) else summary_text[:200],
        "audit": _audit_counts(url),
        "cpu_s": cpu,
        "loop_cpu_s": loop_cpu,
        **_tally(twilio, sids),
    }
    if breakdown:
        result["breakdown"] = timings.report()
    return result


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu_seconds(tid: int | None) -> float:
    """CPU time of one thread of this process (Linux /proc), 0 where unavailable."""
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _slack_args(request: Any) -> dict[str, Any]:
    if (request.header("content-type") or "").startswith("application/json"):
        return dict(request.json)
    return dict(request.form)


def _child(args: argparse.Namespace) -> None:
    cap = args.cap or None
    if args.child == "engine":
        result = run_engine(args.calls, args.concurrency, args.latency_ms / 1000, cap)
    elif args.child == "slack":
        result = run_through_slack(
            args.calls, args.concurrency, args.latency_ms / 1000, cap, args.breakdown, args.read_back
        )
    else:
        result = run_sdk_loop(args.calls, args.latency_ms / 1000, cap)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _spawn(kind: str, calls: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.bulk", "--child", kind, "--calls", str(calls)]
    command += ["--concurrency", str(args.concurrency), "--latency-ms", str(args.latency_ms), "--cap", str(args.cap)]
    command += ["--breakdown"] if args.breakdown else []
    command += ["--read-back", str(args.read_back)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--cap", type=int, default=0, help="fake's in-flight cap (429 beyond); default: concurrency")
    parser.add_argument("--no-sdk", action="store_true", help="skip the twilio SDK loop")
    parser.add_argument(
        "--through-slack", action="store_true", help="a whole batch through the real bot (slash command, Confirm click)"
    )
    parser.add_argument("--breakdown", action="store_true", help="with --through-slack: time each step of a call")
    parser.add_argument(
        "--read-back", type=float, default=8.0, help="with --through-slack: the account's read_back (0: off)"
    )
    parser.add_argument(
        "--compare-read-back",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="with --through-slack: ROUNDS batches with read-back off then on, alternating; wall times side by side",
    )
    parser.add_argument("--child", choices=("engine", "sdk", "slack"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    args.cap = args.cap or args.concurrency
    floor = args.calls * args.latency_ms / 1000 / args.concurrency
    print(f"{args.calls} calls, concurrency {args.concurrency}, latency {args.latency_ms:g} ms, cap {args.cap}")
    print(f"floor N x latency / concurrency = {floor:.2f} s")
    if args.through_slack and args.compare_read_back:
        _compare_read_back(args, floor)
        return
    if args.through_slack:
        _through_slack(args, floor)
        return
    engine = _spawn("engine", args.calls, args)
    print(
        f"callbot engine: {engine['wall_s']:.2f} s = {engine['wall_s'] / floor:.2f} x floor; "
        f"429s {engine['rate_limited']}, peak in flight {engine['peak_in_flight']}, "
        f"lost {engine['lost']}, duplicated {engine['duplicated']}, peak RSS {engine['peak_rss_mb']:.0f} MB"
    )
    tenfold = _spawn("engine", args.calls * 10, args)
    print(
        f"callbot engine, {args.calls * 10} calls: {tenfold['wall_s']:.2f} s, peak RSS {tenfold['peak_rss_mb']:.0f} MB "
        f"(+{tenfold['peak_rss_mb'] - engine['peak_rss_mb']:.0f} MB for 10x the calls); "
        f"lost {tenfold['lost']}, duplicated {tenfold['duplicated']}"
    )
    if not args.no_sdk:
        sdk = _spawn("sdk", args.calls, args)
        print(
            f"twilio SDK sequential loop: {sdk['wall_s']:.2f} s; callbot is {sdk['wall_s'] / engine['wall_s']:.1f}x faster; "
            f"lost {sdk['lost']}, duplicated {sdk['duplicated']}"
        )


def _through_slack(args: argparse.Namespace, floor: float) -> None:
    url = os.environ.get("DATABASE_URL") or ""
    if url.startswith("postgres"):
        from sqlalchemy.engine import make_url

        if make_url(url).database == "test":
            raise SystemExit("refused: the tests use the database `test`; point DATABASE_URL at another one")
    n = args.calls
    if args.cap < args.concurrency:
        capped = n * args.latency_ms / 1000 / args.cap
        print(f"the fake allows {args.cap} in flight: floor N x latency / cap = {capped:.2f} s")
    r = _spawn("slack", args.calls, args)
    print(f"through Slack on {r['backend']}: /call hangup-all prod, click '{f'Hang up {n:,} calls'}'")
    print(
        f"  click -> chat.update 'Batch #1 finished': {r['wall_s']:.2f} s = {r['wall_s'] / floor:.2f} x floor "
        f"(the summary itself says {r['bot_reported_s']} s)"
    )
    print(
        f"  click -> ack {r['click_ack_s'] * 1000:.0f} ms, -> list again {_s(r['to_listing_s'])}, "
        f"-> first hang-up {_s(r['to_first_hangup_s'])}, -> progress message (chat.postMessage) "
        f"{_s(r['to_post_message_s'])}, -> first progress update {_s(r['to_first_update_s'])}"
    )
    phase = r["hangup_phase_s"]
    print(
        f"  hang-ups, first request -> last answer: {_s(phase)} for {r['hangup_requests']} requests "
        f"(mean in flight {r['hangup_requests'] * args.latency_ms / 1000 / phase:.1f}); "
        f"last answer -> summary {_s(r['after_last_answer_s'])}"
    )
    print(
        f"  lost {r['lost']}, duplicated {r['duplicated']}, 429s {r['rate_limited']}, "
        f"peak in flight {r['peak_in_flight']}"
    )
    print(
        f"  chat.update: {r['updates']} ({r['updates'] - 1} progress + the summary); smallest gap between two "
        f"progress updates {_s(r['min_gap_progress_s'])}, including the summary {_s(r['min_gap_all_s'])}"
    )
    print(f"  progress seen: {r['progress_texts']}")
    print(f"  example: {r['progress_example']!r}; summary: {r['summary']!r}")
    audit = r["audit"]
    per_call = audit["per_call"]
    print(
        f"  audit: {sum(per_call.values())} rows hangup/bulk {per_call}; "
        f"all succeeded: {set(per_call) == {'succeeded'} and per_call['succeeded'] == n}; batch row {audit['batch']}"
    )
    print(
        f"  CPU from the click to the summary: {r['cpu_s']:.2f} s for the process "
        f"({r['cpu_s'] / r['wall_s']:.0%} of one core), of which the bot's event-loop thread {r['loop_cpu_s']:.2f} s "
        f"({r['loop_cpu_s'] / r['wall_s']:.0%}; {r['loop_cpu_s'] / n * 1000:.2f} ms per call)"
    )
    print(f"  peak RSS {r['peak_rss_mb']:.0f} MB (the bot, uvicorn and the fake Slack and Twilio: one process)")
    for label, spent in (r.get("breakdown") or {}).items():
        per = spent["seconds"] / max(1, spent["count"]) * 1000
        print(f"  breakdown: {label:<36} {spent['count']:>5} x {per:6.2f} ms = {spent['seconds']:7.2f} s")
    engine = _spawn("engine", args.calls, args)
    print(
        f"engine alone (bot/service/bulk/engine.py, no database, no Slack): {engine['wall_s']:.2f} s = "
        f"{engine['wall_s'] / floor:.2f} x floor; 429s {engine['rate_limited']}, lost {engine['lost']}, "
        f"duplicated {engine['duplicated']}; CPU {engine['cpu_s']:.2f} s for the process "
        f"({engine['cpu_s'] / n * 1000:.2f} ms per call, the fake Twilio included)"
    )


def _compare_read_back(args: argparse.Namespace, floor: float) -> None:
    """The same batch with confirmation off and on, alternating in one run (the machine is shared
    and noisy: only runs side by side compare)."""
    walls: dict[float, list[float]] = {0.0: [], args.read_back or 8.0: []}
    for _ in range(args.compare_read_back):
        for read_back in walls:
            args.read_back = read_back
            r = _spawn("slack", args.calls, args)
            assert r["lost"] == 0 and r["duplicated"] == 0, r
            walls[read_back].append(r["wall_s"])
            confirmed = r["audit"]["confirmed"]
            print(
                f"  read_back={read_back:g}: {r['wall_s']:.2f} s; {r['summary']!r}; confirmed {confirmed}", flush=True
            )
    off, on = (sorted(w)[len(w) // 2] for w in walls.values())
    print(f"median click -> summary: off {off:.2f} s, on {on:.2f} s: on / off = {on / off:.2f} (floor {floor:.2f} s)")


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    main()
