"""Foreign key without a covering index.

Deleting or updating a parent row makes the database look up child rows by the foreign key
columns; without an index that starts with them, each lookup scans the child table (and on
PostgreSQL holds locks for the whole scan). MariaDB creates such an index itself, so the rule
is not run there.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation import registry
from dbrunbook.stages.design_validation._runner import DesignContext


@registry.rule("DV001", "fk-without-index", "warn", safe="CREATE INDEX ix_<table>_<columns> ON <table> (<fk columns>)",
               dialects=("postgresql", "sqlite"))
def check(ctx: DesignContext) -> Iterator[Finding]:
    for table in ctx.tables():
        # A descending column serves a foreign key's lookups as well as an ascending one.
        leading = [[c.removesuffix(" DESC") for c in ix.columns] for ix in table.indexes] \
            + [u.columns for u in table.uniques] + [table.primary_key]
        for fk in table.foreign_keys:
            if not any(cols[:len(fk.columns)] == fk.columns for cols in leading):
                cols = ", ".join(fk.columns)
                yield ctx.finding(f"foreign key {table.name}({cols}) -> {fk.ref_table} has no index on ({cols})",
                                  fk.name or f"{table.name}({cols})", {"table": table.name, "columns": fk.columns},
                                  f"CREATE INDEX ix_{table.name}_{'_'.join(fk.columns)} ON {table.name} ({cols})")
