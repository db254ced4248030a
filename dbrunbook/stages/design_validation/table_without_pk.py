"""Table without a primary key.

Rows cannot be addressed one by one: ORMs, logical replication and online schema-change tools
need a primary key, and duplicate rows creep in unnoticed.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation import registry
from dbrunbook.stages.design_validation._runner import DesignContext


@registry.rule("DV002", "table-without-pk", "warn",
               safe="add a primary key (a surrogate id column if nothing else is unique)")
def check(ctx: DesignContext) -> Iterator[Finding]:
    for table in ctx.tables():
        if not table.primary_key:
            yield ctx.finding(f"table {table.name} has no primary key", table.name, {"table": table.name})
