"""The dialect of one check session: the dialect's facts (:mod:`dbrunbook.dialects`) and the session's strictness.

What a migration does to offending data, and the SQL pieces the checks need, are facts of each dialect
(``outcomes``/``strict_outcomes``, ``chars``, ``octets``, ``round``, ``as_text``, ``read_only_transaction_sql``);
this module only adds what one session decides (MariaDB/MySQL's strict ``sql_mode``), so the check modules
never branch on the dialect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dbrunbook import dialects
from dbrunbook.dialects import BLOCKING, FAILS, KEEPS, LOSES, Outcome

__all__ = ["BLOCKING", "CAST_PATTERNS", "FAILS", "KEEPS", "LOSES", "Dialect", "Outcome", "read_only_sql",
           "session_dialect"]

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

    @property
    def facts(self) -> dialects.Dialect:
        return dialects.facts(self.name)

    def outcome(self, problem: str) -> Outcome:
        return self.facts.outcome(problem, self.strict)

    def chars(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return self.facts.chars(column)

    def bytes(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return self.facts.octets(column)

    def round(self, column: sa.ColumnElement[Any], scale: int) -> sa.ColumnElement[Any]:
        return self.facts.round(column, scale)

    def text(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return self.facts.as_text(column)


def read_only_sql(dialect: str) -> str | None:
    """The statement that makes this session read-only."""
    found = dialects.get(dialect)
    return found.read_only_transaction_sql if found else None


def session_dialect(conn: Connection, name: str) -> Dialect:
    """The dialect of ``conn`` with its strictness read from the session (MariaDB sql_mode)."""
    return Dialect(name, strict=dialects.facts(name).is_strict(conn))
