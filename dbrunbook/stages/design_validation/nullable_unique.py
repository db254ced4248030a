"""Nullable column in a unique constraint intended as a key.

NULL is distinct from NULL in a unique constraint, so any number of rows may share the "same"
key as long as one of its columns is NULL: the constraint does not identify rows.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation import registry
from dbrunbook.stages.design_validation._runner import DesignContext


@registry.rule("DV009", "nullable-unique", "warn", safe="make the key columns NOT NULL (or use a partial unique index)")
def check(ctx: DesignContext) -> Iterator[Finding]:
    for table in ctx.tables():
        keys = [(u.name, u.columns) for u in table.uniques] + \
            [(i.name, i.columns) for i in table.indexes if i.unique and i.where is None]
        for name, cols in keys:
            nullable = [c for c in cols if (col := table.column(c)) is not None and col.nullable]
            if nullable:
                yield ctx.finding(f"unique key {name or table.name} ({', '.join(cols)}) allows NULL in "
                                  f"{', '.join(nullable)}", name or f"{table.name}({', '.join(cols)})",
                                  {"table": table.name, "nullable": nullable})
