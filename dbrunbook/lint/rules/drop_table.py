"""DROP TABLE destroys the table and its data.

Rows cannot be brought back by a downgrade, and code still reading the table breaks. A table
the migration itself created (and left empty) is not reported.
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
    from dbrunbook.sql.model import Statement


#: The equivalent rules of other migration linters.
PEERS = ("squawk: ban-drop-table",)

@registry.rule("DS001", "drop-table", "block",
               safe="stop using the table in a release first, back it up, then drop it in a later migration")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("drop_table"):
        if (not action.table.startswith(BATCH_PREFIX) and not _recreated(ctx, stmt, action.table)
                and on_existing_table(ctx.migration, stmt, action.table)):
            yield ctx.finding(stmt, f"table {action.table} is dropped with its data", action.table)


def _recreated(ctx: LintContext, stmt: Statement, table: str) -> bool:
    # SQLite batch mode drops the old table after copying it into _alembic_tmp_<table>, which
    # exists at the drop and is renamed to the table after it.
    copy = f"{BATCH_PREFIX}{table}"
    return copy in ctx.migration.state_before(stmt).tables and any(
        a.details.get("to") == table and a.table == copy
        for s, a in ctx.actions("rename_table") if s.index > stmt.index)
