"""Seeing calls: the real provider clients list and fetch calls from the fake Twilio, Bandwidth and
Bird on loopback. Each test checks the exact request (method, path, query, auth), how the answer
is normalised into LiveCall, paging, and that odd answers become clear, typed errors."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, parse_qsl

import httpx
import pytest

from bot.config import BandwidthAccount, BirdAccount, Settings, TwilioAccount
from bot.domain.actions import Hangup
from bot.domain.errors import (
    CallNotFound,
    InvalidInput,
    ProviderAuthFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from bot.providers import create_clients
from bot.providers.bandwidth import LIST_WINDOW, BandwidthClient
from bot.providers.base import CallFilter, CallPage, LiveCall, ProviderBadAnswer, ProviderClient
from bot.providers.bird import BirdClient
from bot.providers.twilio import TwilioClient
from tests.fakes import bandwidth as bw
from tests.fakes import bird
from tests.fakes.bandwidth import FakeBandwidth, bandwidth_error, bw_call_id, garbage
from tests.fakes.bird import FakeBird, bird_call_id, bird_error
from tests.fakes.server import Answer, Recorded
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, CALLS_PATH, FakeTwilio, call_sid, twilio_error

T = TypeVar("T")
TWILIO_BASIC = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
BW_BASIC = "Basic " + base64.b64encode(f"{bw.USERNAME}:{bw.PASSWORD}".encode()).decode()
BW_CALLS = f"/accounts/{bw.ACCOUNT_ID}/calls"
BIRD_CALLS = f"/workspaces/{bird.WORKSPACE_ID}/channels/{bird.CHANNEL_ID}/calls"
EVERY_LIVE = CallFilter()
SECRETS = (AUTH_TOKEN, bw.PASSWORD, bird.ACCESS_KEY)


def twilio_client(fake: FakeTwilio, token: str = AUTH_TOKEN) -> TwilioClient:
    config = TwilioAccount(provider="twilio", account_sid=ACCOUNT_SID, auth_token=token, base_url=fake.url, timeout=2)
    return TwilioClient("prod", config)


def bandwidth_client(fake: FakeBandwidth, clock: Callable[[], datetime] | None = None) -> BandwidthClient:
    config = BandwidthAccount(
        provider="bandwidth",
        account_id=bw.ACCOUNT_ID,
        username=bw.USERNAME,
        password=bw.PASSWORD,
        base_url=fake.url,
        timeout=2,
    )
    return BandwidthClient("bw", config, clock=clock)


def bird_client(fake: FakeBird) -> BirdClient:
    config = BirdAccount(
        provider="bird",
        workspace_id=bird.WORKSPACE_ID,
        channel_id=bird.CHANNEL_ID,
        access_key=bird.ACCESS_KEY,
        base_url=fake.url,
        timeout=2,
    )
    return BirdClient("bird", config)


def use(client: ProviderClient, work: Callable[[Any], Awaitable[T]]) -> T:
    """Runs `work(client)` on a fresh event loop and closes the client's connection pool."""

    async def main() -> T:
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def fails(client: ProviderClient, work: Callable[[Any], Awaitable[Any]]) -> ProviderError:
    """The ProviderError `work` raises; its text must never carry a credential."""
    with pytest.raises(ProviderError) as caught:
        use(client, work)
    error = caught.value
    seen = f"{error} {error.provider_message} {error.args}"
    assert not [s for s in SECRETS if s in seen]
    return error


def collect(client: ProviderClient, flt: CallFilter, limit: int = 10_000) -> list[LiveCall]:
    async def work(c: ProviderClient) -> list[LiveCall]:
        return [call async for call in c.iter_calls(flt, limit)]

    return use(client, work)


def query(request: Recorded) -> dict[str, list[str]]:
    return parse_qs(request.query, keep_blank_values=True)


