"""Database failures in one line an operator can act on: which database, and what is wrong."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.domain.errors import ConfigError

# Patterns in the drivers' messages (psycopg/libpq and sqlite3), most specific first.
_KINDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), problem)
    for pattern, problem in (
        (
            r"password authentication failed|no password supplied|authentication failed|role \"[^\"]*\" does not exist",
            "authentication failed: check the user name and password in DATABASE_URL",
        ),
        (
            r"no pg_hba\.conf entry",
            "the server refuses this user from this host (its pg_hba.conf): ask the database's administrator",
        ),
        (
            r"permission denied for database",
            "this user may not connect to that database (it lacks the CONNECT privilege)",
        ),
        (
            r"database \"[^\"]*\" does not exist",
            "the database does not exist: create it (e.g. createdb), or fix its name in DATABASE_URL",
        ),
        (
            r"is not currently accepting connections|the database system is (starting up|shutting down)",
            "the server does not accept connections to it right now: try again shortly",
        ),
        (
            r"connection refused|could not translate host name|name or service not known|no route to host"
            r"|timeout expired|timed out|network is unreachable|could not connect|no such file or directory"
            r"|server closed the connection unexpectedly",
            "the server is unreachable: is PostgreSQL running, and are the host and port right?",
        ),
        (
            r"unable to open database file",
            "cannot open the database file: does its folder exist, and may callbot write there?",
        ),
        (r"readonly database|read-only", "the database is read-only for callbot"),
        (
            r"no such table|undefinedtable|relation \"[^\"]*\" does not exist",
            "the schema is not migrated: run `callbot migrate`",
        ),
    )
)


class DatabaseProblem(ConfigError):
    """The database cannot be used: unreachable, refused, missing, not migrated (exit status 1)."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__("DATABASE_URL", None, f"database {masked_url(url)}: {problem}")


def masked_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(DATABASE_URL is not a URL)"


def describe(error: BaseException, url: str) -> DatabaseProblem:
    """A driver or SQLAlchemy error as one line naming the database (password masked)."""
    text = " ".join(str(getattr(error, "orig", None) or error).split()).lower()
    problem = next(
        (problem for pattern, problem in _KINDS if pattern.search(text)),
        f"it failed ({type(getattr(error, 'orig', None) or error).__name__})",
    )
    return DatabaseProblem(url, problem)
