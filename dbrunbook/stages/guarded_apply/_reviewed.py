"""Exactly the reviewed SQL: what an apply runs is compared, statement by statement, with the plan's upgrade SQL.

The plan run's ``03-migration/upgrade.sql`` is what was reviewed (linted, estimated, rehearsed). It was
rendered offline by Alembic (literal values) or captured while the revisions ran on a schema-only copy
(``sql_source`` says which); the apply runs the same scripts online, with bound parameters. So statements
are compared by **shape**: parsed (by the dialect's ``sql_reader``: pglast for PostgreSQL, sqlglot for the
others), with literals and parameters alike reduced to placeholders, whitespace, comments and trailing
semicolons gone. What is not the migration's own is left out on both sides: transaction control, Alembic's
version-table statements and, when the reference was captured, the reads the capture left out (``SELECT``,
``PRAGMA``, ``SHOW``). Alembic renders one ``INSERT`` per row offline where it runs one ``executemany``
online, so repeats of one ``INSERT`` shape count once. A statement a parser cannot read is compared as its text.

:class:`Gate` checks each statement before it runs and raises :class:`NotReviewed` at the first one that is
not the next reviewed statement: it never reaches the database.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from dbrunbook import dialects
from dbrunbook.alembic_ops._child import _NOT_MIGRATION

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # unsupported syntax falls back to text, quietly

VERSION_TABLE = "alembic_version"
#: Reads Alembic (and reflection) issue around the revisions: not part of the migration, left out of its record
#: and of the comparison, on both sides alike.
BOOKKEEPING = re.compile(r"^\s*(PRAGMA|SHOW|DESCRIBE|BEGIN|COMMIT|ROLLBACK)\b|^\s*SELECT\b.*\b(pg_catalog|"
                         r"information_schema|sqlite_master|sqlite_temp_master|alembic_version|pg_backend_pid|"
                         r"CONNECTION_ID)\b", re.I | re.S)
#: Alembic ends every statement it renders with this; the captured SQL is written the same way.
_TERMINATOR = ";\n\n"


@dataclass(frozen=True)
class Shape:
    """A statement reduced for comparison: ``key`` is compared; ``kind`` says what it is; ``text`` is shown."""

    key: str
    kind: str  # statement, insert, transaction, version
    text: str

    @property
    def compared(self) -> bool:
        return self.kind in ("statement", "insert")


class NotReviewed(Exception):
    """The apply was about to run (or had not run) a statement other than the reviewed one: it stops here."""

    def __init__(self, index: int, reviewed: Shape | None, executed: Shape | None, total: int) -> None:
        self.index, self.reviewed, self.executed, self.total = index, reviewed, executed, total
        if executed is None:
            what = f"reviewed statement {index} of {total} did not run: {_short(reviewed)}"
        elif reviewed is None:
            what = f"statement {index} is not in the reviewed SQL ({total} statements): {_short(executed)}"
        else:
            what = f"statement {index} is not the reviewed one: {_short(executed)}; reviewed: {_short(reviewed)}"
        super().__init__(what)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "reviewed_statements": self.total,
                "reviewed": self.reviewed.text if self.reviewed else None,
                "executed": self.executed.text if self.executed else None}


def _short(shape: Shape | None) -> str:
    text = shape.text if shape else ""
    return text if len(text) <= 160 else text[:157] + "..."


def _text(sql: str) -> str:
    """One line: no comment lines, no runs of whitespace, no trailing semicolons."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return " ".join(" ".join(lines).split()).rstrip(";").strip()


def split(sql: str, dialect: str) -> list[str]:
    """The statements of ``sql`` (comment-only parts dropped): pglast splits PostgreSQL's, else Alembic's terminator."""
    found = dialects.get(dialect)
    if found is not None and found.sql_reader == "pglast":
        try:
            from pglast import parser

            return [s for s in parser.split(sql) if _text(s)]
        except Exception:  # pglast.parser.ParseError: the terminator split below still separates Alembic's output
            pass
    # Alembic writes each statement followed by ";" and a blank line, offline and in the captured SQL alike.
    return [chunk for chunk in sql.split(_TERMINATOR) if _text(chunk)]


def shape(sql: str, dialect: str, version_table: str = VERSION_TABLE) -> Shape:
    """The shape of one statement (its text when the dialect's parser cannot read it)."""
    text = _text(sql)
    found = dialects.get(dialect)
    try:
        if found is not None and found.sql_reader == "pglast":
            return _pg_shape(text, version_table)
        if found is not None:
            return _sqlglot_shape(text, found.sqlglot, version_table)
    except Exception:  # a parse error: the statement is compared as its text
        pass
    return Shape(text, "statement", text)


