"""VALIDATE CONSTRAINT in the transaction that added the constraint scans under its lock.

ADD CONSTRAINT ... NOT VALID takes a strong lock (ACCESS EXCLUSIVE, or SHARE ROW EXCLUSIVE
for a foreign key) that is held until the transaction commits. Validating in the same
transaction therefore scans the table while that lock still blocks writes, which is what
NOT VALID was meant to avoid.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


@registry.rule("TX002", "validate-in-same-transaction", "warn", dialects=("postgresql",),
               safe="commit after ADD CONSTRAINT ... NOT VALID; VALIDATE in its own transaction "
                    "(op.get_context().autocommit_block())")
def check(ctx: LintContext) -> Iterator[Finding]:
    added = {(a.table, a.name): s for s, a in ctx.actions("add_constraint") if a.details.get("not_valid")}
    for stmt, action in ctx.actions("validate_constraint"):
        first = added.get((action.table, action.name))
        if first is not None and stmt.transaction and first.transaction == stmt.transaction:
            yield ctx.finding(stmt, f"{action.name} is validated in the transaction that added it, "
                              "under the lock NOT VALID was meant to release", action.table)
