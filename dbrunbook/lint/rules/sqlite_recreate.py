"""SQLite batch operations recreate the table: every row is copied under the write lock.

SQLite's ALTER TABLE cannot change types, constraints or NOT NULL, so Alembic's batch mode
creates _alembic_tmp_<table>, copies every row, drops the old table and renames. The whole
database is write-locked for the copy, and triggers and views on the table must be recreated.
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


@registry.rule("LK011", "sqlite-table-recreate", "warn", dialects=("sqlite",),
               safe="prefer plain ADD COLUMN / RENAME, which SQLite does in place; run the batch at a quiet time")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("create_table"):
        table = action.table.removeprefix(BATCH_PREFIX)
        if table != action.table and on_existing_table(ctx.migration, stmt, table):
            yield ctx.finding(stmt, f"table {table} is recreated and every row copied", table)
