"""Grammar and validation at the service level, table-driven: which action and which option each
provider takes, call ids and accounts, what each verb needs, and where a refusal for bad input
stands among the other checks. Every refusal is an `invalid` reply naming the word, an `invalid`
audit row, nothing sent. The use cases are called with an Invocation (tests/support/service.py), no
HTTP; Slack's escaping of the same texts is end to end in tests/test_invalid_input.py."""

from __future__ import annotations

import pytest

from bot.domain.replies import Reply, Tone
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.bird import bird_call_id
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE
from tests.support.service import ServiceBot

TW, BW, BIRD = call_sid(1), bw_call_id(1), bird_call_id(1)
CALLS = {"prod": TW, "bw": BW, "bird": BIRD}
PROVIDER = {"prod": "twilio", "bw": "bandwidth", "bird": "bird"}
# What each provider takes (the spec this table checks, from docs/commands.md).
ACTIONS = {
    "prod": {"hangup", "cancel", "redirect", "twiml"},
    "bw": {"hangup", "redirect"},
    "bird": {"hangup", "flow"},
}
REDIRECT_OPTIONS = {
    "method=GET": {"prod", "bw"},
    "fallback=https://example.com/f.xml": {"prod", "bw"},
    "fallback=https://example.com/f.xml fallback-method=POST": {"prod", "bw"},
    "status-callback=https://example.com/s": {"prod"},
    "status-callback-method=GET": {"prod"},
    "time-limit=600": {"prod"},
    "tag=vip": {"bw"},
    "username=u password=p": {"bw"},
    "fallback=https://example.com/f.xml fallback-username=u fallback-password=p": {"bw"},
}
ARGUMENTS = {
    "hangup": "",
    "cancel": "",
    "redirect": " https://example.com/a.xml",
    "twiml": " '<Response><Hangup/></Response>'",
    "flow": """ '[{"command": "hangup"}]'""",
}


@pytest.fixture
def anyone(service: ServiceBot) -> ServiceBot:
    """Alice holds every call action and admin everywhere: only the input can be wrong."""
    for action in ("hangup", "cancel", "redirect", "twiml", "flow", "admin"):
        service.db.grant(ALICE, action, "*")
    return service


def refused_as_invalid(service: ServiceBot, text: str, needle: str, *, field: str | None = None) -> Reply:
    """An `invalid` answer naming the problem, one `invalid` audit row saying it, nothing sent."""
    reply = service.say(text)
    assert reply.tone == Tone.INVALID, reply
    assert needle in reply.as_text() and "Traceback" not in reply.as_text()
    if field is not None:
        assert reply.field == field
    [row] = service.audit()
    assert row["outcome"] == "invalid"
    assert needle in row["error_message"]
    assert service.sent() == 0
    return reply


# -- which action and which option each provider takes --------------------------------------------------


@pytest.mark.parametrize("verb", sorted(ARGUMENTS))
@pytest.mark.parametrize("account", sorted(CALLS))
def test_each_provider_takes_its_actions_only(anyone: ServiceBot, account: str, verb: str) -> None:
    text = f"{verb} {account}:{CALLS[account]}{ARGUMENTS[verb]} dry-run"
    if verb in ACTIONS[account]:
        assert anyone.say(text).tone == Tone.DRY_RUN
        assert anyone.last_audit()["outcome"] == "dry_run"
    else:
        reply = refused_as_invalid(anyone, text, f"is not supported by {PROVIDER[account]}", field=verb)
        assert "you can:" in reply.as_text()  # and what it does take
        assert anyone.last_audit()["action"] == verb


@pytest.mark.parametrize("option", sorted(REDIRECT_OPTIONS))
@pytest.mark.parametrize("account", ["prod", "bw"])
def test_each_provider_takes_its_redirect_options_only(anyone: ServiceBot, account: str, option: str) -> None:
    text = f"redirect {account}:{CALLS[account]} https://example.com/a.xml {option} dry-run"
    if account in REDIRECT_OPTIONS[option]:
        assert anyone.say(text).tone == Tone.DRY_RUN
    else:
        first = min(word.split("=")[0] for word in option.split() if not word.startswith("fallback="))
        refused_as_invalid(anyone, text, f"is not supported by {PROVIDER[account]} for `redirect`", field=f"{first}=")


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ("fallback-method=POST", "`fallback-method=`: only applies to the fallback URL, and none is given."),
        ("fallback-username=u fallback-password=p", "`fallback-username=`: only applies to the fallback URL"),
        ("username=u", "`username=`: needs `password=` too"),
        ("password=p", "`password=`: needs `username=` too"),
        ("fallback=https://example.com/f.xml fallback-password=p", "`fallback-password=`: needs `fallback-username=`"),
        ('username="" password=p', "`username=`: is empty."),
    ],
)
def test_bandwidth_options_that_go_together(anyone: ServiceBot, options: str, needle: str) -> None:
    reply = refused_as_invalid(anyone, f"redirect bw:{BW} https://example.com/a.xml {options} dry-run", needle)
    assert "p" not in (reply.field or "").replace("password", "").replace(
        "fallback-", ""
    )  # names the option, not its value


# -- call ids and accounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("written", sorted(CALLS))
@pytest.mark.parametrize("account", sorted(CALLS))
def test_a_call_id_must_be_the_accounts_providers(anyone: ServiceBot, account: str, written: str) -> None:
    text = f"hangup {account}:{CALLS[written]} dry-run"
    if written == account:
        assert anyone.say(text).tone == Tone.DRY_RUN
    else:
        refused_as_invalid(anyone, text, f"is not a {PROVIDER[account]} call id.", field=CALLS[written])


