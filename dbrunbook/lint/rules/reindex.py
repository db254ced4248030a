"""REINDEX without CONCURRENTLY blocks writes to the table, and reads that use the index.

A plain REINDEX holds a SHARE lock on the table (no INSERT, UPDATE or DELETE) and ACCESS
EXCLUSIVE on each index it rebuilds (no query can use it) for the whole rebuild. REINDEX
CONCURRENTLY (PostgreSQL 12+) builds the new index beside the old one and swaps them. Judged
for an older server (``--pg-version 11``), the safe way is a concurrent copy of the index, and
REINDEX CONCURRENTLY itself is reported, since it fails there.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The first PostgreSQL with REINDEX CONCURRENTLY, and the safe way before it.
_CONCURRENT_REINDEX = 12
_OLD_SERVER_FIX = ("CREATE INDEX CONCURRENTLY a copy of the index, DROP INDEX CONCURRENTLY the old one, rename the "
                   "copy (REINDEX CONCURRENTLY needs PostgreSQL 12)")

#: The equivalent rules of other migration linters.
PEERS = ("squawk: require-concurrent-reindex",)


@registry.rule("LK012", "reindex-blocking", "warn", dialects=("postgresql",),
               safe="REINDEX ... CONCURRENTLY, outside a transaction (op.get_context().autocommit_block())")
def check(ctx: LintContext) -> Iterator[Finding]:
    old_server = ctx.pg_version < _CONCURRENT_REINDEX
    for stmt, action in ctx.actions("reindex"):
        what = f"{action.details.get('target', 'index')} {action.name}".strip()
        if action.details.get("concurrently"):
            if old_server and ctx.pg_version_known:  # the default version alone does not condemn a statement
                failing = ctx.finding(stmt, f"REINDEX {what} CONCURRENTLY fails: PostgreSQL {ctx.pg_version} "
                                      f"has no REINDEX CONCURRENTLY (it came in {_CONCURRENT_REINDEX})",
                                      action.table or action.name, fix=_OLD_SERVER_FIX)
                failing.severity = "block"  # the statement errors: worse than the lock it avoids
                yield failing
        elif not ctx.migration.is_new(stmt, action.table):
            yield ctx.finding(stmt, f"REINDEX {what} without CONCURRENTLY blocks writes for the whole rebuild",
                              action.table or action.name, fix=_OLD_SERVER_FIX if old_server else None)