def ago(**delta: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(**delta)


# -- the boundary types ------------------------------------------------------------------------


def test_a_filter_takes_only_live_statuses() -> None:
    with pytest.raises(InvalidInput) as caught:
        CallFilter(status="completed")
    assert "queued, ringing, in-progress" in str(caught.value)
    assert CallFilter(status="ringing").status == "ringing"


def test_a_live_call_keeps_status_and_ended_consistent() -> None:
    with pytest.raises(ValueError):
        LiveCall("x", "in-progress", "inbound", "+1", "+2", None, None, ended=True)
    with pytest.raises(ValueError):
        LiveCall("x", "ongoing", "inbound", "+1", "+2", None, None, ended=False)
    started = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    call = LiveCall("x", "in-progress", "inbound", "+1", "+2", started, None, ended=False)
    assert call.age_s(started + timedelta(seconds=75)) == 75


@pytest.mark.parametrize("page_size", [0, 1001])
def test_page_size_is_bounded(fake_twilio: FakeTwilio, page_size: int) -> None:
    with pytest.raises(InvalidInput):
        use(twilio_client(fake_twilio), lambda c: c.list_calls(EVERY_LIVE, page_size=page_size))
    assert fake_twilio.requests == []


# -- Twilio --------------------------------------------------------------------------------------


def test_twilio_list_sends_status_to_from_and_page_size(fake_twilio: FakeTwilio) -> None:
    started = ago(minutes=3)
    sid = fake_twilio.add_call(
        call_sid(1), direction="outbound-api", from_number="+14155550001", to_number="+447700900123", started_at=started
    )
    fake_twilio.add_call(call_sid(2), to_number="+447700900999")  # another number: filtered out by Twilio
    flt = CallFilter(status="in-progress", to="+447700900123", from_number="+14155550001")

    page = use(twilio_client(fake_twilio), lambda c: c.list_calls(flt, page_size=20))

    [request] = fake_twilio.requests
    assert (request.method, request.path) == ("GET", f"{CALLS_PATH}.json")
    assert parse_qsl(request.query) == [
        ("Status", "in-progress"),
        ("To", "+447700900123"),
        ("From", "+14155550001"),
        ("PageSize", "20"),
    ]
    assert "%2B447700900123" in request.query  # the + is encoded, not read as a space
    assert request.header("authorization") == TWILIO_BASIC
    assert request.header("accept") == "application/json"
    assert request.header("user-agent").startswith("callbot/")
    assert page == CallPage(
        (
            LiveCall(
                call_id=sid,
                status="in-progress",
                direction="outbound",
                from_number="+14155550001",
                to_number="+447700900123",
                started_at=started,
                duration_s=None,
                ended=False,
                raw_status="in-progress",
            ),
        ),
        None,
    )


def test_twilio_answers_with_its_list_envelope_and_rfc_2822_dates(fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_call(call_sid(1), started_at=datetime(2019, 10, 18, 17, 0, tzinfo=UTC))
    response = httpx.get(
        f"{fake_twilio.url}{CALLS_PATH}.json", params={"Status": "in-progress"}, auth=(ACCOUNT_SID, AUTH_TOKEN)
    )
    body = response.json()
    assert set(body) == {
        "calls",
        "end",
        "first_page_uri",
        "next_page_uri",
        "page",
        "page_size",
        "previous_page_uri",
        "start",
        "uri",
    }
    assert (body["page"], body["page_size"], body["start"], body["end"], body["next_page_uri"]) == (0, 50, 0, 0, None)
    assert body["calls"][0]["start_time"] == "Fri, 18 Oct 2019 17:00:00 +0000"
    assert body["calls"][0]["sid"] == call_sid(1) and body["calls"][0]["duration"] is None


def test_twilio_without_a_status_lists_queued_then_ringing_then_in_progress(fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_call(call_sid(1), "in-progress")
    fake_twilio.add_call(call_sid(2), "ringing")
    fake_twilio.add_call(call_sid(3), "queued")
    fake_twilio.add_call(call_sid(4), "completed")
    fake_twilio.add_call(call_sid(5), "no-answer")

    calls = collect(twilio_client(fake_twilio), EVERY_LIVE)

    assert [(c.call_id, c.status) for c in calls] == [
        (call_sid(3), "queued"),
        (call_sid(2), "ringing"),
        (call_sid(1), "in-progress"),
    ]
    assert [query(r)["Status"] for r in fake_twilio.requests] == [["queued"], ["ringing"], ["in-progress"]]
    assert calls[0].started_at is None  # a queued call has not been dialled yet


def test_the_fakes_serve_calls_put_straight_into_calls(
    fake_twilio: FakeTwilio, fake_bandwidth: FakeBandwidth, fake_bird: FakeBird
) -> None:
    fake_twilio.calls[call_sid(1)] = "ringing"
    fake_bandwidth.calls[bw_call_id(1)] = "initiated"
    fake_bird.calls[bird_call_id(1)] = "ringing"
    ringing = CallFilter(status="ringing")
    assert [c.call_id for c in collect(twilio_client(fake_twilio), ringing)] == [call_sid(1)]
    assert [c.call_id for c in collect(bandwidth_client(fake_bandwidth), ringing)] == [bw_call_id(1)]
    assert [c.call_id for c in collect(bird_client(fake_bird), ringing)] == [bird_call_id(1)]


def test_twilio_pages_follow_next_page_uri(fake_twilio: FakeTwilio) -> None:
    start = ago(hours=1)
    for n in range(1, 6):
        fake_twilio.add_call(call_sid(n), started_at=start + timedelta(minutes=n))
    client = twilio_client(fake_twilio)
    flt = CallFilter(status="in-progress")

    async def pages(c: TwilioClient) -> list[CallPage]:
        found = [await c.list_calls(flt, page_size=2)]
        while found[-1].next_token:
            found.append(await c.list_calls(flt, page_token=found[-1].next_token, page_size=2))
        return found

    result = use(client, pages)

    # Newest first, as Twilio lists; each page at most 2; every call once.
    assert [[c.call_id for c in p.calls] for p in result] == [
        [call_sid(5), call_sid(4)],
        [call_sid(3), call_sid(2)],
        [call_sid(1)],
    ]
    first, second, third = fake_twilio.requests
    assert "PageToken" not in query(first)
    assert result[0].next_token == f"in-progress|{second.path}?{second.query}"
    assert query(second)["PageToken"] == [f"PA{call_sid(4)}"] and query(second)["Page"] == ["1"]
    assert query(third)["PageToken"] == [f"PA{call_sid(2)}"]
    assert result[-1].next_token is None


def test_twilio_pages_across_statuses_and_iter_calls_stops_at_the_limit(fake_twilio: FakeTwilio) -> None:
    for n in range(1, 4):
        fake_twilio.add_call(call_sid(n), "queued")
    fake_twilio.add_call(call_sid(4), "ringing")
    for n in range(5, 7):
        fake_twilio.add_call(call_sid(n), "in-progress")

    async def walk(c: TwilioClient) -> list[CallPage]:
        found = [await c.list_calls(EVERY_LIVE, page_size=2)]
        while found[-1].next_token:
            found.append(await c.list_calls(EVERY_LIVE, page_token=found[-1].next_token, page_size=2))
        return found

    result = use(twilio_client(fake_twilio), walk)
    assert [len(p.calls) for p in result] == [2, 1, 1, 2]
    tokens = [p.next_token or "" for p in result]
    assert tokens[0].startswith("queued|/2010-04-01/") and tokens[1] == "ringing|" and tokens[2] == "in-progress|"
    assert sorted(c.call_id for p in result for c in p.calls) == [call_sid(n) for n in range(1, 7)]

    fake_twilio.requests.clear()
    assert len(collect(twilio_client(fake_twilio), EVERY_LIVE, limit=3)) == 3
    assert [query(r)["Status"] for r in fake_twilio.requests] == [["queued"]]  # one page of 3 was enough


def test_twilio_a_call_moving_on_while_we_page_is_yielded_once(fake_twilio: FakeTwilio) -> None:
    moving = {"sid": call_sid(1), "from": "+1", "to": "+2"}
    fake_twilio.script(
        Answer.json(200, {"calls": [moving | {"status": "queued"}], "next_page_uri": None}),
        Answer.json(200, {"calls": [moving | {"status": "ringing"}], "next_page_uri": None}),
        Answer.json(200, {"calls": [], "next_page_uri": None}),
    )
    calls = collect(twilio_client(fake_twilio), EVERY_LIVE)
    assert [(c.call_id, c.status) for c in calls] == [(call_sid(1), "queued")]
    assert len(fake_twilio.requests) == 3


def test_twilio_a_next_page_uri_going_round_in_circles_ends_the_walk(fake_twilio: FakeTwilio) -> None:
    again = f"{CALLS_PATH}.json?Status=ringing&PageSize=50&Page=1&PageToken=PAx"
    fake_twilio.script(
        Answer.json(200, {"calls": [{"sid": call_sid(1), "status": "ringing"}], "next_page_uri": again}),
        Answer.json(200, {"calls": [], "next_page_uri": again}),
    )
    calls = collect(twilio_client(fake_twilio), CallFilter(status="ringing"))
    assert [c.call_id for c in calls] == [call_sid(1)]
    assert len(fake_twilio.requests) == 2


def test_twilio_refuses_a_page_token_it_did_not_give(fake_twilio: FakeTwilio) -> None:
    client = twilio_client(fake_twilio)
    for token in ("ringing|", "queued|https://evil.example/steal", "nonsense"):
        with pytest.raises(InvalidInput):
            use(client, lambda c, t=token: c.list_calls(CallFilter(status="queued"), page_token=t))
        client = twilio_client(fake_twilio)
    assert fake_twilio.requests == []


def test_twilio_get_call_fetches_one_call(fake_twilio: FakeTwilio) -> None:
    started = ago(minutes=10)
    sid = fake_twilio.add_call(call_sid(7), "completed", started_at=started, duration=42, direction="inbound")
    call = use(twilio_client(fake_twilio), lambda c: c.get_call(sid))
    [request] = fake_twilio.requests
    assert (request.method, request.path, request.query) == ("GET", f"{CALLS_PATH}/{sid}.json", "")
    assert request.header("authorization") == TWILIO_BASIC
    ended_at = started + timedelta(seconds=42)  # Twilio's end_time: when the call ended
    assert call == LiveCall(
        sid, "completed", "inbound", "+14158675308", "+14158675309", started, 42, True, "completed", ended_at
    )


def test_twilio_get_call_of_an_unknown_call_is_call_not_found(fake_twilio: FakeTwilio) -> None:
    error = fails(twilio_client(fake_twilio), lambda c: c.get_call(call_sid(404)))
    assert isinstance(error, CallNotFound)
    assert (error.http_status, error.code, error.outcome) == (404, "20404", "failed")
    assert "no such call" in str(error)


def test_get_call_checks_the_id_before_asking(fake_twilio: FakeTwilio) -> None:
    with pytest.raises(InvalidInput) as caught:
        use(twilio_client(fake_twilio), lambda c: c.get_call("../Calls"))
    assert "is not a twilio call id" in str(caught.value)
    assert fake_twilio.requests == []


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (
            Answer(200, b"<html><body>Welcome to the captive portal</body></html>", {"Content-Type": "text/html"}),
            "not JSON",
        ),
        (Answer.json(200, ["calls"]), "the call list is a list, not an object"),
        (Answer.json(200, {"next_page_uri": None}), "`calls` is missing, not a list"),
        (Answer.json(200, {"calls": [{"status": "queued"}]}), "a call has no `sid`"),
        (Answer.json(200, {"calls": [{"sid": call_sid(1), "status": "exploded"}]}), "unknown status 'exploded'"),
        (
            Answer.json(200, {"calls": [{"sid": call_sid(1), "status": "queued", "start_time": "yesterday"}]}),
            "`start_time` is not a time",
        ),
        (
            Answer.json(200, {"calls": [], "next_page_uri": "https://evil.example/2010-04-01/x"}),
            "not a page of this account's calls",
        ),
    ],
)
def test_twilio_garbage_lists_give_a_clear_error(fake_twilio: FakeTwilio, answer: Answer, words: str) -> None:
    fake_twilio.script(answer)
    error = fails(twilio_client(fake_twilio), lambda c: c.list_calls(CallFilter(status="queued")))
    assert isinstance(error, ProviderBadAnswer)
    assert words in str(error), str(error)
    assert "Twilio answered callbot's read of account `prod`" in str(error) and "<html" not in str(error)
    assert error.outcome == "failed"
    assert len(fake_twilio.requests) == 1


def test_twilio_garbage_call_gives_a_clear_error(fake_twilio: FakeTwilio) -> None:
    fake_twilio.script(Answer.json(200, {"sid": call_sid(1), "status": None}))
    error = fails(twilio_client(fake_twilio), lambda c: c.get_call(call_sid(1)))
    assert isinstance(error, ProviderBadAnswer) and "has no `status`" in str(error)


def test_twilio_list_retries_a_429_honouring_retry_after(fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_call(call_sid(1))
    fake_twilio.script(twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "1"}))
    began = time.monotonic()
    page = use(twilio_client(fake_twilio), lambda c: c.list_calls(CallFilter(status="in-progress")))
    assert time.monotonic() - began >= 1.0
    assert [c.call_id for c in page.calls] == [call_sid(1)]
    assert len(fake_twilio.lists()) == 2 and fake_twilio.lists()[0].query == fake_twilio.lists()[1].query


