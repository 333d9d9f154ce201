"""The action modal's values → the same structured command a typed `/call` produces.

Errors come back keyed by the view's block ids, because `response_action: errors` only works with
input block ids (anything else makes Slack show a generic failure).
"""

from __future__ import annotations

import shlex

from bot.domain.actions import (
    REDIRECT_OPTIONS,
    ApplyFlow,
    CallAction,
    CallTarget,
    Cancel,
    Hangup,
    InlineTwiml,
    Redirect,
    check_method,
    check_positive_int,
    check_twiml,
    check_url,
    redirect_from_options,
)
from bot.domain.callflow_text import parse_callflow
from bot.domain.errors import InvalidInput
from bot.domain.flows import parse_ref
from bot.domain.grammar import CallCommand, SavedFlowCommand
from bot.slack.views.action_form import FLOW_MENU, OPTION_FIELDS, FormState

TEXT_FIELDS = ("url", "twiml", "callflow")


class FormErrors(Exception):
    def __init__(self, errors: dict[str, str], first: InvalidInput) -> None:
        super().__init__(first.message)
        self.errors = errors
        self.first = first


def _target_errors(state: FormState) -> dict[str, InvalidInput]:
    errors: dict[str, InvalidInput] = {}
    call_id = (state.get("call_id") or "").strip()
    if not state.account:
        errors["account"] = InvalidInput(None, "Pick an account.")
    if not call_id:
        errors["call_id"] = InvalidInput(None, "Give the call's id.")
    elif any(c.isspace() for c in call_id):
        errors["call_id"] = InvalidInput(call_id, "contains spaces; a call id has none")
    return errors


def _refused(errors: dict[str, InvalidInput]) -> FormErrors:
    first = next(iter(errors.values()), InvalidInput(None, "The form is incomplete."))
    return FormErrors({block: error.message for block, error in errors.items()}, first)


def saved_flow_from_form(state: FormState, flow_block: str) -> SavedFlowCommand:
    """`flow` with a saved flow picked: the command `/call flow ACCOUNT:CALL NAME` is, which shows
    the flow and asks to confirm. `flow_block`: where a problem with the flow is shown (the menu,
    or the action when there is no saved flow to pick)."""
    errors = _target_errors(state)
    name = (state.get(FLOW_MENU) or "").strip()
    ref = None
    if not name:
        errors[flow_block] = InvalidInput(None, "Pick a saved flow, or build a callFlow with the button.")
    else:
        try:
            ref = parse_ref(name)
        except InvalidInput as error:
            errors[flow_block] = error
    if errors or ref is None or state.account is None:
        raise _refused(errors)
    reason = (state.get("reason") or "").strip() or None
    call = CallTarget(state.account, (state.get("call_id") or "").strip())
    return SavedFlowCommand(call, ref, "dry-run" in (state.get("dry_run") or ""), reason)


def command_from_form(state: FormState) -> CallCommand:
    """Every field is checked, so the person sees all the problems at once."""
    errors = _target_errors(state)
    account, action_name = state.account, state.action
    call_id = (state.get("call_id") or "").strip()
    if not action_name:
        errors["action"] = InvalidInput(None, "Pick an action.")
    options = {name: value for name in OPTION_FIELDS if (value := state.get(name)) is not None}
    for name, value in options.items():
        try:
            _check_option(name, value)
        except InvalidInput as error:
            errors[name] = error
    if action_name == "redirect":
        try:
            _required_url(state)
        except InvalidInput as error:
            errors["url"] = error
    action: CallAction | None = None
    if not errors and account and action_name:
        try:
            action = _action(action_name, state, options)
        except InvalidInput as error:
            errors[block_for(error.word, action_name)] = error
    if errors or action is None or account is None:
        raise _refused(errors)
    dry_run = "dry-run" in (state.get("dry_run") or "")
    return CallCommand(CallTarget(account, call_id), action, dry_run, frozenset(options))


def _required_url(state: FormState) -> str:
    url = (state.get("url") or "").strip()
    if not url:
        raise InvalidInput(None, "Give the URL that returns the new instructions.")
    return check_url(url)


def _check_option(name: str, value: str) -> None:
    kind = OPTION_FIELDS[name].kind
    if kind == "url":
        check_url(value, name)
    elif kind == "method":
        check_method(value, name)
    elif kind == "int":
        check_positive_int(value, name)


def _action(name: str, state: FormState, options: dict[str, str]) -> CallAction:
    reason = (state.get("reason") or "").strip() or None
    if name == "hangup":
        return Hangup(reason)
    if name == "cancel":
        return Cancel(reason)
    if name == "redirect":
        return redirect_from_options(_required_url(state), options, reason)
    if name == "twiml":
        return InlineTwiml(check_twiml((state.get("twiml") or "").strip()), reason)
    if name == "flow":
        return ApplyFlow(parse_callflow(state.get("callflow") or ""), reason)
    raise InvalidInput("action", f"`{name}` is not an action.")


def block_for(word: str | None, action: str | None) -> str:
    """Which input block a refusal belongs under, from the word the error names."""
    if not word:
        return "action"
    lowered = word.lower()
    for option in OPTION_FIELDS:
        if lowered.startswith(f"{option}="):
            return option
    if lowered.endswith(":"):
        return "account"
    if lowered.startswith("twiml"):
        return "twiml"
    if lowered.startswith("callflow"):
        return "callflow"
    if lowered.startswith(("http://", "https://", "ftp:", "url")) or (action == "redirect" and "://" in lowered):
        return "url"
    if action and lowered == action:
        return "action"
    return "call_id"


def command_line(command: CallCommand) -> str:
    """The `/call` words equivalent to a form submission, for the audit row's command text.

    Long bodies (TwiML, callFlows) are not repeated here: the audit row's request holds them.
    """
    action = command.action
    words = [action.name.value, command.target.display()]
    if isinstance(action, Redirect):
        words.append(action.url)
        words += [f"{name}={shlex.quote(value)}" for name, value in _redirect_options(action)]
    elif isinstance(action, InlineTwiml):
        words.append("<TwiML>")
    elif isinstance(action, ApplyFlow):
        words.append("<callFlow>")
    if action.reason:
        words.append(f"reason={shlex.quote(action.reason)}")
    if command.dry_run:
        words.append("dry-run")
    return " ".join(words)


def saved_flow_line(command: SavedFlowCommand) -> str:
    """The `/call` words of a saved flow picked in the form, for the audit row's command text."""
    words = ["flow", command.target.display(), str(command.ref)]
    if command.reason:
        words.append(f"reason={shlex.quote(command.reason)}")
    if command.dry_run:
        words.append("dry-run")
    return " ".join(words)


def _redirect_options(action: Redirect) -> list[tuple[str, str]]:
    return [
        (option, str(getattr(action, attribute)))
        for option, attribute in REDIRECT_OPTIONS.items()
        if getattr(action, attribute) is not None
    ]
