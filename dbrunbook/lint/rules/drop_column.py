"""DROP COLUMN destroys the column's data and breaks code that still reads it.

Running application code that selects or inserts the column fails as soon as the migration
commits; the values cannot be restored by a downgrade.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from .. import registry

if TYPE_CHECKING:
    from ...results import Finding
    from ..runner import LintContext


@registry.rule("DS002", "drop-column", "block",
               safe="release code that no longer uses the column first; drop it in a later migration")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("drop_column"):
        yield ctx.finding(stmt, f"column {action.object} is dropped with its data", action.object)
    for stmt, action in ctx.actions("create_table"):
        # SQLite batch mode drops columns by leaving them out of the copy of the table.
        table = action.table.removeprefix("_alembic_tmp_")
        if table != action.table:
            kept = set(action.details.get("columns", {}))
            for column in sorted(c for t, c in ctx.migration.known_columns if t == table and c not in kept):
                yield ctx.finding(stmt, f"column {table}.{column} is left out of the recreated table, "
                                  "dropped with its data", f"{table}.{column}")
