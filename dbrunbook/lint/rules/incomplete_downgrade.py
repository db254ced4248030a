"""A downgrade that does not undo every upgrade operation leaves the schema half rolled back.

After the rollback the old code meets a schema it does not expect (a column still NOT NULL,
an index or constraint still there).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook import dialects
from dbrunbook.lint import registry, reversibility

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


@registry.rule("RB002", "incomplete-downgrade", "warn", safe="add the missing inverse operation to downgrade()")
def check(ctx: LintContext) -> Iterator[Finding]:
    if ctx.rollback is None or not reversibility.changes(ctx.rollback[1]):
        return
    dropped = {(a.table, a.column) for _, a in ctx.rollback[1].actions("drop_column")}
    with_column = bool(getattr(dialects.get(ctx.dialect), "drop_column_drops_constraints", False))
    for item in reversibility.check(*ctx.rollback):
        columns = item.action.details.get("columns") or [""]
        if item.action.details.get("inline") and (item.action.table, columns[0]) in dropped:
            continue  # a constraint written in ADD COLUMN is dropped with the column
        if with_column and item.action.details.get("columns") and all(
                (item.action.table, c) in dropped for c in columns):
            continue  # PostgreSQL drops a constraint with the columns it is on (Buildbot's 065)
        if not item.undone:
            yield ctx.finding(item.statement, f"the downgrade does not undo {item.description}", item.object,
                              source=ctx.rollback[0].source, expected=item.inverse)
