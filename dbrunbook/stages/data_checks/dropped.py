"""Column or table dropped: the non-null values, rows and bytes that would be destroyed.

A drop succeeds everywhere and takes its data with it, so any value it holds blocks. The
remedy keeps a copy (key plus the values) in an archive table before the drop runs.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from dbrunbook.stages.data_checks._base import CheckContext, CheckResult, rule


@rule("DC006", "dropped", "block",
               safe="archive the data first, or stop using it in code and drop it in a later release")
def check(ctx: CheckContext) -> Iterator[CheckResult]:
    for diff in ctx.of("remove_column"):
        _, _, table_name, dropped = diff
        table = ctx.table(table_name)
        if table is None or dropped.name not in table.c:
            continue
        column = table.c[dropped.name]
        yield _lost(ctx, table, [column], column.is_not(None), f"non-null values in {table_name}.{column.name}")
    for diff in ctx.of("remove_table"):
        table = ctx.table(diff[1].name)
        if table is not None:
            yield _lost(ctx, table, list(table.columns), sa.true(), f"rows in {table.name}")


def _lost(ctx: CheckContext, table: sa.Table, columns: list[sa.Column[Any]], where: Any, what: str) -> CheckResult:
    size = sum((sa.func.coalesce(ctx.dialect.bytes(c), 0) for c in columns), sa.literal(0))
    totals = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(size), 0)).select_from(table).where(where)
    count, size_bytes = (int(v) for v in ctx.conn.execute(totals).one())
    key = ctx.key(table)
    shown = [*key, *[c for c in columns if c not in key]][:8]
    sample = ctx.frame(sa.select(*shown).where(where).order_by(*(key or shown)).limit(ctx.sample))
    names = [c.name for c in columns] if len(columns) == 1 else []
    result = ctx.result(table.name, names, "dropped", count, f"{count} {what} ({size_bytes} bytes) would be lost",
                        sample=sample, query=ctx.sql(totals), evidence={"bytes": size_bytes})
    if count:
        keep = sa.select(*key, *[c for c in columns if c not in key]).where(where)
        archive = f"{table.name}_{names[0]}_archive" if names else f"{table.name}_archive"
        result.remedy("keep a copy before the drop", ctx.sql(sa.CreateTableAs(keep, archive)) + ";")
    return result
