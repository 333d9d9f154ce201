"""The `/call` verbs: each one's usage, summary, positionals, options and flags, and the permission
that shows it in help. The grammar (bot/domain/grammar.py) parses against this table."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.actions import (
    REDIRECT_OPTIONS,
    ActionName,
)
from bot.domain.outcomes import WorkspaceChange
from bot.domain.permissions import ALL_ACTIONS, BULK, FLOW_MANAGE


@dataclass(frozen=True)
class VerbSpec:
    name: str
    usage: str
    summary: str
    positionals: tuple[str, ...] = ()
    optional_positionals: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    permission: str | None = None
    # Other actions that also make the verb usable (help lists the verb for holders of any of them).
    also_permitted: tuple[str, ...] = ()


# `announce`: the outcome goes to the account's announce_channel too (bot/domain/policy.py).
CALL_FLAGS = ("dry-run", "announce")
VERBS: dict[str, VerbSpec] = {
    spec.name: spec
    for spec in (
        VerbSpec("help", "/call help [topic]", "usage, for what you may do", optional_positionals=("TOPIC",)),
        VerbSpec(
            "hangup",
            '/call hangup CALL [reason="…"] [dry-run] [announce]',
            "end a call",
            ("CALL",),
            options=("reason",),
            flags=CALL_FLAGS,
            permission="hangup",
        ),
        VerbSpec(
            "cancel",
            '/call cancel CALL [reason="…"] [dry-run] [announce]',
            "end a queued or ringing call (Twilio)",
            ("CALL",),
            options=("reason",),
            flags=CALL_FLAGS,
            permission="cancel",
        ),
        VerbSpec(
            "redirect",
            "/call redirect CALL URL [method=GET|POST] [fallback=URL] [fallback-method=GET|POST] "
            "[status-callback=URL] [status-callback-method=GET|POST] [time-limit=SECONDS] [tag=TEXT] "
            '[username=… password=…] [fallback-username=… fallback-password=…] [reason="…"] [dry-run] [announce]',
            "send a call to new TwiML/BXML",
            ("CALL", "URL"),
            options=(*REDIRECT_OPTIONS, "reason"),
            flags=CALL_FLAGS,
            permission="redirect",
        ),
        VerbSpec(
            "twiml",
            '/call twiml CALL "<Response>…</Response>" [reason="…"] [dry-run] [announce]',
            "replace a call's instructions with inline TwiML (Twilio)",
            ("CALL", "TWIML"),
            options=("reason",),
            flags=CALL_FLAGS,
            permission="twiml",
        ),
        VerbSpec(
            "flow",
            "/call flow CALL ['CALLFLOW-JSON'|SAVED-FLOW[@VERSION]] [reason=\"…\"] [dry-run] [announce]",
            "replace a Bird call's callFlow (alone: the callFlow builder; or JSON/YAML, or a saved flow's name)",
            ("CALL",),
            ("CALLFLOW",),
            options=("reason", "version"),
            flags=CALL_FLAGS,
            permission="flow",
        ),
        VerbSpec(
            "list",
            "/call list ACCOUNT [status=in-progress|ringing|queued] [to=+44…] [from=+44…]",
            "the account's live calls, with Hang up / Redirect / Flow buttons",
            ("ACCOUNT",),
            options=("status", "to", "from"),
            permission="hangup",
            also_permitted=("cancel", "redirect", "twiml", "flow"),
        ),
        VerbSpec(
            "status",
            "/call status CALL",
            "one call's live state, as the provider reports it now",
            ("CALL",),
            permission="hangup",
            also_permitted=("cancel", "redirect", "twiml", "flow"),
        ),
        VerbSpec(
            "hangup-all",
            '/call hangup-all ACCOUNT [status=in-progress|ringing|queued] [to=+44…] [from=+44…] [max=N] [reason="…"]',
            "end every live call that matches (shows the count to confirm, then progress with Cancel)",
            ("ACCOUNT",),
            options=("status", "to", "from", "max", "reason"),
            permission=BULK,
        ),
        VerbSpec(
            "batch",
            "/call batch ID [resume|cancel]",
            "a bulk action's progress; `resume` finishes an interrupted one, `cancel` stops one",
            ("ID",),
            optional_positionals=("SUBCOMMAND",),
            permission=BULK,
        ),
        VerbSpec(
            "flows",
            "/call flows [show NAME[@VERSION] | save NAME 'CALLFLOW-JSON' | delete NAME]",
            "the team's saved callFlows: list, show, save a new version, delete",
            optional_positionals=("SUBCOMMAND", "NAME", "CALLFLOW"),
            options=("version",),
            permission="flow",
            also_permitted=(FLOW_MANAGE,),
        ),
        VerbSpec(
            "audit",
            "/call audit [export] [user=@someone] [account=NAME] [call=ID] [action=NAME] [outcome=NAME] "
            "[since=2h|7d|DATE] [until=2h|7d|DATE] [format=csv|jsonl]",
            "audited attempts, 10 a page (yours, or everyone's with `audit`); `export` sends them as a file",
            optional_positionals=("export",),
            options=("user", "account", "call", "action", "outcome", "since", "until", "format"),
        ),
        VerbSpec(
            "grant",
            "/call grant @someone|@group ACTIONS|ROLE [on=ACCOUNTS] [in=#channel] [for=8h|until=DATE] "
            "[needs_approval=yes]",
            "let someone (or a user group) run actions (admins)",
            ("USER", "ACTIONS"),
            options=("on", "in", "for", "until", "needs_approval"),
            permission="admin",
        ),
        VerbSpec(
            "revoke",
            "/call revoke @someone|@group ACTIONS|ROLE [on=ACCOUNTS] [in=#channel]",
            "take actions back (admins)",
            ("USER", "ACTIONS"),
            options=("on", "in"),
            permission="admin",
        ),
        VerbSpec(
            "perms",
            "/call perms [@someone|@group]",
            "who may do what, where, until when, and why",
            optional_positionals=("USER",),
        ),
        VerbSpec("roles", "/call roles", "the roles (named sets of actions) and what they allow"),
        VerbSpec(
            "role",
            "/call role create NAME ACTIONS",
            "define or redefine a custom role (admins on `*`)",
            ("SUBCOMMAND", "NAME", "ACTIONS"),
            permission="admin",
        ),
        VerbSpec(
            "freeze",
            '/call freeze on=ACCOUNTS reason="…"',
            "stop every call action on accounts until unfrozen (admins)",
            options=("on", "reason"),
            permission="admin",
        ),
        VerbSpec(
            "unfreeze",
            '/call unfreeze on=ACCOUNTS [reason="…"]',
            "lift a freeze (admins)",
            options=("on", "reason"),
            permission="admin",
        ),
    )
}
CALL_VERBS = frozenset(a.value for a in ActionName)
FLOWS_USAGE = {
    "list": "/call flows",
    "show": "/call flows show NAME[@VERSION]",
    "save": "/call flows save NAME 'CALLFLOW-JSON'",
    "delete": "/call flows delete NAME",
}
EXPORT_FORMATS = ("csv", "jsonl")
AUDIT_HINT = "Usage: `/call audit [export] [user=@someone] [account=NAME] … [format=csv|jsonl]`"
# What `action=` of `/call audit` accepts: the actions, and the other attempts the audit records.
AUDIT_ACTIONS = (
    *ALL_ACTIONS,
    "grant",
    "revoke",
    "perms",
    "role",
    "freeze",
    "unfreeze",
    "flows.save",
    "flows.delete",
    "flows.list",
    "flows.show",
    "audit.export",
    "calls.list",
    "calls.status",
    "hangup-all",
    "batch.cancel",
    "batch.resume",
    "batch.show",
    # OAuth mode: installs, uninstalls, revoked tokens (docs/distribution.md).
    *(change.value for change in WorkspaceChange),
)
