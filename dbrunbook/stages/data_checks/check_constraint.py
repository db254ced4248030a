"""CHECK added or narrowed, enum values removed: rows the new rule rejects.

A CHECK is validated against existing rows when it is added (it passes on NULL, as the query
does). Both come from the schema diff's ``add_check`` and enum changes (see ``_diff``).
"""
from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dbrunbook.stages.data_checks._base import CheckContext, CheckResult, rule


@rule("DC004", "check", "block",
               safe="fix or quarantine the rows first, or add the CHECK NOT VALID (PostgreSQL) and validate later")
def check(ctx: CheckContext) -> Iterator[CheckResult]:
    for diff in ctx.of("add_check"):
        constraint: sa.CheckConstraint = diff[1]
        table = ctx.table(constraint.table.name)
        if table is None:
            continue
        sql = ctx.sql(constraint.sqltext)
        columns = [table.c[n] for n in _columns(sql, ctx.dialect.facts.sqlglot) if n in table.c]
        violates = sa.text(f"NOT ({sql})")
        option = ctx.dialect.facts.not_valid_option()
        migration = (f"op.create_check_constraint({constraint.name!r}, {table.name!r}, {sql!r}, "
                     f"{option}=True)  # then VALIDATE CONSTRAINT once the rows are fixed") if option else ""
        yield ctx.rows(table, columns, "check", violates, f"violate CHECK ({sql})", migration=migration)
    for diff in ctx.of("modify_enum"):
        _, _, table_name, column_name, before, values = diff
        table = ctx.table(table_name)
        if table is None or column_name not in table.c:
            continue
        column = table.c[column_name]
        where = sa.and_(column.is_not(None), ctx.dialect.text(column).not_in(values))
        removed = sorted(set(before or []) - set(values))
        what = f"hold {column_name} values outside ({', '.join(values)})"
        if removed:
            what += f", the removed {', '.join(removed)} among them"
        yield ctx.rows(table, [column], "enum", where, what, fix=sa.literal(values[0]),
                       migration="# keep the removed values in the enum until no row uses them")


def _columns(sql: str, read: str) -> list[str]:
    """Column names a CHECK expression reads (sqlglot parses it in ``read``; empty if it cannot)."""
    try:
        tree = sqlglot.parse_one(sql, read=read)
    except sqlglot.errors.ParseError:
        return []
    return list(dict.fromkeys(c.name for c in tree.find_all(exp.Column)))
