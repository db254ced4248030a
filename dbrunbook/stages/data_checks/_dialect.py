"""What a migration does to offending data on each dialect, and the SQL pieces checks need.

Everything that differs between dialects is a row in a table keyed by dialect name (with
``-strict`` rows for MariaDB/MySQL when the session's ``sql_mode`` is strict), so the check
modules never branch on the dialect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: Effects, from worst to mildest; ``fails`` and ``loses`` block the run.
FAILS, LOSES, KEEPS = "fails", "loses", "keeps"
BLOCKING = (FAILS, LOSES)


@dataclass(frozen=True)
class Outcome:
    """What the migration does with an offending row: ``effect`` and the words for it."""

    effect: str
    words: str


def _fails(words: str = "the migration fails") -> Outcome:
    return Outcome(FAILS, words)


_LOST = Outcome(LOSES, "the values are deleted with it")

# problem -> outcome; the problems are the ``problem`` names the check modules use.
_OUTCOMES: dict[str, dict[str, Outcome]] = {
    "postgresql": {
        "null": _fails("ALTER COLUMN SET NOT NULL fails"),
        "required": _fails("ADD COLUMN NOT NULL without a default fails on a non-empty table"),
        "duplicate": _fails("creating the unique index fails"),
        "orphan": _fails("ADD FOREIGN KEY fails while validating existing rows"),
        "check": _fails("ADD CHECK fails while validating existing rows"),
        "too_long": _fails("ALTER TYPE fails: value too long for type character varying"),
        "overflow": _fails("ALTER TYPE fails: value out of range"),
        "bad_cast": _fails("ALTER TYPE fails: invalid input syntax"),
        "rounded": Outcome(LOSES, "ALTER TYPE rounds the values silently"),
        "enum": _fails("ALTER TYPE fails: invalid input value for enum"),
        "dropped": _LOST,
    },
    "sqlite": {
        "null": _fails("the batch copy fails: NOT NULL constraint failed"),
        "required": _fails("ADD COLUMN fails: cannot add a NOT NULL column with default value NULL"),
        "duplicate": _fails("the batch copy fails: UNIQUE constraint failed"),
        "orphan": Outcome(KEEPS, "the orphans stay: SQLite checks foreign keys only with PRAGMA foreign_keys=ON"),
        "check": _fails("the batch copy fails: CHECK constraint failed"),
        "too_long": Outcome(KEEPS, "the values stay whole: SQLite does not enforce VARCHAR lengths"),
        "overflow": Outcome(LOSES, "the batch copy CASTs and clamps the values silently"),
        "bad_cast": Outcome(LOSES, "the batch copy CASTs the values to 0 silently"),
        "rounded": Outcome(LOSES, "the batch copy CASTs and cuts the fraction silently"),
        "enum": Outcome(KEEPS, "the values stay: SQLite has no enum type and SQLAlchemy adds no CHECK by default"),
        "dropped": _LOST,
    },
    "mariadb": {
        "null": Outcome(LOSES, "non-strict sql_mode: MODIFY replaces NULL with the zero value of the type silently"),
        "required": Outcome(KEEPS, "existing rows get the zero value of the type (empty string or 0)"),
        "duplicate": _fails("ADD UNIQUE fails: duplicate entry"),
        "orphan": _fails("ADD FOREIGN KEY fails: a foreign key constraint fails"),
        "check": _fails("ADD CHECK fails: check constraint is violated"),
        "too_long": Outcome(LOSES, "non-strict sql_mode: MODIFY truncates the values silently"),
        "overflow": Outcome(LOSES, "non-strict sql_mode: MODIFY clamps the values to the range silently"),
        "bad_cast": Outcome(LOSES, "non-strict sql_mode: MODIFY stores 0 silently"),
        "rounded": Outcome(LOSES, "MODIFY rounds the values silently"),
        "enum": Outcome(LOSES, "non-strict sql_mode: MODIFY stores an empty string silently"),
        "dropped": _LOST,
    },
}
_OUTCOMES["mariadb-strict"] = {
    **_OUTCOMES["mariadb"],
    "null": _fails("strict sql_mode: MODIFY fails on NULL values"),
    "too_long": _fails("strict sql_mode: MODIFY fails: data too long"),
    "overflow": _fails("strict sql_mode: MODIFY fails: out of range value"),
    "bad_cast": _fails("strict sql_mode: MODIFY fails: incorrect value"),
    "enum": _fails("strict sql_mode: MODIFY fails: data truncated"),
}
_OUTCOMES["mysql"] = _OUTCOMES["mariadb"]
_OUTCOMES["mysql-strict"] = _OUTCOMES["mariadb-strict"]

#: How a read-only session is opened, and how strictness is read (None: not applicable).
_READ_ONLY = {"sqlite": "PRAGMA query_only = ON", "postgresql": "SET TRANSACTION READ ONLY",
              "mariadb": "SET SESSION TRANSACTION READ ONLY", "mysql": "SET SESSION TRANSACTION READ ONLY"}
_SQL_MODE = {"mariadb": "SELECT @@SESSION.sql_mode", "mysql": "SELECT @@SESSION.sql_mode"}
_STRICT_WORDS = ("STRICT_TRANS_TABLES", "STRICT_ALL_TABLES")

#: Characters of a string value (MariaDB LENGTH counts bytes).
_CHARS: dict[str, Callable[[sa.ColumnElement[Any]], sa.ColumnElement[Any]]] = {
    "sqlite": lambda c: sa.func.length(c),
    "postgresql": lambda c: sa.func.char_length(c),
    "mariadb": lambda c: sa.func.char_length(c),
    "mysql": lambda c: sa.func.char_length(c),
}
#: Bytes a value takes as text (SQLite before 3.43 has no octet_length).
_BYTES: dict[str, Callable[[sa.ColumnElement[Any]], sa.ColumnElement[Any]]] = {
    "sqlite": lambda c: sa.func.length(sa.cast(c, sa.LargeBinary)),
    "postgresql": lambda c: sa.func.octet_length(sa.cast(c, sa.Text)),
    "mariadb": lambda c: sa.func.octet_length(c),
    "mysql": lambda c: sa.func.octet_length(c),
}
#: Text form of any value, for comparisons that must not make the database cast (enums).
_TEXT: dict[str, Callable[[sa.ColumnElement[Any]], sa.ColumnElement[Any]]] = {
    "sqlite": lambda c: sa.cast(c, sa.Text),
    "postgresql": lambda c: sa.cast(c, sa.Text),
    "mariadb": lambda c: sa.cast(c, sa.CHAR),
    "mysql": lambda c: sa.cast(c, sa.CHAR),
}

#: ROUND(value, scale); PostgreSQL has it for numeric only, not for double precision.
_ROUND: dict[str, Callable[[sa.ColumnElement[Any], int], sa.ColumnElement[Any]]] = {
    "sqlite": lambda c, s: sa.func.round(c, s),
    "postgresql": lambda c, s: sa.func.round(sa.cast(c, sa.Numeric), s),
    "mariadb": lambda c, s: sa.func.round(c, s),
    "mysql": lambda c, s: sa.func.round(c, s),
}

#: Patterns a text must match to cast to a type; valid as POSIX ERE, PCRE and Python re alike.
CAST_PATTERNS = {
    "integer": r"^ *[-+]?[0-9]+ *$",
    "numeric": r"^ *[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+) *$",
    "date": r"^ *[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]*)?)?)? *$",
}


@dataclass(frozen=True)
class Dialect:
    """The facts the checks of one session use."""

    name: str
    strict: bool

    @property
    def mode(self) -> str:
        return f"{self.name}-strict" if self.strict else self.name

    def outcome(self, problem: str) -> Outcome:
        return _OUTCOMES[self.mode][problem]

    def chars(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return _CHARS[self.name](column)

    def bytes(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return _BYTES[self.name](column)

    def round(self, column: sa.ColumnElement[Any], scale: int) -> sa.ColumnElement[Any]:
        return _ROUND[self.name](column, scale)

    def text(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return _TEXT[self.name](column)


def read_only_sql(dialect: str) -> str | None:
    """The statement that makes this session read-only."""
    return _READ_ONLY.get(dialect)


def session_dialect(conn: Connection, name: str) -> Dialect:
    """The dialect of ``conn`` with its strictness read from the session (MariaDB sql_mode)."""
    query = _SQL_MODE.get(name)
    if query is None:
        return Dialect(name, strict=False)
    mode = str(conn.execute(sa.text(query)).scalar_one() or "")
    return Dialect(name, strict=any(word in mode.upper() for word in _STRICT_WORDS))
