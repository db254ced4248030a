"""Code uses a table by the name the change renames away.

Code deployed before the migration names the old table and fails from the moment the
migration runs until new code is everywhere.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.code_impact import registry
from dbrunbook.stages.code_impact._runner import ImpactContext


@registry.rule("CI004", "renamed-table-reference", "block",
               safe="rename the table and create a view under the old name (updatable for simple views) until "
                    "no deployed code uses the old name, or deploy code that copes with both names first")
def check(ctx: ImpactContext) -> Iterator[Finding]:
    for ref in ctx.impact.references:
        change = ctx.watch.renamed_tables.get(ref.table)
        if change is not None:
            yield ctx.finding(ref, change, f"uses table {ref.table}, which the change renames to {change.after}",
                              ref.table, new_name=change.after)
