"""NOT NULL added to an existing column scans the table under a lock and fails on NULLs.

SET NOT NULL checks every row while holding ACCESS EXCLUSIVE (PostgreSQL: no reads or
writes for the whole scan) or rebuilds the table (MariaDB/MySQL), and fails outright if any
row holds NULL. PostgreSQL 12+ skips the scan, and cannot fail, when a validated
CHECK (col IS NOT NULL) constraint earlier in the migration already proves it: one added
without NOT VALID, or added NOT VALID and then validated. Judged for an older server
(``--pg-version 11``), the check proves nothing and the scan is reported all the same.
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

#: The first PostgreSQL whose SET NOT NULL skips the scan when a validated CHECK proves the column.
_CHECK_PROVES = 12

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
    uses_check = facts(ctx.dialect).not_null_uses_check
    for stmt, action in ctx.actions("set_not_null", "modify_column"):
        if action.kind == "modify_column":
            old = ctx.migration.column_before(stmt, action.table, action.column)
            if not (action.details.get("not_null") and old is not None and not old.get("not_null")):
                continue
        if not on_existing_table(ctx.migration, stmt, action.table):
            continue
        check_helps = not uses_check or ctx.pg_version >= _CHECK_PROVES
        if check_helps and _proved(ctx, stmt, action):
            continue
        fix = None
        if not uses_check:
            scan = "a full scan under lock"
        elif check_helps:
            scan = (f"a full-table scan under ACCESS EXCLUSIVE (no validated CHECK ({action.column} IS NOT NULL) "
                    "before it)")
        else:
            scan = (f"a full-table scan under ACCESS EXCLUSIVE (PostgreSQL {ctx.pg_version} scans even when a "
                    f"validated CHECK proves it; {_CHECK_PROVES}+ does not)")
            fix = (f"backfill NULLs first and SET NOT NULL in a quiet window under lock_timeout, or keep a validated "
                   f"CHECK ({action.column} IS NOT NULL) instead of NOT NULL until the server is {_CHECK_PROVES}+")
        yield ctx.finding(stmt, f"NOT NULL added to {action.object}: {scan}, and it fails if any row is NULL",
                          action.object, fix=fix)