def test_twilio_list_gives_up_after_three_429s(fake_twilio: FakeTwilio) -> None:
    fake_twilio.script(*[twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "0"})] * 3)
    error = fails(twilio_client(fake_twilio), lambda c: c.list_calls(EVERY_LIVE))
    assert isinstance(error, ProviderRateLimited) and error.code == "20429"
    assert len(fake_twilio.requests) == 3


def test_a_server_error_while_reading_is_a_failure_not_an_unknown_outcome(fake_twilio: FakeTwilio) -> None:
    fake_twilio.script(Answer(500, b"<html>oops</html>", {"Content-Type": "text/html"}))
    error = fails(twilio_client(fake_twilio), lambda c: c.get_call(call_sid(1)))
    assert isinstance(error, ProviderUnavailable) and error.outcome == "failed"
    assert "reading changes nothing" in str(error) and "may or may not" not in str(error)


def test_a_timeout_while_reading_is_a_failure(fake_twilio: FakeTwilio) -> None:
    fake_twilio.script(Answer(200, b"{}", delay=3))  # the client's timeout is 2 s
    error = fails(twilio_client(fake_twilio), lambda c: c.list_calls(EVERY_LIVE))
    assert isinstance(error, ProviderUnavailable) and error.outcome == "failed"
    assert "within 2 s (the account's timeout); reading changes nothing" in str(error)


