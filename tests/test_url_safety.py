"""Safe URLs by default (issue 14, item 4): every URL callbot hands to a provider is read the way the
provider reads it (WHATWG), and must name a host on the public internet unless the account sets
`allow_private_urls`. First the rules as functions (bot/domain/urls.py, bot/domain/policy.py), then
end to end through signed /call commands, the provider fakes and the audit log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.domain import urls
from bot.domain.actions import ApplyFlow, CallAction, InlineTwiml, Redirect, check_twiml
from bot.domain.callflow_text import parse_callflow
from bot.domain.errors import ConfigError, InvalidInput, PolicyDenied
from bot.domain.policy import DEFAULT_POLICY, Policy, check_destinations, url_matches
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.bird import bird_call_id
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, Bot, BotFactory, reply_text, write_config

ALLOWED = ("https://twiml.example.com/", "https://media.example.com/audio")

# -- reading a URL as the provider does ---------------------------------------------------------

HOSTILE = [
    ("https://evil.com\\@twiml.example.com/", "backslash"),
    ("https://twiml.example.com\\.evil.com/", "backslash"),
    ("https://twiml.example.com/a\\b", "backslash"),
    ("https://twiml.example.com@evil.com/", "user name or password before `@`"),
    ("https://user:pw@twiml.example.com/", "user name or password before `@`"),
    ("//evil.example/a.mp3", "not an absolute URL"),
    ("/relative/next.xml", "not an absolute URL"),
    ("next.xml", "not an absolute URL"),
    ("javascript:alert(1)", "`javascript:` scheme"),
    ("data:audio/wav;base64,AAAA", "`data:` scheme"),
    ("ftp://files.example.com/a.mp3", "`ftp:` scheme"),
    ("https:evil.com/a", "must have `//`"),
    ("https:/evil.com/a", "must have `//`"),
    ("https:///evil.com/a", "must have `//`"),
    ("https://", "has no host"),
    ("https:///", "must have `//`"),
    ("https://:443/", "has no host"),
    ("https://exa mple.com/", "contains a space"),
    ("https://example.com/a b", "contains a space"),
    (" https://example.com/", "contains a space"),
    ("https://exam\tple.com/", "U+0009"),
    ("https://example.com/\n", "U+000A"),
    ("https://exam\x00ple.com/", "U+0000"),
    ("https://example.com\u200b/", "U+200B"),
    ("java\tscript:alert(1)", "U+0009"),
    ("https://ex%61mple.com/", "only letters, digits"),
    ("https://exa<mple.com/", "only letters, digits"),
    ("https://ｅｘａｍｐｌｅ.com/", "ASCII form (xn--…)"),
    ("https://１２７.0.0.1/", "ASCII form (xn--…)"),
    ("https://1.2.3.4.5/", "not an IPv4 address"),
    ("https://09.0.0.1/", "not an IPv4 address"),
    ("https://256.256.256.256/", "not an IPv4 address"),
    ("https://example.0x1f/", "not an IPv4 address"),
    ("https://[::1/", "not an IPv6 address"),
    ("https://[fe80::1%25eth0]/", "not an IPv6 address"),
    ("https://[::1]x/", "only `:port` may follow"),
    ("https://example.com:99999/", "is a number from 0 to 65535"),
    ("https://example.com:8o/", "is a number from 0 to 65535"),
]


@pytest.mark.parametrize(("text", "why"), HOSTILE)
def test_urls_read_differently_by_a_provider_are_refused(text: str, why: str) -> None:
    with pytest.raises(urls.UnsafeUrl) as refused:
        urls.parse(text)
    assert why in refused.value.why


LOCAL = [
    ("https://127.0.0.1/x", "127.0.0.1", "loopback"),
    ("https://127.0.0.1./x", "127.0.0.1", "loopback"),
    ("https://2130706433/x", "127.0.0.1", "loopback"),
    ("https://0x7f000001/x", "127.0.0.1", "loopback"),
    ("https://0X7F.0.0.1/x", "127.0.0.1", "loopback"),
    ("https://0177.0.0.1/x", "127.0.0.1", "loopback"),
    ("https://127.1/x", "127.0.0.1", "loopback"),
    ("https://0/x", "0.0.0.0", "unspecified"),
    ("https://[::1]/x", "[::1]", "loopback"),
    ("https://[::]/x", "[::]", "unspecified"),
    ("https://[::ffff:127.0.0.1]/x", "[::ffff:7f00:1]", "loopback address (the provider's own machine) (IPv4"),
    ("https://[::ffff:a9fe:a9fe]/x", "[::ffff:a9fe:a9fe]", "metadata"),
    ("https://[64:ff9b::a00:1]/x", "[64:ff9b::a00:1]", "private-network address (IPv4 10.0.0.1 inside IPv6)"),
    ("https://[2002:c0a8:101::]/x", "[2002:c0a8:101::]", "private-network address (IPv4 192.168.1.1"),
    ("https://[::7f00:1]/x", "[::7f00:1]", "loopback"),
    ("https://10.1.2.3/x", "10.1.2.3", "private-network"),
    ("https://172.16.0.1/x", "172.16.0.1", "private-network"),
    ("https://192.168.1.1:8443/x", "192.168.1.1", "private-network"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata address"),
    ("https://169.254.1.1/x", "169.254.1.1", "link-local"),
    ("https://[fd00:ec2::254]/x", "[fd00:ec2::254]", "cloud metadata address"),
    ("https://[fe80::1]/x", "[fe80::1]", "link-local"),
    ("https://[fc00::1]/x", "[fc00::1]", "private-network"),
    ("https://[fec0::1]/x", "[fec0::1]", "private-network"),
    ("https://100.64.0.1/x", "100.64.0.1", "CGNAT"),
    ("https://100.127.255.254/x", "100.127.255.254", "CGNAT"),
    ("https://224.0.0.1/x", "224.0.0.1", "multicast"),
    ("https://[ff02::1]/x", "[ff02::1]", "multicast"),
    ("https://240.0.0.1/x", "240.0.0.1", "reserved"),
    ("https://255.255.255.255/x", "255.255.255.255", "reserved"),
    ("https://192.0.2.10/x", "192.0.2.10", "special-use"),
    ("https://localhost/x", "localhost", "`localhost` name"),
    ("https://LocalHost:8080/x", "localhost", "`localhost` name"),
    ("https://localhost./x", "localhost.", "`localhost` name"),
    ("https://api.localhost/x", "api.localhost", "`localhost` name"),
    ("https://printer.local/x", "printer.local", "`.local` name"),
    ("https://db.corp.internal/x", "db.corp.internal", "`.internal` name"),
    ("https://metadata.google.internal/x", "metadata.google.internal", "metadata"),
    ("https://intranet/x", "intranet", "single-label name"),
]


@pytest.mark.parametrize(("text", "host", "why"), LOCAL)
def test_hosts_off_the_public_internet_are_named(text: str, host: str, why: str) -> None:
    url = urls.parse(text)
    assert url.host == host
    reason = urls.local_reason(url)
    assert reason is not None and why in reason


PUBLIC = [
    ("https://twiml.example.com/ivr/a.xml", "twiml.example.com", 443, "/ivr/a.xml"),
    ("HTTPS://TWIML.Example.COM:443", "twiml.example.com", 443, "/"),
    ("http://twiml.example.com:/a", "twiml.example.com", 80, "/a"),
    ("https://8.8.8.8/a", "8.8.8.8", 443, "/a"),
    ("https://134744072/a", "8.8.8.8", 443, "/a"),
    ("https://[2606:4700:4700::1111]:8443/a?x=1#f", "[2606:4700:4700::1111]", 8443, "/a"),
    ("https://[::ffff:8.8.8.8]/a", "[::ffff:808:808]", 443, "/a"),
    ("https://media_1.example.com/a%20b.mp3?x=a:b@c", "media_1.example.com", 443, "/a%20b.mp3"),
    ("https://xn--bcher-kva.example/a", "xn--bcher-kva.example", 443, "/a"),
]


@pytest.mark.parametrize(("text", "host", "port", "path"), PUBLIC)
def test_public_urls_pass_in_canonical_form(text: str, host: str, port: int, path: str) -> None:
    url = urls.parse(text)
    assert (url.host, url.port, url.path) == (host, port, path)
    assert urls.local_reason(url) is None


def test_masked_hides_a_password_and_shows_invisible_characters() -> None:
    assert urls.masked("https://bob:hunter2@evil.example/x") == "https://***@evil.example/x"
    assert urls.masked("https:\\\\bob:hunter2@evil.example/x") == "https:\\\\***@evil.example/x"
    assert urls.masked("https://a.example/\u200bx\n") == "https://a.example/\\u200bx\\n"


# -- allowlists read the same way -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com\\@twiml.example.com/",
        "https://evil.com\\twiml.example.com/",
        "https://twiml.example.com@evil.com/",
        "https://x@twiml.example.com/",
        "https:twiml.example.com/",
        "https://twiml.example.com/ivr/%2e%2e/admin",
        "https://twiml.example.com.evil.com/",
        "https://twiml.example.com:8443/",
        "http://twiml.example.com/",
        "https://media.example.com/audio2",
    ],
)
def test_allowlist_never_matches_a_url_read_another_way(url: str) -> None:
    assert not any(url_matches(url, rule) for rule in ALLOWED)


def test_allowlist_matches_canonical_forms() -> None:
    assert url_matches("HTTPS://TWIML.example.com:443/ivr", "https://twiml.example.com/")
    assert url_matches("https://10.0.0.5/ivr/a.xml", "https://0xa000005/ivr")
    assert url_matches("https://[0:0::1]/a", "https://[::1]/")


# -- every URL an action carries --------------------------------------------------------------------


def refused(action: CallAction, policy: Policy = DEFAULT_POLICY) -> PolicyDenied:
    with pytest.raises(PolicyDenied) as raised:
        check_destinations(policy, "prod", action)
    return raised.value


def twiml(body: str) -> InlineTwiml:
    return InlineTwiml(check_twiml(f"<Response>{body}</Response>"))


TWIML_REFUSED = [
    ("<Play>//evil.example/a.mp3</Play>", "<Play>", "not an absolute URL", "safe_urls"),
    ("<Play>javascript:alert(1)</Play>", "<Play>", "`javascript:` scheme", "safe_urls"),
    ("<Play>data:audio/wav;base64,AAAA</Play>", "<Play>", "`data:` scheme", "safe_urls"),
    ("<Play>hold.mp3</Play>", "<Play>", "resolve it against the URL of the document", "safe_urls"),
    ("<Redirect>/next.xml</Redirect>", "<Redirect>", "not an absolute URL", "safe_urls"),
    ("<Redirect>https://evil.com&#92;@twiml.example.com/</Redirect>", "<Redirect>", "backslash", "safe_urls"),
    ("<Play>\n  https://127.0.0.1/a.mp3\n</Play>", "<Play>", "loopback", "allow_private_urls"),
    ('<Gather action="next.xml"><Say>Press 1</Say></Gather>', "<Gather action>", "not an absolute", "safe_urls"),
    ('<Gather action=""/>', "<Gather action>", "is empty", "safe_urls"),
    ('<Dial action="//evil.example/d"><Number>+14155550100</Number></Dial>', "<Dial action>", "absolute", "safe_urls"),
    ('<Dial><Number url="https://10.0.0.1/whisper">+14155550100</Number></Dial>', "<Number url>", "private", "allow_"),
    (
        '<Dial><Conference waitUrl="https://localhost/wait">r</Conference></Dial>',
        "<Conference waitUrl>",
        "local",
        "allow",
    ),
    ('<Record recordingStatusCallback="/rec"/>', "<Record recordingStatusCallback>", "absolute", "safe_urls"),
    (
        '<Dial><Sip statusCallback="https://[::1]/s">sip:a@example.com</Sip></Dial>',
        "<Sip statusCallback>",
        "loop",
        "allow",
    ),
    ('<Say voice="https://169.254.169.254/">hi</Say>', "<Say voice>", "metadata", "allow_private_urls"),
    ("<Say>//evil.example/x</Say>", "<Say>", "not an absolute URL", "safe_urls"),
    ("<play>/a.mp3</play>", "<play>", "not an absolute URL", "safe_urls"),
    # Text split around a child element is still what Twilio reads.
    ("<Play><x/>https://127.0.0.1/a.mp3</Play>", "<Play>", "loopback", "allow_private_urls"),
    ("<Say>hi<x/>https://10.0.0.1/a</Say>", "after <x>", "private", "allow_private_urls"),
]


@pytest.mark.parametrize(("body", "label", "why", "rule"), TWIML_REFUSED)
def test_every_url_position_in_twiml_is_checked(body: str, label: str, why: str, rule: str) -> None:
    error = refused(twiml(body))
    assert error.message.startswith(f"`{label}=")
    assert why in error.message and error.rule.startswith(rule) and error.word == label


def test_twiml_without_urls_or_with_public_ones_passes() -> None:
    body = (
        '<Gather action="https://twiml.example.com/next" numDigits="1"><Say>Note: press 1</Say></Gather>'
        '<Play digits="ww1"/><Play> https://media.example.com/audio/a.mp3 </Play>'
        '<Dial statusCallbackEvent="initiated ringing" statusCallbackMethod="POST"><Number>+1415</Number></Dial>'
    )
    check_destinations(Policy(allowed_urls=ALLOWED), "prod", twiml(body))


def test_redirect_and_callflow_urls_are_checked() -> None:
    assert refused(Redirect("https://0x7f000001/a.xml")).rule == "allow_private_urls"
    assert "`fallback=" in refused(Redirect("https://a.example/x", fallback_url="https://[::1]/f")).message
    error = refused(Redirect("https://a.example/x", status_callback="https://x:pw@a.example/s"))
    assert error.rule == "safe_urls" and "pw" not in error.message
    media = json.dumps([{"command": "playback", "options": {"media": ["https://169.254.169.254/a.mp3"]}}])
    error = refused(ApplyFlow(parse_callflow(media)))
    assert error.message.startswith("`callFlow[0].playback.media[0]=") and "cloud metadata address" in error.message
    notify = json.dumps([{"command": "bridge", "options": {"to": "+1415", "notification": {"url": "https://127.1/n"}}}])
    assert "loopback" in refused(ApplyFlow(parse_callflow(notify))).message


def test_allow_private_urls_opts_out_of_the_host_rule_only() -> None:
    opted = Policy(allow_private_urls=True)
    check_destinations(opted, "prod", Redirect("https://10.0.0.5/ivr.xml", fallback_url="https://localhost/f"))
    check_destinations(opted, "prod", twiml("<Play>https://[fd00::5]/a.mp3</Play>"))
    assert refused(Redirect("https://evil.com\\@10.0.0.5/"), opted).rule == "safe_urls"
    assert refused(twiml("<Play>//10.0.0.5/a.mp3</Play>"), opted).rule == "safe_urls"
    # An allowlist still applies on top.
    assert refused(Redirect("https://10.0.0.6/x"), Policy(allowed_urls=("https://10.0.0.5/",), allow_private_urls=True))


# -- configuration ----------------------------------------------------------------------------------


def settings_with(tmp_path: Path, lines: str) -> Settings:
    path = write_config(tmp_path / "callbot.toml", "https://api.twilio.com")
    path.write_text(path.read_text().replace("[accounts.prod]\n", f"[accounts.prod]\n{lines}\n"))
    return Settings.from_env({"CALLBOT_CONFIG": str(path), "TEST_TWILIO_AUTH_TOKEN": "t"})


def test_a_private_allowlisted_host_needs_allow_private_urls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_with(tmp_path, 'allowed_urls = ["https://10.0.0.5/ivr"]')
    assert "accounts.prod" in str(raised.value) and "set allow_private_urls = true" in str(raised.value)
    settings = settings_with(tmp_path, 'allowed_urls = ["https://10.0.0.5/ivr"]\nallow_private_urls = true')
    assert settings.accounts["prod"].config.policy().allow_private_urls


@pytest.mark.parametrize("rule", ["https://evil.com\\@twiml.example.com/", "https://u@twiml.example.com/", "//h/"])
def test_allowlist_rules_are_read_like_urls(tmp_path: Path, rule: str) -> None:
    with pytest.raises(ConfigError, match="is not an absolute http"):
        settings_with(tmp_path, f"allowed_urls = [{json.dumps(rule)}]")


# -- end to end: signed /call commands, the fakes and the audit log -----------------------------------


def assert_refused(bot: Bot, command: str, rule: str, *needles: str) -> dict[str, Any]:
    """Refused in the ack, nothing sent to any provider, the refusal audited naming the rule."""
    response = bot.slack.command(command)
    assert response.status_code == 200, response.text
    shown = reply_text(response.json())
    for needle in needles:
        assert needle in shown, shown
    assert bot.fake_twilio.updates() == [] and bot.fake_bandwidth.updates() == [] and bot.fake_bird.updates() == []
    row = bot.db.audit()[-1]
    assert (row["outcome"], row["decision"], row["user_id"]) == ("denied", "denied", ALICE)
    assert f"refused by {rule}" in row["decision_basis"]
    for needle in needles:
        assert needle in row["error_message"]
    return row


def grant_all(bot: Bot) -> Bot:
    for action in ("redirect", "twiml", "flow"):
        bot.db.grant(ALICE, action, "*")
    return bot


PRIVATE_TARGETS = [
    ("https://127.0.0.1/a.xml", "127.0.0.1 is a loopback address"),
    ("https://localhost/a.xml", "localhost is a `localhost` name"),
    ("https://[::1]/a.xml", "[::1] is a loopback address"),
    ("https://10.20.30.40/a.xml", "10.20.30.40 is a private-network address"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata address"),
    ("https://0x7f000001/a.xml", "127.0.0.1 is a loopback address"),
]


@pytest.mark.shared_bot
@pytest.mark.parametrize(("url", "why"), PRIVATE_TARGETS)
def test_private_targets_are_refused_without_allowed_urls(bot: Bot, url: str, why: str) -> None:
    grant_all(bot)
    assert_refused(bot, f"redirect prod:{call_sid(1)} {url}", "allow_private_urls", f"`{url}`: its host {why}")
    assert "allow_private_urls = true" in bot.db.audit()[-1]["error_message"]


@pytest.mark.shared_bot
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("//evil.example/a.mp3", "is not an absolute URL"),
        ("javascript:alert(1)", "uses the `javascript:` scheme"),
        ("data:audio/wav;base64,AAAA", "uses the `data:` scheme"),
    ],
)
def test_scheme_less_twiml_urls_are_refused(bot: Bot, value: str, why: str) -> None:
    grant_all(bot)
    command = f"twiml prod:{call_sid(2)} '&lt;Response&gt;&lt;Play&gt;{value}&lt;/Play&gt;&lt;/Response&gt;'"
    assert_refused(bot, command, "safe_urls", f"`<Play>={value}` {why}")


@pytest.mark.shared_bot
def test_bird_media_on_a_private_address_is_refused(bot: Bot) -> None:
    grant_all(bot)
    flow = json.dumps([{"command": "playback", "options": {"media": ["https://0177.0.0.1/a.mp3"]}}])
    assert_refused(
        bot,
        f"flow bird:{bird_call_id(3)} '{flow}'",
        "allow_private_urls",
        "`callFlow[0].playback.media[0]=https://0177.0.0.1/a.mp3`: its host 127.0.0.1 is a loopback address",
    )


@pytest.mark.shared_bot
def test_an_unclosed_ipv6_bracket_is_a_clean_refusal(bot: Bot) -> None:
    grant_all(bot)
    response = bot.slack.command(f"redirect prod:{call_sid(4)} https://[::1/a.xml")
    assert response.status_code == 200
    assert "is not an absolute http(s) URL" in reply_text(response.json())
    assert bot.fake_twilio.updates() == [] and bot.db.audit()[-1]["outcome"] == "invalid"


EVIL = "https://evil.com\\@twiml.example.com/"
ALLOWLIST = 'allowed_urls = ["https://twiml.example.com/", "https://media.example.com/audio"]'


@pytest.mark.parametrize(
    ("command", "label"),
    [
        (f"redirect prod:{call_sid(5)} '{EVIL}'", "URL"),
        (f"redirect prod:{call_sid(5)} https://twiml.example.com/a.xml 'fallback={EVIL}'", "fallback"),
        (f"redirect prod:{call_sid(5)} https://twiml.example.com/a.xml 'status-callback={EVIL}'", "status-callback"),
        (
            f"twiml prod:{call_sid(5)} '&lt;Response&gt;&lt;Redirect&gt;{EVIL}&lt;/Redirect&gt;&lt;/Response&gt;'",
            "<Redirect>",
        ),
        (f"redirect bw:{bw_call_id(5)} '{EVIL}'", "URL"),
        (
            f"flow bird:{bird_call_id(5)} '"
            + json.dumps([{"command": "playback", "options": {"media": [EVIL]}}])
            + "'",
            "callFlow[0].playback.media[0]",
        ),
    ],
)
def test_a_backslash_never_passes_an_allowlist(make_bot: BotFactory, command: str, label: str) -> None:
    bot = grant_all(make_bot({"prod": ALLOWLIST, "bw": ALLOWLIST, "bird": ALLOWLIST}))
    # What precedes `@` is masked as a possible password, even in a refusal (bot/domain/redact.py).
    masked = "https://***@twiml.example.com/"
    shown = f"`{masked}`" if label == "URL" else f"`{label}={masked}`"
    assert_refused(bot, command, "safe_urls", f"{shown} contains a backslash (\\): providers read it as `/`")


def test_allow_private_urls_lets_a_private_target_through(make_bot: BotFactory) -> None:
    bot = grant_all(make_bot({"prod": "allow_private_urls = true"}))
    sid = bot.fake_twilio.add_call(call_sid(6))
    _, outcome = bot.slack.run(f"redirect prod:{sid} https://10.0.0.5/ivr.xml fallback=https://localhost/f.xml")
    assert "Redirected" in reply_text(outcome)
    [sent] = bot.fake_twilio.updates()
    assert sent.form["Url"] == "https://10.0.0.5/ivr.xml" and sent.form["FallbackUrl"] == "https://localhost/f.xml"
    assert bot.db.audit()[-1]["outcome"] == "succeeded"


@pytest.mark.parametrize("odd", ["\ud800", "\x00"])
def test_twiml_with_a_character_no_one_can_store_is_refused_cleanly(odd: str) -> None:
    with pytest.raises(InvalidInput, match="TwiML"):
        check_twiml(f"<Response><Say>hi{odd}</Say></Response>")
