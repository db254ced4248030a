"""DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the partitioned table.

Every query on the parent table, reads included, waits for the lock and queues behind it.
DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+) takes SHARE UPDATE EXCLUSIVE instead and
waits for running queries in two transactions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import on_existing_table

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The equivalent rules of other migration linters.
PEERS = ("squawk: require-concurrent-partition-detach",)


@registry.rule("LK013", "detach-partition-blocking", "warn", dialects=("postgresql",),
               safe="ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY, outside a transaction")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("detach_partition"):
        if not action.details.get("concurrently") and on_existing_table(ctx.migration, stmt, action.table):
            yield ctx.finding(stmt, f"partition {action.name} is detached from {action.table} under ACCESS EXCLUSIVE",
                              action.table)
