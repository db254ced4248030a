"""Helpers shared by rule modules (not a rule: the leading underscore keeps it unregistered)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbrunbook.sql.model import Action, Migration, Statement
from dbrunbook.sql.state import BATCH_PREFIX

if TYPE_CHECKING:
    from dbrunbook.lint.runner import LintContext

#: Action kinds that change an existing table's definition and take a lock on it.
LOCKING = {"add_column", "drop_column", "alter_type", "set_not_null", "drop_not_null", "modify_column",
           "add_constraint", "drop_constraint", "validate_constraint", "create_index", "drop_index",
           "rename_column", "rename_table", "truncate", "drop_table", "set_default", "drop_default"}


def on_existing_table(migration: Migration, stmt: Statement, table: str) -> bool:
    """True when ``table`` holds the target's rows at ``stmt``: not one the migration created empty.

    A table created earlier in the migration is new and empty, so locking, indexing or
    reshaping it blocks nobody; SQLite batch mode's ``_alembic_tmp_`` copy of an existing
    table holds the old rows and is not new.
    """
    return bool(table) and not migration.is_new(stmt, table)


def table_of(migration: Migration, stmt: Statement, action: Action) -> str:
    """The table ``action`` works on; for ``DROP INDEX ix`` the table the migration built ix on, if it did."""
    if action.table or action.kind != "drop_index":
        return action.table
    return migration.state_before(stmt).indexes.get(action.name, "")


def locks_existing(migration: Migration, stmt: Statement, action: Action) -> bool:
    """True when ``action`` locks a table that holds the target's rows."""
    table = table_of(migration, stmt, action)
    if action.kind == "drop_index" and not table:
        return True  # an index the migration did not build is the target's, on one of its tables
    return on_existing_table(migration, stmt, table)


def first_lock_without(ctx: LintContext, setting: str) -> tuple[Statement, Action] | None:
    """The first statement locking an existing table, when the session ``setting`` is not set before it."""
    for stmt, action in ctx.actions(*LOCKING):
        if locks_existing(ctx.migration, stmt, action):
            return (stmt, action) if stmt.settings.get(setting, "0") in ("0", "", "DEFAULT") else None
    return None


def batch_copy(migration: Migration, stmt: Statement, action: Action) -> tuple[list[str], list[list[Any]]]:
    """For ``CREATE TABLE _alembic_tmp_x`` at ``stmt``: x's columns there, and what the copy reads.

    The second item pairs each column of the copy with the columns of x its value is read
    from (SQLite batch mode's ``INSERT INTO _alembic_tmp_x (...) SELECT ... FROM x``); it is
    empty when that statement is missing or not column by column.
    """
    table = action.table.removeprefix(BATCH_PREFIX)
    original = migration.state_before(stmt).tables.get(table)
    copies: list[list[Any]] = []
    position = next(i for i, s in enumerate(migration.statements) if s is stmt)
    for later in migration.statements[position + 1:]:
        fill = next((a for a in later.actions if a.table == action.table and a.kind in ("dml", "create_table")), None)
        if fill is not None and fill.kind == "dml" and fill.details.get("source") == table:
            copies = list(fill.details.get("copies", []))
            break
        if fill is not None and (fill.kind == "create_table" or fill.details.get("verb") == "insert"):
            break  # another copy of the same name, or a copy filled some other way
    return (list(original.columns) if original is not None else []), copies