def _pg_shape(text: str, version_table: str) -> Shape:
    from pglast import ast, parse_sql, parser, visitors

    [raw] = parse_sql(text)
    node = raw.stmt
    if node is None:
        return Shape(text, "statement", text)
    if isinstance(node, ast.TransactionStmt):
        kind = "transaction"
    elif version_table in {name.split(".")[-1] for name in visitors.referenced_relations(node)}:
        kind = "version"
    else:
        kind = "insert" if isinstance(node, ast.InsertStmt) else "statement"
    return Shape(parser.fingerprint(text), kind, text)


def _sqlglot_shape(text: str, reader: str, version_table: str) -> Shape:
    import sqlglot
    from sqlglot import exp

    parsed = sqlglot.parse_one(text, read=reader)
    if parsed is None:
        return Shape(text, "statement", text)
    if isinstance(parsed, (exp.Transaction, exp.Commit, exp.Rollback)):
        return Shape(text, "transaction", text)
    if isinstance(parsed, exp.Command) and parsed.name.upper() in ("START", "SAVEPOINT", "RELEASE"):
        return Shape(text, "transaction", text)
    if any(table.name.lower() == version_table for table in parsed.find_all(exp.Table)):
        return Shape(text, "version", text)

    def placeholder(node: exp.Expression) -> exp.Expression:
        # Literal values and bound parameters alike: offline SQL has the one, executed SQL the other.
        if isinstance(node, (exp.Literal, exp.Placeholder, exp.Parameter, exp.Null, exp.Boolean)):
            return exp.Placeholder()
        return node

    key = parsed.transform(placeholder).sql(dialect=reader, comments=False)
    return Shape(" ".join(key.split()), "insert" if isinstance(parsed, exp.Insert) else "statement", text)


def reviewed(sql: str, dialect: str, version_table: str = VERSION_TABLE) -> list[Shape]:
    """The reviewed statements of ``sql`` that are compared, repeats of one INSERT shape counted once."""
    out: list[Shape] = []
    for statement in split(sql, dialect):
        if BOOKKEEPING.search(_text(statement)):
            continue  # the apply leaves these out of what it runs through the gate
        found = shape(statement, dialect, version_table)
        if found.compared and not (found.kind == "insert" and out and out[-1].key == found.key):
            out.append(found)
    return out


def shape_source(sql: str, parameters: Any, context: Any, dialect: str) -> str:
    """What to reduce for an executed statement: compiled again with readable placeholders when it has bound ones.

    The driver's own placeholders (``%(name)s``, ``%s``) are what no SQL parser reads; the statement
    SQLAlchemy compiled is rendered again for a dialect whose placeholders the parser knows.
    """
    compiled = getattr(context, "compiled", None)
    found = dialects.get(dialect)
    if not parameters or compiled is None or found is None or getattr(compiled, "statement", None) is None:
        return sql
    try:
        return str(compiled.statement.compile(dialect=found.statement_compiler()))
    except Exception:  # a construct only its own dialect compiles: compared as executed
        return sql


class Gate:
    """Lets through only the next reviewed statement; raises :class:`NotReviewed` at the first other one."""

    def __init__(self, expected: list[Shape], dialect: str, captured: bool,
                 version_table: str = VERSION_TABLE) -> None:
        self.expected, self.dialect, self.captured, self.version_table = expected, dialect, captured, version_table
        self.position = 0
        self._last: Shape | None = None

    def rewind(self, position: int = 0) -> None:
        """Back to ``position`` (an attempt that did nothing runs again)."""
        self.position = position
        self._last = self.expected[position - 1] if position else None

    def check(self, sql: str, source: str | None = None) -> None:
        """Raise :class:`NotReviewed` unless ``sql`` (reduced from ``source``) is the next reviewed statement."""
        if BOOKKEEPING.search(sql) or (self.captured and sql.lstrip().upper().startswith(_NOT_MIGRATION)):
            return  # reads around the migration; and those the capture that made the reference left out
        got = shape(source or sql, self.dialect, self.version_table)
        if not got.compared:
            return
        if self.position < len(self.expected) and got.key == self.expected[self.position].key:
            self.position += 1
            self._last = got
            return
        if got.kind == "insert" and self._last is not None and got.key == self._last.key:
            return  # another row of the same INSERT (one statement per row offline, one executemany online)
        nxt = self.expected[self.position] if self.position < len(self.expected) else None
        raise NotReviewed(self.position + 1, nxt, got, len(self.expected))

    def finish(self) -> None:
        """Raise :class:`NotReviewed` when a reviewed statement did not run."""
        if self.position < len(self.expected):
            raise NotReviewed(self.position + 1, self.expected[self.position], None, len(self.expected))


def compare(expected: list[Shape], statements: list[str], dialect: str, captured: bool) -> NotReviewed | None:
    """The first difference between the reviewed shapes and ``statements`` (None when they match)."""
    gate = Gate(expected, dialect, captured)
    try:
        for statement in statements:
            gate.check(statement)
        gate.finish()
    except NotReviewed as exc:
        return exc
    return None
