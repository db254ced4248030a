"""An INSERT does not supply a column that the change makes NOT NULL without a default.

SQL with a column list, Core ``insert(...).values(...)`` and ORM constructors that leave the
column out fail once the constraint is in place: old code during the deploy window, and new
code that still leaves it out. An ORM or Core insert is fine when the model gives the column
a Python-side default; SQL needs a server default.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.code_impact import registry
from dbrunbook.stages.code_impact._runner import ImpactContext


@registry.rule("CI005", "insert-missing-required-column", "block",
               safe="add a server default (or keep the column nullable) until every deployed writer sets it: "
                    "deploy the code that sets it first, backfill, then add NOT NULL")
def check(ctx: ImpactContext) -> Iterator[Finding]:
    for ins in ctx.inserts():
        if ins.columns is None:
            continue  # no column list: the positional-insert rule reports it
        given = {c.lower() for c in ins.columns} if ins.via == "sql" else set(ins.columns)
        for column, required in sorted(ctx.watch.required.get(ins.table, {}).items()):
            if required.client_default and ins.via != "sql":
                continue
            if (column.lower() if ins.via == "sql" else column) not in given:
                yield ctx.finding(ins, required.change, f"inserts into {ins.table} without {column}, which the "
                                  "change makes NOT NULL without a default", f"{ins.table}.{column}",
                                  columns=ins.columns)
