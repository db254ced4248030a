"""The SQL pieces :mod:`.statements` and :mod:`.replayed` share: the revision's own SQL, and SQL shown to people.

Every query of the replay is SQLAlchemy Core, so the dialect quotes the names and binds the values. What the
revision wrote itself (an UPDATE's SET expressions and WHERE predicate, a DELETE's WHERE, the SELECT of an INSERT
... SELECT, a new column's default, as :mod:`._statements` read them with pglast / sqlglot) is already SQL of the
dialect: it enters a query as text here, and nowhere else.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dbrunbook.stages.data_checks._base import CheckContext


def revision_sql(ctx: CheckContext, sql: str) -> sa.ColumnElement[Any]:
    """An expression or predicate the revision wrote, in parentheses, reaching the driver as the revision's did.

    ``literal_column`` rather than ``text()``: text() would take a ``:word`` in the revision's string literals
    (a JSON document, a time) for a bind parameter.
    """
    return sa.literal_column(f"({_as_sql(ctx, sql)})")


def revision_select(ctx: CheckContext, sql: str, name: str) -> sa.Subquery:
    """The SELECT of an INSERT ... SELECT the revision wrote, as the derived table ``name`` (its columns are not
    known here: it is selected with ``*``)."""
    # A FROM item must be text(), which reads ``:word`` as a bind parameter even inside a string literal: every
    # colon is escaped, so it reads none, and the compiler writes each back as it was (``::`` casts included).
    return sa.text(_as_sql(ctx, sql).replace(":", "\\:")).columns().subquery(name)


def column_of(source: sa.FromClause, name: str) -> sa.ColumnElement[Any]:
    """The column ``name`` of ``source``; a name the rows lack there (a key the migration renamed) stays unqualified,
    for the database to refuse as it would refuse the statement, so the reason reads as the database's."""
    return source.c[name] if name in source.c else sa.column(name)


def _as_sql(ctx: CheckContext, recorded: str) -> str:
    """A piece of a statement the revisions ran, as SQL for SQLAlchemy to compile.

    The statements are recorded as the driver received them (:mod:`dbrunbook.alembic_ops._child`): for a ``format``
    / ``pyformat`` driver (psycopg, PyMySQL) with each ``%`` doubled. SQLAlchemy doubles every ``%`` of a query
    for such a driver, so the recorded doubling is undone first: the driver gets the text the revision's did.
    """
    return recorded.replace("%%", "%") if ctx.doubles_percent else recorded
