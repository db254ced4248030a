"""TRUNCATE deletes every row of a table.

It cannot be rolled back by a downgrade and takes ACCESS EXCLUSIVE (PostgreSQL).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import on_existing_table

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


@registry.rule("DS003", "truncate", "block", safe="delete the rows you mean to, in batches, after a backup")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("truncate"):
        if on_existing_table(ctx.migration, stmt, action.table):
            yield ctx.finding(stmt, f"table {action.table} is truncated", action.table)
