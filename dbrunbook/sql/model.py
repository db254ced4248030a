"""The statement model lint rules, lock analysis and reversibility look at.

SQL is split and parsed by the dialect's reader (its ``sql_reader``, see :data:`READERS`): PostgreSQL's
own parser (pglast, in :mod:`._pg`) for PostgreSQL, sqlglot in the target's dialect for the others. Each
statement becomes a
:class:`Statement` holding one :class:`Action` per change it makes (``ALTER TABLE t ADD a,
DROP b`` makes two), with the table, column and the facts rules need (default, NOT VALID,
CONCURRENTLY, ...). Forms sqlglot keeps as an opaque command (``VALIDATE CONSTRAINT``,
``ALTER TYPE``) are read from sqlglot's tokens. A statement no reader understands becomes an
``unknown`` action (reported by LN004), one that cannot be parsed ``unparsed`` (LN003), so
nothing is dropped unseen. Statements also carry their context: whether a
transaction is open and which session settings (``lock_timeout`` ...) are in force.

What the schema looks like before a statement (a column's definition there, whether a table
is one the migration created) is :meth:`Migration.state_before`, replayed by :mod:`.state`
from the target's columns; rules ask it rather than ``known_columns``, which holds the
target's columns before the whole migration.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType  # type: ignore[attr-defined]

from dbrunbook import dialects
from dbrunbook.errors import UsageError
from dbrunbook.sql._actions import VOLATILE_FUNCTIONS, Action, actions_of
from dbrunbook.sql._errors import UnreadableSource
from dbrunbook.sql.state import SchemaState, replay

__all__ = ["READERS", "SQLGLOT_DIALECT", "VOLATILE_FUNCTIONS", "Action", "Migration", "Statement", "UnreadableSource",
           "parse_sql"]

#: sqlglot's dialect name for each SQLAlchemy dialect name (each dialect's ``sqlglot``).
SQLGLOT_DIALECT = {d.name: d.sqlglot for d in dialects.registered()}

_SILENCE = re.compile(r"dbrunbook-ignore:[ \t]*([A-Z]{2}\d{3}(?:[ \t]*,[ \t]*[A-Z]{2}\d{3})*)(?:[ \t]+([^\n]*))?")
logging.getLogger("sqlglot").setLevel(logging.ERROR)


@dataclass
class Statement:
    """One SQL statement, its actions, and the context it runs in."""

    index: int
    line: int
    sql: str
    dialect: str
    actions: list[Action] = field(default_factory=list)
    in_transaction: bool = False
    #: Which transaction block the statement runs in (0: none); equal numbers share one.
    transaction: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    silenced: dict[str, str] = field(default_factory=dict)
    unreasoned: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.actions[0].kind if self.actions else "other"

    @property
    def table(self) -> str:
        return self.actions[0].table if self.actions else ""

    @property
    def text(self) -> str:
        """The statement without its leading comments, on one line."""
        lines = [ln for ln in self.sql.splitlines() if not ln.strip().startswith("--")]
        return " ".join(" ".join(lines).split())


@dataclass
class Migration:
    """The statements of one migration (a file, a revision or a range) for one dialect."""

    dialect: str
    statements: list[Statement]
    source: str = ""
    #: The target's columns before the migration, (table, column) -> facts, set by the caller
    #: when lint reads a database (empty for a bare SQL file).
    known_columns: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: Rows and bytes of the target's tables, table -> (rows, bytes), each None when unknown; set by the
    #: caller when a schema snapshot is at hand (``lint --db``, the stages), so findings can say how big.
    sizes: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    #: The major version of the target's server when it was read (``lint --db``, the stages); None offline.
    server_version: int | None = None
    #: Parts of the source that gave no SQL to lint, each ``{"line": n, "reason": ...}``: a revision's
    #: code that needs a live database when rendered offline. LN006 reports them; nothing is dropped unseen.
    gaps: list[dict[str, Any]] = field(default_factory=list)
    _states: list[SchemaState] = field(default_factory=list, repr=False, compare=False)
    _states_of: tuple[int, int] = field(default=(0, 0), repr=False, compare=False)

    def actions(self, *kinds: str) -> Iterator[tuple[Statement, Action]]:
        for stmt in self.statements:
            for action in stmt.actions:
                if not kinds or action.kind in kinds:
                    yield stmt, action

    def state_before(self, stmt: Statement) -> SchemaState:
        """The schema just before ``stmt`` runs: the target's columns changed by the statements before it."""
        position = next((i for i, s in enumerate(self.statements) if s is stmt), stmt.index - 1)
        return self._replayed()[min(max(position, 0), len(self.statements))]

    def final_state(self) -> SchemaState:
        """The schema after the last statement, as the migration leaves it."""
        return self._replayed()[-1]

    def _replayed(self) -> list[SchemaState]:
        # Replayed again when the caller merged other columns in, or the statements changed.
        key = (len(self.statements), hash(tuple(self.known_columns)))
        if key != self._states_of or not self._states:
            self._states, self._states_of = replay(self), key
        return self._states

    def column_before(self, stmt: Statement, table: str, column: str) -> dict[str, Any] | None:
        """The definition of ``table.column`` just before ``stmt``; None when it is not known there."""
        return self.state_before(stmt).column(table, column)

    def is_new(self, stmt: Statement, table: str) -> bool:
        """True when the migration created ``table`` before ``stmt`` and it holds none of the target's rows."""
        return self.state_before(stmt).is_new(table)

    def as_of(self, stmt: Statement) -> Migration:
        """This migration with ``known_columns`` as they are just before ``stmt`` (for lookups by column)."""
        return Migration(self.dialect, self.statements, self.source, self.state_before(stmt).flat(), self.sizes,
                         self.server_version)


