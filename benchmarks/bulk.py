"""Bulk hang-up speed: callbot's bulk engine against the loop a script would write with the
official `twilio` SDK, both on the same fake Twilio (loopback, fixed latency, 429 beyond a cap).

    .venv/bin/pip install twilio          # only for the SDK comparison
    .venv/bin/python -m benchmarks.bulk --calls 1000 --concurrency 10 --latency-ms 50

Each run happens in a fresh child process, so its peak memory (ru_maxrss) is its own. The fake
counts hang-ups per call: the report says how many calls were lost (never hung up) or hung up
twice. See benchmarks/README.md for figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from typing import Any

from bot.actions import Hangup
from bot.bulk import Progress, Throttle, run_all, send_throttled
from bot.config import TwilioAccount
from bot.errors import ProviderError
from bot.providers.twilio import TwilioClient
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

        began = time.perf_counter()
        summary = await run_all(sids, act, workers=concurrency, report=report, should_stop=never)
        wall = time.perf_counter() - began
        await client.aclose()
        assert summary.progress.ended == calls, summary.failures[:3]
        return wall

    try:
        wall = asyncio.run(go())
        return {"wall_s": wall, "progress_reports": len(reports), **_tally(fake, sids)}
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


def _child(args: argparse.Namespace) -> None:
    cap = args.cap or None
    if args.child == "engine":
        result = run_engine(args.calls, args.concurrency, args.latency_ms / 1000, cap)
    else:
        result = run_sdk_loop(args.calls, args.latency_ms / 1000, cap)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _spawn(kind: str, calls: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.bulk", "--child", kind, "--calls", str(calls)]
    command += ["--concurrency", str(args.concurrency), "--latency-ms", str(args.latency_ms), "--cap", str(args.cap)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--cap", type=int, default=0, help="fake's in-flight cap (429 beyond); default: concurrency")
    parser.add_argument("--no-sdk", action="store_true", help="skip the twilio SDK loop")
    parser.add_argument("--child", choices=("engine", "sdk"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    args.cap = args.cap or args.concurrency
    floor = args.calls * args.latency_ms / 1000 / args.concurrency
    print(f"{args.calls} calls, concurrency {args.concurrency}, latency {args.latency_ms:g} ms, cap {args.cap}")
    print(f"floor N x latency / concurrency = {floor:.2f} s")
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


if __name__ == "__main__":
    main()
