"""Helpers shared by rule modules (not a rule: the leading underscore keeps it unregistered)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import Action, Migration, Statement

if TYPE_CHECKING:
    from ..runner import LintContext

#: Action kinds that change an existing table's definition and take a lock on it.
LOCKING = {"add_column", "drop_column", "alter_type", "set_not_null", "drop_not_null", "modify_column",
           "add_constraint", "drop_constraint", "validate_constraint", "create_index", "drop_index",
           "rename_column", "rename_table", "truncate", "drop_table", "set_default", "drop_default"}


def new_tables(migration: Migration, before: Statement) -> set[str]:
    """Tables created by the migration before ``before``: locking them blocks nobody."""
    return {a.table for s, a in migration.actions("create_table") if s.index < before.index}


def on_existing_table(migration: Migration, stmt: Statement, table: str) -> bool:
    return bool(table) and table not in new_tables(migration, stmt) and not table.startswith("_alembic_tmp_")


def first_lock_without(ctx: "LintContext", setting: str) -> tuple[Statement, Action] | None:
    """The first statement locking an existing table, when the session ``setting`` is not set before it."""
    for stmt, action in ctx.actions(*LOCKING):
        if on_existing_table(ctx.migration, stmt, action.table):
            return (stmt, action) if stmt.settings.get(setting, "0") in ("0", "", "DEFAULT") else None
    return None
