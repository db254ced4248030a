"""CREATE INDEX without CONCURRENTLY blocks writes for the whole build.

A plain index build holds a SHARE lock: reads go on, but every INSERT, UPDATE and DELETE on
the table waits until the table has been scanned and sorted.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import on_existing_table

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


#: The equivalent rules of other migration linters.
PEERS = ("squawk: require-concurrent-index-creation", "strong_migrations: add_index")

@registry.rule("LK003", "create-index-blocking", "warn", dialects=("postgresql",),
               safe="CREATE INDEX CONCURRENTLY IF NOT EXISTS, outside a transaction "
                    "(op.get_context().autocommit_block())")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("create_index"):
        if not action.details.get("concurrently") and on_existing_table(ctx.migration, stmt, action.table):
            yield ctx.finding(stmt, f"index {action.name} on {action.table} is built without CONCURRENTLY: "
                              "writes wait for the whole build", action.table)
