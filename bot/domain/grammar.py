"""The `/call` command grammar (DESIGN §3): text in, a typed request or an InvalidInput out.

Words are split like a shell; options are `key=value`; bare flags (`dry-run`) stand alone.
Every refusal names the word, says why and how to fix it, with a "did you mean" where one fits.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import replace

from bot.domain.actions import (
    ActionName,
    ApplyFlow,
    CallAction,
    CallTarget,
    Cancel,
    Hangup,
    InlineTwiml,
    check_twiml,
    redirect_from_options,
)
from bot.domain.callflow_text import parse_callflow
from bot.domain.commands import (
    AuditQuery,
    BatchCommand,
    CallCommand,
    CallStatusCommand,
    Command,
    DocumentCall,
    FlowBuilderCommand,
    FlowsCommand,
    FreezeCommand,
    GrantCommand,
    HangupAllCommand,
    HelpCommand,
    ListCallsCommand,
    OpenFormCommand,
    PermsCommand,
    RoleCommand,
    RolesCommand,
    SavedFlowCommand,
)
from bot.domain.errors import InvalidInput
from bot.domain.flows import looks_like_reference, parse_ref
from bot.domain.permissions import ALL_ACTIONS, BUILTIN_ROLES, OUTCOMES
from bot.domain.storable import unstorable
from bot.domain.verbs import (
    AUDIT_ACTIONS,
    AUDIT_HINT,
    CALL_FLAGS,
    CALL_VERBS,
    EXPORT_FORMATS,
    FLOWS_USAGE,
    VERBS,
    VerbSpec,
)
from bot.domain.words import (
    ROLE_NAME,
    check_grantable,
    parse_actions,
    parse_channel,
    parse_duration,
    parse_since,
    parse_subject,
    parse_until,
    parse_user,
    parse_yes_no,
    split_csv,
    suggest,
    unknown_action_hint,
)

_OPTION = re.compile(r"^([A-Za-z][A-Za-z_-]*)=(.*)$", re.S)
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})
MAX_TEXT = 8000
# The most calls one bulk action ends (`max=` and the confirmed count stay within it).
MAX_BATCH = 10_000


def tokenize(text: str) -> list[str]:
    if len(text) > MAX_TEXT:
        raise InvalidInput(None, f"The command is {len(text)} characters long; the limit is {MAX_TEXT}.")
    bad = unstorable(text)
    if bad is not None:  # nothing could store or send it; the audit row keeps the attempt (U+FFFD for it)
        raise InvalidInput(
            None,
            f"The command contains {bad}, which callbot cannot use.",
            "Type it again without it (pasting from a terminal or a file can bring one along).",
        )
    try:
        return shlex.split(text.translate(_SMART_QUOTES))
    except ValueError:
        raise InvalidInput(
            None, "A quote is not closed.", 'Close every quote, e.g. `reason="customer asked"`.'
        ) from None


def parse(text: str) -> Command:
    words = tokenize(text)
    if not words:
        return OpenFormCommand()
    verb_word, rest = words[0], words[1:]
    verb = verb_word.lower()
    spec = VERBS.get(verb)
    if spec is None:
        hint = suggest(verb, list(VERBS)) or "Try `/call help`."
        raise InvalidInput(verb_word, "is not a command.", hint)
    args, options, flags = _split(spec, rest)
    if verb == "help":
        return HelpCommand(args[0].lower() if args else None)
    if verb == "perms":
        if not args:
            return PermsCommand()
        kind, subject = parse_subject(args[0])
        return PermsCommand(subject, kind)
    if verb in ("grant", "revoke"):
        return _grant_command(verb, args, options)
    if verb == "roles":
        return RolesCommand()
    if verb == "role":
        return _role_command(args)
    if verb == "audit":
        return _audit_query(args, options)
    if verb in ("freeze", "unfreeze"):
        return _freeze_command(verb, options)
    if verb == "flows":
        return _flows_command(args, options)
    if verb == "list":
        return _list_command(args[0], options)
    if verb == "status":
        return CallStatusCommand(CallTarget.parse(args[0]))
    if verb == "hangup-all":
        return _hangup_all_command(args[0], options)
    if verb == "batch":
        return _batch_command(args)
    return _call_command(verb, args, options, flags)


def _split(spec: VerbSpec, words: list[str]) -> tuple[list[str], dict[str, str], set[str]]:
    args: list[str] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    for word in words:
        option = _OPTION.match(word)
        if option and not word.lower().startswith(("http://", "https://")):
            key, value = option.group(1).lower(), option.group(2)
            if key not in spec.options:
                hint = suggest(key, spec.options) or (
                    f"`{spec.name}` takes: {', '.join(spec.options)}." if spec.options else ""
                )
                raise InvalidInput(f"{key}=", f"is not an option of `{spec.name}`.", hint)
            if key in options:
                raise InvalidInput(f"{key}=", "is given twice.", "Keep one.")
            options[key] = value
        elif word.lower() in spec.flags:
            flags.add(word.lower())
        elif word.lower().lstrip("-") in spec.flags:
            flags.add(word.lower().lstrip("-"))
        else:
            args.append(word)
    max_args = len(spec.positionals) + len(spec.optional_positionals)
    if len(args) < len(spec.positionals):
        missing = spec.positionals[len(args)]
        raise InvalidInput(None, f"`{spec.name}` needs {missing}.", f"Usage: `{spec.usage}`")
    if len(args) > max_args:
        extra = args[max_args]
        hint = suggest(extra, [*spec.flags, *(o + "=" for o in spec.options)])
        raise InvalidInput(extra, "is one word too many.", hint or f"Usage: `{spec.usage}`")
    return args, options, flags


def _call_command(
    verb: str, args: list[str], options: dict[str, str], flags: set[str]
) -> CallCommand | DocumentCall | SavedFlowCommand | FlowBuilderCommand:
    target = CallTarget.parse(args[0])
    if verb == ActionName.FLOW and len(args) == 1:
        if options or flags:  # the builder takes none of them: they belong with a callFlow
            raise InvalidInput(None, "`flow` needs CALLFLOW.", f"Usage: `{VERBS['flow'].usage}`")
        return FlowBuilderCommand(target)
    reason = options.pop("reason", None)
    if reason is not None and not reason.strip():
        raise InvalidInput('reason=""', "is empty.", "Say why, or leave `reason=` out.")
    version = options.pop("version", None)
    if verb == ActionName.FLOW and looks_like_reference(args[1]):
        return SavedFlowCommand(target, parse_ref(args[1], version), "dry-run" in flags, reason, "announce" in flags)
    if version is not None:
        raise InvalidInput(
            f"version={version}",
            "goes with the name of a saved flow, not with a callFlow written out.",
            "E.g. `/call flow bird:CALL-ID hold-music@2`.",
        )
    dry_run, announce = "dry-run" in flags, "announce" in flags
    action: CallAction
    if verb == ActionName.HANGUP:
        action = Hangup(reason)
    elif verb == ActionName.CANCEL:
        action = Cancel(reason)
    elif verb == ActionName.REDIRECT:
        action = redirect_from_options(args[1], options, reason)
    else:  # flow, twiml: the document is read after the permission check (read_document)
        return DocumentCall(target, ActionName(verb), args[1], reason, dry_run, frozenset(options), announce)
    return CallCommand(target, action, dry_run, frozenset(options), announce)


def read_document(command: DocumentCall) -> CallCommand:
    """The call action once its document is read; InvalidInput when it does not read. Bounded:
    a callFlow is refused before parsing when too long or nested too deep (bot/domain/callflow.py)."""
    action: CallAction
    if command.name == ActionName.FLOW:
        action = ApplyFlow(parse_callflow(command.document), command.reason)
    else:
        action = InlineTwiml(check_twiml(command.document), command.reason)
    return CallCommand(command.target, action, command.dry_run, command.options, command.announce)


def read_flows_document(command: FlowsCommand) -> FlowsCommand:
    """`flows save NAME 'CALLFLOW'` with its callFlow read (InvalidInput when it does not read)."""
    if command.document is None:
        return command
    return replace(command, flow=parse_callflow(command.document), document=None)


def _list_command(account: str, options: dict[str, str]) -> ListCallsCommand:
    def number(key: str) -> str | None:
        value = options.get(key)
        if value is not None and not value.strip():
            raise InvalidInput(
                f'{key}=""', "is empty.", f"Give a number (`{key}=+447700900123`) or leave `{key}=` out."
            )
        return value.strip() if value is not None else None

    status = options.get("status")
    return ListCallsCommand(
        account.removesuffix(":"), status.strip().lower() if status else None, number("to"), number("from")
    )


def _hangup_all_command(account: str, options: dict[str, str]) -> HangupAllCommand:
    listed = _list_command(account, options)
    limit = None
    if "max" in options:
        raw = options["max"].replace(",", "").replace("_", "").strip()
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_BATCH:
            raise InvalidInput(
                f"max={options['max']}",
                f"is not a number of calls from 1 to {MAX_BATCH:,}.",
                "E.g. `max=500`, or leave it out to end every matching call (after you confirm the count).",
            )
        limit = int(raw)
    reason = options.get("reason")
    if reason is not None and not reason.strip():
        raise InvalidInput('reason=""', "is empty.", "Say why, or leave `reason=` out.")
    return HangupAllCommand(listed.account, listed.status, listed.to, listed.from_number, limit, reason)


def _batch_command(args: list[str]) -> BatchCommand:
    usage = f"Usage: `{VERBS['batch'].usage}`"
    raw = args[0].removeprefix("#")
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(args[0], "is not a batch number.", f"The progress message names it (batch #12). {usage}")
    sub = args[1].lower() if len(args) > 1 else "show"
    if sub not in ("show", "resume", "cancel"):
        hint = suggest(sub, ["resume", "cancel"]) or usage
        raise InvalidInput(args[1], "is not something `batch` does.", hint)
    return BatchCommand(int(raw), sub)


def _freeze_command(verb: str, options: dict[str, str]) -> FreezeCommand:
    usage = f"Usage: `{VERBS[verb].usage}`"
    if "on" not in options:
        raise InvalidInput(None, f"`{verb}` needs `on=ACCOUNT` (comma-separated for several).", usage)
    accounts = split_csv(options["on"], "on")
    if "*" in accounts:
        raise InvalidInput("on=*", "names no account.", "Name each account to freeze, e.g. `on=prod,bw`.")
    reason = options.get("reason")
    if reason is not None and not reason.strip():
        raise InvalidInput('reason=""', "is empty.", "Say why.")
    if verb == "freeze" and reason is None:
        raise InvalidInput(None, "`freeze` needs a reason: everyone refused sees it.", usage)
    return FreezeCommand(verb == "unfreeze", accounts, reason)


def _flows_command(args: list[str], options: dict[str, str]) -> FlowsCommand:
    sub = args[0].lower() if args else "list"
    if sub not in FLOWS_USAGE:
        hint = suggest(sub, list(FLOWS_USAGE)) or (
            f"To see a saved flow: `/call flows show {args[0]}`."
            if looks_like_reference(args[0])
            else f"Usage: `{VERBS['flows'].usage}`"
        )
        raise InvalidInput(args[0], "is not a `flows` subcommand (list, show, save, delete).", hint)
    rest = args[1:]
    wanted = ("NAME", "CALLFLOW")[: {"list": 0, "show": 1, "delete": 1, "save": 2}[sub]]
    usage = f"Usage: `{FLOWS_USAGE[sub]}`"
    if len(rest) < len(wanted):
        raise InvalidInput(None, f"`flows {sub}` needs {wanted[len(rest)]}.", usage)
    if len(rest) > len(wanted):
        raise InvalidInput(rest[len(wanted)], "is one word too many.", usage)
    version = options.get("version")
    if version is not None and sub != "show":
        raise InvalidInput(f"version={version}", f"is not an option of `flows {sub}`.", usage)
    if sub == "list":
        return FlowsCommand("list")
    ref = parse_ref(rest[0], version)
    if sub == "show":
        return FlowsCommand("show", ref)
    if ref.version is not None:
        why = (
            "names a version, but saving picks the next version itself."
            if sub == "save"
            else "names a version, but delete removes the name with all its versions."
        )
        raise InvalidInput(rest[0], why, f"Write just the name: `{ref.name}`.")
    if sub == "delete":
        return FlowsCommand("delete", ref)
    return FlowsCommand("save", ref, document=rest[1])


def _grant_command(verb: str, args: list[str], options: dict[str, str]) -> GrantCommand:
    kind, subject = parse_subject(args[0])
    if "for" in options and "until" in options:
        raise InvalidInput("until=", "is given with `for=`.", "Keep one: `for=8h` or `until=2026-12-01`.")
    return GrantCommand(
        revoke=verb == "revoke",
        user_id=subject,
        actions=parse_actions(args[1]),
        accounts=split_csv(options.get("on", "*"), "on"),
        subject_kind=kind,
        channel=parse_channel(options["in"]) if "in" in options else None,
        duration=parse_duration(options["for"]) if "for" in options else None,
        until=parse_until(options["until"]) if "until" in options else None,
        needs_approval=parse_yes_no(options["needs_approval"], "needs_approval")
        if "needs_approval" in options
        else False,
    )


def _role_command(args: list[str]) -> RoleCommand:
    if args[0].lower() != "create":
        hint = suggest(args[0], ["create"]) or f"Usage: `{VERBS['role'].usage}`"
        raise InvalidInput(args[0], "is not a `role` subcommand (create).", hint)
    name = args[1].lower()
    if name in BUILTIN_ROLES:
        raise InvalidInput(name, "is a built-in role: it cannot be redefined.", "Pick another name; see `/call roles`.")
    if name in ALL_ACTIONS or not ROLE_NAME.match(name):
        raise InvalidInput(
            name, "cannot name a role.", "Use 2–32 lowercase letters, digits and dashes, not an action's name."
        )
    actions = split_csv(args[2], "ACTIONS")
    for action in actions:
        if action not in ALL_ACTIONS:
            hint = suggest(action, ALL_ACTIONS) or f"A role is made of actions: {', '.join(ALL_ACTIONS)}."
            raise InvalidInput(action, "is not an action.", hint)
    return RoleCommand(name, actions)


def _audit_query(args: list[str], options: dict[str, str]) -> AuditQuery:
    export = bool(args)
    if export and args[0].lower() != "export":
        raise InvalidInput(args[0], "is not a word `audit` knows.", suggest(args[0], ["export"]) or AUDIT_HINT)
    fmt = options.get("format", "csv").lower()
    if "format" in options and not export:
        raise InvalidInput("format=", "is only for `/call audit export`.", "Write `/call audit export format=jsonl`.")
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"format={options['format']}", "is not an export format.", "Use `csv` or `jsonl`.")
    user = options.get("user")
    action = options.get("action")
    outcome = options.get("outcome")
    if action is not None and action.lower() not in AUDIT_ACTIONS:
        raise InvalidInput(f"action={action}", "is not an action.", suggest(action, AUDIT_ACTIONS))
    if outcome is not None and outcome.lower() not in OUTCOMES:
        raise InvalidInput(
            f"outcome={outcome}",
            "is not an outcome.",
            suggest(outcome, OUTCOMES) or f"Use one of: {', '.join(OUTCOMES)}.",
        )
    since = parse_since(options["since"]) if "since" in options else None
    until = parse_since(options["until"], key="until") if "until" in options else None
    if since is not None and until is not None and since >= until:
        raise InvalidInput(
            f"until={options['until']}", f"is not after `since={options['since']}`: nothing could match.", None
        )
    return AuditQuery(
        user_id=parse_user(user) if user else None,
        account=options.get("account"),
        call_id=options.get("call"),
        action=action.lower() if action else None,
        outcome=outcome.lower() if outcome else None,
        since=since,
        until=until,
        export=export,
        format=fmt,
    )


# The grammar's API: parse() and the commands it returns, the verb table, the word parsers.
__all__ = [
    "AUDIT_ACTIONS",
    "AUDIT_HINT",
    "CALL_FLAGS",
    "CALL_VERBS",
    "EXPORT_FORMATS",
    "FLOWS_USAGE",
    "MAX_BATCH",
    "MAX_TEXT",
    "OUTCOMES",
    "VERBS",
    "AuditQuery",
    "BatchCommand",
    "CallCommand",
    "CallStatusCommand",
    "Command",
    "DocumentCall",
    "FlowBuilderCommand",
    "FlowsCommand",
    "FreezeCommand",
    "GrantCommand",
    "HangupAllCommand",
    "HelpCommand",
    "ListCallsCommand",
    "OpenFormCommand",
    "PermsCommand",
    "RoleCommand",
    "RolesCommand",
    "SavedFlowCommand",
    "VerbSpec",
    "check_grantable",
    "parse",
    "parse_actions",
    "parse_channel",
    "parse_duration",
    "parse_since",
    "parse_subject",
    "parse_until",
    "parse_user",
    "parse_yes_no",
    "read_document",
    "read_flows_document",
    "suggest",
    "tokenize",
    "unknown_action_hint",
]
