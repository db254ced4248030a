"""NOT NULL added, or a required column added without a default.

Setting NOT NULL on a column that holds NULLs fails on PostgreSQL and SQLite, and on MariaDB
in non-strict mode silently turns the NULLs into the type's zero value. A required column
added without a server default needs a value for every existing row.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from dbrunbook.stages.data_checks._base import CheckContext, CheckResult, rule

_PLACEHOLDER: sa.ColumnElement[Any] = sa.literal_column("'<value>'")


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
                       fix=_PLACEHOLDER, migration=_migration(ctx, table_name, column_name))
    for diff in ctx.of("add_column"):
        _, _, table_name, column = diff
        table = ctx.table(table_name)
        if table is None or column.nullable or column.server_default is not None or column.primary_key:
            continue
        result = ctx.rows(table, list(table.primary_key.columns) or list(table.columns)[:1], "required",
                          sa.true(), f"need a value for the new required column {column.name}",
                          migration=_migration(ctx, table_name, column.name))
        result.columns = [column.name]  # the sample shows the keys: the column does not exist yet
        yield result


def _migration(ctx: CheckContext, table: str, column: str) -> Any:
    return (f"# in the migration, before tightening:\n"
            f"op.execute(\"UPDATE {ctx.quote(table)} SET {ctx.quote(column)} = ... "
            f"WHERE {ctx.quote(column)} IS NULL\")\n"
            f"op.alter_column({table!r}, {column!r}, nullable=False, server_default=...)")