def test_twilio_bad_credentials_on_a_list(fake_twilio: FakeTwilio) -> None:
    error = fails(twilio_client(fake_twilio, token="wrong-token-value-123"), lambda c: c.list_calls(EVERY_LIVE))
    assert isinstance(error, ProviderAuthFailed) and error.code == "20003"
    assert "wrong-token-value-123" not in str(error)


def test_a_404_on_the_list_blames_the_configuration_not_a_call(fake_twilio: FakeTwilio) -> None:
    fake_twilio.script(twilio_error(404, 20404, "The requested resource was not found"))
    error = fails(twilio_client(fake_twilio), lambda c: c.list_calls(EVERY_LIVE))
    assert not isinstance(error, CallNotFound)
    assert "no call list for account `prod`" in str(error) and error.http_status == 404


# -- the fake Twilio for the bulk benchmark: latency, concurrency cap, hang-up counts -----------


def test_fake_twilio_caps_concurrency_with_20429_and_adds_latency() -> None:
    fake = FakeTwilio(latency=0.3, max_concurrency=2, retry_after=2).start()
    try:
        sid = fake.add_call(call_sid(1))
        url = f"{fake.url}{CALLS_PATH}/{sid}.json"

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(auth=(ACCOUNT_SID, AUTH_TOKEN)) as http:
                return await asyncio.gather(*[http.get(url) for _ in range(4)])

        began = time.monotonic()
        answers = asyncio.run(burst())
        assert time.monotonic() - began >= 0.3
        assert sorted(r.status_code for r in answers) == [200, 200, 429, 429]
        limited = [r for r in answers if r.status_code == 429]
        assert all(r.json()["code"] == 20429 and r.headers["Retry-After"] == "2" for r in limited)
        assert (fake.peak_concurrency, fake.rate_limited) == (2, 2)
    finally:
        fake.stop()


