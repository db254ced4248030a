"""ADD COLUMN ... GENERATED ALWAYS AS (...) STORED rewrites the table.

A stored generated column is computed and written for every existing row while the table
is held under ACCESS EXCLUSIVE: no reads or writes until the rewrite ends.
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
PEERS = ("strong_migrations: add_column_generated_stored",)


@registry.rule("LK016", "generated-column-rewrite", "block", dialects=("postgresql",),
               safe="add a plain nullable column, fill new rows with a trigger, backfill existing rows in batches")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("add_column"):
        if action.details.get("generated") == "stored" and on_existing_table(ctx.migration, stmt, action.table):
            yield ctx.finding(stmt, f"{action.object} is a stored generated column: the table is rewritten under "
                              "ACCESS EXCLUSIVE", action.object)
