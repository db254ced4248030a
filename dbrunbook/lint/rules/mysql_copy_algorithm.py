"""MariaDB/MySQL DDL that needs ALGORITHM=COPY blocks writes for the whole table copy.

Online DDL runs most changes INSTANT (metadata only) or INPLACE (writes allowed); changing a
column's type, adding a foreign key with checks on, or changing a column whose old
definition is unknown falls back to COPY, which holds a shared lock while every row is copied.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import locks, registry
from dbrunbook.lint.rules._util import on_existing_table

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


@registry.rule("LK010", "mysql-copy-algorithm", "warn", dialects=("mariadb", "mysql"),
               safe="pin ALGORITHM=INPLACE, LOCK=NONE (or INSTANT) so the server refuses rather than copies; "
                    "for type changes use an online schema change tool or a new column + backfill")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions():
        if not on_existing_table(ctx.migration, stmt, action.table):
            continue
        # The old definition a MODIFY is compared with is the one at this statement.
        as_of = ctx.migration.as_of(stmt) if action.kind == "modify_column" else ctx.migration
        algorithm = locks.mysql_algorithm(action, as_of)
        if algorithm == "COPY" and not action.details.get("algorithm"):
            yield ctx.finding(stmt, f"{action.kind.replace('_', ' ')} on {action.object} needs ALGORITHM=COPY: "
                              "writes are blocked while the table is copied", action.object)
