"""The account safety policy at the service level, case by case: allowlists (every URL-carrying
option of each provider, bridge numbers), required reasons, rate limits, and which rule speaks first.
The use cases are called with an Invocation (tests/support/service.py), no HTTP; an allowed action
is still sent to the provider fakes. One case of each rule through signed Slack requests is in
tests/test_policy.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bot.domain.replies import Tone
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.bird import bird_call_id
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, BOB, CAROL
from tests.support.service import ServiceBot

ALLOWED = ("https://twiml.example.com/", "https://media.example.com/audio")
ALLOWED_URLS = f"allowed_urls = {json.dumps(list(ALLOWED))}"
CALL_ACTIONS = ("hangup", "cancel", "redirect", "twiml", "flow")
TW, BW, BIRD = call_sid(1), bw_call_id(1), bird_call_id(1)


def start(shared_service_for: Callable[..., ServiceBot], prod: str = "", bw: str = "", bird: str = "") -> ServiceBot:
    """Policy settings added to the accounts prod (Twilio), bw and bird; Alice may act everywhere."""
    service = shared_service_for({"prod": prod, "bw": bw, "bird": bird})
    for action in CALL_ACTIONS:
        service.db.grant(ALICE, action, "*")
    return service


def flow(*commands: dict[str, Any]) -> str:
    return f"'{json.dumps(list(commands))}'"


def playback(url: str) -> dict[str, Any]:
    return {"command": "playback", "options": {"media": [url]}}


def refused(service: ServiceBot, text: str, *needles: str, outcome: str = "denied", rule: str = "") -> dict[str, Any]:
    """Refused at once, nothing sent, the refusal audited with the rule."""
    reply = service.say(text)
    assert reply.tone == Tone.DENIED, reply
    for needle in needles:
        assert needle in reply.as_text()
    assert service.sent() == 0
    row = service.last_audit()
    assert (row["outcome"], row["decision"]) == (outcome, "denied")
    for needle in needles:
        assert needle in row["error_message"]
    if rule:
        assert f"refused by {rule}" in row["decision_basis"]
    return row


# -- every URL-carrying option × allowed / refused / dry run ----------------------------------------

# (account, the command with {url} where the URL goes, how the refusal names it with {url})
URL_OPTIONS = [
    pytest.param("prod", f"redirect prod:{TW} {{url}}", "`{url}`", id="twilio-url"),
    pytest.param(
        "prod",
        f"redirect prod:{TW} https://twiml.example.com/a.xml fallback={{url}}",
        "`fallback={url}`",
        id="twilio-fallback",
    ),
    pytest.param(
        "prod",
        f"redirect prod:{TW} https://twiml.example.com/a.xml status-callback={{url}}",
        "`status-callback={url}`",
        id="twilio-status-callback",
    ),
    pytest.param("prod", f"twiml prod:{TW} '<Response><Play>{{url}}</Play></Response>'", "`<Play>={url}`", id="twiml"),
    pytest.param("bw", f"redirect bw:{BW} {{url}}", "`{url}`", id="bandwidth-url"),
    pytest.param(
        "bw",
        f"redirect bw:{BW} https://twiml.example.com/a.xml fallback={{url}}",
        "`fallback={url}`",
        id="bandwidth-fallback",
    ),
    pytest.param(
        "bird",
        f"flow bird:{BIRD} {flow(playback('{url}'))}",
        "`callFlow[0].playback.media[0]={url}`",
        id="bird-playback",
    ),
    pytest.param(
        "bird",
        f"flow bird:{BIRD} "
        + flow({"command": "gather", "options": {"maxNumKeys": 1, "playback": {"media": ["{url}"]}}}),
        "`callFlow[0].gather.playback.media[0]={url}`",
        id="bird-gather",
    ),
    pytest.param(
        "bird",
        f"flow bird:{BIRD} "
        + flow({"command": "bridge", "options": {"to": "+14155550100", "callFlow": [playback("{url}")]}}),
        "`callFlow[0].bridge.callFlow[0].playback.media[0]={url}`",
        id="bird-bridge-callflow",
    ),
    pytest.param(
        "bird",
        f"flow bird:{BIRD} "
        + flow({"command": "bridge", "options": {"to": "+14155550100", "notification": {"url": "{url}"}}}),
        "`callFlow[0].bridge.notification.url={url}`",
        id="bird-bridge-notification",
    ),
]
REFUSED_URLS = [
    pytest.param("https://evil.example.net/x.mp3", id="another-host"),
    pytest.param("https://media.example.com/audio2/x.mp3", id="prefix-is-whole-segments"),
    pytest.param("https://twiml.example.com:8443/x.mp3", id="another-port"),
    pytest.param("http://twiml.example.com/x.mp3", id="plain-http"),
    pytest.param("https://twiml.example.com/../admin/x.mp3", id="dot-segments"),
]
PASSING_URLS = [
    pytest.param("https://twiml.example.com/ivr/x.mp3", id="under-a-prefix"),
    pytest.param("https://media.example.com/audio/x.mp3", id="under-a-path-prefix"),
    pytest.param("https://TWIML.example.com:443/x.mp3", id="case-and-default-port"),
]


@pytest.mark.parametrize("url", REFUSED_URLS)
@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize(("account", "command", "shown"), URL_OPTIONS)
def test_a_url_outside_allowed_urls_is_refused_wherever_it_is(
    shared_service_for: Callable[..., ServiceBot], account: str, command: str, shown: str, url: str, dry_run: bool
) -> None:
    service = start(shared_service_for, ALLOWED_URLS, ALLOWED_URLS, ALLOWED_URLS)
    text = command.replace("{url}", url) + (" dry-run" if dry_run else "")
    row = refused(service, text, shown.replace("{url}", url), rule="allowed_urls")
    assert f"account `{account}`" in row["error_message"] and row["account"] == account


@pytest.mark.parametrize("url", PASSING_URLS)
@pytest.mark.parametrize(("account", "command", "shown"), URL_OPTIONS)
def test_a_url_under_an_allowed_prefix_passes_wherever_it_is(
    shared_service_for: Callable[..., ServiceBot], account: str, command: str, shown: str, url: str
) -> None:
    service = start(shared_service_for, ALLOWED_URLS, ALLOWED_URLS, ALLOWED_URLS)
    reply = service.say(command.replace("{url}", url) + " dry-run")
    assert reply.tone == Tone.DRY_RUN, reply
    assert service.last_audit()["outcome"] == "dry_run"


@pytest.mark.parametrize(
    ("setting", "url", "passes"),
    [
        ("", "https://anywhere.example.org/a.xml", True),  # no allowlist: any https
        ("", "http://anywhere.example.org/a.xml", False),  # …but never plain http
        ('allowed_urls = ["http://intranet.example.com/bxml/"]', "http://intranet.example.com/bxml/a.xml", True),
        ('allowed_urls = ["http://intranet.example.com/bxml/"]', "https://intranet.example.com/bxml/a.xml", False),
        ('allowed_urls = ["https://a.example.com/ivr"]', "https://a.example.com/ivr", True),
        ('allowed_urls = ["https://a.example.com/ivr"]', "https://a.example.com/ivr/x.xml", True),
        ('allowed_urls = ["https://a.example.com/ivr"]', "https://a.example.com/ivrx", False),
        ('allowed_urls = ["https://a.example.com/ivr"]', "https://a.example.com/%2e%2e/x", False),
    ],
)
def test_how_a_url_is_matched(
    shared_service_for: Callable[..., ServiceBot], setting: str, url: str, passes: bool
) -> None:
    service = start(shared_service_for, bw=setting)
    call = service.fakes.bandwidth.add_call(bw_call_id(2))
    reply = service.say(f"redirect bw:{call} {url}")
    if passes:
        assert reply.tone == Tone.SUCCESS and "Redirected" in reply.title
        assert [u.json["redirectUrl"] for u in service.fakes.bandwidth.updates()] == [url]
    else:
        assert reply.tone == Tone.DENIED and f"`{url}`" in reply.as_text()
        assert service.sent() == 0


# -- bridge numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "passes"),
    [
        ("+14155550100", True),
        ("+442071234567", True),
        ("+33612345678", False),
        ("+4", False),
        ("+15", True),
    ],
)
def test_bridge_targets_must_match_allowed_bridge_numbers(
    shared_service_for: Callable[..., ServiceBot], number: str, passes: bool
) -> None:
    service = start(shared_service_for, bird='allowed_bridge_numbers = ["+1*", "+44*"]')
    call = service.fakes.bird.add_call(bird_call_id(3))
    text = f"flow bird:{call} " + flow({"command": "bridge", "options": {"to": number}})
    if passes:
        assert "Applied a callFlow" in service.say(text).title
        assert len(service.fakes.bird.updates()) == 1
    else:
        refused(
            service,
            text,
            f"`callFlow[0].bridge.to={number}`: not in allowed_bridge_numbers of account `bird` (+1*, +44*)",
            rule="allowed_bridge_numbers",
        )


# -- required reasons ---------------------------------------------------------------------------------


REASON_CASES = [
    ("hangup", f"hangup prod:{TW}", True),
    ("cancel", f"cancel prod:{TW}", False),
    ("redirect", f"redirect prod:{TW} https://twiml.example.com/a.xml", True),
    ("twiml", f"twiml prod:{TW} '<Response><Hangup/></Response>'", False),
]


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize(("verb", "command", "required"), REASON_CASES)
def test_require_reason_names_its_actions_only(
    shared_service_for: Callable[..., ServiceBot], verb: str, command: str, required: bool, dry_run: bool
) -> None:
    service = start(shared_service_for, prod='require_reason = ["hangup", "redirect"]')
    suffix = " dry-run" if dry_run else ""
    if required:
        row = refused(service, command + suffix, f"`{verb}` on account `prod` needs a reason", rule="require_reason")
        assert row["action"] == verb
    else:
        passed(service, command + suffix)
    passed(service, f'{command} reason="caller asked"{suffix}')


def passed(service: ServiceBot, text: str) -> None:
    """Past the policy: sent (whatever the provider then says of the call) or shown as a dry run."""
    service.say(text)
    row = service.last_audit()
    assert (row["decision"], row["outcome"]) in (
        ("allowed", "dry_run"),
        ("allowed", "succeeded"),
        ("allowed", "failed"),
    )
    assert service.sent() == len([r for r in service.audit() if r["outcome"] in ("succeeded", "failed")])


def test_a_blank_reason_is_no_reason(shared_service_for: Callable[..., ServiceBot]) -> None:
    service = start(shared_service_for, prod='require_reason = ["hangup"]')
    reply = service.say(f'hangup prod:{TW} reason="   "')
    assert reply.tone == Tone.INVALID and '`reason=""`: is empty.' in reply.as_text()
    assert service.sent() == 0 and service.last_audit()["outcome"] == "invalid"


# -- rate limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "attempts", "wait"),
    [
        (1, [0], 60),
        (2, [0, 20], 40),
        (2, [0, 20, 30], None),  # the third fails: its wait is asked below
        (3, [0, 59], None),
    ],
)
def test_the_per_person_limit_counts_the_last_minute(
    shared_service_for: Callable[..., ServiceBot], limit: int, attempts: list[int], wait: int | None
) -> None:
    service = start(shared_service_for, prod=f"max_actions_per_minute = {limit}")
    sids = [service.fakes.twilio.add_call(call_sid(20 + i)) for i in range(len(attempts) + 1)]
    elapsed = 0
    outcomes = []
    for sid, at in zip(sids, attempts, strict=False):
        service.clock.advance(at - elapsed)
        elapsed = at
        outcomes.append(service.say(f"hangup prod:{sid}").tone)
    sent = min(limit, len(attempts))
    assert outcomes == [Tone.SUCCESS] * sent + [Tone.DENIED] * (len(attempts) - sent)
    if wait is not None:
        reply = service.say(f"hangup prod:{sids[-1]}")
        assert f"Try again in {wait} s" in reply.as_text()
        assert service.last_audit()["outcome"] == "rate_limited"
    assert len(service.fakes.twilio.updates()) == sent


def test_the_limits_count_per_person_per_account_and_for_everyone(
    shared_service_for: Callable[..., ServiceBot],
) -> None:
    service = start(shared_service_for, prod="max_actions_per_minute = 1\nmax_account_actions_per_minute = 2")
    for user in (BOB, CAROL):
        service.db.grant(user, "hangup", "*")
    sids = [service.fakes.twilio.add_call(call_sid(30 + i)) for i in range(4)]
    assert service.say(f"hangup prod:{sids[0]}").tone == Tone.SUCCESS
    assert "max_actions_per_minute = 1 per person" in service.say(f"hangup prod:{sids[1]}").as_text()
    assert service.say(f"hangup prod:{sids[1]} dry-run").tone == Tone.DRY_RUN  # not limited
    assert service.say(f"hangup bw:{service.fakes.bandwidth.add_call(bw_call_id(30))}").tone == Tone.SUCCESS
    assert service.say(f"hangup prod:{sids[1]}", BOB).tone == Tone.SUCCESS
    everyone = service.say(f"hangup prod:{sids[2]}", CAROL)
    assert "max_account_actions_per_minute = 2, everyone together" in everyone.as_text()
    assert [r["outcome"] for r in service.audit()] == [
        "succeeded",
        "rate_limited",
        "dry_run",
        "succeeded",
        "succeeded",
        "rate_limited",
    ]
    service.clock.advance(60)
    assert service.say(f"hangup prod:{sids[2]}", CAROL).tone == Tone.SUCCESS


# -- which rule speaks first ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grant", "frozen", "command", "first"),
    [
        # grammar before permission: a bad option is named even to someone who may not act
        (False, False, f"hangup prod:{TW} dryrun", "`dryrun`: is one word too many"),
        # permission before the provider's options and the policy
        (False, True, f"redirect prod:{TW} https://evil.example.net/x tag=vip", "not allowed to `redirect`"),
        # the provider's options before the policy
        (True, True, f"redirect prod:{TW} https://evil.example.net/x tag=vip", "is not supported by twilio"),
        # freeze before reason and allowlists
        (True, True, f"redirect prod:{TW} https://evil.example.net/x", "is frozen"),
        # reason before allowlists
        (True, False, f"redirect prod:{TW} https://evil.example.net/x", "needs a reason"),
        (True, False, f'redirect prod:{TW} https://evil.example.net/x reason="r"', "not in allowed_urls"),
    ],
)
def test_the_first_rule_broken_is_the_one_named(
    shared_service_for: Callable[..., ServiceBot], grant: bool, frozen: bool, command: str, first: str
) -> None:
    service = shared_service_for({"prod": f'{ALLOWED_URLS}\nrequire_reason = ["redirect"]'})
    service.db.grant(CAROL, "admin", "*")
    if grant:
        service.db.grant(ALICE, "operator", "prod")
    if frozen:
        assert "Frozen" in service.say('freeze on=prod reason="incident"', CAROL).title
    reply = service.say(command)
    assert first in reply.as_text(), reply
    assert first in service.last_audit()["error_message"]
    assert service.sent() == 0