def _split(sql: str, read: str) -> Iterator[tuple[int, str]]:
    """(line, text) of each statement; the text keeps the comments before it."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(read).tokenize(sql)
    except TokenError as exc:
        raise UnreadableSource(f"cannot read the SQL: {exc}") from None
    start = 0
    first_line: int | None = None
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            chunk = sql[start:token.start]
            if chunk.strip() and first_line is not None:
                yield first_line, chunk
            start, first_line = token.end + 1, None
        elif first_line is None:
            first_line = token.line
    tail = sql[start:]
    if first_line is not None and tail.strip():
        yield first_line, tail


def _read_sqlglot(sql: str, dialect: str) -> Iterator[tuple[int, str, list[Action]]]:
    """(line, text, actions) of each statement, read by sqlglot in ``dialect``."""
    read = dialects.facts(dialect).sqlglot
    for line, chunk in _split(sql, read):
        try:
            node: exp.Expression | None = sqlglot.parse_one(chunk, read=read)  # type: ignore[assignment]
        except (ParseError, TokenError):
            node = None
        if isinstance(node, exp.Semicolon):
            continue
        yield line, chunk, actions_of(node, read, dialect) if node is not None else [Action("unparsed")]


def _read_postgresql(sql: str, dialect: str) -> Iterator[tuple[int, str, list[Action]]]:
    """(line, text, actions) of each statement, read by PostgreSQL's own parser (pglast)."""
    from dbrunbook.sql._pg import read_statements  # pglast is loaded only when PostgreSQL SQL is read

    return read_statements(sql, dialect)


_Reader = Callable[[str, str], Iterator[tuple[int, str, list[Action]]]]
#: Each parser a dialect can name as its ``sql_reader``.
_BY_PARSER: dict[str, _Reader] = {"pglast": _read_postgresql, "sqlglot": _read_sqlglot}
#: The reader of each dialect: SQL -> (line, statement text, actions) per statement.
READERS: dict[str, _Reader] = {d.name: _BY_PARSER[d.sql_reader] for d in dialects.registered()}


def parse_sql(sql: str, dialect: str, source: str = "", first_line: int = 1,
              in_transaction: bool = False, autocommit: bool = False) -> Migration:
    """Split and parse ``sql`` for ``dialect`` into a :class:`Migration` of statements.

    ``in_transaction`` says whether the SQL runs inside a transaction that it does not open
    itself (SQL captured from Alembic online, where the driver opened it). ``autocommit``: the
    session runs every statement on its own (``alembic_isolation_level = "AUTOCOMMIT"``), so the
    BEGIN Alembic renders around a revision opens no transaction there.
    """
    if dialect not in READERS:
        raise UsageError(f"lint does not know the dialect {dialect!r} (known: {', '.join(sorted(READERS))})")
    migration = Migration(dialect, [], source)
    in_tx = in_transaction
    tx = 1 if in_transaction else 0
    blocks = tx
    settings: dict[str, str] = {}
    for line, chunk, actions in READERS[dialect](sql, dialect):
        stmt = Statement(len(migration.statements) + 1, line + first_line - 1, chunk.strip(), dialect,
                         actions=actions, in_transaction=in_tx, transaction=tx if in_tx else 0,
                         settings=dict(settings))
        for match in _SILENCE.finditer(chunk):
            reason = (match.group(2) or "").strip()
            for code in re.split(r"\s*,\s*", match.group(1)):
                if reason:
                    stmt.silenced[code] = reason
                else:
                    stmt.unreasoned.append(code)
        for action in stmt.actions:
            if action.kind == "begin" and not autocommit:
                in_tx, blocks = True, blocks + 1
                tx = blocks
            elif action.kind == "commit":
                in_tx = False
            elif action.kind == "set":
                settings[action.name] = str(action.details.get("value", ""))
        migration.statements.append(stmt)
    return migration
