"""Code references a column that the change drops.

Old code still running during the deploy window fails as soon as the column is gone, and new
code that still names it is a bug that fails after the deploy. Reads of the column in SQL,
ORM attributes and keyword arguments, and Core ``table.c.column`` are all references.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.code_impact import registry
from dbrunbook.stages.code_impact._runner import ImpactContext, verb


@registry.rule("CI001", "dropped-column-reference", "block",
               safe="expand/contract: first ship code that no longer uses the column, then drop it in a later "
                    "release, once no deployed code reads or writes it")
def check(ctx: ImpactContext) -> Iterator[Finding]:
    for ref in ctx.references(columns=True):
        change = ctx.watch.dropped_columns.get((ref.table, ref.column or ""))
        if change is not None:
            yield ctx.finding(ref, change, f"{verb(ref)} {ref.table}.{ref.column}, which the change drops",
                              f"{ref.table}.{ref.column}")
