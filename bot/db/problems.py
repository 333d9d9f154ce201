"""Database failures in one line an operator can act on: which database, and what is wrong."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.errors import ConfigError

# Substrings of the drivers' messages (psycopg/libpq and sqlite3), most specific first.
_KINDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("password authentication failed", "no password supplied", "authentication failed", 'role "'),
        "authentication failed: check the user name and password in DATABASE_URL",
    ),
    (('database "',), "the database does not exist: create it (e.g. createdb), or fix its name in DATABASE_URL"),
    (
        (
            "connection refused",
            "could not translate host name",
            "name or service not known",
            "no route to host",
            "timeout expired",
            "timed out",
            "network is unreachable",
            "could not connect",
            "no such file or directory",
        ),
        "the server is unreachable: is PostgreSQL running, and are the host and port right?",
    ),
    (
        ("unable to open database file",),
        "cannot open the database file: does its folder exist, and may callbot write there?",
    ),
    (("readonly database", "read-only"), "the database is read-only for callbot"),
    (("no such table", "undefinedtable", "does not exist"), "the schema is not migrated: run `callbot migrate`"),
)


def masked_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(DATABASE_URL is not a URL)"


def describe(error: BaseException, url: str) -> ConfigError:
    """A driver or SQLAlchemy error as one line naming the database (password masked)."""
    text = " ".join(str(getattr(error, "orig", None) or error).split()).lower()
    problem = next(
        (problem for needles, problem in _KINDS if any(needle in text for needle in needles)),
        f"it failed ({type(getattr(error, 'orig', None) or error).__name__})",
    )
    return ConfigError("DATABASE_URL", None, f"database {masked_url(url)}: {problem}")
