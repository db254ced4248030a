"""Duplicate or redundant (prefix) index.

An index whose columns are the leading columns of another index (with the same predicate)
answers no query the longer one cannot, yet every write pays to maintain it.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation import registry
from dbrunbook.stages.design_validation._runner import DesignContext


@registry.rule("DV007", "redundant-index", "warn", safe="DROP INDEX the shorter one")
def check(ctx: DesignContext) -> Iterator[Finding]:
    for table in ctx.tables():
        indexes = sorted(table.indexes, key=lambda i: (len(i.columns), i.name or ""))
        for n, short in enumerate(indexes):
            if short.unique:
                continue  # a unique index enforces something the longer one does not
            for long in indexes[n + 1:]:
                if long.where == short.where and long.columns[:len(short.columns)] == short.columns:
                    what = "duplicates" if long.columns == short.columns else "is a prefix of"
                    yield ctx.finding(f"index {short.name} ({', '.join(short.columns)}) {what} {long.name} "
                                      f"({', '.join(long.columns)})", short.name or table.name,
                                      {"table": table.name, "covered_by": long.name}, f"DROP INDEX {short.name}")
                    break
