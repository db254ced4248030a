"""VACUUM FULL and CLUSTER rewrite the whole table under ACCESS EXCLUSIVE.

Both copy every row into a new file and rebuild every index while no query, read or
write, can touch the table; the time grows with the table. CLUSTER without a table does
this to every table clustered before.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The equivalent rules of other migration linters.
PEERS = ("squawk: prefer-repack",)


@registry.rule("LK014", "vacuum-full-or-cluster", "block", dialects=("postgresql",),
               safe="leave it out of the migration: plain VACUUM reclaims space for reuse without the lock; "
                    "rebuild online with pg_repack (or REPACK CONCURRENTLY on PostgreSQL 19+) at a quiet time")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("vacuum", "cluster"):
        if action.kind == "vacuum" and not action.details.get("full"):
            continue
        if action.table and ctx.migration.is_new(stmt, action.table):
            continue
        verb = "VACUUM FULL" if action.kind == "vacuum" else "CLUSTER"
        yield ctx.finding(stmt, f"{verb} rewrites {action.table or 'every table it applies to'} under ACCESS "
                          "EXCLUSIVE: no reads or writes until it is done", action.table)
