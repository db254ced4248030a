"""Renaming a column breaks the code that runs during and after the deploy.

Old code selects or inserts the old name and fails until every server runs the new code.
SQLite batch mode renames by copying the column into the recreated table under the new name.
A column of a table the migration created, or one it added, is not reported: no running
code uses it yet.
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
    from dbrunbook.sql.model import Statement


#: The equivalent rules of other migration linters.
PEERS = ("squawk: renaming-column", "strong_migrations: rename_column")

@registry.rule("BC002", "rename-column", "warn",
               safe="add the new column, write both, backfill, move reads, drop the old column later")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("rename_column", "modify_column", "create_table"):
        if action.kind == "create_table":
            if action.table.startswith(BATCH_PREFIX):
                yield from _batch_renames(ctx, stmt, action.table, batch_copy(ctx.migration, stmt, action)[1])
            continue
        old = action.column if action.kind == "rename_column" else action.details.get("renamed_from")
        new = action.details.get("to") if action.kind == "rename_column" else action.column
        if old and old != new and _in_use(ctx, stmt, action.table, old):
            yield ctx.finding(stmt, f"column {action.table}.{old} is renamed to {new}", f"{action.table}.{old}")


def _in_use(ctx: LintContext, stmt: Statement, table: str, column: str) -> bool:
    """True when running code may use ``table.column``: the target has it, not only this migration."""
    state = ctx.migration.state_before(stmt).tables.get(table)
    return on_existing_table(ctx.migration, stmt, table) and (state is None or column not in state.created)


def _batch_renames(ctx: LintContext, stmt: Statement, copy: str, copies: list[list[object]]) -> Iterator[Finding]:
    """A column of the copy filled from one column of another name: batch mode's rename."""
    table = copy.removeprefix(BATCH_PREFIX)
    targets = {str(column) for column, _ in copies}
    for column, read in copies:
        old = read[0] if isinstance(read, list) and len(read) == 1 else None
        if old and old != column and old not in targets and _in_use(ctx, stmt, table, str(old)):
            yield ctx.finding(stmt, f"column {table}.{old} is renamed to {column} (the table is recreated)",
                              f"{table}.{old}", batch=True)
