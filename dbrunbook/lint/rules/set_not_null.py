"""NOT NULL added to an existing column scans the table under a lock and fails on NULLs.

SET NOT NULL checks every row while holding ACCESS EXCLUSIVE (PostgreSQL: no reads or
writes for the whole scan) or rebuilds the table (MariaDB/MySQL), and fails outright if any
row holds NULL. PostgreSQL 12+ skips the scan, and cannot fail, when a validated
CHECK (col IS NOT NULL) constraint earlier in the migration already proves it: one added
without NOT VALID, or added NOT VALID and then validated.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.dialects import facts
from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import on_existing_table

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext
    from dbrunbook.sql.model import Action, Statement

#: The equivalent rules of other migration linters.
PEERS = ("squawk: adding-not-nullable-field", "strong_migrations: change_column_null")


def _proved(ctx: LintContext, stmt: Statement, action: Action) -> bool:
    """True when a validated CHECK (col IS NOT NULL) on the table comes before ``stmt``."""
    checks = {a.name: a for s, a in ctx.actions("add_constraint") if s.index < stmt.index
              and a.table == action.table and a.details.get("type") == "check"
              and action.column in a.details.get("not_null_columns", [])}
    validated = {a.name for s, a in ctx.actions("validate_constraint") if s.index < stmt.index
                 and a.table == action.table}
    return any(not a.details.get("not_valid") or name in validated for name, a in checks.items())


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
            scan = ("a full-table scan under ACCESS EXCLUSIVE (no validated CHECK "
                    f"({action.column} IS NOT NULL) before it)" if facts(ctx.dialect).not_null_uses_check
                    else "a full scan under lock")
            yield ctx.finding(stmt, f"NOT NULL added to {action.object}: {scan}, and it fails "
                              "if any row is NULL", action.object)
