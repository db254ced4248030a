"""Renaming a table breaks the code that runs during and after the deploy.

Application servers still running the old code query the old name and fail until they are
replaced. A table the migration itself created is not reported: no running code uses it yet.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import on_existing_table
from dbrunbook.sql.state import BATCH_PREFIX

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


#: The equivalent rules of other migration linters.
PEERS = ("squawk: renaming-table", "strong_migrations: rename_table")

@registry.rule("BC001", "rename-table", "warn",
               safe="create the new table (or a view with the old name), move code over, drop the old name later")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("rename_table"):
        if not action.table.startswith(BATCH_PREFIX) and on_existing_table(ctx.migration, stmt, action.table):
            yield ctx.finding(stmt, f"table {action.table} is renamed to {action.details.get('to')}", action.table)
