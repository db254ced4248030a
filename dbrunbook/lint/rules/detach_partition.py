"""DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the partitioned table.

Every query on the parent table, reads included, waits for the lock and queues behind it.
DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+) takes SHARE UPDATE EXCLUSIVE instead and
waits for running queries in two transactions. Judged for an older server (``--pg-version 13``),
the safe way is a short lock_timeout with retries, and CONCURRENTLY itself is reported, since it
fails there.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import on_existing_table

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The first PostgreSQL with DETACH PARTITION ... CONCURRENTLY, and the safe way before it.
_CONCURRENT_DETACH = 14
_OLD_SERVER_FIX = ("detach under a short lock_timeout, retried, when the parent is quiet "
                   "(DETACH PARTITION ... CONCURRENTLY needs PostgreSQL 14)")

#: The equivalent rules of other migration linters.
PEERS = ("squawk: require-concurrent-partition-detach",)


@registry.rule("LK013", "detach-partition-blocking", "warn", dialects=("postgresql",),
               safe="ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY, outside a transaction")
def check(ctx: LintContext) -> Iterator[Finding]:
    # Only when told the server: the default version (13) would otherwise hide the better way of 14+.
    old_server = ctx.pg_version < _CONCURRENT_DETACH and ctx.pg_version_known
    for stmt, action in ctx.actions("detach_partition"):
        if action.details.get("concurrently"):
            if old_server:
                failing = ctx.finding(stmt, f"DETACH PARTITION {action.name} CONCURRENTLY fails: PostgreSQL "
                                      f"{ctx.pg_version} has no concurrent detach (it came in {_CONCURRENT_DETACH})",
                                      action.table, fix=_OLD_SERVER_FIX)
                failing.severity = "block"  # the statement errors: worse than the lock it avoids
                yield failing
        elif on_existing_table(ctx.migration, stmt, action.table):
            yield ctx.finding(stmt, f"partition {action.name} is detached from {action.table} under ACCESS EXCLUSIVE",
                              action.table, fix=_OLD_SERVER_FIX if old_server else None)
