"""DROP COLUMN destroys the column's data and breaks code that still reads it.

Running application code that selects or inserts the column fails as soon as the migration
commits; the values cannot be restored by a downgrade. SQLite batch mode drops a column by
leaving it out of the copy of the table: a column of the table at that point that the
``INSERT ... SELECT`` does not read is dropped. A table the migration itself created (and
left empty) is not reported.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import batch_copy, on_existing_table
from dbrunbook.sql.state import BATCH_PREFIX

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


#: The equivalent rules of other migration linters.
PEERS = ("squawk: ban-drop-column", "strong_migrations: remove_column")

@registry.rule("DS002", "drop-column", "block",
               safe="release code that no longer uses the column first; drop it in a later migration")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("drop_column", "create_table"):
        if action.kind == "drop_column":
            if on_existing_table(ctx.migration, stmt, action.table):
                yield ctx.finding(stmt, f"column {action.object} is dropped with its data", action.object)
            continue
        table = action.table.removeprefix(BATCH_PREFIX)
        if table == action.table or not on_existing_table(ctx.migration, stmt, table):
            continue
        columns, copies = batch_copy(ctx.migration, stmt, action)
        # What the copy reads from the table survives (renamed, perhaps); without the copy, what it keeps by name.
        kept = {c for _, read in copies for c in read} if copies else set(action.details.get("columns", {}))
        for column in (c for c in columns if c not in kept):
            yield ctx.finding(stmt, f"column {table}.{column} is left out of the recreated table, "
                              "dropped with its data", f"{table}.{column}")
