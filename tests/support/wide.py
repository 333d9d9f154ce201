"""The 101 accounts of `wide_bot` (tests/support/fixtures.py): make_bot's prod, bw and bird, and
98 more, written once per worker. One more than a Slack menu holds (100 options), so the action
form's account menu is a type-ahead; and as many accounts of one provider as the limits of
tests/test_slack_limits.py need: a Bandwidth call id fits 25 accounts (Slack's 25 buttons in an
actions block, exactly), a Bird one 26 (one past), a Twilio one 50."""

from __future__ import annotations

from tests.fakes import bandwidth, bird
from tests.fakes.twilio import ACCOUNT_SID
from tests.support.bots import Fakes

# A Bandwidth call id is 47 characters, so the button `NAME:ID` is 75 characters, Slack's limit
# for a button's text, with a 27-character name, and one past it with a 28-character one.
BW_AT_LIMIT = "bw-" + "a" * 24
BW_PAST_LIMIT = "bw-" + "b" * 25
TWILIO = ("prod", *(f"tw-{n:02d}" for n in range(1, 50)))
BANDWIDTH = ("bw", *(f"bw-{n:02d}" for n in range(1, 23)), BW_AT_LIMIT, BW_PAST_LIMIT)
BIRD = ("bird", *(f"bird-{n:02d}" for n in range(1, 26)))
ACCOUNTS = tuple(sorted((*TWILIO, *BANDWIDTH, *BIRD)))
assert (len(TWILIO), len(BANDWIDTH), len(BIRD), len(set(ACCOUNTS))) == (50, 25, 26, 101)


def wide_accounts(fakes: Fakes) -> str:
    """The TOML of the 98 accounts added to write_config's three, pointed at the fakes (secrets
    from the environment, as every test configuration)."""
    tables = []
    for name in TWILIO[1:]:
        tables.append(
            f'[accounts.{name}]\nprovider = "twilio"\naccount_sid = "{ACCOUNT_SID}"\n'
            f'auth_token = "${{TEST_TWILIO_AUTH_TOKEN}}"\nbase_url = "{fakes.twilio.url}"\n'
        )
    for name in BANDWIDTH[1:]:
        tables.append(
            f'[accounts.{name}]\nprovider = "bandwidth"\naccount_id = "{bandwidth.ACCOUNT_ID}"\n'
            f'username = "{bandwidth.USERNAME}"\npassword = "${{TEST_BW_PASSWORD}}"\nbase_url = "{fakes.bandwidth.url}"\n'
        )
    for name in BIRD[1:]:
        tables.append(
            f'[accounts.{name}]\nprovider = "bird"\nworkspace_id = "{bird.WORKSPACE_ID}"\n'
            f'channel_id = "{bird.CHANNEL_ID}"\naccess_key = "${{TEST_BIRD_ACCESS_KEY}}"\nbase_url = "{fakes.bird.url}"\n'
        )
    # read_back off, as write_config's accounts: a read after an action would take the fakes'
    # answers scripted for the test's next request.
    return "".join(f"\n{table}timeout = 2\nread_back = 0\n" for table in tables)
