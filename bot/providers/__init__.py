"""Provider clients: one per configured account, created at start-up and closed at shutdown."""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import Account, TwilioAccount
from bot.errors import ConfigError
from bot.providers.base import ProviderClient
from bot.providers.twilio import TwilioClient


def create_client(account: Account) -> ProviderClient:
    if isinstance(account.config, TwilioAccount):
        return TwilioClient(account.name, account.config)
    raise ConfigError(
        "configuration",
        f"accounts.{account.name}.provider",
        f"{account.provider} accounts are not supported by this version of callbot yet",
    )


def create_clients(accounts: Mapping[str, Account]) -> dict[str, ProviderClient]:
    return {name: create_client(account) for name, account in accounts.items()}