def test_concurrent_hangups_under_the_cap_each_end_their_call_exactly_once() -> None:
    fake = FakeTwilio(latency=0.2, max_concurrency=3, retry_after=0.3).start()
    try:
        sids = [fake.add_call(call_sid(n)) for n in range(1, 7)]
        client = twilio_client(fake)

        async def hang_up_all(c: TwilioClient) -> list[str | None]:
            results = await asyncio.gather(*[c.send(c.build(s, Hangup()), retry_safe=True) for s in sids])
            return [r.call_status for r in results]

        assert use(client, hang_up_all) == ["completed"] * 6
        assert fake.hangups == dict.fromkeys(sids, 1)
        assert fake.rate_limited == 3 and fake.peak_concurrency == 3
        assert all(fake.calls[s] == "completed" for s in sids)

        # A second hang-up of an ended call is counted too (Twilio answers 21220): duplicates show.
        with pytest.raises(ProviderError):
            use(twilio_client(fake), lambda c: c.send(c.build(sids[0], Hangup()), retry_safe=True))
        assert fake.hangups[sids[0]] == 2
    finally:
        fake.stop()


# -- Bandwidth -----------------------------------------------------------------------------------


def test_bandwidth_list_asks_for_the_last_24_hours_and_keeps_live_states(fake_bandwidth: FakeBandwidth) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    started = now - timedelta(minutes=5)
    fake_bandwidth.add_call(bw_call_id(1), "initiated", started_at=started, direction="outbound")
    fake_bandwidth.add_call(bw_call_id(2), "answered", started_at=started + timedelta(seconds=1))
    fake_bandwidth.add_call(bw_call_id(3), "disconnected", started_at=started + timedelta(seconds=2))
    fake_bandwidth.add_call(bw_call_id(4), "transferring", started_at=started + timedelta(seconds=3))
    fake_bandwidth.add_call(bw_call_id(5), "answered", started_at=now - LIST_WINDOW - timedelta(minutes=1))
    fake_bandwidth.add_call(bw_call_id(6), "queued")  # no startTime yet: Bandwidth's window leaves it out

    page = use(bandwidth_client(fake_bandwidth, clock=lambda: now), lambda c: c.list_calls(EVERY_LIVE))

    [request] = fake_bandwidth.requests
    assert (request.method, request.path) == ("GET", BW_CALLS)
    assert parse_qsl(request.query) == [("minStartTime", "2026-11-23T12:00:00Z"), ("pageSize", "1000")]
    assert request.header("authorization") == BW_BASIC
    assert [(c.call_id, c.status, c.raw_status) for c in page.calls] == [
        (bw_call_id(1), "ringing", "initiated"),
        (bw_call_id(2), "in-progress", "answered"),
        (bw_call_id(4), "in-progress", "transferring"),  # a state we do not know, and live: tolerated
    ]
    first = page.calls[0]
    assert (first.direction, first.from_number, first.to_number) == ("outbound", "+19195554321", "+19195551234")
    assert (first.started_at, first.duration_s, first.ended) == (started, None, False)
    assert page.next_token is None


def test_bandwidth_filters_to_from_and_status(fake_bandwidth: FakeBandwidth) -> None:
    fake_bandwidth.add_call(bw_call_id(1), "initiated", to_number="+442071234567")
    fake_bandwidth.add_call(bw_call_id(2), "answered", to_number="+442071234567")
    fake_bandwidth.add_call(bw_call_id(3), "initiated", to_number="+15550000000")
    flt = CallFilter(status="ringing", to="+442071234567", from_number="+19195554321")

    page = use(bandwidth_client(fake_bandwidth), lambda c: c.list_calls(flt))

    assert [c.call_id for c in page.calls] == [bw_call_id(1)]
    params = query(fake_bandwidth.requests[0])
    assert (params["to"], params["from"]) == (["+442071234567"], ["+19195554321"])
    since = datetime.fromisoformat(params["minStartTime"][0].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - LIST_WINDOW - since).total_seconds()) < 60


def test_bandwidth_pages_follow_the_link_header(fake_bandwidth: FakeBandwidth) -> None:
    start = ago(hours=2)
    live = []
    for n in range(1, 13):
        state = "disconnected" if n % 3 == 0 else "answered"
        fake_bandwidth.add_call(bw_call_id(n), state, started_at=start + timedelta(minutes=n))
        if state == "answered":
            live.append(bw_call_id(n))
    client = bandwidth_client(fake_bandwidth)
    client.scan_page_size = 5  # Bandwidth pages of 5 calls, ended ones included

    async def pages(c: BandwidthClient) -> list[CallPage]:
        found = [await c.list_calls(EVERY_LIVE, page_size=3)]
        while found[-1].next_token:
            found.append(await c.list_calls(EVERY_LIVE, page_token=found[-1].next_token, page_size=3))
        return found

    result = use(client, pages)

    assert [c.call_id for p in result for c in p.calls] == live  # oldest first, each once
    assert all(len(p.calls) <= 3 for p in result) and result[-1].next_token is None
    requests = fake_bandwidth.lists()
    assert "pageToken" not in query(requests[0])
    followed = [r for r in requests if "pageToken" in query(r)]
    assert followed and all(query(r)["pageSize"] == ["5"] and "minStartTime" in query(r) for r in followed)
    assert all(r.header("authorization") == BW_BASIC for r in requests)


