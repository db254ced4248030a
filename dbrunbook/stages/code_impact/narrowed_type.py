"""Code writes a column whose type the change narrows.

A shorter VARCHAR, a smaller integer, fewer NUMERIC digits or another type family: values the
code writes may no longer fit, and depending on the database they fail or are cut silently.
Reads are not reported.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.code_impact import registry
from dbrunbook.stages.code_impact._runner import ImpactContext


@registry.rule("CI006", "narrowed-type-write", "warn",
               safe="validate or truncate values in the code before the type narrows, and deploy that code first; "
                    "or keep the wider type")
def check(ctx: ImpactContext) -> Iterator[Finding]:
    for ref in ctx.references(columns=True):
        change = ctx.watch.narrowed.get((ref.table, ref.column or ""))
        if change is not None and ref.access == "write":
            yield ctx.finding(ref, change, f"writes {ref.table}.{ref.column}, whose type narrows "
                              f"({change.before} -> {change.after})", f"{ref.table}.{ref.column}")
