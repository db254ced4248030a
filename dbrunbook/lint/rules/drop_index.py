"""DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table.

The drop itself is quick, but it queues behind every running query on the table and every
later query queues behind it. An index on a table the migration created is not reported.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import locks_existing

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


#: The equivalent rules of other migration linters.
PEERS = ("squawk: require-concurrent-index-deletion", "strong_migrations: remove_index")

@registry.rule("LK004", "drop-index-blocking", "warn", dialects=("postgresql",),
               safe="DROP INDEX CONCURRENTLY IF EXISTS, outside a transaction")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("drop_index"):
        if not action.details.get("concurrently") and locks_existing(ctx.migration, stmt, action):
            yield ctx.finding(stmt, f"index {action.name} is dropped without CONCURRENTLY", action.name)
