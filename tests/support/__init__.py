"""What the tests share: the fakes' companions, the bot under test and its database.

- `bots`: the real ASGI app under uvicorn on loopback (`ServerThread`), `SlackDriver` (signed
  requests as Slack sends them), `Bot` and `BotFactory` (the `make_bot` fixture), `write_config`.
- `database`: the test database of this worker (its own SQLite file, or its own PostgreSQL
  database under pytest-xdist), `DbHelper`, `on_database`.
- `service`: the real Service without HTTP (`ServiceBot`, the `service_for` fixture), for the
  use cases' tests below end to end.
- `clock`: `FakeClock`.
- `fixtures`: the pytest fixtures built on them (loaded by tests/conftest.py).

The fakes themselves (Slack, Twilio, Bandwidth, Bird, Socket Mode) are in tests/fakes/.
"""
