"""Code references a column by the name the change renames away.

A rename is atomic in the database but not in the fleet: code deployed before the migration
uses the old name and fails from the moment the migration runs until the new code is
everywhere; code after it fails if it still uses the old name.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.code_impact import registry
from dbrunbook.stages.code_impact._runner import ImpactContext, verb


@registry.rule("CI003", "renamed-column-reference", "block",
               safe="expand/contract: add the new column, write both (trigger or dual writes), move readers to "
                    "the new name, and drop the old column once no deployed code uses it")
def check(ctx: ImpactContext) -> Iterator[Finding]:
    for ref in ctx.references(columns=True):
        change = ctx.watch.renamed_columns.get((ref.table, ref.column or ""))
        if change is not None:
            yield ctx.finding(ref, change, f"{verb(ref)} {ref.table}.{ref.column}, which the change renames "
                              f"to {change.after}", f"{ref.table}.{ref.column}", new_name=change.after)
