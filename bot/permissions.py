"""Who may do what, where: pure decisions over a user's grants. Deny by default.

A grant is (Slack user id, action, account or `*`). `admin` implies every action, including
managing grants; an admin's reach is the account of that grant (`*` for all accounts).

Saved flows (bot/flow_library.py) are one library shared by the whole team, not tied to an account:

- `flow:manage` (save, delete) is a team-wide right: it counts only when granted on `*`, and it
  can only be granted on `*` (so only an admin on `*` can hand it out). `admin` on `*` implies it;
  `admin` on one account does not, since a library edit reaches every account.
- Reading the library (list, show) needs `flow` or `flow:manage` (or `admin`) on any account.
- Applying a saved flow to a call is the plain `flow` action on that call's account, checked again
  when the confirmation button is clicked.

`break-glass` lets its holder act on an account frozen by `/call freeze` (with a reason; the audit
row is flagged). It is an emergency override of a deliberate stop, so `admin` does NOT imply it:
it must be granted by name (an admin can grant it, to themselves too, which leaves a `grant` row).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CALL_ACTIONS = ("hangup", "cancel", "redirect", "twiml", "flow")
FLOW_MANAGE = "flow:manage"
BREAK_GLASS = "break-glass"
ALL_ACTIONS = (*CALL_ACTIONS, FLOW_MANAGE, "audit", BREAK_GLASS, "admin")
# Held only when granted by name: `admin` does not imply these.
NOT_IMPLIED_BY_ADMIN = (BREAK_GLASS,)
# Actions whose grants only mean something on `*` (they are not about one account).
TEAM_WIDE_ACTIONS = (FLOW_MANAGE,)
ANY_ACCOUNT = "*"
OUTCOMES = ("denied", "invalid", "dry_run", "pending", "succeeded", "failed", "unknown", "rate_limited")


@dataclass(frozen=True)
class Grant:
    id: int | None
    user_id: str
    action: str
    account: str

    def describe(self) -> str:
        where = "all accounts" if self.account == ANY_ACCOUNT else f"account {self.account}"
        return f"grant #{self.id}: {self.action} on {where}" if self.id else f"{self.action} on {where}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    action: str
    account: str | None
    grant: Grant | None = None
    # What else the decision rests on, for the audit row: a policy rule that refused an action the
    # grant allowed, or the break-glass grant used during a freeze.
    note: str | None = None

    @property
    def basis(self) -> str:
        base = self.grant.describe() if self.grant else "no matching grant"
        return f"{base}; {self.note}" if self.note else base


def decide(grants: Iterable[Grant], action: str, account: str | None) -> Decision:
    """Allowed when a grant names this action (or admin) on this account (or `*`).

    The most specific grant wins, so the audit row names the grant that really applied.
    `account=None` asks about an action that is not tied to one account (e.g. reading the audit).
    """
    ranked: list[tuple[int, Grant]] = []
    for grant in grants:
        on_account = account is not None and grant.account == account
        everywhere = grant.account == ANY_ACCOUNT
        if not (on_account or everywhere):
            continue
        if grant.action == action:
            ranked.append((0 if on_account else 1, grant))
        elif grant.action == "admin" and action not in NOT_IMPLIED_BY_ADMIN:
            ranked.append((2 if on_account else 3, grant))
    if not ranked:
        return Decision(False, action, account)
    ranked.sort(key=lambda pair: pair[0])
    return Decision(True, action, account, ranked[0][1])


def decide_management(grants: Iterable[Grant], accounts: Iterable[str]) -> Decision:
    """Granting or revoking on these accounts needs admin on each of them (or on `*`).

    Nobody can hand out more than they hold: `admin` scoped to one account manages that account
    only, and granting on `*` needs `admin` on `*`.
    """
    grants = list(grants)
    decision = Decision(False, "admin", None)
    for account in accounts:
        if account == ANY_ACCOUNT:
            match = next((g for g in grants if g.action == "admin" and g.account == ANY_ACCOUNT), None)
            decision = Decision(match is not None, "admin", ANY_ACCOUNT, match)
        else:
            decision = decide([g for g in grants if g.action == "admin"], "admin", account)
        if not decision.allowed:
            return decision
    return decision


def decide_flow_manage(grants: Iterable[Grant]) -> Decision:
    """Saving or deleting a saved flow: `flow:manage` (or `admin`) on `*`."""
    return decide([g for g in grants if g.account == ANY_ACCOUNT], FLOW_MANAGE, ANY_ACCOUNT)


def decide_flow_read(grants: Iterable[Grant]) -> Decision:
    """Listing or showing saved flows: `flow:manage`, `flow` or `admin`, on any account.

    The decision names the grant that allowed it (the most specific first), like `decide`.
    """
    grants = list(grants)
    for action in (FLOW_MANAGE, "flow", "admin"):
        for grant in sorted(grants, key=lambda g: g.account == ANY_ACCOUNT):
            if grant.action == action and (action != FLOW_MANAGE or grant.account == ANY_ACCOUNT):
                return Decision(True, "flow", grant.account, grant)
    return Decision(False, "flow", None)


def allowed_actions(grants: Iterable[Grant], account: str | None = None) -> set[str]:
    grants = list(grants)
    if account is None:
        held = {g.action for g in grants}
        implied = set(ALL_ACTIONS) - set(NOT_IMPLIED_BY_ADMIN) if "admin" in held else set()
        return held | implied
    return {action for action in ALL_ACTIONS if decide(grants, action, account).allowed}
