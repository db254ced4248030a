"""A column type change that is not binary-compatible rewrites the table.

ALTER COLUMN ... TYPE holds ACCESS EXCLUSIVE and rewrites every row (and every index on the
column) unless the new type is binary-compatible with the old one: widening varchar(n) to
varchar(m >= n) or text, varchar to text, or numeric gaining precision at the same scale.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import on_existing_table
from dbrunbook.sql.types import binary_compatible

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The equivalent rules of other migration linters.
PEERS = ("squawk: changing-column-type", "strong_migrations: change_column")

@registry.rule("LK002", "type-change-rewrite", "block", dialects=("postgresql",),
               safe="add a new column of the new type, backfill it in batches, then swap names in one short step")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("alter_type"):
        if not on_existing_table(ctx.migration, stmt, action.table):
            continue
        old = (ctx.migration.column_before(stmt, action.table, action.column) or {}).get("type")
        new = action.details.get("type", "")
        if old and binary_compatible(old, new):
            continue
        what = f"from {old} to {new}" if old else f"to {new} (old type unknown)"
        yield ctx.finding(stmt, f"{action.object} changes type {what}: the table and its indexes are rewritten "
                          "under ACCESS EXCLUSIVE", action.object, old_type=old, new_type=new)
