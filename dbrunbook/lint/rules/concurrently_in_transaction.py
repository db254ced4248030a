"""CONCURRENTLY inside a transaction block fails.

CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY and DETACH PARTITION CONCURRENTLY cannot
run inside a transaction; Alembic runs each migration in one, so the statement errors unless
it is in an autocommit block.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


#: The equivalent rules of other migration linters.
PEERS = ("squawk: ban-concurrent-index-creation-in-transaction",)

@registry.rule("TX001", "concurrently-in-transaction", "block", dialects=("postgresql",),
               safe="wrap the statement in `with op.get_context().autocommit_block():`")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("create_index", "drop_index", "reindex", "detach_partition"):
        if action.details.get("concurrently") and stmt.in_transaction:
            yield ctx.finding(stmt, f"{action.kind.replace('_', ' ')} {action.name} uses CONCURRENTLY inside a "
                              "transaction", action.name)