@pytest.mark.parametrize("account", sorted(CALLS))
def test_a_bare_call_id_finds_its_account(anyone: ServiceBot, account: str) -> None:
    assert anyone.say(f"hangup {CALLS[account]} dry-run").tone == Tone.DRY_RUN
    assert anyone.last_audit()["account"] == account


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        (f"prd:{TW}", "`prd:`: is not a configured account. Did you mean `prod`?"),
        (f"staging:{TW}", "`staging:`: is not a configured account."),
        ("12345", "`12345`: does not look like a call id of any configured provider."),
        ("prod:", "`prod:`: does not look like a call id of any configured provider."),
        ("prod:CA123", "`CA123`: is not a twilio call id."),
    ],
)
def test_an_unknown_account_or_call_is_named(anyone: ServiceBot, target: str, needle: str) -> None:
    refused_as_invalid(anyone, f"hangup {target}", needle)


# -- what each verb needs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("hangup", "`hangup` needs CALL."),
        ("cancel", "`cancel` needs CALL."),
        ("redirect", "`redirect` needs CALL."),
        (f"redirect prod:{TW}", "`redirect` needs URL."),
        (f"twiml prod:{TW}", "`twiml` needs TWIML."),
        (f"flow bird:{BIRD} dry-run", "`flow` needs CALLFLOW."),
        ("grant", "`grant` needs USER."),
        ("revoke <@U0BOB0002>", "`revoke` needs ACTIONS."),
        ("role create incident", "`role` needs ACTIONS."),
        ("role delete incident hangup", "is not a `role` subcommand (create)."),
        ("freeze", "`freeze` needs `on=ACCOUNT`"),
        ("freeze on=prod", "`freeze` needs a reason"),
        ("unfreeze", "`unfreeze` needs `on=ACCOUNT`"),
        ("batch twelve", "`twelve`: is not a batch number."),
        ("batch 12 restart", "`restart`: is not something `batch` does."),
        ("flows rename a b", "is not a `flows` subcommand"),
        ("audit sicne=2h", "`sicne=`: is not an option of `audit`. Did you mean `since`?"),
        ("audit format=csv", "`format=`: is only for `/call audit export`."),
        ("audit export format=xml", "`format=xml`: is not an export format."),
        ("audit action=hangpu", "`action=hangpu`: is not an action."),
        ("perms <@U0BOB0002> <@U0CAROL03>", "is one word too many."),
        ("roles everything", "is one word too many."),
        (f"hangup prod:{TW} reason=a reason=b", "`reason=`: is given twice."),
        (f"hangup prod:{TW} methd=GET", "`methd=`: is not an option of `hangup`."),
        (f'hangup prod:{TW} reason="unclosed', "A quote is not closed."),
        (f"redirect prod:{TW} https://example.com/a.xml method=PUT", "`method=PUT`: is not an allowed method."),
        (f"redirect prod:{TW} https://example.com/a.xml fallback=ftp://x", "is not an absolute http(s) URL"),
        (f"redirect prod:{TW} https://example.com/a.xml time-limit=-1", "must be a whole number of seconds"),
        (f"twiml prod:{TW} '<Say>hi</Say>'", "the root element is <Say>, it must be <Response>"),
        (f"twiml prod:{TW} '<Response>'", "is not well-formed XML"),
        (f"""twiml prod:{TW} '<!DOCTYPE x [<!ENTITY a "b">]><Response/>'""", "DOCTYPE or ENTITY"),
        ("grant <@U0BOB0002> hangup for=8h until=2999-01-01", "Keep one"),
        ("grant <@U0BOB0002> hangup for=soon", "`for=soon`: is not a duration."),
        ("grant <@U0BOB0002> hangup needs_approval=maybe", "is neither yes nor no."),
        ("grant <@U0BOB0002> hangup in=#ops", "is not a channel I can identify."),
    ],
)
def test_what_each_verb_needs_is_said(anyone: ServiceBot, text: str, needle: str) -> None:
    refused_as_invalid(anyone, text, needle)


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("hangpu prod:" + TW, None),  # not a verb: no action to name
        (f"hangup prod:{TW} dryrun", "hangup"),
        (f"redirect prod:{TW} ftp://example.com/x", "redirect"),
        ("grant <@U0BOB0002> hangpu", "grant"),
        ("audit since=yesterday", "audit"),
    ],
)
def test_an_invalid_attempt_is_audited_under_its_verb(anyone: ServiceBot, text: str, action: str | None) -> None:
    anyone.say(text)
    row = anyone.last_audit()
    assert (row["outcome"], row["action"], row["user_id"]) == ("invalid", action, ALICE)
    assert row["command_text"] == f"/call {text}"


# -- where bad input stands among the checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tone", "needle"),
    [
        # the grammar speaks first, even to someone who may do nothing
        (f"hangup prod:{TW} dryrun", Tone.INVALID, "is one word too many"),
        (f"hangup prd:{TW}", Tone.INVALID, "is not a configured account"),
        ("grant <@U0BOB0002> hangpu", Tone.INVALID, "is not an action"),
        # then the permission, before anything the provider would refuse
        (f"redirect prod:{TW} https://example.com/x tag=vip", Tone.DENIED, "not allowed to `redirect`"),
        (f"""flow prod:{TW} '[{{"command": "hangup"}}]'""", Tone.DENIED, "not allowed to `flow`"),
        ("hangup prod:CA123", Tone.DENIED, "not allowed to `hangup`"),
    ],
)
def test_without_grants_bad_grammar_is_named_and_the_rest_denied(
    service: ServiceBot, text: str, tone: Tone, needle: str
) -> None:
    reply = service.say(text)
    assert reply.tone == tone and needle in reply.as_text(), reply
    assert service.last_audit()["outcome"] == ("invalid" if tone == Tone.INVALID else "denied")
    assert service.sent() == 0
