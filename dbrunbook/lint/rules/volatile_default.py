"""ADD COLUMN with a volatile default rewrites the table.

A default that differs per row (random(), clock_timestamp(), gen_random_uuid(), a serial or
identity column's nextval(); the list is ``VOLATILE_FUNCTIONS`` per dialect) must be
computed for every existing row, so PostgreSQL rewrites the whole table under an ACCESS
EXCLUSIVE lock: no reads or writes until it is done. Constant and stable defaults (a
literal, now()) are stored once in the catalog and cost nothing since PostgreSQL 11; judged for
an older server (``--pg-version 10``), any default but NULL rewrites the table and is reported.
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


#: The first PostgreSQL that stores a constant default in the catalog instead of rewriting the table.
_CATALOG_DEFAULTS = 11

#: The equivalent rules of other migration linters.
PEERS = ("squawk: adding-field-with-default", "strong_migrations: add_column_default_callable")

@registry.rule("LK001", "volatile-default", "block", dialects=("postgresql",),
               safe="ADD COLUMN without default; SET DEFAULT for new rows; backfill existing rows in batches")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("add_column"):
        if not on_existing_table(ctx.migration, stmt, action.table):
            continue
        # Judged here against the dialect's table of volatile functions, from every call the default makes.
        calls = set(action.details.get("calls") or action.details.get("volatile_default") or ())
        volatile = sorted(calls & facts(ctx.dialect).volatile_functions)
        default = action.details.get("default")
        if volatile:
            yield ctx.finding(stmt, f"{action.object} gets a volatile default ({', '.join(volatile)}): "
                              "the table is rewritten under ACCESS EXCLUSIVE", action.object)
        elif ctx.pg_version < _CATALOG_DEFAULTS and default is not None and str(default).upper() != "NULL" \
                and not action.details.get("generated"):
            yield ctx.finding(stmt, f"{action.object} gets a default ({default}): before PostgreSQL "
                              f"{_CATALOG_DEFAULTS} (judged for {ctx.pg_version}) any default rewrites the table "
                              "under ACCESS EXCLUSIVE", action.object, pg_version=ctx.pg_version)
