"""NOT NULL added to an existing column scans the table under a lock and fails on NULLs.

SET NOT NULL checks every row while holding ACCESS EXCLUSIVE (PostgreSQL) or rebuilds the
table (MariaDB/MySQL), and fails outright if any row holds NULL. PostgreSQL 12+ skips the
scan when a validated CHECK (col IS NOT NULL) constraint already proves it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import re

from .. import registry
from ._util import on_existing_table

if TYPE_CHECKING:
    from ...results import Finding
    from ..model import Action, Statement
    from ..runner import LintContext


def _proved(ctx: LintContext, stmt: Statement, action: Action) -> bool:
    checks = {a.name: a for s, a in ctx.actions("add_constraint") if s.index < stmt.index
              and a.table == action.table and a.details.get("type") == "check"
              and re.search(rf'(?<!\w)"?{re.escape(action.column)}"?\s+is\s+not\s+null', a.details.get("expression", ""), re.I)}
    return any(a.name in checks for s, a in ctx.actions("validate_constraint") if s.index < stmt.index)


@registry.rule("MF001", "set-not-null", "warn", dialects=("postgresql", "mariadb", "mysql"),
               safe="ADD CONSTRAINT ck CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT ck; SET NOT NULL; "
                    "DROP CONSTRAINT ck (backfill NULLs first)")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("set_not_null", "modify_column"):
        if action.kind == "modify_column":
            old = ctx.migration.column_before(stmt, action.table, action.column)
            if not (action.details.get("not_null") and old is not None and not old.get("not_null")):
                continue
        if on_existing_table(ctx.migration, stmt, action.table) and not _proved(ctx, stmt, action):
            yield ctx.finding(stmt, f"NOT NULL added to {action.object}: a full scan under lock, and it fails "
                              "if any row is NULL", action.object)
