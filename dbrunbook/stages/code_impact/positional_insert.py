"""An INSERT without a column list into a table whose columns the change adds or drops.

``INSERT INTO t VALUES (...)`` and ``INSERT INTO t SELECT ...`` fill columns by position: once
the table has more or fewer columns, the statement fails or puts values in the wrong columns.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.code_impact import registry
from dbrunbook.stages.code_impact._runner import ImpactContext


@registry.rule("CI007", "positional-insert", "block",
               safe="name the columns in the INSERT (INSERT INTO t (a, b) VALUES ...) and deploy that first")
def check(ctx: ImpactContext) -> Iterator[Finding]:
    for ins in ctx.inserts():
        change = ctx.watch.reshaped.get(ins.table)
        if ins.columns is None and change is not None:
            yield ctx.finding(ins, change, f"inserts into {ins.table} by position, and the change "
                              f"{'drops' if change.op == 'remove_column' else 'adds'} {change.object}", ins.table)
