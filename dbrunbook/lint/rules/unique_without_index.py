"""UNIQUE or PRIMARY KEY added without a prebuilt index builds it under ACCESS EXCLUSIVE.

The constraint's index is built while the table is locked against reads and writes, and the
build fails late if duplicates exist.
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
PEERS = ("squawk: disallowed-unique-constraint", "strong_migrations: add_unique_constraint")

@registry.rule("LK007", "unique-without-index", "warn", dialects=("postgresql",),
               safe="CREATE UNIQUE INDEX CONCURRENTLY ix ...; ALTER TABLE ... ADD CONSTRAINT ix UNIQUE USING INDEX ix")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("add_constraint"):
        if (action.details.get("type") in ("unique", "primary_key") and not action.details.get("using_index")
                and on_existing_table(ctx.migration, stmt, action.table)):
            yield ctx.finding(stmt, f"{action.details['type'].replace('_', ' ')} {action.name} on {action.table} "
                              "builds its index under ACCESS EXCLUSIVE", action.table)
