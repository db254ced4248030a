"""Foreign key that points at columns which are not a primary or unique key.

PostgreSQL and SQLite refuse it outright at DDL time, MariaDB accepts it and then one child row
may match several parents: deletes cascade unpredictably and joins multiply rows.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation import registry
from dbrunbook.stages.design_validation._runner import DesignContext


@registry.rule("DV003", "fk-to-non-unique", "block",
               safe="reference the primary key, or make the referenced columns unique")
def check(ctx: DesignContext) -> Iterator[Finding]:
    for table in ctx.tables():
        for fk in table.foreign_keys:
            parent = ctx.design.tables.get(fk.ref_table)
            if parent is None:
                continue
            keys = [parent.primary_key] + [u.columns for u in parent.uniques] \
                + [ix.columns for ix in parent.indexes if ix.unique and ix.where is None]
            if not any(sorted(k) == sorted(fk.ref_columns) for k in keys):
                yield ctx.finding(f"{table.name}({', '.join(fk.columns)}) references {fk.ref_table}"
                                  f"({', '.join(fk.ref_columns)}), which is not unique", fk.name or table.name,
                                  {"table": table.name, "ref_table": fk.ref_table, "ref_columns": fk.ref_columns})