def test_bandwidth_a_long_scan_hands_back_a_token_and_goes_on(fake_bandwidth: FakeBandwidth) -> None:
    start = ago(hours=3)
    for n in range(1, 4):
        fake_bandwidth.add_call(bw_call_id(n), "disconnected", started_at=start + timedelta(minutes=n))
    fake_bandwidth.add_call(bw_call_id(4), "answered", started_at=start + timedelta(minutes=4))
    client = bandwidth_client(fake_bandwidth)
    client.scan_page_size, client.max_scan_pages = 1, 2

    async def two_pages(c: BandwidthClient) -> tuple[CallPage, CallPage]:
        first = await c.list_calls(EVERY_LIVE)
        assert first.next_token is not None
        return first, await c.list_calls(EVERY_LIVE, page_token=first.next_token)

    first, second = use(client, two_pages)
    assert first.calls == () and (first.next_token or "").startswith("0@")
    assert [c.call_id for c in second.calls] == [bw_call_id(4)] and second.next_token is None
    assert len(fake_bandwidth.lists()) == 4  # each page read once


def test_bandwidth_the_fake_sends_a_link_header(fake_bandwidth: FakeBandwidth) -> None:
    for n in range(1, 4):
        fake_bandwidth.add_call(bw_call_id(n))
    response = httpx.get(f"{fake_bandwidth.url}{BW_CALLS}", params={"pageSize": 2}, auth=(bw.USERNAME, bw.PASSWORD))
    assert isinstance(response.json(), list) and len(response.json()) == 2
    assert response.headers["Link"].startswith(f"<{fake_bandwidth.url}{BW_CALLS}?pageSize=2&pageToken=")
    assert response.headers["Link"].endswith('>; rel="next"')


@pytest.mark.parametrize(
    ("cause", "status", "duration"),
    [
        ("hangup", "completed", 43),
        ("busy", "busy", None),
        ("rejected", "busy", None),
        ("timeout", "no-answer", None),
        ("cancel", "canceled", None),
        ("invalid-bxml", "failed", None),
        ("something-new", "failed", None),
    ],
)
def test_bandwidth_get_call_maps_disconnect_causes(
    fake_bandwidth: FakeBandwidth, cause: str, status: str, duration: int | None
) -> None:
    cid = fake_bandwidth.add_call(bw_call_id(9), "disconnected", cause=cause)
    call = use(bandwidth_client(fake_bandwidth), lambda c: c.get_call(cid))
    [request] = fake_bandwidth.requests
    assert (request.method, request.path, request.header("authorization")) == ("GET", f"{BW_CALLS}/{cid}", BW_BASIC)
    assert (call.status, call.ended, call.raw_status, call.duration_s) == (status, True, "disconnected", duration)


def test_bandwidth_get_call_finds_a_call_older_than_the_window(fake_bandwidth: FakeBandwidth) -> None:
    cid = fake_bandwidth.add_call(bw_call_id(8), "answered", started_at=ago(hours=30))
    call = use(bandwidth_client(fake_bandwidth), lambda c: c.get_call(cid))
    assert (call.status, call.ended) == ("in-progress", False)


def test_bandwidth_get_call_not_found(fake_bandwidth: FakeBandwidth) -> None:
    error = fails(bandwidth_client(fake_bandwidth), lambda c: c.get_call(bw_call_id(404)))
    assert isinstance(error, CallNotFound) and error.code == "not-found" and error.http_status == 404


def test_bandwidth_refuses_a_link_that_leaves_the_account(fake_bandwidth: FakeBandwidth) -> None:
    fake_bandwidth.script(Answer.json(200, [], Link='<https://evil.example/accounts/9900000/calls?x=1>; rel="next"'))
    error = fails(bandwidth_client(fake_bandwidth), lambda c: c.list_calls(EVERY_LIVE))
    assert isinstance(error, ProviderBadAnswer) and "leads away from this account's call list" in str(error)
    assert len(fake_bandwidth.requests) == 1  # our credentials never went there


def test_bandwidth_a_link_back_to_the_same_page_is_refused(fake_bandwidth: FakeBandwidth) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    same = f"{fake_bandwidth.url}{BW_CALLS}?minStartTime=2026-11-23T12%3A00%3A00Z&pageSize=1000"
    fake_bandwidth.script(Answer.json(200, [], Link=f'<{same}>; rel="next"'))
    error = fails(bandwidth_client(fake_bandwidth, clock=lambda: now), lambda c: c.list_calls(EVERY_LIVE))
    assert isinstance(error, ProviderBadAnswer) and "points back at the same page" in str(error)
    assert len(fake_bandwidth.requests) == 1


