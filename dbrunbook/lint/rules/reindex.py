"""REINDEX without CONCURRENTLY blocks writes to the table, and reads that use the index.

A plain REINDEX holds a SHARE lock on the table (no INSERT, UPDATE or DELETE) and ACCESS
EXCLUSIVE on each index it rebuilds (no query can use it) for the whole rebuild. REINDEX
CONCURRENTLY (PostgreSQL 12+) builds the new index beside the old one and swaps them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The equivalent rules of other migration linters.
PEERS = ("squawk: require-concurrent-reindex",)


@registry.rule("LK012", "reindex-blocking", "warn", dialects=("postgresql",),
               safe="REINDEX ... CONCURRENTLY, outside a transaction (op.get_context().autocommit_block())")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("reindex"):
        if not action.details.get("concurrently") and not ctx.migration.is_new(stmt, action.table):
            what = f"{action.details.get('target', 'index')} {action.name}".strip()
            yield ctx.finding(stmt, f"REINDEX {what} without CONCURRENTLY blocks writes for the whole rebuild",
                              action.table or action.name)
