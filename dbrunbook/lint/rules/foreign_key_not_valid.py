"""A foreign key added without NOT VALID scans the table while blocking writes on both tables.

ADD CONSTRAINT ... FOREIGN KEY takes SHARE ROW EXCLUSIVE on the table and the referenced
table and checks every row before it commits.
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
PEERS = ("squawk: adding-foreign-key-constraint", "strong_migrations: add_foreign_key")

@registry.rule("LK005", "foreign-key-not-valid", "warn", dialects=("postgresql",),
               safe="ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID; then VALIDATE CONSTRAINT in a later step")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("add_constraint"):
        if (action.details.get("type") == "foreign_key" and not action.details.get("not_valid")
                and on_existing_table(ctx.migration, stmt, action.table)):
            yield ctx.finding(stmt, f"foreign key {action.name} on {action.table} is validated while writes wait",
                              action.table)