def test_bandwidth_refuses_a_forged_page_token(fake_bandwidth: FakeBandwidth) -> None:
    for token in ("0@https://evil.example/accounts/9900000/calls", "x@" + fake_bandwidth.url, "no-at-sign"):
        with pytest.raises(InvalidInput):
            use(bandwidth_client(fake_bandwidth), lambda c, t=token: c.list_calls(EVERY_LIVE, page_token=t))
    assert fake_bandwidth.requests == []


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (garbage(200), "not JSON"),
        (Answer.json(200, {"calls": []}), "the call list is a dict, not a list"),
        (Answer.json(200, [{"state": "answered"}]), "a call has no `callId`"),
        (Answer.json(200, [{"callId": bw_call_id(1), "state": 3}]), "`state` is an int"),
        (Answer.json(200, [{"callId": bw_call_id(1), "state": "answered", "startTime": "soon"}]), "not a time"),
    ],
)
def test_bandwidth_garbage_lists_give_a_clear_error(fake_bandwidth: FakeBandwidth, answer: Answer, words: str) -> None:
    fake_bandwidth.script(answer)
    error = fails(bandwidth_client(fake_bandwidth), lambda c: c.list_calls(EVERY_LIVE))
    assert isinstance(error, ProviderBadAnswer) and words in str(error), str(error)


def test_bandwidth_list_retries_a_429_honouring_retry_after(fake_bandwidth: FakeBandwidth) -> None:
    fake_bandwidth.add_call(bw_call_id(1))
    fake_bandwidth.script(bandwidth_error(429, "too-many-requests", "Slow down.", **{"Retry-After": "1"}))
    began = time.monotonic()
    page = use(bandwidth_client(fake_bandwidth), lambda c: c.list_calls(EVERY_LIVE))
    assert time.monotonic() - began >= 1.0
    assert [c.call_id for c in page.calls] == [bw_call_id(1)] and len(fake_bandwidth.requests) == 2


def test_bandwidth_403_on_the_list(fake_bandwidth: FakeBandwidth) -> None:
    fake_bandwidth.script(bandwidth_error(403, "forbidden", "Not authorized to access this account."))
    error = fails(bandwidth_client(fake_bandwidth), lambda c: c.list_calls(EVERY_LIVE))
    assert isinstance(error, ProviderAuthFailed) and error.code == "forbidden"


# -- Bird ----------------------------------------------------------------------------------------


def test_bird_list_asks_for_every_live_status(fake_bird: FakeBird) -> None:
    started = ago(minutes=2)
    fake_bird.add_call(bird_call_id(1), "ongoing", started_at=started, from_number="+31201111111")
    fake_bird.add_call(bird_call_id(2), "ringing", started_at=started - timedelta(seconds=1), direction="outgoing")
    fake_bird.add_call(bird_call_id(3), "scheduled", started_at=started - timedelta(seconds=2))
    fake_bird.add_call(bird_call_id(4), "completed", started_at=started - timedelta(seconds=3))

    page = use(bird_client(fake_bird), lambda c: c.list_calls(EVERY_LIVE, page_size=25))

    [request] = fake_bird.requests
    assert (request.method, request.path) == ("GET", BIRD_CALLS)
    assert parse_qsl(request.query) == [
        ("limit", "25"),
        ("status", "accepted"),
        ("status", "starting"),
        ("status", "scheduled"),
        ("status", "ringing"),
        ("status", "ongoing"),
    ]
    assert request.header("authorization") == f"AccessKey {bird.ACCESS_KEY}"
    assert [(c.call_id, c.status, c.raw_status, c.direction) for c in page.calls] == [
        (bird_call_id(1), "in-progress", "ongoing", "inbound"),
        (bird_call_id(2), "ringing", "ringing", "outbound"),
        (bird_call_id(3), "queued", "scheduled", "inbound"),
    ]
    first = page.calls[0]
    assert (first.from_number, first.to_number, first.started_at, first.ended) == (
        "+31201111111",
        "+31612345678",
        started,
        False,
    )
    assert page.next_token is None


def test_bird_filters_status_to_and_from(fake_bird: FakeBird) -> None:
    fake_bird.add_call(bird_call_id(1), "accepted", to_number="+31600000001")
    fake_bird.add_call(bird_call_id(2), "starting", to_number="+31600000001")
    fake_bird.add_call(bird_call_id(3), "ongoing", to_number="+31600000001")
    fake_bird.add_call(bird_call_id(4), "accepted", to_number="+31600000002")
    flt = CallFilter(status="queued", to="+31600000001", from_number="+31201234567")

    page = use(bird_client(fake_bird), lambda c: c.list_calls(flt))

    assert sorted(c.call_id for c in page.calls) == [bird_call_id(1), bird_call_id(2)]
    assert {c.status for c in page.calls} == {"queued"}
    assert parse_qsl(fake_bird.requests[0].query) == [
        ("limit", "50"),
        ("status", "accepted"),
        ("status", "starting"),
        ("status", "scheduled"),
        ("to", "+31600000001"),
        ("from", "+31201234567"),
    ]


