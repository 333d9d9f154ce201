"""The provider clients against their fakes on loopback: one total deadline per request (connect,
send, answer and retries together), and 2xx answers that are not what the provider's API returns."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from bot.config import BandwidthAccount, BirdAccount, TwilioAccount
from bot.domain.actions import Hangup
from bot.domain.errors import ProviderError
from bot.providers.bandwidth import BandwidthClient
from bot.providers.base import ProviderClient, ProviderResult
from bot.providers.bird import BirdClient
from bot.providers.twilio import TwilioClient
from tests.fakes import bandwidth as bw
from tests.fakes import bird
from tests.fakes.bandwidth import FakeBandwidth, bw_call_id
from tests.fakes.bird import FakeBird, bird_call_id
from tests.fakes.server import Answer
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, call_sid

T = TypeVar("T")
HTML = Answer(200, b"<!doctype html><title>Sign in to the Wi-Fi</title>", {"Content-Type": "text/html"})


def twilio_client(base_url: str, timeout: float = 2, http: httpx.AsyncClient | None = None) -> TwilioClient:
    config = TwilioAccount(
        provider="twilio", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=base_url, timeout=timeout
    )
    return TwilioClient("prod", config, http)


def bandwidth_client(fake: FakeBandwidth) -> BandwidthClient:
    config = BandwidthAccount(
        provider="bandwidth",
        account_id=bw.ACCOUNT_ID,
        username=bw.USERNAME,
        password=bw.PASSWORD,
        base_url=fake.url,
        timeout=2,
    )
    return BandwidthClient("bw", config)


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
    async def go() -> T:
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def hang_up(client: ProviderClient, call_id: str, *, retry_safe: bool = True) -> ProviderResult:
    return use(client, lambda c: c.send(c.build(call_id, Hangup()), retry_safe=retry_safe))


def hang_up_fails(client: ProviderClient, call_id: str) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        hang_up(client, call_id)
    return caught.value


# -- one deadline for the whole request ---------------------------------------------------------


def test_retries_count_against_the_one_deadline(fake_twilio: FakeTwilio) -> None:
    # Each 503 comes within a read timeout, but three of them do not fit in 2 s: the third request
    # went out and its answer did not come in time, so nobody knows what it did.
    sid = fake_twilio.add_call(call_sid(1))
    fake_twilio.script(*[Answer(503, b"", {"Retry-After": "0"}, delay=0.8)] * 3)
    error = hang_up_fails(twilio_client(fake_twilio.url), sid)
    assert error.outcome == "unknown"
    assert "did not answer in time: no complete answer within 2 s" in error.message
    assert len(fake_twilio.updates()) == 3


def test_a_read_dribbled_past_the_deadline_fails_and_changes_nothing(fake_twilio: FakeTwilio) -> None:
    sid = fake_twilio.add_call(call_sid(2))
    body = b'{"sid": "%s", "status": "in-progress", "direction": "inbound"}' % sid.encode()
    fake_twilio.script(Answer(200, body, {"Content-Type": "application/json"}, dribble=4))
    with pytest.raises(ProviderError) as caught:
        use(twilio_client(fake_twilio.url), lambda c: c.get_call(sid))
    assert caught.value.outcome == "failed"
    assert "did not answer callbot's read of account `prod` within 2 s" in caught.value.message


@pytest.fixture
def unanswered() -> Iterator[str]:
    """A port whose listen queue is full: a new connection is never set up (the SYN goes unanswered)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    for filler in fillers:
        filler.close()
    server.close()


def test_a_request_that_never_connected_by_the_deadline_failed_and_sent_nothing(unanswered: str) -> None:
    # httpx alone would wait 30 s to connect: the account's 1 s is for the whole request.
    http = httpx.AsyncClient(auth=httpx.BasicAuth(ACCOUNT_SID, AUTH_TOKEN), timeout=30)
    error = hang_up_fails(twilio_client(unanswered, timeout=1, http=http), call_sid(3))
    assert error.outcome == "failed"
    assert (
        error.message
        == "Could not reach Twilio within 1 s (the account's timeout); nothing was sent. Try again shortly."
    )


# -- a 2xx that is not what the provider's API returns --------------------------------------------


def test_bandwidth_200_with_an_html_page_is_unknown(fake_bandwidth: FakeBandwidth) -> None:
    call_id = fake_bandwidth.add_call(bw_call_id(1))
    fake_bandwidth.script(HTML)
    error = hang_up_fails(bandwidth_client(fake_bandwidth), call_id)
    assert error.outcome == "unknown" and error.http_status == 200
    assert "Bandwidth answered 200 but not with what its API returns" in error.message
    assert "text/html" in error.message


def test_bandwidth_200_with_its_empty_body_still_succeeds(fake_bandwidth: FakeBandwidth) -> None:
    call_id = fake_bandwidth.add_call(bw_call_id(2))
    result = hang_up(bandwidth_client(fake_bandwidth), call_id)
    assert result.http_status == 200 and fake_bandwidth.calls[call_id] == "disconnected"


@pytest.mark.parametrize(
    "answer",
    [
        Answer(202, HTML.body, HTML.headers),
        Answer(202, b"", {"Content-Type": "application/json"}),
        Answer(202, b'{"id": "8d3c5b1a', {"Content-Type": "application/json"}),
    ],
    ids=["html", "empty", "truncated"],
)
def test_bird_202_without_its_call_object_is_unknown(fake_bird: FakeBird, answer: Answer) -> None:
    call_id = fake_bird.add_call(bird_call_id(1))
    fake_bird.script(answer)
    error = hang_up_fails(bird_client(fake_bird), call_id)
    assert error.outcome == "unknown" and error.http_status == 202
    assert "Bird answered 202 but not with what its API returns" in error.message
    assert len(fake_bird.updates()) == 1


def test_bird_202_with_its_call_object_succeeds(fake_bird: FakeBird) -> None:
    call_id = fake_bird.add_call(bird_call_id(2))
    result = hang_up(bird_client(fake_bird), call_id)
    assert (result.http_status, result.call_status) == (202, "completed")
