"""NOT NULL added, or a required column added without a default.

Setting NOT NULL on a column that holds NULLs fails on PostgreSQL and SQLite, and on MariaDB
in non-strict mode silently turns the NULLs into the type's zero value. A required column
added without a server default needs a value for every existing row.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from dbrunbook.stages.data_checks._base import PLACEHOLDER, PYTHON, CheckContext, CheckResult, rule, type_code


@rule("DC001", "not-null", "block",
               safe="backfill the NULLs first, or add the column nullable, backfill, then set NOT NULL")
def check(ctx: CheckContext) -> Iterator[CheckResult]:
    for diff in ctx.of("modify_nullable"):
        _, _, table_name, column_name, _, _, nullable = diff
        table = ctx.table(table_name)
        if nullable is not False or table is None or column_name not in table.c:
            continue
        column = table.c[column_name]
        yield ctx.rows(table, [column], "null", column.is_(None), f"have NULL in {column_name}",
                       fix=PLACEHOLDER, migration=_migration(ctx, table, column))
    for diff in ctx.of("add_column"):
        _, _, table_name, column = diff
        table = ctx.table(table_name)
        if table is None or column.nullable or column.server_default is not None or column.primary_key:
            continue
        result = ctx.rows(table, list(table.primary_key.columns) or list(table.columns)[:1], "required",
                          sa.true(), f"need a value for the new required column {column.name}")
        result.columns = [column.name]  # the sample shows the keys: the column does not exist yet
        if result.count:
            _new_column_remedies(ctx, result, table, column)
        yield result


def _new_column_remedies(ctx: CheckContext, result: CheckResult, table: sa.Table, column: sa.Column[Any]) -> None:
    """A new required column: a value for every row (a server default, or a backfill before NOT NULL), or nullable.

    Nothing is quarantined or updated: the column does not exist yet, and no row is wrong.
    """
    name = column.name

    def with_default(op: Any) -> None:
        op.add_column(table.name, sa.Column(name, column.type, nullable=False, server_default=sa.text("'<value>'")))

    def three_steps(op: Any) -> None:
        op.add_column(table.name, sa.Column(name, column.type, nullable=True))
        op.execute(_backfill(table.name, name))
        if ctx.dialect.facts.render_as_batch:  # no ALTER COLUMN: the table is copied with the column NOT NULL
            copy = table.to_metadata(sa.MetaData())
            copy.append_column(sa.Column(name, column.type, nullable=True))
            with op.batch_alter_table(table.name, copy_from=copy) as batch:
                batch.alter_column(name, existing_type=column.type, nullable=False)
        else:
            op.alter_column(table.name, name, existing_type=column.type, nullable=False)

    result.remedy("add it with a server default (edit the value first)", ctx.ddl(with_default))
    result.remedy("add it nullable, backfill by an expression (edit it first), then set NOT NULL",
                  ctx.ddl(three_steps))
    result.remedy("add it nullable, if NULL is a meaningful value for the existing rows",
                  ctx.ddl(lambda op: op.add_column(table.name, sa.Column(name, column.type, nullable=True))))
    added = f"op.add_column({table.name!r}, sa.Column({name!r}, {type_code(column.type)}, nullable=True))\n"
    result.remedy("change the migration", added + _tighten(ctx, table.name, name, column.type), PYTHON)


def _backfill(table: str, column: str) -> sa.Update:
    """``UPDATE table SET column = <value> WHERE column IS NULL``: the rows still to fill, so it can be rerun."""
    new = sa.table(table, sa.column(column))
    return sa.update(new).values({column: PLACEHOLDER}).where(new.c[column].is_(None))


def _tighten(ctx: CheckContext, table: str, column: str, type_: Any) -> str:
    """Alembic operations that fill the NULLs of ``column``, then set it NOT NULL."""
    fill = ctx.sql(_backfill(table, column))
    alter = f"alter_column({column!r}, existing_type={type_code(type_)}, nullable=False)"
    if ctx.dialect.facts.render_as_batch:
        alter = f"with op.batch_alter_table({table!r}) as batch:\n    batch.{alter}"
    else:
        alter = f"op.{alter.replace('(', f'({table!r}, ', 1)}"
    return f"op.execute({_literal(fill)})\n{alter}"


def _literal(sql: str) -> str:
    """``sql`` as a Python string literal that reads as the SQL (quotes unescaped) wherever it can."""
    if '"""' in sql or "\\" in sql or sql.endswith('"'):
        return repr(sql)
    return f'"""{sql}"""' if '"' in sql or "'" in sql else repr(sql)


def _migration(ctx: CheckContext, table: sa.Table, column: sa.Column[Any]) -> str:
    return _tighten(ctx, table.name, column.name, column.type)