def test_bird_pages_with_next_page_token(fake_bird: FakeBird) -> None:
    start = ago(hours=1)
    for n in range(1, 6):
        fake_bird.add_call(bird_call_id(n), started_at=start + timedelta(minutes=n))

    async def pages(c: BirdClient) -> list[CallPage]:
        found = [await c.list_calls(EVERY_LIVE, page_size=2)]
        while found[-1].next_token:
            found.append(await c.list_calls(EVERY_LIVE, page_token=found[-1].next_token, page_size=2))
        return found

    result = use(bird_client(fake_bird), pages)
    assert [[c.call_id for c in p.calls] for p in result] == [
        [bird_call_id(5), bird_call_id(4)],
        [bird_call_id(3), bird_call_id(2)],
        [bird_call_id(1)],
    ]
    second = fake_bird.requests[1]
    assert query(second)["pageToken"] == [result[0].next_token]
    assert query(second)["status"] == ["accepted", "starting", "scheduled", "ringing", "ongoing"]


@pytest.mark.parametrize(
    ("status", "normal", "duration"),
    [("completed", "completed", 27), ("cancelled", "canceled", None), ("no-answer", "no-answer", None)],
)
def test_bird_get_call(fake_bird: FakeBird, status: str, normal: str, duration: int | None) -> None:
    cid = fake_bird.add_call(bird_call_id(9), status)
    call = use(bird_client(fake_bird), lambda c: c.get_call(cid))
    [request] = fake_bird.requests
    assert (request.method, request.path, request.query) == ("GET", f"{BIRD_CALLS}/{cid}", "")
    assert (call.status, call.raw_status, call.ended, call.duration_s) == (normal, status, True, duration)


def test_bird_get_call_not_found(fake_bird: FakeBird) -> None:
    error = fails(bird_client(fake_bird), lambda c: c.get_call(bird_call_id(404)))
    assert isinstance(error, CallNotFound) and error.code == "CallNotFound"


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (Answer(200, b"\xff\xfe\x00binary", {"Content-Type": "application/octet-stream"}), "not JSON"),
        (Answer.json(200, {"data": []}), "`results` is missing, not a list"),
        (Answer.json(200, {"results": [{"id": bird_call_id(1), "status": "teleported"}]}), "unknown status"),
        (
            Answer.json(200, {"results": [{"id": bird_call_id(1), "status": "ongoing", "duration": "long"}]}),
            "not a number",
        ),
        (Answer.json(200, {"results": [], "nextPageToken": 7}), "`nextPageToken` is not a usable token"),
    ],
)
def test_bird_garbage_lists_give_a_clear_error(fake_bird: FakeBird, answer: Answer, words: str) -> None:
    fake_bird.script(answer)
    error = fails(bird_client(fake_bird), lambda c: c.list_calls(EVERY_LIVE))
    assert isinstance(error, ProviderBadAnswer) and words in str(error), str(error)


def test_bird_list_retries_a_429_honouring_retry_after(fake_bird: FakeBird) -> None:
    fake_bird.add_call(bird_call_id(1))
    too_many = bird_error(429, "TooManyRequests", "Rate limit exceeded")
    too_many.headers["Retry-After"] = "1"
    fake_bird.script(too_many)
    began = time.monotonic()
    page = use(bird_client(fake_bird), lambda c: c.list_calls(EVERY_LIVE))
    assert time.monotonic() - began >= 1.0
    assert [c.call_id for c in page.calls] == [bird_call_id(1)] and len(fake_bird.requests) == 2


def test_bird_bad_access_key(fake_bird: FakeBird) -> None:
    client = bird_client(fake_bird)
    client.http.auth = httpx.BasicAuth("nobody", "nothing")  # not Bird's scheme: the fake refuses it
    error = fails(client, lambda c: c.list_calls(EVERY_LIVE))
    assert isinstance(error, ProviderAuthFailed) and "rejected the credentials of account `bird`" in str(error)


# -- every provider through the configured clients ------------------------------------------------


def test_configured_clients_list_every_provider(
    env: dict[str, str], fake_twilio: FakeTwilio, fake_bandwidth: FakeBandwidth, fake_bird: FakeBird
) -> None:
    fake_twilio.add_call(call_sid(1), "ringing")
    fake_bandwidth.add_call(bw_call_id(1), "initiated")
    fake_bird.add_call(bird_call_id(1), "ringing")
    clients = create_clients(Settings.from_env(env).accounts)

    async def everything() -> dict[str, list[tuple[str, str]]]:
        try:
            return {
                name: [(c.call_id, c.status) async for c in client.iter_calls(CallFilter(status="ringing"), 10)]
                for name, client in clients.items()
            }
        finally:
            for client in clients.values():
                await client.aclose()

    assert asyncio.run(everything()) == {
        "prod": [(call_sid(1), "ringing")],
        "bw": [(bw_call_id(1), "ringing")],
        "bird": [(bird_call_id(1), "ringing")],
    }
