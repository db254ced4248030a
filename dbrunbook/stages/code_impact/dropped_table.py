"""Code uses a table that the change drops.

Every query, ORM class and Core table object that names the table fails once it is gone: in
old code running during the deploy window, and in new code that still names it.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.code_impact import registry
from dbrunbook.stages.code_impact._runner import ImpactContext


@registry.rule("CI002", "dropped-table-reference", "block",
               safe="expand/contract: first ship code that no longer uses the table, then drop it in a later "
                    "release; rename it aside first if you want a quick way back")
def check(ctx: ImpactContext) -> Iterator[Finding]:
    for ref in ctx.impact.references:
        change = ctx.watch.dropped_tables.get(ref.table)
        if change is not None:
            name = f"{ref.table}.{ref.column}" if ref.column else f"table {ref.table}"
            yield ctx.finding(ref, change, f"uses {name}, which the change drops", ref.table)
