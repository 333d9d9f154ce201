"""Who may do what, where: pure decisions over a user's grants. Deny by default.

A grant is (Slack user id, action, account or `*`). `admin` implies every action, including
managing grants; an admin's reach is the account of that grant (`*` for all accounts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CALL_ACTIONS = ("hangup", "cancel", "redirect", "twiml", "flow")
ALL_ACTIONS = (*CALL_ACTIONS, "audit", "admin")
ANY_ACCOUNT = "*"
OUTCOMES = ("denied", "invalid", "dry_run", "pending", "succeeded", "failed", "unknown")


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

    @property
    def basis(self) -> str:
        return self.grant.describe() if self.grant else "no matching grant"


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
        elif grant.action == "admin":
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


def allowed_actions(grants: Iterable[Grant], account: str | None = None) -> set[str]:
    grants = list(grants)
    if account is None:
        held = {g.action for g in grants}
        return set(ALL_ACTIONS) if "admin" in held else held
    return {action for action in ALL_ACTIONS if decide(grants, action, account).allowed}
