"""Renaming a column breaks the code that runs during and after the deploy.

Old code selects or inserts the old name and fails until every server runs the new code.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from .. import registry

if TYPE_CHECKING:
    from ...results import Finding
    from ..runner import LintContext


@registry.rule("BC002", "rename-column", "warn",
               safe="add the new column, write both, backfill, move reads, drop the old column later")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("rename_column", "modify_column"):
        old = action.column if action.kind == "rename_column" else action.details.get("renamed_from")
        new = action.details.get("to") if action.kind == "rename_column" else action.column
        if old and old != new:
            yield ctx.finding(stmt, f"column {action.table}.{old} is renamed to {new}", f"{action.table}.{old}")
