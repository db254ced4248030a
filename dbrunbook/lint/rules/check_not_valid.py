"""A CHECK constraint added without NOT VALID scans the table under ACCESS EXCLUSIVE.

Every row is checked while neither reads nor writes can proceed.
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
PEERS = ("squawk: constraint-missing-not-valid", "strong_migrations: add_check_constraint")

@registry.rule("LK006", "check-not-valid", "warn", dialects=("postgresql",),
               safe="ADD CONSTRAINT ... CHECK (...) NOT VALID; then VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE)")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("add_constraint"):
        if (action.details.get("type") == "check" and not action.details.get("not_valid")
                and on_existing_table(ctx.migration, stmt, action.table)):
            yield ctx.finding(stmt, f"check {action.name} on {action.table} is validated under ACCESS EXCLUSIVE",
                              action.table)
